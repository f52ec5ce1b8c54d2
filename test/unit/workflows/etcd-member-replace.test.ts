/**
 * Every branch of the member replacement workflow (src/workflows/etcd-member-replace.ts) with
 * stubbed activities on the time-skipping test server. Membership changes cannot be rolled back like
 * a restore: what matters is that nothing is removed before the quorum check and the approval, and
 * that a failure after the removal stops there (the run can be started again).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import type { ReplaceMemberInput, ReplaceMemberResult } from '../../../src/workflows/etcd-member-replace';
import {
  awaitingApproval,
  runFailure,
  startStubbedWorkflowWorld,
  type ResultOf,
  type StubbedWorkflowWorld,
} from '../support/stubbed-workers';
import { AGENT_NODES, CLUSTER, deafAgent, fails, healthyEtcdStubs, MEMBERS, NODES } from './etcd-fakes';

const FAILED = MEMBERS[2]!; // etcd-3 on node-3

function quorum(overrides: Partial<ResultOf<'assessQuorum'>> = {}): ResultOf<'assessQuorum'> {
  return {
    healthy: ['etcd-1', 'etcd-2'],
    size: 3,
    quorum: 2,
    hasQuorum: true,
    members: MEMBERS.map((m, i) => ({ id: `id-${i + 1}`, name: m.name, peerURLs: [m.peerUrl], isLearner: false })),
    failed: { name: FAILED.name, node: FAILED.node, peerUrl: FAILED.peerUrl },
    failedIsHealthy: false,
    ...overrides,
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
    assessQuorum: () => quorum(),
    describeEtcdMember: (i) => ({
      member: i.member,
      dataDir: `/var/lib/etcd/${i.member}`,
      newDataDir: `/var/lib/etcd/replaced-${i.tag}`,
      running: true,
    }),
    removeEtcdMember: () => ({ removedId: 'id-3' }),
  }),
);
afterEach(async () => {
  await world.afterTest();
}, 60_000);

const a = () => world.activities;
/** Steps that change the membership or the failed member's node. */
const CHANGING = [
  'stopEtcdMember',
  'removeEtcdMember',
  'addEtcdMember',
  'repointEtcdMemberConfig',
  'startEtcdMember',
  'promoteEtcdLearner',
];
const changingSteps = () => a().sequence((c) => CHANGING.includes(c.name));

function start(input: Partial<ReplaceMemberInput>, unpatched: string[] = []): Promise<WorkflowHandle> {
  return world.start('replaceEtcdMemberWorkflow', { cluster: CLUSTER, member: FAILED.name, ...input }, { unpatched });
}

async function run(input: Partial<ReplaceMemberInput>, unpatched: string[] = []): Promise<ReplaceMemberResult> {
  return (await start(input, unpatched)).result();
}

describe('member replacement', () => {
  it('assesses the quorum, waits for the approval, then stops, removes, re-adds (as a learner), starts, promotes and verifies', async () => {
    const handle = await start({});
    await awaitingApproval(handle);
    expect(a().sequence()).toEqual(['assessQuorum']);
    await handle.executeUpdate('approve', { args: [{ approvedBy: 'alice' }] });
    const result: ReplaceMemberResult = await handle.result();
    expect(result).toMatchObject({ member: FAILED.name, removedId: 'id-3', addedId: `id-${FAILED.name}`, approvedBy: 'alice' });
    expect(changingSteps()).toEqual([
      `stopEtcdMember@${FAILED.node}`,
      'removeEtcdMember',
      'addEtcdMember',
      `repointEtcdMemberConfig@${FAILED.node}`,
      `startEtcdMember@${FAILED.node}`,
      'promoteEtcdLearner',
    ]);
    expect(a().of('removeEtcdMember')[0]!.input).toEqual({ cluster: CLUSTER, member: FAILED.name, via: 'etcd-1' });
    expect(a().of('addEtcdMember')[0]!.input).toMatchObject({ member: FAILED.name, via: ['etcd-1'], asLearner: true });
    const repoint = a().of('repointEtcdMemberConfig')[0]!.input;
    expect(repoint.changes).toEqual({
      dataDir: result.newDataDir,
      initialClusterState: 'existing',
      initialCluster: MEMBERS.map((m) => `${m.name}=${m.peerUrl}`).join(','),
    });
    // Verified, then the agents recovered one at a time.
    expect(a().first('checkEtcdCluster')).toBeGreaterThan(a().first('promoteEtcdLearner'));
    expect(
      a()
        .of('restartAgent')
        .map((c) => c.node),
    ).toEqual(AGENT_NODES);
    expect(a().first('restartAgent')).toBeGreaterThan(a().first('checkEtcdCluster'));
  });

  it('does not stop a member that is not running', async () => {
    a().set({ describeEtcdMember: (i) => ({ member: i.member, dataDir: '/d', newDataDir: '/n', running: false }) });
    await run({ approved: true });
    expect(changingSteps()[0]).toBe('removeEtcdMember');
  });

  it('refuses without quorum before anything changes, naming the cluster restore instead', async () => {
    a().set({ assessQuorum: () => quorum({ healthy: ['etcd-1'], hasQuorum: false }) });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'QuorumLost' });
    expect(failure.message).toContain('nnoe-dr restore etcd --cluster nnoe-test');
    expect(a().sequence()).toEqual(['assessQuorum']);
  });

  it('refuses a healthy member unless forced', async () => {
    a().set({ assessQuorum: () => quorum({ failedIsHealthy: true }) });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'RestoreRefused' });
    expect(failure.message).toContain('Replace it anyway with --force');
    expect(a().sequence()).toEqual(['assessQuorum']);

    a().reset({
      ...healthyEtcdStubs(),
      assessQuorum: () => quorum({ failedIsHealthy: true }),
      describeEtcdMember: (i) => ({ member: i.member, dataDir: '/d', newDataDir: '/n', running: true }),
      removeEtcdMember: () => ({ removedId: 'id-3' }),
    });
    await run({ approved: true, force: true });
    expect(changingSteps()).toContain('removeEtcdMember');
  });

  it('an approval timeout changes nothing', async () => {
    const failure = await runFailure(run({ approvalTimeout: '10m' }));
    expect(failure).toMatchObject({ type: 'ApprovalTimedOut' });
    expect(failure.message).toContain('replacement of etcd-3 was not approved within 10m; nothing was changed');
    expect(a().sequence()).toEqual(['assessQuorum']);
  });

  it('a failure after the removal stops there: nothing is started, nothing re-added', async () => {
    a().set({ addEtcdMember: () => fails('member add: etcdserver: unhealthy cluster') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure.message).toContain('replacement of etcd-3 failed: member add: etcdserver: unhealthy cluster');
    expect(changingSteps()).toEqual([`stopEtcdMember@${FAILED.node}`, 'removeEtcdMember', 'addEtcdMember']);
  });

  it('an agent that does not serve afterwards fails the run', async () => {
    a().set({ checkAgent: () => deafAgent('node-1') });
    expect(await runFailure(run({ approved: true }))).toMatchObject({ type: 'AgentsNotServing' });
    expect(changingSteps()).toContain('promoteEtcdLearner');
  });
});

describe('runs recorded before a patch marker', () => {
  it('member-replace-approval: no approval, and a healthy member is not refused', async () => {
    a().set({ assessQuorum: () => quorum({ failedIsHealthy: true }) });
    const result = await run({}, ['member-replace-approval']);
    expect(result.approvedBy).toBeNull();
    expect(changingSteps()).toContain('removeEtcdMember');
  });

  it('etcd-learner-join: re-added as a voter, nothing promoted', async () => {
    await run({ approved: true }, ['etcd-learner-join']);
    expect(a().of('addEtcdMember')[0]!.input.asLearner).toBeUndefined();
    expect(a().of('promoteEtcdLearner')).toEqual([]);
  });

  it('real-agent-recovery: the agents are left alone', async () => {
    const result = await run({ approved: true }, ['real-agent-recovery']);
    expect(result.agents).toBeUndefined();
    expect(a().of('restartAgent')).toEqual([]);
    expect(a().of('describeBackupPlan')).toEqual([]);
  });
});
