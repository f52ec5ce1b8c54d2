/**
 * Runbook "Agent Cache Backup" for one agent node, run on that node's own task queue. If the
 * activity fails or times out (a dead node worker never runs its `finally`), the workflow makes
 * sure the agent is running again before it reports the failure.
 */
import { ApplicationFailure, CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { createAgentCacheActivities } from '../activities/agent-cache';
import type { AgentCacheComponentRecord } from '../common/manifest';
import { nodeTaskQueue } from '../common/search-attributes';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { agentsNotServing, REAL_AGENT_RECOVERY, recoverAgents } from './agent-recovery';

export interface AgentCacheBackupInput {
  cluster: string;
  node: string;
  setId: string;
  fileName: string;
  targets: string[];
  /** Copy the cache without stopping the agent. */
  online?: boolean;
}

type AgentCacheActivities = ReturnType<typeof createAgentCacheActivities>;

export async function agentCacheBackupWorkflow(input: AgentCacheBackupInput): Promise<AgentCacheComponentRecord> {
  const taskQueue = nodeTaskQueue(workflowInfo().taskQueue, input.node);
  const { backupAgentCache } = proxyActivities<AgentCacheActivities>({
    taskQueue,
    // Must reach the node: a schedule-to-close bound instead of waiting forever for a dead node.
    scheduleToCloseTimeout: '2h',
    startToCloseTimeout: '1h',
    heartbeatTimeout: '1m',
    retry: { maximumAttempts: 2, initialInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const { ensureAgentRunning } = proxyActivities<AgentCacheActivities>({
    taskQueue,
    scheduleToCloseTimeout: '30m',
    startToCloseTimeout: '2m',
    retry: { maximumAttempts: 10, initialInterval: '5s', maximumInterval: '1m' },
  });

  const startedAt = new Date().toISOString();
  try {
    const outcome = await backupAgentCache({
      cluster: input.cluster,
      setId: input.setId,
      fileName: input.fileName,
      targets: input.targets,
      online: input.online === true,
    });
    if (input.online !== true && patched(REAL_AGENT_RECOVERY)) {
      // The restarted agent serves empty configs until the keys are put again: republish and check.
      const problem = agentsNotServing(await recoverAgents(input.cluster, [input.node], { alreadyStarted: true }));
      if (problem)
        throw ApplicationFailure.nonRetryable(
          `the cache was backed up, but after the agent's restart ${problem}`,
          FailureType.AgentsNotServing,
        );
    }
    return {
      component: 'agent-cache',
      node: input.node,
      status: 'ok',
      artefacts: [outcome.artefact],
      facts: outcome.facts,
      startedAt,
      finishedAt: new Date().toISOString(),
    };
  } catch (err) {
    if (input.online !== true) await CancellationScope.nonCancellable(() => ensureAgentRunning({ cluster: input.cluster }));
    throw err;
  }
}
