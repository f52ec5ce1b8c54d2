/**
 * Steps started side by side (one per member, one per component): when one fails, what follows the
 * failure (a rollback, a discard, the run's end, which ends its children) must not race a step that is
 * still running. So every step settles before the first failure is thrown. Each use sits behind its
 * own patch marker: runs recorded before it threw at once (Promise.all) and replay that way.
 */
import { patched } from '@temporalio/workflow';

/** Like Promise.all, but waits for every promise to settle before throwing the first failure. */
export async function allOrFirstFailure<T>(promises: Array<T | Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** allOrFirstFailure in runs that have `marker`, Promise.all in runs recorded before it. */
export function togetherBehind(marker: string): <T>(promises: Array<T | Promise<T>>) => Promise<T[]> {
  return patched(marker) ? allOrFirstFailure : (promises) => Promise.all(promises);
}
