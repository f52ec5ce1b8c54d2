/** Waiting for a condition, for production code and the sandbox alike. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it returns true (an error from `check` ends the wait: it is not retried). On
 * timeout throws an error built by `describeFailure`, so callers can attach logs that explain why.
 * (The tests' `pollUntil` in test/support/harness.ts differs: it returns the probe's value and
 * keeps polling through errors.)
 */
export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  options: { timeoutMs: number; intervalMs?: number; describeFailure: () => string | Promise<string> },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const intervalMs = options.intervalMs ?? 200;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= deadline) throw new Error(await options.describeFailure());
    await sleep(intervalMs);
  }
}
