/**
 * Bringing real NNOE agents back to serving etcd's state, the one way that works (../shared/DESIGN.md,
 * "Facts about the real NNOE"): after etcd is healthy, for one agent at a time
 *
 *   restart it (it writes empty configs and opens new watches) -> wait until it listens
 *   -> republish every key under its five prefixes -> check that what it rendered equals etcd
 *
 * The order is the contract: a republish before the restart is lost on the deaf old process, and
 * one agent at a time means never two agents serving empty configs at once. Each republish reaches
 * every agent already restarted. How long each agent served an empty config is reported.
 */
import { sleep, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { Duration } from '@temporalio/common';
import type { AgentCheck, createAgentServiceActivities } from '../activities/agent-service';
import type { createAgentRepublishActivities } from '../activities/agent-republish';
import type { RepublishResult } from '../agent/republish';
import { NON_RETRYABLE } from '../common/failures';
import { nodeTaskQueue } from '../common/search-attributes';

/**
 * The patch marker of every workflow that recovers agents this way. Runs recorded before it
 * restarted agents by a health URL only (the stand-in agent) and rolled etcd back when one failed.
 */
export const REAL_AGENT_RECOVERY = 'real-agent-recovery';

export interface AgentRecovery {
  node: string;
  /** The last republish this agent waited for (null: republish switched off, or a dry run's count). */
  republish: RepublishResult | null;
  republishRounds: number;
  /** From the restart (empty configs written) to the check that found it serving, or to the last check. */
  emptyForMs: number;
  check: AgentCheck;
}

export interface AgentRecoveryOptions {
  /** Republish after each restart. Default true; off only to show what an agent serves without it. */
  republish?: boolean;
  /** Start an agent that is down instead of restarting a running one (node recovery). */
  startOnly?: boolean;
  /** The agent was (re)started just now by another step (cache backup): republish and check only. */
  alreadyStarted?: boolean;
}

type AgentActivities = ReturnType<typeof createAgentServiceActivities>;

function onAgentNode(
  node: string,
  bounds: {
    scheduleToStartTimeout?: Duration;
    scheduleToCloseTimeout?: Duration;
    startToCloseTimeout: Duration;
    heartbeatTimeout: Duration;
    initialInterval: Duration;
  },
): AgentActivities {
  const { initialInterval, ...timeouts } = bounds;
  return proxyActivities<AgentActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    ...timeouts,
    retry: { maximumAttempts: 3, initialInterval, nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

/** Node-queue steps on one agent's node; a node without a worker fails the step instead of hanging. */
export const agentNode = (node: string) =>
  onAgentNode(node, { scheduleToStartTimeout: '2m', startToCloseTimeout: '3m', heartbeatTimeout: '30s', initialInterval: '2s' });

/** The restart-and-wait steps of runs recorded before the real agent (no `real-agent-recovery` marker). */
export const agentsOnNode = (node: string) =>
  onAgentNode(node, { scheduleToCloseTimeout: '15m', startToCloseTimeout: '5m', heartbeatTimeout: '1m', initialInterval: '5s' });

/**
 * Runs recorded before the real agent (no REAL_AGENT_RECOVERY marker): restart each agent and wait
 * for its health, one at a time, in `nodes` order. Replays those histories command for command.
 */
export async function restartAgentsAndWait(cluster: string, nodes: string[]): Promise<Array<{ node: string; readyAfterMs: number }>> {
  const ready = [];
  for (const node of nodes) ready.push({ node, readyAfterMs: (await agentsOnNode(node).restartAgentAndWait({ cluster })).readyAfterMs });
  return ready;
}

const { etcdRevisionNow, republishAgentKeys } = proxyActivities<ReturnType<typeof createAgentRepublishActivities>>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 5, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** A republish round is followed by checks for this long while the agent renders. */
const CHECK_ATTEMPTS = 10;
const CHECK_INTERVAL_MS = 1000;
/** A watch opened a moment after the first republish misses it: then one more round. */
const MAX_REPUBLISH_ROUNDS = 3;

async function checkUntilServing(node: string, cluster: string): Promise<AgentCheck> {
  let check = await agentNode(node).checkAgent({ cluster });
  for (let i = 1; i < CHECK_ATTEMPTS && !check.serving && check.running; i++) {
    await sleep(CHECK_INTERVAL_MS);
    check = await agentNode(node).checkAgent({ cluster });
  }
  return check;
}

/** Restart, republish and check each agent in turn (see the file comment). Never throws for an agent that does not serve: the caller decides. */
export async function recoverAgents(cluster: string, nodes: string[], opts: AgentRecoveryOptions = {}): Promise<AgentRecovery[]> {
  const recovered: AgentRecovery[] = [];
  for (const node of nodes) {
    const agent = agentNode(node);
    const { prefix } = await agent.describeAgent({ cluster });
    const started = opts.alreadyStarted
      ? { startedAtMs: Date.now(), wasRunning: true }
      : await agent.restartAgent({ cluster, startOnly: opts.startOnly });
    await agent.waitAgentListening({
      cluster,
      sinceMs: (opts.startOnly && started.wasRunning) || opts.alreadyStarted ? 0 : started.startedAtMs,
    });
    let republish: RepublishResult | null = null;
    let rounds = 0;
    let check: AgentCheck;
    for (;;) {
      if (opts.republish !== false) {
        const notAfterRevision = await etcdRevisionNow({ cluster });
        republish = await republishAgentKeys({ cluster, prefix, notAfterRevision });
        rounds += 1;
      }
      check = await checkUntilServing(node, cluster);
      if (check.serving || opts.republish === false || rounds >= MAX_REPUBLISH_ROUNDS || !check.running) break;
    }
    recovered.push({ node, republish, republishRounds: rounds, emptyForMs: Date.now() - started.startedAtMs, check });
  }
  return recovered;
}

/** What a dry run shows: how many keys each agent prefix would republish (nothing is put or restarted). */
/** Dry run: what each agent's republish would put, per prefix. */
export type AgentRepublishPlan = Array<{ node: string; prefix: string; republish: RepublishResult }>;

export async function planAgentRepublish(cluster: string, nodes: string[]): Promise<AgentRepublishPlan> {
  const planned = [];
  for (const node of nodes) {
    const { prefix } = await agentNode(node).describeAgent({ cluster });
    const notAfterRevision = await etcdRevisionNow({ cluster });
    planned.push({ node, prefix, republish: await republishAgentKeys({ cluster, prefix, notAfterRevision, dryRun: true }) });
  }
  return planned;
}

/** The agents that do not serve, with why; null when all do. */
export function agentsNotServing(recovered: AgentRecovery[]): string | null {
  const bad = recovered.filter((r) => !r.check.serving);
  return bad.length === 0 ? null : bad.map((r) => `agent on ${r.node}: ${r.check.reason ?? 'not serving'}`).join('; ');
}

/** One line per agent for progress details and reports. */
export function describeRecovery(recovered: AgentRecovery[]): string {
  if (recovered.length === 0) return 'no agents configured';
  return recovered
    .map((r) => {
      const keys = r.republish ? r.republish.prefixes.reduce((n, p) => n + p.put, 0) : 0;
      return (
        `${r.node} ${r.check.serving ? 'serving' : 'NOT serving'} (${r.check.zones} zones, ${r.check.scopes} scopes; ` +
        `${keys} keys republished in ${r.republishRounds} round(s); empty config for ${(r.emptyForMs / 1000).toFixed(1)} s)`
      );
    })
    .join(', ');
}
