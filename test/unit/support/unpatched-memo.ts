/** The memo key under which a test run lists the `patched()` markers it runs without (test/unit/support/unpatched-workflow.ts). */
export const UNPATCHED_MEMO = 'nnoe-dr-test-unpatched';
