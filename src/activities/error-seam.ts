/**
 * The error seam: the one place where errors thrown by activities become the Temporal failures
 * workflows see. `createManagementActivities` and `createNodeActivities` (./index.ts) pass every
 * activity through `withErrorSeam`, so no activity can be registered on a worker unmapped.
 *   DomainError (src/common/domain-errors.ts) -> ApplicationFailure of its type and retryability
 *   ENOSPC from Node                           -> non-retryable InsufficientDisk naming the file
 *   ApplicationFailure, anything else          -> unchanged: the SDK makes an unknown error a
 *                                                 retryable failure typed with the error's name
 */
import { ApplicationFailure } from '@temporalio/common';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

export function toApplicationFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof DomainError) {
    const failure = ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: err.nonRetryable });
    failure.stack = err.stack; // where it was thrown, not this seam
    return failure;
  }
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') {
    // Retrying into the same full disk cannot help; what was written is already removed (writers abort).
    const path = (err as NodeJS.ErrnoException).path;
    return ApplicationFailure.nonRetryable(
      `no space left on the filesystem of ${path ?? 'a file this step writes (no path reported)'}: free space there, or point workDir / the target elsewhere`,
      FailureType.InsufficientDisk,
    );
  }
  return err;
}

type Activity = (...args: never[]) => Promise<unknown>;

const behindSeam = new WeakSet<Activity>();

/** True for an activity wrapped by withErrorSeam (the seam's own test checks every registered activity). */
export function isBehindErrorSeam(fn: unknown): boolean {
  return typeof fn === 'function' && behindSeam.has(fn as Activity);
}

/** Every activity of the record, its errors mapped by toApplicationFailure. */
export function withErrorSeam<T extends Record<string, Activity>>(activities: T): T {
  const wrapped: Record<string, Activity> = {};
  for (const [name, fn] of Object.entries(activities)) {
    const seamed = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toApplicationFailure(err);
      }
    };
    behindSeam.add(seamed);
    wrapped[name] = seamed;
  }
  return wrapped as T;
}
