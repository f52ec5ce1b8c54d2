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
import { ApplicationFailure, CancellationScope, isCancellation, patched, upsertSearchAttributes } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import {
  dataDirsOf,
  management,
  onNode,
  repointAllMembers,
  restoreTag,
  stagedFor,
  repointFirstThenAdd,
  restoreDataDirs,
  rollbackCheck,
  rollbackOnNode,
  stopMembers,
  type RepointOptions,
} from './etcd-restore-members';
import type { createEtcdRestoreActivities, EtcdRestorePlan, ClusterCheck, RestoredContentCheck } from '../activities/etcd-restore';
import type { RestoredMemberData, RevisionBump, StagedSnapshot } from '../activities/etcd-member';
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
import type { MemberConfigChange } from '../etcd/member-service';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { describeKeyCount } from '../common/manifest';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
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

export { LEARNER_JOIN, MEMBER_STEPS_SETTLE } from './etcd-restore-members';

/** Markers: a refused preflight waits for every member's staging, then removes the staged copies (older runs left them); */
export const PREFLIGHT_DISCARDS_STAGED = 'preflight-refusal-discards-staged';
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

const { planEtcdRestore } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

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
