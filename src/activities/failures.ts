import { ApplicationFailure } from '@temporalio/common';
import { ConfigError } from '../config/load';
import { SecretUnavailableError } from '../config/secrets';
import { EtcdAuthenticationError, EtcdTlsMaterialError } from '../etcd/connect';
import { FailureType } from '../common/failures';
import { InjectedFault } from '../common/failpoints';
import { UnsafeArchiveError } from '../archive/extract';
import { NebulaCertError } from '../nebula/certs';
import { AgentConfigError } from '../agent/agent-toml';
import { AgentNotConfiguredError } from '../agent/node-agent';

/**
 * Maps our own error classes to typed Temporal failures: configuration and missing material are
 * non-retryable (a retry would fail the same way); anything else stays retryable.
 */
export function toApplicationFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ConfigError) return ApplicationFailure.nonRetryable(err.message, FailureType.ConfigError);
  if (err instanceof SecretUnavailableError) return ApplicationFailure.nonRetryable(err.message, FailureType.SecretUnavailable);
  if (err instanceof InjectedFault) return ApplicationFailure.nonRetryable(err.message, 'InjectedFault');
  if (err instanceof EtcdTlsMaterialError) return ApplicationFailure.nonRetryable(err.message, FailureType.EtcdTlsMaterialMissing);
  if (err instanceof EtcdAuthenticationError) return ApplicationFailure.nonRetryable(err.message, FailureType.EtcdAuthenticationFailed);
  if (err instanceof UnsafeArchiveError) return ApplicationFailure.nonRetryable(err.message, FailureType.UnsafeArchive);
  if (err instanceof AgentNotConfiguredError) return ApplicationFailure.nonRetryable(err.message, FailureType.InvalidInput);
  if (err instanceof AgentConfigError) return ApplicationFailure.nonRetryable(err.message, FailureType.ConfigError);
  if (err instanceof NebulaCertError) return ApplicationFailure.nonRetryable(err.message, FailureType.NebulaCertInvalid);
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') {
    // Retrying into the same full disk cannot help; what was written is already removed (writers abort).
    const path = (err as NodeJS.ErrnoException).path;
    return ApplicationFailure.nonRetryable(`no space left on the filesystem of ${path ?? 'a file this step writes (no path reported)'}: free space there, or point workDir / the target elsewhere`, FailureType.InsufficientDisk);
  }
  return err;
}

/** Wraps an activity implementation so that every thrown error goes through toApplicationFailure. */
export function typedFailures<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await fn(...args);
    } catch (err) {
      throw toApplicationFailure(err);
    }
  };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
