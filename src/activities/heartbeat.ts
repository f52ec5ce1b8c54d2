/**
 * Heartbeats for activity steps that have no progress of their own to report (a `snapshot
 * restore`, an extraction, waiting for a workflow): a timer beats while the work runs, so the
 * workflow can use a short heartbeat timeout and notice a dead worker fast, and a cancellation
 * reaches the activity.
 */
import { Context } from '@temporalio/activity';

const EVERY_MS = 5000;

/**
 * Runs `work`, heartbeating every `everyMs` (default 5 s) with `details` (a function is asked at
 * each beat, for details that change, e.g. a byte count).
 */
export async function withHeartbeat<T>(details: unknown, work: () => Promise<T>, everyMs = EVERY_MS): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(typeof details === 'function' ? (details as () => unknown)() : details), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The activity `fn`, heartbeating (without details) every 5 s while it runs. */
export function heartbeating<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return (...args: A) => withHeartbeat(undefined, () => fn(...args));
}
