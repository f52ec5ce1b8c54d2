/**
 * Runbook "Point-in-Time Recovery", its five steps with step 3 done for real:
 *
 *   plan (target -> revision; newest snapshot at or before it; captured changes chained to it)
 *   -> restore the snapshot (the etcd restore workflow, as a child: approval, rollback and all)
 *   -> replay the captured events up to exactly the target -> verify critical keys -> restart agents
 *
 * When the captured changes do not reach the target, the run refuses before anything else and
 * names the newest point it can reach. Stop the cluster's change capture first: the restored
 * cluster is a new incarnation (new cluster ID) and gets a capture chain of its own.
 */
import { ApplicationFailure, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { executeChild, proxyActivities } from './ui-metadata';
import type { Duration } from '@temporalio/common';
import type { createPitrActivities, PointInTimePlan } from '../activities/pitr';
import type { createEtcdRestoreActivities, ClusterCheck } from '../activities/etcd-restore';
import type { createBackupPlanActivities } from '../activities/backup-plan';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { runFailure } from './approval';
import { ProgressTracker } from './progress';
import {
  describeRevisionBump,
  etcdRestoreWorkflow,
  restoreRevisionReport,
  type RestoreRevisionReport,
  type RestoreStrategy,
} from './etcd-restore';
import {
  agentsNotServing,
  describeRecovery,
  restartAgentsAndWait,
  REAL_AGENT_RECOVERY,
  recoverAgents,
  type AgentRecovery,
} from './agent-recovery';

export interface PointInTimeInput {
  cluster: string;
  /** Exactly one of the two. */
  targetRevision?: number;
  /** ISO-8601; resolved to the last captured revision at or before it. */
  targetTime?: string;
  /** The incarnation (etcd cluster ID) whose history to restore; default: by time the one snapshotted at or before it, by revision the live one. */
  clusterId?: string;
  strategy?: RestoreStrategy;
  /** Passed to the restore: approved up front, or wait for `approve` on the child `<id>/etcd-restore`. */
  approved?: boolean;
  approvalTimeout?: Duration;
}

export interface PointInTimeResult {
  plan: PointInTimePlan;
  replay: { revisions: number; events: number; transactions: number };
  check: ClusterCheck;
  /** The snapshot restore under the replay: whether it bumped the revision, and where its content sat (absent in older runs). */
  restore?: RestoreRevisionReport;
  /** Each agent after its restart + republish, serving the target state. */
  agents?: AgentRecovery[];
}

const { planPointInTime, replayChanges } = proxyActivities<ReturnType<typeof createPitrActivities>>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

const { checkEtcdCluster } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '1m',
  scheduleToCloseTimeout: '3m',
  retry: { initialInterval: '1s', backoffCoefficient: 1.5, maximumInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function pointInTimeRestoreWorkflow(input: PointInTimeInput): Promise<PointInTimeResult> {
  if (!input?.cluster)
    throw ApplicationFailure.nonRetryable(
      'a point-in-time restore needs { cluster, targetRevision | targetTime }',
      FailureType.InvalidInput,
    );
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'pitr' },
  ]);
  const tracker = new ProgressTracker('pitr', input.cluster, [
    'plan',
    'restore snapshot',
    'replay changes',
    'verify cluster',
    'restart agents',
  ]);
  try {
    const plan = await tracker.step(
      'plan',
      () =>
        planPointInTime({
          cluster: input.cluster,
          targetRevision: input.targetRevision,
          targetTime: input.targetTime,
          clusterId: input.clusterId,
        }),
      (p) =>
        `incarnation ${p.clusterId}${incarnationNote(p)}: set ${p.setId} (revision ${p.snapshotRevision}) + ${p.segments.length} change segments up to revision ${p.targetRevision}`,
    );
    tracker.progress.setId = plan.setId;
    upsertSearchAttributes([{ key: NnoeBackupSet, value: plan.setId }]);

    const restore = restoreRevisionReport(
      await tracker.step(
        'restore snapshot',
        () =>
          executeChild(etcdRestoreWorkflow, {
            workflowId: `${workflowInfo().workflowId}/etcd-restore`,
            args: [
              {
                cluster: input.cluster,
                setId: plan.setId,
                strategy: input.strategy,
                approved: input.approved,
                approvalTimeout: input.approvalTimeout,
                restartAgents: false,
              },
            ],
          }),
        (r) => `restored ${r.setId} at revision ${r.snapshotRevision}; ${describeRevisionBump(restoreRevisionReport(r))}`,
      ),
    );

    const replay = await tracker.step(
      'replay changes',
      () =>
        replayChanges({
          cluster: input.cluster,
          segments: plan.segments,
          afterRevision: plan.snapshotRevision,
          targetRevision: plan.targetRevision,
        }),
      (r) => `${r.events} events of ${r.revisions} revisions in ${r.transactions} transactions`,
    );

    const check = await tracker.step(
      'verify cluster',
      async () => checkEtcdCluster({ cluster: input.cluster, criticalKeys: await criticalKeysOf(input.cluster), require: true }),
      // Replay packs revisions into fewer transactions: the restored cluster (a new incarnation) counts its own revisions.
      (c) =>
        `the state of revision ${plan.targetRevision} of incarnation ${plan.clusterId}; ${c.members.length} members healthy at their own revision ${c.revision}${c.clusterId ? ` (new incarnation ${c.clusterId})` : ''}, hashKV equal at ${c.hashRevision}`,
    );

    if (patched(REAL_AGENT_RECOVERY)) {
      // After the replay, so each agent renders the target state (the restore's restart left them deaf).
      const agents = await tracker.step(
        'restart agents',
        async () => recoverAgents(input.cluster, (await planAgents(input.cluster)).agentNodes),
        describeRecovery,
      );
      const problem = agentsNotServing(agents);
      if (problem) {
        throw ApplicationFailure.nonRetryable(
          `etcd was restored to revision ${plan.targetRevision} and verified, but ${problem} (etcd is not rolled back)`,
          FailureType.AgentsNotServing,
        );
      }
      tracker.finish('completed');
      return { plan, replay, check, restore, agents };
    }
    await tracker.step(
      'restart agents',
      async () => {
        const { agentNodes } = await planAgents(input.cluster);
        await restartAgentsAndWait(input.cluster, agentNodes);
        return agentNodes.join(', ') || 'no agents configured';
      },
      (d) => d,
    );
    tracker.finish('completed');
    return { plan, replay, check, restore };
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('point-in-time restore failed', err); // the run's own failure names the problem, not "Activity task failed"
  }
}

function incarnationNote(plan: PointInTimePlan): string {
  if (plan.liveClusterId === undefined) return '';
  if (plan.liveClusterId === null) return ' (the live cluster did not answer)';
  return plan.liveClusterId === plan.clusterId ? ' (the live one)' : ` (an earlier one; live is ${plan.liveClusterId})`;
}

const { describeBackupPlan } = proxyActivities<ReturnType<typeof createBackupPlanActivities>>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
});

const planAgents = (cluster: string) => describeBackupPlan({ cluster });

const { restoreCriticalKeys } = proxyActivities<ReturnType<typeof createEtcdRestoreActivities>>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
});

const criticalKeysOf = (cluster: string) => restoreCriticalKeys({ cluster });
