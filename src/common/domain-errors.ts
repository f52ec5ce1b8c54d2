/**
 * The errors our code throws when it knows what went wrong: each carries its failure type (what
 * workflows and tests match on) and whether retrying can help. Domain modules (etcd/, phpipam/,
 * restore/, ...) throw these and never import Temporal; the activity error seam
 * (src/activities/error-seam.ts) is the one place that turns them into ApplicationFailures.
 */
import type { FailureType } from './failures';

/** A FailureType, or `InjectedFault` (failpoints: tests and drills of the runbooks only). */
export type DomainFailureType = FailureType | 'InjectedFault';

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    message: string,
    readonly type: DomainFailureType,
    readonly nonRetryable: boolean,
  ) {
    super(message);
  }

  /** Retrying cannot help (bad input, configuration, a refused or corrupt artefact). */
  static nonRetryable(message: string, type: DomainFailureType): DomainError {
    return new DomainError(message, type, true);
  }

  /** Worth retrying under the activity's retry policy (a server away, a store unreachable). */
  static retryable(message: string, type: DomainFailureType): DomainError {
    return new DomainError(message, type, false);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
