/**
 * Every branch of the etcd restore workflow (src/workflows/etcd-restore.ts) with stubbed activities
 * on the time-skipping test server: which steps ran, in which order, which undo steps ran, and that
 * nothing destructive ran where it must not. Runs recorded before a `patched` marker are run with
 * that marker off (test/unit/support/unpatched-workflow.ts).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { EtcdRestoreInput, EtcdRestoreResult } from '../../../src/workflows/etcd-restore';
import {
  awaitingApproval,
  heartbeatUntilCancelled,
  runFailure,
  startStubbedWorkflowWorld,
  type ActivityCall,
  type StubbedWorkflowWorld,
} from '../support/stubbed-workers';
import {
  AGENT_NODES,
  CLUSTER,
  deafAgent,
  etcdRestorePlan,
  fails,
  healthyEtcdStubs,
  LEADER,
  memberChange,
  MEMBERS,
  NODES,
  oldDataDir,
  restoredDataDir,
  REVISION_BUMP,
  SET_ID,
  SNAPSHOT_REVISION,
} from './etcd-fakes';

let world: StubbedWorkflowWorld;
beforeAll(async () => {
  world = await startStubbedWorkflowWorld(NODES);
}, 120_000);
afterAll(async () => {
  await world?.stop();
});
beforeEach(() => world.activities.reset(healthyEtcdStubs()));
afterEach(async () => {
  await world.afterTest();
}, 60_000);

const MEMBER_NAMES = MEMBERS.map((m) => m.name);
/** Steps that change the running cluster or its agents: none may run before the approval, or in a run that ends "nothing was changed". */
const DESTRUCTIVE = [
  'stopChangeCapture',
  'stopEtcdMember',
  'repointEtcdMemberConfig',
  'startEtcdMember',
  'revertEtcdMemberConfig',
  'addEtcdMember',
  'promoteEtcdLearner',
  'restartAgent',
  'restartAgentAndWait',
  'republishAgentKeys',
];

function start(input: Partial<EtcdRestoreInput>, unpatched: string[] = []): Promise<WorkflowHandle> {
  return world.start('etcdRestoreWorkflow', { cluster: CLUSTER, ...input }, { unpatched });
}

async function run(input: Partial<EtcdRestoreInput>, unpatched: string[] = []): Promise<EtcdRestoreResult> {
  return (await start(input, unpatched)).result();
}

const a = () => world.activities;
const destructiveCalls = () => a().sequence((c) => DESTRUCTIVE.includes(c.name));
const membersOf = (calls: ActivityCall[]) => calls.map((c) => c.input.member as string).sort();
/** Index of the first call matching (-1: none). */
const indexOf = (name: string, member?: string) =>
  a().calls.findIndex((c) => c.name === name && (member === undefined || c.input.member === member));
const lastIndexOf = (name: string) =>
  a()
    .calls.map((c) => c.name as string)
    .lastIndexOf(name);

/**
 * A step that is still running when its run ends (the race the markers close), held until the test
 * lets it finish. Such a run leaves the Java test server's clock locked for good, so these tests run
 * on a server of their own (`ownWorld`).
 */
function slowStep(): { run(): Promise<void>; finish(): Promise<void> } {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let ended: Promise<void> = Promise.resolve();
  return {
    run: () => (ended = released.then(() => new Promise((r) => setTimeout(r, 50)))),
    finish: async () => {
      release();
      await ended;
    },
  };
}

/** Runs `test` on a test server and workers of its own (for runs that end with an activity in flight). */
async function ownWorld(test: (own: StubbedWorkflowWorld) => Promise<void>): Promise<void> {
  const own = await startStubbedWorkflowWorld(NODES);
  try {
    own.activities.reset(healthyEtcdStubs());
    await test(own);
  } finally {
    await own.stop();
  }
}

/** A step held until another one happens (or at most `ms`): a race decided the same way on every run. */
function signal(): { fire(): void; orAfter(ms: number): Promise<void> } {
  let fire!: () => void;
  const fired = new Promise<void>((r) => {
    fire = r;
  });
  return { fire: () => fire(), orAfter: (ms) => Promise.race([fired, new Promise<void>((r) => setTimeout(r, ms))]) };
}

function expectNothingChanged(): void {
  expect(destructiveCalls()).toEqual([]);
}

function expectRolledBack(changes: Record<string, ReturnType<typeof memberChange> | null>): void {
  const reverts = a().of('revertEtcdMemberConfig');
  expect(Object.fromEntries(reverts.map((c) => [c.input.member, c.input.change]))).toEqual(changes);
  for (const r of reverts) expect(r.node).toBe(MEMBERS.find((m) => m.name === r.input.member)!.node);
  // Then the old cluster is checked (without the restore's minimum revision) and the old members' agents recovered.
  const rollbackCheck = a().calls.findIndex((c, i) => c.name === 'checkEtcdCluster' && i > lastIndexOf('revertEtcdMemberConfig'));
  expect(rollbackCheck).toBeGreaterThan(-1);
  expect(a().calls[rollbackCheck]!.input.minRevision).toBeUndefined();
  expect(
    a()
      .of('restartAgent')
      .map((c) => c.node),
  ).toEqual(AGENT_NODES);
  expect(indexOf('restartAgent')).toBeGreaterThan(rollbackCheck);
  expect(a().of('verifyRestoredContent').length).toBeLessThanOrEqual(1);
  expect(a().of('discardRestoredData')).toEqual([]); // the new dirs of a swapped cluster are the operator's to delete
  expect(membersOf(a().of('discardStagedSnapshot'))).toEqual(MEMBER_NAMES);
}

describe('all-members', () => {
  it('restores the new dirs before the approval, then stops the followers before the leader, repoints, verifies and recovers the agents', async () => {
    const handle = await start({});
    await awaitingApproval(handle);
    expect(a().calls[0]!.name).toBe('planEtcdRestore');
    expect(
      a()
        .of('stageEtcdSnapshot')
        .map((c) => c.node)
        .sort(),
    ).toEqual(NODES);
    expect(
      a()
        .of('restoreEtcdMemberData')
        .map((c) => [c.node, c.input.member, c.input.initialCluster, c.input.restoredDataDir])
        .sort(),
    ).toEqual(MEMBERS.map((m) => [m.node, m.name, etcdRestorePlan().initialCluster, restoredDataDir(m.name)]));
    expectNothingChanged();

    await handle.executeUpdate('approve', { args: [{ setId: SET_ID, approvedBy: 'alice', identity: 'cli@host' }] });
    const result: EtcdRestoreResult = await handle.result();
    expect(result).toMatchObject({
      setId: SET_ID,
      strategy: 'all-members',
      approvedBy: 'alice',
      approverIdentity: 'cli@host',
      restoredRevision: SNAPSHOT_REVISION + REVISION_BUMP,
    });
    expect(result.dataDirs).toEqual(MEMBERS.map((m) => ({ member: m.name, old: oldDataDir(m.name), restored: restoredDataDir(m.name) })));

    // The capture stops before etcd does; the followers stop before the leader.
    expect(indexOf('stopChangeCapture')).toBeGreaterThan(lastIndexOf('restoreEtcdMemberData'));
    expect(indexOf('findEtcdLeader')).toBeGreaterThan(indexOf('stopChangeCapture'));
    const leaderStop = indexOf('stopEtcdMember', LEADER);
    for (const follower of MEMBER_NAMES.filter((m) => m !== LEADER)) expect(indexOf('stopEtcdMember', follower)).toBeLessThan(leaderStop);
    // Each member repointed at its new dir after every stop, then started.
    expect(indexOf('repointEtcdMemberConfig')).toBeGreaterThan(lastIndexOf('stopEtcdMember'));
    for (const m of MEMBERS) {
      const repoint = a().calls[indexOf('repointEtcdMemberConfig', m.name)]!;
      expect(repoint).toMatchObject({ node: m.node, input: { changes: { dataDir: restoredDataDir(m.name), initialClusterState: 'new' } } });
      expect(indexOf('startEtcdMember', m.name)).toBeGreaterThan(indexOf('repointEtcdMemberConfig', m.name));
    }
    // Verified (cluster, then content at the bumped revision) before any agent restarts.
    const verifyCluster = a().calls.findIndex((c) => c.name === 'checkEtcdCluster' && c.input.minRevision === SNAPSHOT_REVISION);
    expect(verifyCluster).toBeGreaterThan(lastIndexOf('startEtcdMember'));
    expect(a().of('verifyRestoredContent')[0]!.input.revision).toBe(SNAPSHOT_REVISION + REVISION_BUMP);
    expect(indexOf('verifyRestoredContent')).toBeGreaterThan(verifyCluster);
    expect(indexOf('restartAgent')).toBeGreaterThan(indexOf('verifyRestoredContent'));
    // One agent at a time: restart, wait, republish, check; then the next.
    expect(a().sequence((c) => ['restartAgent', 'waitAgentListening', 'republishAgentKeys', 'checkAgent'].includes(c.name))).toEqual(
      AGENT_NODES.flatMap((node) => [`restartAgent@${node}`, `waitAgentListening@${node}`, 'republishAgentKeys', `checkAgent@${node}`]),
    );
    expect(a().of('revertEtcdMemberConfig')).toEqual([]);
    expect(a().of('discardRestoredData')).toEqual([]);
    expect(membersOf(a().of('discardStagedSnapshot'))).toEqual(MEMBER_NAMES);
  });

  it('does not start a member twice when the repoint already started it (supervisor update)', async () => {
    a().set({ repointEtcdMemberConfig: (i) => ({ ...memberChange(i.member), running: i.member !== 'etcd-3' }) });
    await run({ approved: true });
    expect(membersOf(a().of('startEtcdMember'))).toEqual(['etcd-3']);
  });

  it('rolls back to the old data dirs when a member fails to start', async () => {
    a().set({ startEtcdMember: (i) => (i.member === 'etcd-3' ? fails('etcd-3 exited at once') : { member: i.member }) });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'RolledBack' });
    expect(failure.message).toContain('rolled back to the old data dirs: etcd-3 exited at once');
    expectRolledBack(Object.fromEntries(MEMBER_NAMES.map((m) => [m, memberChange(m)])));
    expect(indexOf('revertEtcdMemberConfig')).toBeGreaterThan(indexOf('startEtcdMember', 'etcd-3'));
    expect(a().of('verifyRestoredContent')).toEqual([]);
  });

  it('reverts a member whose repoint failed with no change to put back, the others with theirs, once their repoints have ended', async () => {
    const events: string[] = [];
    const reverted = signal();
    a().set({
      repointEtcdMemberConfig: async (i) => {
        if (i.member === 'etcd-2') fails('disk full writing the program file');
        if (i.member === 'etcd-1') await reverted.orAfter(1000); // still rewriting (supervisor update) when etcd-2 fails
        events.push(`repointed ${i.member}`);
        return memberChange(i.member);
      },
      revertEtcdMemberConfig: (i) => {
        events.push(`reverted ${i.member}`);
        if (i.member === 'etcd-1') reverted.fire();
        return { member: i.member };
      },
    });
    expect(await runFailure(run({ approved: true }))).toMatchObject({ type: 'RolledBack' });
    expectRolledBack({ 'etcd-1': memberChange('etcd-1'), 'etcd-2': null, 'etcd-3': memberChange('etcd-3') });
    expect(events.indexOf('repointed etcd-1')).toBeLessThan(events.indexOf('reverted etcd-1'));
    // No member is started on its new dir once the rollback has begun.
    expect(indexOf('startEtcdMember') === -1 || indexOf('startEtcdMember') < indexOf('revertEtcdMemberConfig')).toBe(true);
  });

  it('a failed stop rolls back once the other stops have ended: no member is left stopped', async () => {
    const events: string[] = [];
    const started = signal();
    a().set({
      stopEtcdMember: async (i) => {
        if (i.member === 'etcd-1') fails('supervisorctl stop etcd-1: timed out');
        if (i.member === 'etcd-3') await started.orAfter(1000); // still stopping when etcd-1's stop fails
        events.push(`stopped ${i.member}`);
        return { member: i.member, wasRunning: true };
      },
      revertEtcdMemberConfig: (i) => {
        events.push(`started old ${i.member}`);
        if (i.member === 'etcd-3') started.fire();
        return { member: i.member };
      },
    });
    expect(await runFailure(run({ approved: true }))).toMatchObject({ type: 'RolledBack' });
    expect(a().of('repointEtcdMemberConfig')).toEqual([]);
    expect(events.indexOf('stopped etcd-3')).toBeLessThan(events.indexOf('started old etcd-3'));
  });

  it('rolls back when the restored content differs from the snapshot', async () => {
    a().set({ verifyRestoredContent: () => fails('12 keys, digest differs', 'RestoreVerificationFailed') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure.type).toBe('RolledBack');
    expect(failure.message).toContain('digest differs');
    expectRolledBack(Object.fromEntries(MEMBER_NAMES.map((m) => [m, memberChange(m)])));
  });

  it('rolls back when the run is cancelled after the stop, and ends cancelled', () =>
    ownWorld(async (own) => {
      const run = { handle: undefined as WorkflowHandle | undefined };
      own.activities.set({
        startEtcdMember: async (i) => {
          if (i.member === 'etcd-1') await run.handle!.cancel();
          return heartbeatUntilCancelled(); // still starting when the cancel arrives
        },
      });
      const handle = (run.handle = await own.start('etcdRestoreWorkflow', { cluster: CLUSTER, approved: true }));
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      const reverts = own.activities.of('revertEtcdMemberConfig');
      expect(Object.fromEntries(reverts.map((c) => [c.input.member, c.input.change]))).toEqual(
        Object.fromEntries(MEMBER_NAMES.map((m) => [m, memberChange(m)])),
      );
      expect(own.activities.of('verifyRestoredContent')).toEqual([]);
      expect(own.activities.of('restartAgent').map((c) => c.node)).toEqual(AGENT_NODES); // the old members' agents recovered
    }));
});

describe('first-node-then-add', () => {
  it('restores only the first member as a one-member cluster, then adds each other member as a learner, promotes and checks it', async () => {
    const result = await run({ strategy: 'first-node-then-add', approved: true });
    expect(result.strategy).toBe('first-node-then-add');
    expect(
      a()
        .of('restoreEtcdMemberData')
        .map((c) => [c.input.member, c.input.initialCluster]),
    ).toEqual([['etcd-1', `etcd-1=${MEMBERS[0]!.peerUrl}`]]);
    const afterStop = a()
      .calls.slice(lastIndexOf('stopEtcdMember') + 1)
      .filter((c) =>
        [
          'repointEtcdMemberConfig',
          'startEtcdMember',
          'checkEtcdCluster',
          'addEtcdMember',
          'promoteEtcdLearner',
          'verifyRestoredContent',
        ].includes(c.name),
      )
      .map((c) => `${c.name} ${c.input.member ?? (c.input.members ?? ['all']).join('+')}`);
    expect(afterStop).toEqual([
      'repointEtcdMemberConfig etcd-1',
      'startEtcdMember etcd-1',
      'checkEtcdCluster etcd-1',
      'addEtcdMember etcd-2',
      'repointEtcdMemberConfig etcd-2',
      'startEtcdMember etcd-2',
      'promoteEtcdLearner etcd-2',
      'checkEtcdCluster etcd-1+etcd-2',
      'addEtcdMember etcd-3',
      'repointEtcdMemberConfig etcd-3',
      'startEtcdMember etcd-3',
      'promoteEtcdLearner etcd-3',
      'checkEtcdCluster etcd-1+etcd-2+etcd-3',
      'checkEtcdCluster all',
      'verifyRestoredContent all',
    ]);
    expect(
      a()
        .of('addEtcdMember')
        .every((c) => c.input.asLearner === true),
    ).toBe(true);
    expect(
      a()
        .of('repointEtcdMemberConfig')
        .map((c) => c.input.changes.initialClusterState),
    ).toEqual(['new', 'existing', 'existing']);
    expect(a().of('repointEtcdMemberConfig')[2]!.input.changes.initialCluster).toBe(etcdRestorePlan().initialCluster);
  });

  it('rolls back every member when a member cannot be added: the one never repointed has no change to put back', async () => {
    a().set({
      addEtcdMember: (i) =>
        i.member === 'etcd-3'
          ? fails('member add refused: too many learners')
          : { id: `id-${i.member}`, alreadyMember: false, isLearner: true },
    });
    expect(await runFailure(run({ strategy: 'first-node-then-add', approved: true }))).toMatchObject({ type: 'RolledBack' });
    expectRolledBack({ 'etcd-1': memberChange('etcd-1'), 'etcd-2': memberChange('etcd-2'), 'etcd-3': null });
  });
});

describe('ending before the stop changes nothing', () => {
  it('a failed restore of a new dir removes every new dir, after every restore has settled', async () => {
    const events: string[] = [];
    a().set({
      restoreEtcdMemberData: async (i) => {
        if (i.member === 'etcd-2') fails('snapshot restore: database file corrupt', 'SnapshotRestoreFailed');
        if (i.member === 'etcd-1') await new Promise((r) => setTimeout(r, 300)); // still writing when etcd-2 fails
        events.push(`restored ${i.member}`);
        return { member: i.member, dataDir: i.restoredDataDir, tool: 'etcdutl 3.5.16' };
      },
      discardRestoredData: (i) => {
        events.push(`discarded ${i.member}`);
        return { member: i.member, removed: i.restoredDataDir };
      },
    });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'SnapshotRestoreFailed' });
    expect(failure.message).toContain('failed before anything was stopped; nothing was changed');
    expectNothingChanged();
    expect(
      a()
        .of('discardRestoredData')
        .map((c) => [c.node, c.input.member, c.input.restoredDataDir])
        .sort(),
    ).toEqual(MEMBERS.map((m) => [m.node, m.name, restoredDataDir(m.name)]));
    expect(events.indexOf('restored etcd-1')).toBeLessThan(events.indexOf('discarded etcd-1'));
    expect(membersOf(a().of('discardStagedSnapshot'))).toEqual(MEMBER_NAMES);
  });

  it('a preflight refusal stops before any new dir is made and removes the copies staged on every node', async () => {
    const events: string[] = [];
    const base = healthyEtcdStubs();
    a().set({
      stageEtcdSnapshot: async (i) => {
        if (i.member === 'etcd-3') fails('not enough free disk beside /var/lib/etcd/etcd-3 on node-3', 'InsufficientDisk');
        if (i.member === 'etcd-1') await new Promise((r) => setTimeout(r, 300)); // still fetching when node-3 refuses
        events.push(`staged ${i.member}`);
        return base.stageEtcdSnapshot!(i);
      },
      discardStagedSnapshot: (i) => {
        events.push(`discarded ${i.member}`);
      },
    });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'InsufficientDisk' });
    expect(failure.message).toContain('restore refused at preflight, nothing was changed');
    expect(a().of('restoreEtcdMemberData')).toEqual([]);
    expectNothingChanged();
    expect(
      a()
        .of('discardStagedSnapshot')
        .map((c) => [c.node, c.input.member])
        .sort(),
    ).toEqual(MEMBERS.map((m) => [m.node, m.name]));
    expect(events.indexOf('staged etcd-1')).toBeLessThan(events.indexOf('discarded etcd-1'));
  });

  it('an approval timeout removes the new dirs and the staged copies', async () => {
    const failure = await runFailure(run({ approvalTimeout: '2h' }));
    expect(failure).toMatchObject({ type: 'ApprovalTimedOut' });
    expect(failure.message).toContain('was not approved within 2h; nothing was changed');
    expectNothingChanged();
    expect(membersOf(a().of('discardRestoredData'))).toEqual(MEMBER_NAMES);
    expect(membersOf(a().of('discardStagedSnapshot'))).toEqual(MEMBER_NAMES);
  });

  it('refused approvals (another set, a name not among the approvers, no name) change nothing; the run then times out', async () => {
    a().set({ planEtcdRestore: () => etcdRestorePlan({ approvers: ['alice'] }) });
    const handle = await start({});
    await awaitingApproval(handle);
    for (const approval of [
      { setId: 'nnoe-test-other-set', approvedBy: 'alice' },
      { setId: SET_ID, approvedBy: 'mallory' },
      { setId: SET_ID, approvedBy: ' ' },
    ]) {
      await expect(handle.executeUpdate('approve', { args: [approval] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    }
    expect((await handle.query<{ state: string }>('plan')).state).toBe('awaiting-approval');
    expect(await runFailure(handle.result())).toMatchObject({ type: 'ApprovalTimedOut' });
    expectNothingChanged();
    expect(membersOf(a().of('discardRestoredData'))).toEqual(MEMBER_NAMES);
  });

  it('a cancel while waiting for the approval removes the new dirs', async () => {
    const handle = await start({});
    await awaitingApproval(handle);
    await handle.cancel();
    const err = await handle.result().catch((e: unknown) => e);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expectNothingChanged();
    expect(membersOf(a().of('discardRestoredData'))).toEqual(MEMBER_NAMES);
  });

  it('a dry run checks the snapshot on every node and counts what each agent would republish, nothing more', async () => {
    const result = await run({ dryRun: true });
    expect(result).toMatchObject({ dryRun: true, approvedBy: null, check: null, revisionBump: null });
    expect(result.agentRepublishPlan?.map((p) => p.node)).toEqual(AGENT_NODES);
    expect(
      a()
        .of('republishAgentKeys')
        .every((c) => c.input.dryRun === true),
    ).toBe(true);
    expect(a().of('restoreEtcdMemberData')).toEqual([]);
    expect(destructiveCalls().filter((n) => n !== 'republishAgentKeys')).toEqual([]);
    expect(membersOf(a().of('discardStagedSnapshot'))).toEqual(MEMBER_NAMES);
  });

  it('bad input fails before any step', async () => {
    const failure = await runFailure(run({ strategy: 'everything-at-once' as never }));
    expect(failure).toMatchObject({ type: 'InvalidInput' });
    expect(failure.message).toContain('unknown restore strategy "everything-at-once"');
    expect(a().calls).toEqual([]);
  });
});

describe('agents after a verified restore', () => {
  it('an agent that does not serve fails the run without rolling etcd back', async () => {
    a().set({ checkAgent: () => deafAgent('node-2') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'AgentsNotServing' });
    expect(failure.message).toContain('etcd is not rolled back');
    expect(a().of('revertEtcdMemberConfig')).toEqual([]);
    // Three republish rounds per agent, each followed by checks while the agent renders.
    expect(a().of('republishAgentKeys').length).toBe(3 * AGENT_NODES.length);
  });

  it('restartAgents: false still recovers the agents after a rollback: the old members restarted and no caller would', async () => {
    a().set({ startEtcdMember: (i) => (i.member === 'etcd-3' ? fails('etcd-3 exited at once') : { member: i.member }) });
    expect(await runFailure(run({ approved: true, restartAgents: false }))).toMatchObject({ type: 'RolledBack' });
    expectRolledBack(Object.fromEntries(MEMBER_NAMES.map((m) => [m, memberChange(m)])));
  });

  it('restartAgents: false leaves the agents alone', async () => {
    const result = await run({ approved: true, restartAgents: false });
    expect(result.agents).toEqual([]);
    expect(a().calls.filter((c) => c.node !== null && ['describeAgent', 'restartAgent', 'checkAgent'].includes(c.name))).toEqual([]);
  });
});

describe('runs recorded before a patch marker', () => {
  it('etcd-restore-before-approval: approval, then all members stopped at once, then the new dirs restored, each member started', async () => {
    a().set({ repointEtcdMemberConfig: (i) => ({ ...memberChange(i.member), running: true }) });
    const handle = await start({}, ['etcd-restore-before-approval']);
    await awaitingApproval(handle);
    expect(a().of('restoreEtcdMemberData')).toEqual([]);
    expectNothingChanged();
    await handle.executeUpdate('approve', { args: [{ setId: SET_ID, approvedBy: 'alice' }] });
    await handle.result();
    expect(a().of('findEtcdLeader')).toEqual([]);
    expect(indexOf('restoreEtcdMemberData')).toBeGreaterThan(lastIndexOf('stopEtcdMember'));
    expect(indexOf('repointEtcdMemberConfig')).toBeGreaterThan(lastIndexOf('restoreEtcdMemberData'));
    expect(membersOf(a().of('startEtcdMember'))).toEqual(MEMBER_NAMES); // no skipping a start in the old order
  });

  it('etcd-restore-before-approval: a failed restore after the stop rolls back; an approval timeout has no new dirs to remove', async () => {
    a().set({ restoreEtcdMemberData: () => fails('snapshot restore: database file corrupt', 'SnapshotRestoreFailed') });
    expect(await runFailure(run({ approved: true }, ['etcd-restore-before-approval']))).toMatchObject({ type: 'RolledBack' });
    expectRolledBack({ 'etcd-1': null, 'etcd-2': null, 'etcd-3': null });

    a().reset(healthyEtcdStubs());
    expect(await runFailure(run({}, ['etcd-restore-before-approval']))).toMatchObject({ type: 'ApprovalTimedOut' });
    expect(a().of('discardRestoredData')).toEqual([]);
    expect(membersOf(a().of('discardStagedSnapshot'))).toEqual(MEMBER_NAMES);
    expectNothingChanged();
  });

  it('restore-data-settles-before-discard: the discard does not wait for a member still restoring', () =>
    ownWorld(async (own) => {
      const events: string[] = [];
      const slow = slowStep();
      own.activities.set({
        restoreEtcdMemberData: async (i) => {
          if (i.member === 'etcd-2') fails('snapshot restore failed', 'SnapshotRestoreFailed');
          if (i.member === 'etcd-1') await slow.run();
          events.push(`restored ${i.member}`);
          return { member: i.member, dataDir: i.restoredDataDir, tool: 'etcdutl 3.5.16' };
        },
        discardRestoredData: (i) => {
          events.push(`discarded ${i.member}`);
          return { member: i.member, removed: i.restoredDataDir };
        },
      });
      const handle = await own.start(
        'etcdRestoreWorkflow',
        { cluster: CLUSTER, approved: true },
        { unpatched: ['restore-data-settles-before-discard'] },
      );
      expect(await runFailure(handle.result())).toMatchObject({ type: 'SnapshotRestoreFailed' });
      expect(events).toContain('discarded etcd-1');
      expect(events).not.toContain('restored etcd-1'); // the run ended with etcd-1 still writing its new dir
      await slow.finish();
    }));

  it('member-steps-settle-before-rollback: the rollback does not wait for a stop still running', () =>
    ownWorld(async (own) => {
      const events: string[] = [];
      const slow = slowStep();
      own.activities.set({
        stopEtcdMember: async (i) => {
          if (i.member === 'etcd-1') fails('supervisorctl stop etcd-1: timed out');
          if (i.member === 'etcd-3') await slow.run();
          events.push(`stopped ${i.member}`);
          return { member: i.member, wasRunning: true };
        },
        revertEtcdMemberConfig: (i) => {
          events.push(`started old ${i.member}`);
          return { member: i.member };
        },
      });
      const handle = await own.start(
        'etcdRestoreWorkflow',
        { cluster: CLUSTER, approved: true },
        { unpatched: ['member-steps-settle-before-rollback'] },
      );
      expect(await runFailure(handle.result())).toMatchObject({ type: 'RolledBack' });
      expect(events).toContain('started old etcd-3');
      expect(events).not.toContain('stopped etcd-3'); // it stops after the rollback started it
      await slow.finish();
    }));

  it('etcd-learner-join: members join as voters, nothing is promoted', async () => {
    await run({ strategy: 'first-node-then-add', approved: true }, ['etcd-learner-join']);
    expect(
      a()
        .of('addEtcdMember')
        .map((c) => c.input.asLearner),
    ).toEqual([undefined, undefined]);
    expect(a().of('promoteEtcdLearner')).toEqual([]);
  });

  it('etcd-restore-content-digest: no content check', async () => {
    await run({ approved: true }, ['etcd-restore-content-digest']);
    expect(a().of('verifyRestoredContent')).toEqual([]);
  });

  it('stop-capture-before-restore: the capture is not stopped', async () => {
    await run({ approved: true }, ['stop-capture-before-restore']);
    expect(a().of('stopChangeCapture')).toEqual([]);
    expect(a().of('stopEtcdMember').length).toBe(3);
  });

  it('rollback-recovers-agents: with restartAgents: false a rollback left the agents alone', async () => {
    a().set({ startEtcdMember: (i) => (i.member === 'etcd-3' ? fails('etcd-3 exited at once') : { member: i.member }) });
    expect(await runFailure(run({ approved: true, restartAgents: false }, ['rollback-recovers-agents']))).toMatchObject({
      type: 'RolledBack',
    });
    expect(a().of('revertEtcdMemberConfig').length).toBe(3);
    expect(a().of('restartAgent')).toEqual([]);
  });

  it('real-agent-recovery: each agent restarted and waited for by its health, no republish; none after a rollback', async () => {
    await run({ approved: true }, ['real-agent-recovery']);
    expect(
      a()
        .of('restartAgentAndWait')
        .map((c) => c.node),
    ).toEqual(AGENT_NODES);
    expect(a().of('restartAgent')).toEqual([]);
    expect(a().of('republishAgentKeys')).toEqual([]);

    a().reset({ ...healthyEtcdStubs(), startEtcdMember: () => fails('etcd exited') });
    expect(await runFailure(run({ approved: true }, ['real-agent-recovery']))).toMatchObject({ type: 'RolledBack' });
    expect(a().of('revertEtcdMemberConfig').length).toBe(3);
    expect(a().of('restartAgent')).toEqual([]);
    expect(a().of('restartAgentAndWait')).toEqual([]);
  });
});
