/**
 * Runbook "Partial Recovery", agent node: bring one node's agent back. Optionally its sled cache is
 * restored from the newest set first (the cache restore starts the agent); otherwise the agent is
 * started through the node worker. Either way the run ends when the agent reports healthy; it
 * rebuilds the rest from etcd.
 */
import { ApplicationFailure, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { executeChild } from './ui-metadata';
import type { AgentHealth } from '../activities/agent-service';
import { FailureType } from '../common/failures';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { runFailure } from './approval';
import { ProgressTracker } from './progress';
import { agentCacheRestoreWorkflow, type HostRestoreResult } from './host-restore';
import { agentsNotServing, agentsOnNode, describeRecovery, REAL_AGENT_RECOVERY, recoverAgents, type AgentRecovery } from './agent-recovery';

export interface AgentNodeRecoveryInput {
  cluster: string;
  node: string;
  /** Restore the node's cache from the newest set (or `setId`) before the agent starts. */
  restoreCache?: boolean;
  setId?: string;
}

export interface AgentNodeRecoveryResult {
  node: string;
  cacheRestore: HostRestoreResult | null;
  /** Runs recorded before the real agent: the health wait. */
  health?: AgentHealth;
  /** The agent restarted, republished to and checked (or as the cache restore left it). */
  agent?: AgentRecovery;
}

export async function recoverAgentNodeWorkflow(input: AgentNodeRecoveryInput): Promise<AgentNodeRecoveryResult> {
  if (!input?.cluster || !input.node)
    throw ApplicationFailure.nonRetryable('an agent node recovery needs { cluster, node }', FailureType.InvalidInput);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'agent-node-recovery' },
  ]);
  const tracker = new ProgressTracker('agent-node-recovery', input.cluster, ['restore cache', 'start agent']);
  try {
    const cacheRestore = await tracker.step(
      'restore cache',
      async () =>
        input.restoreCache
          ? executeChild(agentCacheRestoreWorkflow, {
              workflowId: `${workflowInfo().workflowId}/agent-cache-restore`,
              args: [{ cluster: input.cluster, node: input.node, setId: input.setId }],
            })
          : null,
      (r) => (r ? `cache of ${input.node} restored from ${r.setId}` : 'not asked: the agent rebuilds its cache from etcd'),
    );
    if (patched(REAL_AGENT_RECOVERY)) {
      // The cache restore already started, republished to and checked the agent; otherwise restart
      // it (a running agent may be deaf) and republish.
      const agent =
        cacheRestore?.agent ?? (await tracker.step('start agent', () => recoverAgents(input.cluster, [input.node]), describeRecovery))[0]!;
      if (cacheRestore?.agent) tracker.note('start agent', 'done by the cache restore');
      const problem = agentsNotServing([agent]);
      if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.AgentsNotServing);
      tracker.finish('completed');
      return { node: input.node, cacheRestore, agent };
    }
    const health = await tracker.step(
      'start agent',
      () => agentsOnNode(input.node).startAgentAndWait({ cluster: input.cluster }),
      (h) => `${input.node} healthy after ${h.readyAfterMs} ms`,
    );
    tracker.finish('completed');
    return { node: input.node, cacheRestore, health };
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('agent node recovery failed', err); // the run's own failure names the problem, not "Activity task failed"
  }
}
