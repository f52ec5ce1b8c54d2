/**
 * The agent on this node as a service: restarted after an etcd restore (it rebuilds its sled cache
 * from etcd) and started by a node recovery; "healthy" means its health endpoint answers 200.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentConfig, Config } from '../config/schema';
import { findCluster } from '../config/load';
import { FailureType } from '../common/failures';
import { serviceDriver } from '../services/driver';
import { typedFailures } from './failures';

export interface AgentHealth {
  node: string;
  healthy: boolean;
  /** Milliseconds from start to the first healthy answer. */
  readyAfterMs: number;
  status?: number;
  body?: string;
}

async function probe(url: string): Promise<{ status: number; body: string } | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.text()).slice(0, 500) };
  } catch {
    return null;
  }
}

export function createAgentServiceActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  function agentOf(clusterName: string): AgentConfig {
    const agent = findCluster(config, clusterName).agents.find((a) => a.node === node);
    if (!agent) throw ApplicationFailure.nonRetryable(`cluster ${clusterName} configures no agent on node ${node}`, FailureType.InvalidInput);
    return agent;
  }

  /** Polls the health endpoint until it answers 200 (heartbeating); without a healthUrl, "running" is all we can know. */
  async function waitHealthy(agent: AgentConfig, started: number, timeoutMs: number): Promise<AgentHealth> {
    const ctx = Context.current();
    const service = serviceDriver(agent.service);
    for (;;) {
      if (agent.healthUrl) {
        const answer = await probe(agent.healthUrl);
        if (answer?.status === 200) return { node, healthy: true, readyAfterMs: Date.now() - started, status: 200, body: answer.body };
      } else if (await service.isRunning()) {
        return { node, healthy: true, readyAfterMs: Date.now() - started };
      }
      if (Date.now() - started > timeoutMs) {
        throw ApplicationFailure.retryable(`agent on ${node} not healthy ${Math.round(timeoutMs / 1000)} s after its start (${agent.healthUrl ?? service.describe})`, FailureType.AgentUnhealthy);
      }
      ctx.heartbeat({ waitingForHealth: agent.healthUrl });
      await new Promise((done) => setTimeout(done, 500));
    }
  }

  async function restartAgentAndWait(input: { cluster: string; timeoutSeconds?: number }): Promise<AgentHealth> {
    const agent = agentOf(input.cluster);
    const service = serviceDriver(agent.service);
    await service.stop();
    const started = Date.now();
    await service.start();
    return waitHealthy(agent, started, (input.timeoutSeconds ?? 120) * 1000);
  }

  async function startAgentAndWait(input: { cluster: string; timeoutSeconds?: number }): Promise<AgentHealth> {
    const agent = agentOf(input.cluster);
    const started = Date.now();
    await serviceDriver(agent.service).start();
    return waitHealthy(agent, started, (input.timeoutSeconds ?? 120) * 1000);
  }

  return {
    restartAgentAndWait: typedFailures(restartAgentAndWait),
    startAgentAndWait: typedFailures(startAgentAndWait),
  };
}
