/**
 * The etcd restore's member steps (src/workflows/etcd-restore.ts runs them in order): the activity
 * proxies per node, restoring the new data dirs, stopping the members (leader last), repointing
 * and starting them (all at once, or the first then each other by `member add`).
 */
import { ApplicationFailure, patched, workflowInfo } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import { proxyActivities } from './ui-metadata';
import type { createEtcdRestoreActivities, EtcdRestorePlan, ClusterCheck, RestoreMember } from '../activities/etcd-restore';
import type { createEtcdMemberActivities, RestoredMemberData, StagedSnapshot } from '../activities/etcd-member';
import type { EtcdFlagChanges, MemberConfigChange } from '../etcd/member-service';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { initialClusterOf } from '../common/etcd-topology';
import { nodeTaskQueue } from '../common/search-attributes';
import { togetherBehind } from './settle';
import type { ProgressTracker } from './progress';
import type { EtcdRestoreResult, RestoreStrategy } from './etcd-restore';

/** Marker: members added to a running cluster join as learners and are promoted once caught up (etcd 3.4+). */
export const LEARNER_JOIN = 'etcd-learner-join';
/** Marker: every member's stop or repoint settles before one's failure starts the rollback (older runs raced them). */
export const MEMBER_STEPS_SETTLE = 'member-steps-settle-before-rollback';

export const management = (verifyTimeout: Duration) =>
  proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
    startToCloseTimeout: '1m',
    scheduleToCloseTimeout: verifyTimeout,
    retry: { initialInterval: '1s', backoffCoefficient: 1.5, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
  });

/** One quick try: the answer only orders the stops, and a broken cluster (why we restore) may not give one. */
const { findEtcdLeader } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '15s',
  retry: { maximumAttempts: 1 },
});

type MemberActivities = ReturnType<typeof createEtcdMemberActivities>;

/** Steps on one member's node. `scheduleToStart` makes a dead node worker fail the step instead of hanging it. */
export function onNode(node: string, nodeResponseTimeout: Duration): MemberActivities {
  return proxyActivities<MemberActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    scheduleToStartTimeout: nodeResponseTimeout,
    startToCloseTimeout: '30m',
    // Node steps heartbeat every 5 s: a dead node worker is noticed within 20 s.
    heartbeatTimeout: '20s',
    retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

/** Rollback steps wait for the node as long as it takes (a node worker that comes back finishes them). */
export function rollbackOnNode(node: string): MemberActivities {
  return proxyActivities<MemberActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    startToCloseTimeout: '5m',
    retry: { initialInterval: '2s', maximumInterval: '30s', nonRetryableErrorTypes: ['InvalidInput', 'ConfigError'] },
  });
}

/**
 * Names this run's new data dirs (`restored-<tag>`) and the kept unit/program files
 * (`.pre-restore-<tag>`): the set id plus the random end of the run id (run ids are UUIDv7: their
 * start is a timestamp), so restoring one set twice never collides.
 */
export function restoreTag(setId: string): string {
  return `${setId}-${workflowInfo().runId.slice(-8)}`;
}

/** After a rollback the old cluster must be whole again; checked for as long as it takes to settle. */
export async function rollbackCheck(cluster: string): Promise<ClusterCheck> {
  return management('10m').checkEtcdCluster({ cluster, require: true });
}

export function dataDirsOf(staged: StagedSnapshot[]): EtcdRestoreResult['dataDirs'] {
  return staged.map((s) => ({ member: s.member, old: s.dataDir, restored: s.restoredDataDir }));
}

export function stagedFor(staged: StagedSnapshot[], member: RestoreMember): StagedSnapshot {
  const found = staged.find((s) => s.member === member.name);
  if (!found) throw ApplicationFailure.nonRetryable(`no staged snapshot for member ${member.name}`, FailureType.InvalidInput);
  return found;
}

/**
 * `snapshot restore` into each member's new dir: all members at once (`all-members`), or only the
 * first member as a one-member cluster (`first-node-then-add`; the others join on empty dirs).
 */
export async function restoreDataDirs(
  plan: EtcdRestorePlan,
  strategy: RestoreStrategy,
  staged: StagedSnapshot[],
  revisionBump: number | undefined,
  nodeTimeout: Duration,
  tracker: ProgressTracker,
): Promise<RestoredMemberData[]> {
  const restore = (member: RestoreMember, initialCluster: string) =>
    onNode(member.node, nodeTimeout).restoreEtcdMemberData({
      cluster: plan.cluster,
      member: member.name,
      setId: plan.setId,
      restoredDataDir: stagedFor(staged, member).restoredDataDir,
      initialCluster,
      initialClusterToken: plan.initialClusterToken,
      ...(revisionBump !== undefined ? { revisionBump } : {}),
    });
  const bumped = (restored: RestoredMemberData[]) => `revision bump: ${restored[0]?.revisionBump?.detail ?? 'none'}`;
  if (strategy === 'all-members') {
    // All restores settle before a failure is thrown: the discard that follows must not race a
    // member still writing its new dir (it would be left behind). Older runs replay without it.
    const together = togetherBehind('restore-data-settles-before-discard');
    return tracker.step(
      'restore data dirs',
      () => together(plan.members.map((m) => restore(m, plan.initialCluster))),
      (restored) => `${restored.map((r) => `${r.member}: ${r.dataDir}`).join(', ')}; ${bumped(restored)}`,
    );
  }
  const first = firstMember(plan);
  return tracker.step(
    'restore data dirs',
    async () => [await restore(first, initialClusterOf([first]))],
    (restored) => `${restored[0]!.member}: ${restored[0]!.dataDir} (one-member cluster); ${bumped(restored)}`,
  );
}

/**
 * Stops every member. With `leaderLast` the followers stop first (at once), then the leader: etcd
 * transfers leadership on SIGTERM, and a leader stopped together with its followers can wait
 * seconds for a transfer to a follower that is going away.
 */
export async function stopMembers(
  plan: EtcdRestorePlan,
  nodeTimeout: Duration,
  leaderLast: boolean,
): Promise<Array<{ member: string; wasRunning: boolean }>> {
  const stop = (m: RestoreMember) => onNode(m.node, nodeTimeout).stopEtcdMember({ cluster: plan.cluster, member: m.name });
  const together = togetherBehind(MEMBER_STEPS_SETTLE);
  if (!leaderLast) return together(plan.members.map(stop));
  const leader = await findEtcdLeader({ cluster: plan.cluster }).then(
    (r) => r.leader,
    () => null,
  );
  const followers = await together(plan.members.filter((m) => m.name !== leader).map(stop));
  return [...followers, ...(await together(plan.members.filter((m) => m.name === leader).map(stop)))];
}

export interface RepointOptions {
  plan: EtcdRestorePlan;
  staged: StagedSnapshot[];
  nodeTimeout: Duration;
  tracker: ProgressTracker;
  changes: Map<string, MemberConfigChange | null>;
  /** supervisor's `update` already starts a changed program: no second start when it reports the member running. */
  skipRedundantStart: boolean;
}

/** Rewrites the member's unit/program file (recorded for the rollback), then starts the member. */
async function repointAndStart(o: RepointOptions, member: RestoreMember, changes: EtcdFlagChanges): Promise<MemberConfigChange> {
  const node = onNode(member.node, o.nodeTimeout);
  o.changes.set(member.name, null); // from here on the rollback reverts this member (a no-op if nothing was written)
  const change = await node.repointEtcdMemberConfig({
    cluster: o.plan.cluster,
    member: member.name,
    restoreTag: restoreTag(o.plan.setId),
    changes,
  });
  o.changes.set(member.name, change);
  if (!(o.skipRedundantStart && change.running === true)) await node.startEtcdMember({ cluster: o.plan.cluster, member: member.name });
  return change;
}

export async function repointAllMembers(o: RepointOptions): Promise<void> {
  const { plan } = o;
  await o.tracker.step(
    'repoint members',
    () =>
      togetherBehind(MEMBER_STEPS_SETTLE)(
        plan.members.map((m) =>
          repointAndStart(o, m, {
            dataDir: stagedFor(o.staged, m).restoredDataDir,
            initialCluster: plan.initialCluster,
            initialClusterToken: plan.initialClusterToken,
            initialClusterState: 'new',
          }),
        ),
      ),
    (done) => done.map((c) => c.file).join(', '),
  );
}

export async function repointFirstThenAdd(o: RepointOptions, verify: ReturnType<typeof management>): Promise<void> {
  const { plan } = o;
  const first = firstMember(plan);
  const others = plan.members.slice(1);
  await o.tracker.step(
    'repoint members',
    async () => {
      await repointAndStart(o, first, {
        dataDir: stagedFor(o.staged, first).restoredDataDir,
        initialCluster: initialClusterOf([first]),
        initialClusterToken: plan.initialClusterToken,
        initialClusterState: 'new',
      });
      await verify.checkEtcdCluster({ cluster: plan.cluster, members: [first.name], minRevision: plan.snapshot.revision, require: true });
      // Then each other member: `member add` (as a learner where etcd has them), start it on an empty
      // data dir with state existing, promote it once caught up, wait until it serves.
      const learners = patched(LEARNER_JOIN);
      const joined: RestoreMember[] = [first];
      let promoted = 0;
      for (const member of others) {
        const added = await verify.addEtcdMember({
          cluster: plan.cluster,
          member: member.name,
          via: [first.name],
          ...(learners ? { asLearner: true } : {}),
        });
        joined.push(member);
        await repointAndStart(o, member, {
          dataDir: stagedFor(o.staged, member).restoredDataDir,
          initialCluster: initialClusterOf(joined),
          initialClusterToken: plan.initialClusterToken,
          initialClusterState: 'existing',
        });
        if (learners && added.isLearner)
          promoted += (await verify.promoteEtcdLearner({ cluster: plan.cluster, member: member.name, via: [first.name] })).promoted ? 1 : 0;
        await verify.checkEtcdCluster({ cluster: plan.cluster, members: joined.map((m) => m.name), require: true });
      }
      return { files: [...o.changes.values()].filter((c): c is MemberConfigChange => c !== null).length, promoted };
    },
    (done) =>
      `${first.name} restored, ${others.map((m) => m.name).join(', ')} added one at a time` +
      `${done.promoted ? ` (${done.promoted} as learners, promoted once caught up)` : ''} (${done.files} files rewritten)`,
  );
}

export function firstMember(plan: EtcdRestorePlan): RestoreMember {
  const first = plan.members[0];
  if (!first) throw ApplicationFailure.nonRetryable(`cluster ${plan.cluster} has no members`, FailureType.InvalidInput);
  return first;
}
