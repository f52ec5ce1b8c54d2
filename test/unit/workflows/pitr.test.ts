/**
 * Every branch of the point-in-time restore (src/workflows/pitr.ts) with stubbed activities on the
 * time-skipping test server: the plan refuses before anything else, the snapshot restore is the etcd
 * restore as a child (its approval and rollback included), the replay only follows a restore that
 * succeeded, and the agents come last.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import type { PointInTimeInput, PointInTimeResult } from '../../../src/workflows/pitr';
import {
  awaitingApproval,
  runFailure,
  startStubbedWorkflowWorld,
  type ResultOf,
  type StubbedWorkflowWorld,
} from '../support/stubbed-workers';
import { AGENT_NODES, CLUSTER, deafAgent, fails, healthyEtcdStubs, NODES, REVISION_BUMP, SET_ID, SNAPSHOT_REVISION } from './etcd-fakes';

const TARGET_REVISION = SNAPSHOT_REVISION + 40;

function pitrPlan(): ResultOf<'planPointInTime'> {
  return {
    cluster: CLUSTER,
    setId: SET_ID,
    snapshotRevision: SNAPSHOT_REVISION,
    clusterId: 'c1',
    liveClusterId: 'c1',
    targetRevision: TARGET_REVISION,
    target: { revision: TARGET_REVISION },
    segments: [{ key: 'segment-1' }] as unknown as ResultOf<'planPointInTime'>['segments'],
    events: 40,
  };
}

let world: StubbedWorkflowWorld;
beforeAll(async () => {
  world = await startStubbedWorkflowWorld(NODES);
}, 120_000);
afterAll(async () => {
  await world?.stop();
});
beforeEach(() =>
  world.activities.reset({
    ...healthyEtcdStubs(),
    planPointInTime: () => pitrPlan(),
    replayChanges: () => ({ revisions: 40, events: 40, transactions: 12 }),
  }),
);
afterEach(async () => {
  await world.afterTest();
}, 60_000);

const a = () => world.activities;
const ETCD_CHANGES = ['stopEtcdMember', 'repointEtcdMemberConfig', 'startEtcdMember', 'revertEtcdMemberConfig'];

function start(input: Partial<PointInTimeInput>, unpatched: string[] = []): Promise<WorkflowHandle> {
  return world.start('pointInTimeRestoreWorkflow', { cluster: CLUSTER, targetRevision: TARGET_REVISION, ...input }, { unpatched });
}

async function run(input: Partial<PointInTimeInput>, unpatched: string[] = []): Promise<PointInTimeResult> {
  return (await start(input, unpatched)).result();
}

describe('point-in-time restore', () => {
  it('plans, restores the snapshot (child, approved there), replays up to the target, verifies, then recovers the agents', async () => {
    const handle = await start({});
    const child = world.env.client.workflow.getHandle(`${handle.workflowId}/etcd-restore`);
    await awaitingApproval(child);
    expect(a().sequence((c) => ETCD_CHANGES.includes(c.name))).toEqual([]);
    await child.executeUpdate('approve', { args: [{ setId: SET_ID, approvedBy: 'alice' }] });
    const result: PointInTimeResult = await handle.result();
    expect(result.restore).toEqual({
      setId: SET_ID,
      snapshotRevision: SNAPSHOT_REVISION,
      revisionBump: { used: true, by: REVISION_BUMP, detail: expect.any(String) },
      restoredRevision: SNAPSHOT_REVISION + REVISION_BUMP,
    });
    expect(result.replay).toEqual({ revisions: 40, events: 40, transactions: 12 });
    // The replay follows the verified restore; the agents come after the final check (the child restarts none).
    expect(a().of('replayChanges')[0]!.input).toMatchObject({ afterRevision: SNAPSHOT_REVISION, targetRevision: TARGET_REVISION });
    expect(a().first('replayChanges')).toBeGreaterThan(a().first('verifyRestoredContent'));
    const finalCheck = a().calls.findIndex((c, i) => c.name === 'checkEtcdCluster' && i > a().first('replayChanges'));
    expect(a().calls[finalCheck]!.input.criticalKeys).toEqual([{ key: '/nnoe/dns/zones/example.com' }]);
    expect(
      a()
        .of('restartAgent')
        .map((c) => c.node),
    ).toEqual(AGENT_NODES);
    expect(a().first('restartAgent')).toBeGreaterThan(finalCheck);
  });

  it('refuses in the plan, before anything else, when the captured changes do not reach the target', async () => {
    a().set({
      planPointInTime: () =>
        fails('the captured changes end at revision 180 (2026-12-04T06:10:00Z); 201 is not reachable', 'PointInTimeUnreachable'),
    });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'PointInTimeUnreachable' });
    expect(failure.message).toContain('point-in-time restore failed: the captured changes end at revision 180');
    expect(a().sequence()).toEqual(['planPointInTime']);
  });

  it('an approval timeout of the restore changes nothing and replays nothing', async () => {
    expect(await runFailure(run({ approvalTimeout: '15m' }))).toMatchObject({ type: 'ApprovalTimedOut' });
    expect(a().sequence((c) => ETCD_CHANGES.includes(c.name))).toEqual([]);
    expect(a().of('replayChanges')).toEqual([]);
  });

  it('a restore that rolls back replays nothing', async () => {
    a().set({ startEtcdMember: () => fails('etcd exited at once') });
    expect(await runFailure(run({ approved: true }))).toMatchObject({ type: 'RolledBack' });
    expect(a().of('revertEtcdMemberConfig').length).toBe(3);
    expect(a().of('replayChanges')).toEqual([]);
  });

  it('a failed replay fails the run after the restore, without rolling the restore back', async () => {
    a().set({ replayChanges: () => fails('segment segment-1: sha256 differs', 'ChecksumMismatch') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'ChecksumMismatch' });
    expect(a().of('revertEtcdMemberConfig')).toEqual([]);
    expect(a().of('restartAgent')).toEqual([]);
  });

  it('an agent that does not serve the target state fails the run', async () => {
    a().set({ checkAgent: () => deafAgent('node-2') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'AgentsNotServing' });
    expect(failure.message).toContain(`etcd was restored to revision ${TARGET_REVISION} and verified`);
  });

  it('real-agent-recovery (runs recorded before it): each agent restarted and waited for by its health', async () => {
    await run({ approved: true }, ['real-agent-recovery']);
    expect(
      a()
        .of('restartAgentAndWait')
        .map((c) => c.node),
    ).toEqual(AGENT_NODES);
    expect(a().of('republishAgentKeys')).toEqual([]);
  });
});
