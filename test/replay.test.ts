/**
 * Replays every recorded workflow history (test/fixtures/histories) against today's workflow code:
 * a change that would break running workflows fails here.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { inject } from 'vitest';

const dir = join(__dirname, 'fixtures', 'histories');
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('workflow determinism', () => {
  it('has recorded histories to replay', () => {
    expect(fixtures.length).toBeGreaterThan(0);
  });

  it.each(fixtures)('replays %s without nondeterminism', async (file) => {
    const history = historyFromJSON(JSON.parse(readFileSync(join(dir, file), 'utf8')));
    const { workflowBundlePath } = inject('world');
    await expect(
      Worker.runReplayHistory({ workflowBundle: { codePath: workflowBundlePath } }, history, recordedWorkflowId(history)),
    ).resolves.toBeUndefined();
  });

  it('fails replay when the workflow code changes incompatibly', async () => {
    const history = historyFromJSON(JSON.parse(readFileSync(join(dir, 'etcd-backup-complete.json'), 'utf8')));
    const changed = await bundleWorkflowCode({ workflowsPath: join(__dirname, 'fixtures', 'changed-workflows.ts'), logger: silent });
    await expect(Worker.runReplayHistory({ workflowBundle: changed }, history)).rejects.toBeInstanceOf(DeterminismViolationError);
  });
});

/**
 * The exported history does not carry the run's own workflow id, but children are named
 * `<parent id>/<part>`: replay must use the recorded id or child ids differ.
 */
function recordedWorkflowId(history: ReturnType<typeof historyFromJSON>): string | undefined {
  for (const event of history.events ?? []) {
    const childId = event.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    if (childId && childId.includes('/')) return childId.slice(0, childId.lastIndexOf('/'));
  }
  return undefined;
}

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
