/**
 * Runbooks for the agents alone, for operators after any etcd maintenance and for `nnoe-dr agents`:
 *
 *   checkAgentsWorkflow:   each agent's health as the real agent allows it to be judged (running,
 *                          connected to etcd, rendering etcd's state), read-only;
 *   recoverAgentsWorkflow: restart + republish + check, one agent at a time (src/workflows/agent-recovery.ts);
 *                          a dry run only counts the keys a republish would put, per prefix.
 */
import { ApplicationFailure, upsertSearchAttributes } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { AgentCheck } from '../activities/agent-service';
import type { createBackupPlanActivities } from '../activities/backup-plan';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import {
  agentNode,
  agentsNotServing,
  describeRecovery,
  planAgentRepublish,
  recoverAgents,
  type AgentRecovery,
  type AgentRepublishPlan,
} from './agent-recovery';
import { runFailure } from './approval';
import { ProgressTracker } from './progress';

export interface AgentsInput {
  cluster: string;
  /** Some of the cluster's agent nodes; all of them when omitted. */
  nodes?: string[];
}

export interface RecoverAgentsInput extends AgentsInput {
  dryRun?: boolean;
}

export interface RecoverAgentsResult {
  dryRun: boolean;
  agents: AgentRecovery[];
  plan?: AgentRepublishPlan;
}

const { describeBackupPlan } = proxyActivities<ReturnType<typeof createBackupPlanActivities>>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
});

async function chosenNodes(input: AgentsInput): Promise<string[]> {
  if (!input?.cluster)
    throw ApplicationFailure.nonRetryable('expected { cluster, nodes? } naming a cluster from the config', FailureType.InvalidInput);
  const { agentNodes } = await describeBackupPlan({ cluster: input.cluster });
  const unknown = (input.nodes ?? []).filter((n) => !agentNodes.includes(n));
  if (unknown.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `cluster ${input.cluster} has no agent on ${unknown.join(', ')} (agents: ${agentNodes.join(', ') || 'none'})`,
      FailureType.InvalidInput,
    );
  }
  return input.nodes?.length ? input.nodes : agentNodes;
}

/** Every chosen agent checked; the result lists all of them, serving or not (the caller decides). */
export async function checkAgentsWorkflow(input: AgentsInput): Promise<AgentCheck[]> {
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'agents-check' },
  ]);
  try {
    const nodes = await chosenNodes(input);
    return await Promise.all(nodes.map((node) => agentNode(node).checkAgent({ cluster: input.cluster })));
  } catch (err) {
    throw runFailure('agent check failed', err);
  }
}

export async function recoverAgentsWorkflow(input: RecoverAgentsInput): Promise<RecoverAgentsResult> {
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'agents-recover' },
  ]);
  const tracker = new ProgressTracker('agents-recover', input.cluster, ['plan', 'recover agents']);
  try {
    const nodes = await tracker.step(
      'plan',
      () => chosenNodes(input),
      (n) => n.join(', ') || 'no agents configured',
    );
    if (input.dryRun === true) {
      const plan = await tracker.step(
        'recover agents',
        () => planAgentRepublish(input.cluster, nodes),
        (p) => `dry run: ${p.map((a) => `${a.node}: ${a.republish.prefixes.map((x) => `${x.prefix} ${x.keys}`).join(', ')}`).join('; ')}`,
      );
      tracker.finish('completed');
      return { dryRun: true, agents: [], plan };
    }
    const agents = await tracker.step('recover agents', () => recoverAgents(input.cluster, nodes), describeRecovery);
    const problem = agentsNotServing(agents);
    if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.AgentsNotServing, { agents });
    tracker.finish('completed');
    return { dryRun: false, agents };
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('agent recovery failed', err); // the run's own failure names the problem, not "Activity task failed"
  }
}
