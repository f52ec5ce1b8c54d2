/**
 * Runbook "etcd Restore" for a whole cluster, as the safest code in the project:
 *
 *   preflight -> restore data dirs -> approval -> stop etcd -> repoint members -> verify -> restart agents
 *
 * Everything that can be done without touching the running cluster comes before the approval:
 * the snapshot is fetched and checked on every node, then restored into a new data dir beside the
 * old one (`snapshot restore` only writes that new dir). A snapshot that cannot be restored is
 * found before anyone approves, and the downtime after the approval is stop + repoint + start.
 * Until the stop, a failure, a timeout or a cancel removes the new dirs: nothing was changed.
 * The old unit/program file is kept beside the new one. When anything after "stop" fails, or the
 * run is cancelled, the old files come back and the old members start on their untouched data
 * dirs (non-cancellable), then the run fails with the cause.
 *
 * Runs started before the restore moved ahead of the approval (no `etcd-restore-before-approval`
 * marker in their history) keep the old order: approval -> stop -> restore -> repoint.
 *
 * Strategies: `all-members` restores the snapshot on every member with one --initial-cluster and a
 * fresh token (etcd's documented way); `first-node-then-add` restores the first member as a
 * one-member cluster and `member add`s the others one at a time on empty data dirs (the runbook's way).
 */
import { ApplicationFailure, CancellationScope, isCancellation, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type {
  createEtcdRestoreActivities,
  EtcdRestorePlan,
  ClusterCheck,
  RestoredContentCheck,
  RestoreMember,
} from '../activities/etcd-restore';
import type { createEtcdMemberActivities, RestoredMemberData, RevisionBump, StagedSnapshot } from '../activities/etcd-member';
import {
  agentsNotServing,
  describeRecovery,
  restartAgentsAndWait,
  planAgentRepublish,
  REAL_AGENT_RECOVERY,
  recoverAgents,
  type AgentRecovery,
  type AgentRepublishPlan,
} from './agent-recovery';
import type { EtcdFlagChanges, MemberConfigChange } from '../etcd/member-service';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { describeKeyCount } from '../common/manifest';
import { initialClusterOf } from '../common/etcd-topology';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { stopCaptureBeforeRestore } from './stop-capture';
import { togetherBehind } from './settle';
import { ProgressTracker, rootMessage } from './progress';
import { approvalGate, approvalStep, failureTypeOf, planQuery, type ApprovalState } from './approval';
import { rejectBadInput } from './input';
import { durationProblems, flagProblem } from '../common/input-checks';
import type { Duration } from '@temporalio/common';

export type RestoreStrategy = 'all-members' | 'first-node-then-add';

export interface EtcdRestoreInput {
  cluster: string;
  /** A set id; the newest complete set with an etcd snapshot when omitted. */
  setId?: string;
  strategy?: RestoreStrategy;
  /** Preflight and plan only: nothing is stopped or written. */
  dryRun?: boolean;
  /** Approved up front (automation, a DR run that was approved as a whole). */
  approved?: boolean;
  /** How long to wait for the `approve` update; the run then ends having changed nothing. Default 1h. */
  approvalTimeout?: Duration;
  /** How long the restored cluster may take to become healthy before the restore rolls back. Default 2m. */
  verifyTimeout?: Duration;
  /** How long a node worker may take to pick up a step (a dead node worker fails the step). Default 2m. */
  nodeResponseTimeout?: Duration;
  /**
   * Bring the agents back afterwards, one at a time: restart, republish every key they watch, check
   * they render etcd's state (src/workflows/agent-recovery.ts). Default true. false (PITR and DR
   * recover them after their own steps) skips it after a restore, not after a rollback: the old
   * members restarted then and the run fails, so no caller would recover the agents.
   */
  restartAgents?: boolean;
  /** Republish after each agent restart. Default true; false only shows that agents then serve empty configs. */
  republishAgents?: boolean;
  /** `--bump-revision` for `snapshot restore` (0: off); default the cluster's `restore.revisionBump`. */
  revisionBump?: number;
}

export interface EtcdRestoreResult {
  setId: string;
  strategy: RestoreStrategy;
  dryRun: boolean;
  approvedBy: string | null;
  /** The approving client's Temporal identity as it sent it with the approval (null: up front, or not sent). */
  approverIdentity?: string | null;
  snapshotRevision: number;
  check: ClusterCheck | null;
  dataDirs: Array<{ member: string; old: string; restored: string }>;
  /** Each agent after its restart + republish (empty when agents were not restarted). */
  agents?: AgentRecovery[];
  /** Dry run: the keys each agent's republish would put, per prefix. */
  agentRepublishPlan?: AgentRepublishPlan;
  /** Whether the restored data was revision-bumped and by how much (null: nothing was restored, e.g. a dry run). */
  revisionBump: RevisionBump | null;
  /** The restored content equalled the snapshot's key for key (absent: older run or set without a content digest). */
  content?: RestoredContentCheck;
  /** The revision the restored content sits at: the snapshot's, or above it by the bump (absent: nothing restored, or an older run). */
  restoredRevision?: number;
}

/** For the reports of runbooks that restore etcd (PITR, DR): whether the revision was bumped, and where the restored content sits. */
export interface RestoreRevisionReport {
  setId: string;
  snapshotRevision: number;
  revisionBump: RevisionBump | null;
  restoredRevision: number | null;
}

export function restoreRevisionReport(r: EtcdRestoreResult): RestoreRevisionReport {
  return {
    setId: r.setId,
    snapshotRevision: r.snapshotRevision,
    revisionBump: r.revisionBump,
    restoredRevision: r.restoredRevision ?? null,
  };
}

/** "revision bumped by 1000000000: restored content at revision 1000000161, all before compacted" or why not. */
export function describeRevisionBump(r: RestoreRevisionReport): string {
  const bump = r.revisionBump;
  if (!bump) return 'revision bump: none recorded';
  if (!bump.used) return `no revision bump (${bump.detail}): restored content at revision ${r.restoredRevision ?? r.snapshotRevision}`;
  return `revision bumped by ${bump.by}: restored content at revision ${r.restoredRevision ?? '?'} (snapshot's ${r.snapshotRevision}), all before compacted`;
}

/** Marker: members added to a running cluster join as learners and are promoted once caught up (etcd 3.4+). */
export const LEARNER_JOIN = 'etcd-learner-join';

/** Markers: a refused preflight waits for every member's staging, then removes the staged copies (older runs left them); */
export const PREFLIGHT_DISCARDS_STAGED = 'preflight-refusal-discards-staged';
/** every member's stop or repoint settles before one's failure starts the rollback (older runs raced them); */
export const MEMBER_STEPS_SETTLE = 'member-steps-settle-before-rollback';
/** a rollback recovers the agents even with `restartAgents: false` (older PITR and DR runs left them deaf). */
export const ROLLBACK_RECOVERS_AGENTS = 'rollback-recovers-agents';

/** Marker of the 'verify content' step (restored keyspace digest against the backup's). */
export const RESTORE_CONTENT_CHECK = 'etcd-restore-content-digest';

import { restoredContentRevision } from '../common/plan-view';

export { restoredContentRevision };

export interface RestorePlanView {
  state: ApprovalState;
  plan: EtcdRestorePlan | null;
  staged: StagedSnapshot[];
  strategy: RestoreStrategy;
  /** The new data dirs once restored (before the approval), each with its revision bump. */
  restored?: RestoredMemberData[];
}

export { approveRestoreUpdate, type RestoreApproval } from './approval';
export const restorePlanQuery = planQuery<RestorePlanView>();

const STRATEGIES: RestoreStrategy[] = ['all-members', 'first-node-then-add'];

const management = (verifyTimeout: Duration) =>
  proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
    startToCloseTimeout: '1m',
    scheduleToCloseTimeout: verifyTimeout,
    retry: { initialInterval: '1s', backoffCoefficient: 1.5, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
  });

const { planEtcdRestore } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** One quick try: the answer only orders the stops, and a broken cluster (why we restore) may not give one. */
const { findEtcdLeader } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '15s',
  retry: { maximumAttempts: 1 },
});

type MemberActivities = ReturnType<typeof createEtcdMemberActivities>;

/** Steps on one member's node. `scheduleToStart` makes a dead node worker fail the step instead of hanging it. */
function onNode(node: string, nodeResponseTimeout: Duration): MemberActivities {
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
function rollbackOnNode(node: string): MemberActivities {
  return proxyActivities<MemberActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    startToCloseTimeout: '5m',
    retry: { initialInterval: '2s', maximumInterval: '30s', nonRetryableErrorTypes: ['InvalidInput', 'ConfigError'] },
  });
}

function validateInput(input: EtcdRestoreInput): RestoreStrategy {
  if (!input || typeof input.cluster !== 'string' || input.cluster.length === 0) {
    throw ApplicationFailure.nonRetryable(
      'an etcd restore needs { cluster: "<name>" } naming a cluster from the config',
      FailureType.InvalidInput,
    );
  }
  const strategy = input.strategy ?? 'all-members';
  if (!STRATEGIES.includes(strategy)) {
    throw ApplicationFailure.nonRetryable(
      `unknown restore strategy "${String(strategy)}"; expected one of ${STRATEGIES.join(', ')}`,
      FailureType.InvalidInput,
    );
  }
  rejectBadInput('etcd restore', [
    ...durationProblems({
      approvalTimeout: input.approvalTimeout,
      verifyTimeout: input.verifyTimeout,
      nodeResponseTimeout: input.nodeResponseTimeout,
    }),
    flagProblem('approved', input.approved),
    flagProblem('dryRun', input.dryRun),
    flagProblem('restartAgents', input.restartAgents),
  ]);
  if (input.revisionBump !== undefined && !(Number.isSafeInteger(input.revisionBump) && input.revisionBump >= 0)) {
    throw ApplicationFailure.nonRetryable(
      `revisionBump must be a whole number of revisions, 0 (off) or more; got ${String(input.revisionBump)}`,
      FailureType.InvalidInput,
    );
  }
  return strategy;
}

export async function etcdRestoreWorkflow(input: EtcdRestoreInput): Promise<EtcdRestoreResult> {
  const strategy = validateInput(input);
  const dryRun = input.dryRun === true;
  const nodeTimeout = input.nodeResponseTimeout ?? '2m';
  const verify = management(input.verifyTimeout ?? '2m');
  const restoreBeforeApproval = patched('etcd-restore-before-approval');
  const contentCheck = patched(RESTORE_CONTENT_CHECK);
  const verifySteps = contentCheck ? ['verify cluster', 'verify content'] : ['verify cluster'];
  const tracker = new ProgressTracker(
    'etcd-restore',
    input.cluster,
    restoreBeforeApproval
      ? ['preflight', 'restore data dirs', 'approval', 'stop etcd', 'repoint members', ...verifySteps, 'restart agents']
      : ['preflight', 'approval', 'stop etcd', 'restore data dirs', 'repoint members', ...verifySteps, 'restart agents'],
  );
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'etcd-restore' },
  ]);

  const view: RestorePlanView = { state: 'planning', plan: null, staged: [], strategy };
  const approval = approvalGate(view);

  // ---- preflight: the plan, then the snapshot fetched and checked on every member's node.
  const plan = await tracker
    .step(
      'preflight',
      async () => {
        const planned = await planEtcdRestore({ cluster: input.cluster, setId: input.setId });
        view.plan = planned;
        tracker.progress.setId = planned.setId;
        upsertSearchAttributes([{ key: NnoeBackupSet, value: planned.setId }]);
        view.staged = await togetherBehind(PREFLIGHT_DISCARDS_STAGED)(
          planned.members.map((m) =>
            onNode(m.node, nodeTimeout).stageEtcdSnapshot({
              cluster: planned.cluster,
              member: m.name,
              setId: planned.setId,
              restoreTag: restoreTag(planned.setId),
              artefact: planned.artefact,
              revision: planned.snapshot.revision,
            }),
          ),
        );
        return planned;
      },
      (p) =>
        `set ${p.setId} (revision ${p.snapshot.revision}, ${describeKeyCount(p.snapshot)}) checked on ${p.members.map((m) => m.node).join(', ')}`,
    )
    .catch(async (err: unknown) => {
      const planned = view.plan; // a refusal removes the copies staged on the other nodes (bounded: a node may be down)
      if (planned && patched(PREFLIGHT_DISCARDS_STAGED))
        await CancellationScope.nonCancellable(() =>
          Promise.allSettled(
            planned.members.map((m) => onNode(m.node, nodeTimeout).discardStagedSnapshot({ setId: planned.setId, member: m.name })),
          ),
        );
      tracker.finish('failed');
      // The run's own failure says what was refused, not "Activity task failed".
      throw ApplicationFailure.nonRetryable(
        `restore refused at preflight, nothing was changed: ${err instanceof Error ? rootMessage(err) : String(err)}`,
        failureTypeOf(err) ?? FailureType.RestoreRefused,
      );
    });

  // Started once (the same promise for every later exit): off the critical path when started early.
  let stagedRemoval: Promise<unknown> | null = null;
  const discardStaged = () =>
    (stagedRemoval ??= CancellationScope.nonCancellable(() =>
      Promise.allSettled(plan.members.map((m) => rollbackOnNode(m.node).discardStagedSnapshot({ setId: plan.setId, member: m.name }))),
    ));
  /** A run that ends before the stop removes what it made (new dirs, staged copies): nothing was changed. */
  const leaveUnchanged = async () => {
    if (restoreBeforeApproval) {
      await CancellationScope.nonCancellable(() =>
        Promise.allSettled(
          plan.members.map((m) =>
            rollbackOnNode(m.node).discardRestoredData({
              cluster: plan.cluster,
              member: m.name,
              restoredDataDir: stagedFor(view.staged, m).restoredDataDir,
            }),
          ),
        ),
      );
    }
    await discardStaged();
  };

  if (dryRun) {
    view.state = 'dry-run';
    tracker.note('approval', 'dry run: nothing stopped, nothing written');
    await discardStaged();
    const agentRepublishPlan =
      patched(REAL_AGENT_RECOVERY) && input.restartAgents !== false ? await planAgentRepublish(plan.cluster, plan.agentNodes) : undefined;
    tracker.finish('completed');
    return {
      setId: plan.setId,
      strategy,
      dryRun,
      approvedBy: null,
      snapshotRevision: plan.snapshot.revision,
      check: null,
      dataDirs: dataDirsOf(view.staged),
      agentRepublishPlan,
      revisionBump: null,
    };
  }

  // ---- restore data dirs while the old cluster still runs (new dirs only).
  if (restoreBeforeApproval) {
    try {
      view.restored = await restoreDataDirs(plan, strategy, view.staged, input.revisionBump, nodeTimeout, tracker);
    } catch (err) {
      await leaveUnchanged();
      tracker.finish('failed');
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.nonRetryable(
        `restore of ${plan.setId} failed before anything was stopped; nothing was changed: ${err instanceof Error ? rootMessage(err) : String(err)}`,
        failureTypeOf(err) ?? FailureType.RestoreFailed,
      );
    }
    void discardStaged(); // the restored dirs hold the data now; awaited before the run ends
  }

  // ---- approval
  await approvalStep(tracker, approval, input, `restore of ${plan.setId}`).catch(async (err: unknown) => {
    await leaveUnchanged();
    tracker.finish('failed');
    throw err;
  });
  const approvedBy = approval.approvedBy();
  const approverIdentity = approval.identity();

  // ---- the destructive part, with rollback.
  const changes = new Map<string, MemberConfigChange | null>();
  let check: ClusterCheck;
  let content: RestoredContentCheck | undefined;
  try {
    const capture = await stopCaptureBeforeRestore(plan.cluster); // a restored cluster is a new incarnation
    await tracker.step(
      'stop etcd',
      () => stopMembers(plan, nodeTimeout, restoreBeforeApproval),
      (stopped) => `${stopped.map((s) => s.member).join(', ')}${capture ? `; ${capture}` : ''}`,
    );
    if (!restoreBeforeApproval)
      view.restored = await restoreDataDirs(plan, strategy, view.staged, input.revisionBump, nodeTimeout, tracker);
    const repoint: RepointOptions = { plan, staged: view.staged, nodeTimeout, tracker, changes, skipRedundantStart: restoreBeforeApproval };
    if (strategy === 'all-members') await repointAllMembers(repoint);
    else await repointFirstThenAdd(repoint, verify);
    check = await tracker.step(
      'verify cluster',
      () =>
        verify.checkEtcdCluster({
          cluster: plan.cluster,
          minRevision: plan.snapshot.revision,
          criticalKeys: plan.criticalKeys,
          require: true,
        }),
      (c) => `${c.members.length} members healthy at revision ${c.revision}, hashKV equal at ${c.hashRevision}`,
    );
    if (contentCheck) content = await verifyContent(plan, view.restored?.[0]?.revisionBump, verify, tracker);

    if (!patched(REAL_AGENT_RECOVERY)) {
      await tracker.step(
        'restart agents',
        async () => {
          if (input.restartAgents === false) return 'skipped (restartAgents: false)';
          await restartAgentsAndWait(plan.cluster, plan.agentNodes);
          return plan.agentNodes.join(', ') || 'no agents configured';
        },
        (detail) => detail,
      );
      await discardStaged();
      tracker.finish('completed');
      return {
        setId: plan.setId,
        strategy,
        dryRun,
        approvedBy,
        approverIdentity,
        snapshotRevision: plan.snapshot.revision,
        check,
        dataDirs: dataDirsOf(view.staged),
        revisionBump: view.restored?.[0]?.revisionBump ?? null,
        ...(content ? { content } : {}),
        restoredRevision: restoredContentRevision(plan.snapshot, view.restored?.[0]?.revisionBump),
      };
    }
  } catch (err) {
    const cause = err instanceof Error ? rootMessage(err) : String(err);
    await CancellationScope.nonCancellable(async () => {
      await tracker.step(
        'rollback',
        async () => {
          await Promise.all(
            plan.members.map((m) =>
              rollbackOnNode(m.node).revertEtcdMemberConfig({ cluster: plan.cluster, member: m.name, change: changes.get(m.name) ?? null }),
            ),
          );
          return rollbackCheck(plan.cluster);
        },
        (c) => `old members running again: ${c.members.length} healthy at revision ${c.revision}`,
      );
      // The old members restarted too: the agents are deaf to them until restarted and republished.
      if (patched(REAL_AGENT_RECOVERY) && (input.restartAgents !== false || patched(ROLLBACK_RECOVERS_AGENTS))) {
        await tracker
          .step('recover agents after rollback', () => recoverAgents(plan.cluster, plan.agentNodes), describeRecovery)
          .catch(() => undefined);
      }
      await discardStaged();
    });
    tracker.finish('failed');
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.nonRetryable(
      `restore of ${plan.setId} failed and was rolled back to the old data dirs: ${cause}`,
      FailureType.RolledBack,
    );
  }

  // ---- etcd is restored and verified. Agents from here on: a failure is reported, not rolled back
  // (a rollback would restart etcd and deafen the agents once more).
  const agents = await tracker
    .step(
      'restart agents',
      async () =>
        input.restartAgents === false ? [] : recoverAgents(plan.cluster, plan.agentNodes, { republish: input.republishAgents !== false }),
      (recovered) => (input.restartAgents === false ? 'skipped (restartAgents: false)' : describeRecovery(recovered)),
    )
    .catch(async (err: unknown) => {
      await discardStaged();
      tracker.finish('failed');
      throw ApplicationFailure.nonRetryable(
        `etcd was restored from ${plan.setId} and verified, but the agents could not be recovered (etcd is not rolled back): ${err instanceof Error ? rootMessage(err) : String(err)}`,
        FailureType.AgentsNotServing,
      );
    });
  await discardStaged();
  const problem = agentsNotServing(agents);
  if (problem) {
    tracker.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `etcd was restored from ${plan.setId} and verified, but ${problem} (etcd is not rolled back: restart and republish the agent, see docs)`,
      FailureType.AgentsNotServing,
      { agents },
    );
  }
  tracker.finish('completed');
  return {
    setId: plan.setId,
    strategy,
    dryRun,
    approvedBy,
    approverIdentity,
    snapshotRevision: plan.snapshot.revision,
    check,
    dataDirs: dataDirsOf(view.staged),
    agents,
    revisionBump: view.restored?.[0]?.revisionBump ?? null,
    ...(content ? { content } : {}),
    restoredRevision: restoredContentRevision(plan.snapshot, view.restored?.[0]?.revisionBump),
  };
}

/** The restored keyspace against the backup's digest of the snapshot's; skipped (noted) for sets without one. */
async function verifyContent(
  plan: EtcdRestorePlan,
  bump: RevisionBump | undefined,
  verify: ReturnType<typeof management>,
  tracker: ProgressTracker,
): Promise<RestoredContentCheck | undefined> {
  const expected = plan.snapshot.keyspaceDigest;
  if (!expected) {
    tracker.note(
      'verify content',
      'the set has no content digest (backed up before it existed, or the source had compacted past the snapshot)',
    );
    return undefined;
  }
  const revision = restoredContentRevision(plan.snapshot, bump);
  return tracker.step(
    'verify content',
    () => verify.verifyRestoredContent({ cluster: plan.cluster, revision, expected }),
    (c) => `${c.keys} keys, values and leases equal the snapshot's at revision ${c.revision} (read on ${c.member})`,
  );
}

/**
 * Names this run's new data dirs (`restored-<tag>`) and the kept unit/program files
 * (`.pre-restore-<tag>`): the set id plus the random end of the run id (run ids are UUIDv7: their
 * start is a timestamp), so restoring one set twice never collides.
 */
function restoreTag(setId: string): string {
  return `${setId}-${workflowInfo().runId.slice(-8)}`;
}

/** After a rollback the old cluster must be whole again; checked for as long as it takes to settle. */
async function rollbackCheck(cluster: string): Promise<ClusterCheck> {
  return management('10m').checkEtcdCluster({ cluster, require: true });
}

function dataDirsOf(staged: StagedSnapshot[]): EtcdRestoreResult['dataDirs'] {
  return staged.map((s) => ({ member: s.member, old: s.dataDir, restored: s.restoredDataDir }));
}

function stagedFor(staged: StagedSnapshot[], member: RestoreMember): StagedSnapshot {
  const found = staged.find((s) => s.member === member.name);
  if (!found) throw ApplicationFailure.nonRetryable(`no staged snapshot for member ${member.name}`, FailureType.InvalidInput);
  return found;
}

/**
 * `snapshot restore` into each member's new dir: all members at once (`all-members`), or only the
 * first member as a one-member cluster (`first-node-then-add`; the others join on empty dirs).
 */
async function restoreDataDirs(
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
async function stopMembers(
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

interface RepointOptions {
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

async function repointAllMembers(o: RepointOptions): Promise<void> {
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

async function repointFirstThenAdd(o: RepointOptions, verify: ReturnType<typeof management>): Promise<void> {
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

function firstMember(plan: EtcdRestorePlan): RestoreMember {
  const first = plan.members[0];
  if (!first) throw ApplicationFailure.nonRetryable(`cluster ${plan.cluster} has no members`, FailureType.InvalidInput);
  return first;
}
