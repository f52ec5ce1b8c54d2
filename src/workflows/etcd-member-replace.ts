/**
 * Runbook "Partial Recovery": replace one failed etcd member while the others keep quorum.
 *
 *   assess quorum -> approval -> remove member -> add replacement -> start on an empty data dir -> wait for a healthy voter
 *
 * Without a quorum of the other members, membership cannot change: the run refuses before touching
 * anything and names the runbook to use instead (the cluster restore). A member that still answers
 * is refused unless `force` (replacing it throws away a working member). Like every restore it waits
 * for the `approve` Update unless `approved`; runs started before that (no `member-replace-approval`
 * marker in their history) go straight on. The old data dir is kept.
 * Membership changes are not reversible like a restore is: a failure after `member remove` leaves
 * the cluster one member short (still with quorum) and says so; the run can simply be started again.
 */
import { ApplicationFailure, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { Duration } from '@temporalio/common';
import type { createEtcdRestoreActivities, QuorumAssessment, ClusterCheck } from '../activities/etcd-restore';
import { LEARNER_JOIN } from './etcd-restore';
import type { createEtcdMemberActivities } from '../activities/etcd-member';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { initialClusterOf } from '../common/etcd-topology';
import { NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { ProgressTracker } from './progress';
import type { createBackupPlanActivities } from '../activities/backup-plan';
import { agentsNotServing, describeRecovery, REAL_AGENT_RECOVERY, recoverAgents, type AgentRecovery } from './agent-recovery';
import { approvalGate, approvalStep, runFailure, type ApprovalState } from './approval';
import { rejectBadInput } from './input';
import { durationProblems, flagProblem } from '../common/input-checks';

export interface ReplaceMemberInput {
  cluster: string;
  /** The failed member (a name from the config): it comes back on its configured node and URLs. */
  member: string;
  /** How long the new member may take to become a healthy voter. Default 3m. */
  verifyTimeout?: Duration;
  nodeResponseTimeout?: Duration;
  /** Replace the member even though it answers and is in the member list. */
  force?: boolean;
  /** Approved up front (automation); otherwise the run waits for the `approve` Update. */
  approved?: boolean;
  /** How long to wait for the approval; the run then ends having changed nothing. Default 1h. */
  approvalTimeout?: Duration;
}

/** What an approver sees through the `plan` query (no set: the replacement starts empty and syncs from the others). */
export interface MemberReplacePlanView {
  state: ApprovalState;
  plan: {
    setId?: undefined;
    cluster: string;
    member: string;
    node: string;
    healthyOthers: string[];
    memberIsHealthy: boolean;
    approvers?: string[];
  } | null;
}

export interface ReplaceMemberResult {
  member: string;
  removedId: string | null;
  addedId: string;
  oldDataDir: string;
  newDataDir: string;
  check: ClusterCheck;
  /** Each agent after its restart + republish (an agent connected to the replaced member is deaf). */
  agents?: AgentRecovery[];
  /** Who approved (null: a run from before the approval) and the client identity they sent. */
  approvedBy?: string | null;
  approverIdentity?: string | null;
}

const { assessQuorum, removeEtcdMember, addEtcdMember } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

const { describeBackupPlan } = proxyActivities<ReturnType<typeof createBackupPlanActivities>>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function replaceEtcdMemberWorkflow(input: ReplaceMemberInput): Promise<ReplaceMemberResult> {
  if (!input?.cluster || !input.member) {
    throw ApplicationFailure.nonRetryable(
      'a member replacement needs { cluster, member } naming the failed member from the config',
      FailureType.InvalidInput,
    );
  }
  rejectBadInput('member replacement', [
    ...durationProblems({
      verifyTimeout: input.verifyTimeout,
      nodeResponseTimeout: input.nodeResponseTimeout,
      approvalTimeout: input.approvalTimeout,
    }),
    flagProblem('force', input.force),
    flagProblem('approved', input.approved),
  ]);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'etcd-member-replace' },
  ]);
  const asksApproval = patched('member-replace-approval');
  const learners = patched(LEARNER_JOIN);
  const removeStep = asksApproval ? 'remove member' : 'remove dead member';
  const tracker = new ProgressTracker('etcd-member-replace', input.cluster, [
    ...(asksApproval ? ['assess quorum', 'approval'] : ['assess quorum']),
    removeStep,
    'add replacement',
    'start replacement',
    ...(learners ? ['promote replacement'] : []),
    'verify cluster',
  ]);
  const view: MemberReplacePlanView = { state: 'planning', plan: null };
  const approval = approvalGate(view);
  const verify = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
    startToCloseTimeout: '1m',
    scheduleToCloseTimeout: input.verifyTimeout ?? '3m',
    retry: { initialInterval: '1s', backoffCoefficient: 1.5, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
  });

  try {
    // The refusals fail the step itself: a refused run never shows "ok assess quorum".
    let via = '';
    const quorum = await tracker.step(
      'assess quorum',
      async () => {
        const assessed = await assessQuorum({ cluster: input.cluster, failed: input.member });
        via = refuseWithoutQuorum(input, assessed);
        if (asksApproval && assessed.failedIsHealthy && input.force !== true) {
          throw ApplicationFailure.nonRetryable(
            `${input.member} is a healthy member of ${input.cluster}: replacing it removes a working member and re-adds it empty; nothing was changed. ` +
              'Replace it anyway with --force (input force: true)',
            FailureType.RestoreRefused,
          );
        }
        return assessed;
      },
      (q) =>
        `${q.healthy.length} of ${q.size} other members healthy (${q.healthy.join(', ') || 'none'}), quorum ${q.quorum}` +
        `${q.failedIsHealthy ? `; ${input.member} is healthy (forced)` : ''}`,
    );
    if (asksApproval) {
      view.plan = {
        cluster: input.cluster,
        member: input.member,
        node: quorum.failed.node,
        healthyOthers: quorum.healthy,
        memberIsHealthy: quorum.failedIsHealthy === true,
        approvers: quorum.approvers,
      };
      await approvalStep(tracker, approval, input, `replacement of ${input.member}`);
    }
    const activities = proxyActivities<ReturnType<typeof createEtcdMemberActivities>>({
      taskQueue: nodeTaskQueue(workflowInfo().taskQueue, quorum.failed.node),
      scheduleToStartTimeout: input.nodeResponseTimeout ?? '2m',
      startToCloseTimeout: '5m',
      retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
    });
    const tag = workflowInfo().runId.slice(-8);
    const described = await activities.describeEtcdMember({ cluster: input.cluster, member: input.member, tag });
    const { removedId } = await tracker.step(
      removeStep,
      async () => {
        // A half-alive process must not come back under the old identity.
        if (described.running) await activities.stopEtcdMember({ cluster: input.cluster, member: input.member });
        return removeEtcdMember({ cluster: input.cluster, member: input.member, via });
      },
      (r) => (r.removedId ? `removed member id ${r.removedId}` : 'not in the member list any more'),
    );

    const added = await tracker.step(
      'add replacement',
      () => addEtcdMember({ cluster: input.cluster, member: input.member, via: [via], ...(learners ? { asLearner: true } : {}) }),
      (a) => `member id ${a.id}${a.isLearner ? ' (a learner until promoted)' : ''}`,
    );
    const addedId = added.id;
    await tracker.step(
      'start replacement',
      async () => {
        const peers = quorum.members
          .filter((m) => m.name && m.name !== input.member)
          .map((m) => ({ name: m.name, peerUrl: m.peerURLs[0] ?? '' }));
        const change = await activities.repointEtcdMemberConfig({
          cluster: input.cluster,
          member: input.member,
          restoreTag: `replace-${tag}`,
          changes: {
            dataDir: described.newDataDir,
            initialCluster: initialClusterOf([...peers, { name: input.member, peerUrl: quorum.failed.peerUrl }]),
            initialClusterState: 'existing',
          },
        });
        await activities.startEtcdMember({ cluster: input.cluster, member: input.member });
        return change;
      },
      (change) => `${change.file} now points at ${described.newDataDir} (old data dir ${described.dataDir} kept)`,
    );
    if (learners && added.isLearner) {
      await tracker.step(
        'promote replacement',
        () => verify.promoteEtcdLearner({ cluster: input.cluster, member: input.member, via: [via] }),
        () => 'caught up with the leader and promoted to a voting member',
      );
    }
    const check = await tracker.step(
      'verify cluster',
      () => verify.checkEtcdCluster({ cluster: input.cluster, require: true }),
      (c) => `${c.members.length} healthy voters, hashKV equal at ${c.hashRevision}`,
    );
    const result: ReplaceMemberResult = {
      member: input.member,
      removedId,
      addedId,
      oldDataDir: described.dataDir,
      newDataDir: described.newDataDir,
      check,
      approvedBy: approval.approvedBy(),
      approverIdentity: approval.identity(),
    };
    if (patched(REAL_AGENT_RECOVERY)) {
      // An agent whose connection went to the stopped member lost its watches for good.
      result.agents = await tracker.step(
        'recover agents',
        async () => recoverAgents(input.cluster, (await describeBackupPlan({ cluster: input.cluster })).agentNodes),
        describeRecovery,
      );
      const problem = agentsNotServing(result.agents);
      if (problem)
        throw ApplicationFailure.nonRetryable(
          `member ${input.member} was replaced and the cluster verified, but ${problem}`,
          FailureType.AgentsNotServing,
        );
    }
    tracker.finish('completed');
    return result;
  } catch (err) {
    tracker.finish('failed');
    throw runFailure(`replacement of ${input.member} failed`, err);
  }
}

function refuseWithoutQuorum(input: ReplaceMemberInput, quorum: QuorumAssessment): string {
  if (!quorum.hasQuorum || quorum.healthy.length === 0) {
    throw ApplicationFailure.nonRetryable(
      `cluster ${input.cluster} has lost quorum: ${quorum.healthy.length} of ${quorum.size} members answer, ${quorum.quorum} needed; ` +
        `membership cannot change without quorum. Use the cluster restore runbook instead: nnoe-dr restore etcd --cluster ${input.cluster} (etcdRestoreWorkflow)`,
      FailureType.QuorumLost,
    );
  }
  return quorum.healthy[0]!;
}
