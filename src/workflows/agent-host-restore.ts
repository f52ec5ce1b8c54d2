/**
 * Restore an agent node's host state (`agent-config` component): agent.toml, its drop-in dir, the
 * etcd client TLS dir, Knot's DNSSEC keys, Kea's lease file, the Nebula CA key on the CA host.
 *
 *   preflight (set chosen) -> restore files (every root prepared beside, then swapped in; the old
 *   kept as .pre-restore-*) -> recover the agent (restart: it reads agent.toml and its certs only
 *   at start; republish; check)
 *
 * A dry run fetches, checks and extracts the archive on the node and changes nothing.
 */
import { ApplicationFailure, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type {
  createAgentHostRestoreActivities,
  createAgentHostRestorePlanActivities,
  AgentHostRestoreOutcome,
  AgentHostRestorePlan,
} from '../activities/agent-host-restore';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { runFailure } from './approval';
import { ProgressTracker } from './progress';
import { agentsNotServing, describeRecovery, recoverAgents, type AgentRecovery } from './agent-recovery';

export interface AgentHostRestoreInput {
  cluster: string;
  node: string;
  setId?: string;
  dryRun?: boolean;
}

export interface AgentHostRestoreResult {
  plan: AgentHostRestorePlan;
  outcome: AgentHostRestoreOutcome;
  agent: AgentRecovery | null;
}

const { planAgentHostRestore } = proxyActivities<ReturnType<typeof createAgentHostRestorePlanActivities>>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function agentHostRestoreWorkflow(input: AgentHostRestoreInput): Promise<AgentHostRestoreResult> {
  if (!input?.cluster || !input.node)
    throw ApplicationFailure.nonRetryable('a host state restore needs { cluster, node }', FailureType.InvalidInput);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'agent-host-restore' },
  ]);
  const tracker = new ProgressTracker('agent-host-restore', input.cluster, ['preflight', 'restore files', 'recover agent']);
  const { restoreAgentHostState } = proxyActivities<ReturnType<typeof createAgentHostRestoreActivities>>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, input.node),
    scheduleToStartTimeout: '2m',
    startToCloseTimeout: '30m',
    heartbeatTimeout: '1m',
    retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
  try {
    const plan = await tracker.step(
      'preflight',
      () => planAgentHostRestore({ cluster: input.cluster, node: input.node, setId: input.setId }),
      (p) =>
        `set ${p.setId}: ${p.roots.join(', ')}${p.skippedAtBackup.length ? ` (not in the backup: ${p.skippedAtBackup.map((s) => s.path).join(', ')})` : ''}`,
    );
    tracker.progress.setId = plan.setId;
    upsertSearchAttributes([{ key: NnoeBackupSet, value: plan.setId }]);
    const outcome = await tracker.step(
      'restore files',
      () =>
        restoreAgentHostState({
          cluster: plan.cluster,
          setId: plan.setId,
          artefact: plan.artefact,
          roots: plan.roots,
          dryRun: input.dryRun === true,
        }),
      (o) =>
        o.dryRun
          ? `dry run: ${o.entries} entries checked, nothing changed`
          : o.restored.map((r) => `${r.path}${r.previous ? ` (old kept as ${r.previous})` : ''}`).join(', '),
    );
    let agent: AgentRecovery | null = null;
    if (input.dryRun !== true) {
      agent = (await tracker.step('recover agent', () => recoverAgents(plan.cluster, [input.node]), describeRecovery))[0] ?? null;
      const problem = agentsNotServing(agent ? [agent] : []);
      if (problem)
        throw ApplicationFailure.nonRetryable(`host state restored from ${plan.setId}, but ${problem}`, FailureType.AgentsNotServing);
    }
    tracker.finish('completed');
    return { plan, outcome, agent };
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('host state restore failed', err); // the run's own failure names the problem, not "Activity task failed"
  }
}
