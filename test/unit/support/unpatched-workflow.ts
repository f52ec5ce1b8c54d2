/**
 * Stands in for `@temporalio/workflow` inside the test bundle (test/unit/support/workflow-bundle.ts):
 * everything is the SDK's own, except that `patched(marker)` answers false for the markers a run
 * lists in its memo under UNPATCHED_MEMO. Such a run takes the branch runs recorded before that
 * marker take (e.g. the etcd restore's old order, approval -> stop -> restore), so those branches
 * can be tested like the current ones. Runs without the memo are untouched.
 */
import * as sdk from '@temporalio/workflow/lib/index';
import { UNPATCHED_MEMO } from './unpatched-memo';

export * from '@temporalio/workflow/lib/index';

export function patched(marker: string): boolean {
  const unpatched = sdk.workflowInfo().memo?.[UNPATCHED_MEMO];
  if (Array.isArray(unpatched) && unpatched.includes(marker)) return false;
  return sdk.patched(marker);
}
