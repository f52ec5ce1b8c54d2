/**
 * The NNOE agent on this node, as the real agent is: it serves no HTTP, renders only keys put
 * after it started, and goes deaf (running, no etcd connection) when etcd restarts. So "healthy"
 * is judged from the agent itself, in one activity used everywhere (`checkAgent`): the process
 * runs, it holds an established TCP connection to an etcd client URL, and what it rendered
 * (knot.conf + zone files, kea-dhcp4.conf) matches etcd. Restarts are separate steps so the
 * workflow can republish in between (src/workflows/agent-recovery.ts).
 */
import { stat, readFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import type { ClusterConfig, Config } from '../config/schema';
import { findCluster } from '../config/load';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { serviceDriver } from '../services/driver';
import { connectCluster } from '../etcd/connect';
import type { AgentLayout } from '../agent/agent-toml';
import { agentLayout, agentOn } from '../agent/node-agent';
import { establishedConnectionTo } from '../agent/connections';
import {
  expectedRendering,
  parseKeaConf,
  parseKnotConf,
  parseZoneFileRecords,
  renderingDifferences,
  type RenderedState,
} from '../agent/rendering';
import { prefixRangeEnd } from '../agent/republish';

/** What a workflow needs to know of an agent (paths and prefix; nothing secret). */
export interface AgentDescription {
  node: string;
  agentToml: string;
  service: string;
  prefix: string;
  cachePath: string;
  dns: { configPath: string; zoneDir: string } | null;
  dhcp: { configPath: string } | null;
}

export interface AgentCheck {
  node: string;
  /** Running, connected to etcd, and rendering exactly etcd's zones and scopes. */
  serving: boolean;
  running: boolean;
  pid: number | null;
  /** `ip:port` of the etcd client URL the agent is connected to; null: deaf (or not running). */
  etcdConnection: string | null;
  /** How the rendering differs from etcd, one sentence each. */
  differences: string[];
  zones: number;
  scopes: number;
  /** Why it is not serving, in one sentence; null when serving. */
  reason: string | null;
}

/** Kept for runs recorded before the real agent (restartAgentAndWait / startAgentAndWait). */
export interface AgentHealth {
  node: string;
  healthy: boolean;
  readyAfterMs: number;
}

export interface AgentStart {
  node: string;
  startedAtMs: number;
  wasRunning: boolean;
}
export interface AgentListening {
  node: string;
  pid: number;
  etcdConnection: string;
  readyAfterMs: number;
}

/** Where the agent may be connected: its own [etcd].endpoints and the cluster's client URLs. */
function etcdUrlsOf(layout: AgentLayout, cluster: ClusterConfig): string[] {
  return [...new Set([...layout.etcdEndpoints, ...cluster.etcd.members.map((m) => m.clientUrl)])];
}

async function readIfThere(file: string): Promise<string | null> {
  return readFile(file, 'utf8').catch(() => null);
}

/** What the agent rendered, read from its files. */
async function renderedState(layout: AgentLayout): Promise<RenderedState> {
  let knotZones: RenderedState['knotZones'] = null;
  if (layout.dns) {
    const conf = await readIfThere(layout.dns.configPath);
    const zones = conf === null ? null : parseKnotConf(conf);
    knotZones =
      zones === null
        ? null
        : await Promise.all(
            zones.map(async (z) => {
              const text = await readIfThere(z.file);
              return { ...z, records: text === null ? null : parseZoneFileRecords(text) };
            }),
          );
  }
  let keaSubnets: RenderedState['keaSubnets'] = null;
  if (layout.dhcp) {
    const conf = await readIfThere(layout.dhcp.configPath);
    keaSubnets = conf === null ? null : parseKeaConf(conf);
  }
  return { knotZones, keaSubnets };
}

/** The keys the agent renders from, read from etcd. */
async function renderedKeys(cluster: ClusterConfig, prefix: string): Promise<Array<{ key: string; value: string }>> {
  const client = await connectCluster(cluster);
  try {
    const kvs: Array<{ key: string; value: string }> = [];
    for (const sub of ['dns/zones', 'dhcp/scopes']) {
      const key = Buffer.from(`${prefix}/${sub}`);
      const res = await client.kv.range({ key, range_end: prefixRangeEnd(key) });
      for (const kv of res.kvs ?? []) kvs.push({ key: kv.key.toString(), value: kv.value.toString() });
    }
    return kvs;
  } finally {
    client.close();
  }
}

export function createAgentServiceActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  async function describeAgent(input: { cluster: string }): Promise<AgentDescription> {
    const agent = agentOn(findCluster(config, input.cluster), node);
    const layout = await agentLayout(agent);
    return {
      node,
      agentToml: agent.agentToml,
      service: serviceDriver(agent.service).describe,
      prefix: layout.prefix,
      cachePath: layout.cachePath,
      dns: layout.dns,
      dhcp: layout.dhcp,
    };
  }

  async function checkAgent(input: { cluster: string }): Promise<AgentCheck> {
    const cluster = findCluster(config, input.cluster);
    const agent = agentOn(cluster, node);
    const layout = await agentLayout(agent);
    const service = serviceDriver(agent.service);
    const pid = await service.pid();
    const etcdUrls = etcdUrlsOf(layout, cluster);
    const etcdConnection = pid === null ? null : await establishedConnectionTo(pid, etcdUrls);
    const expected = expectedRendering(await renderedKeys(cluster, layout.prefix), layout.prefix);
    const differences = renderingDifferences(expected, await renderedState(layout), {
      dns: layout.dns !== null,
      dhcp: layout.dhcp !== null,
      zoneDir: layout.dns?.zoneDir,
    });
    const reason =
      pid === null
        ? `${service.describe} is not running`
        : etcdConnection === null
          ? `deaf: pid ${pid} runs but holds no connection to etcd (${etcdUrls.join(', ')}); its watches ended, it renders no change until restarted`
          : differences.length > 0
            ? `stale: ${differences.join('; ')}`
            : null;
    return {
      node,
      serving: reason === null,
      running: pid !== null,
      pid,
      etcdConnection,
      differences,
      zones: expected.zones.length,
      scopes: expected.scopes.length,
      reason,
    };
  }

  /** Stops (unless `startOnly`) and starts the agent; it writes empty configs as it starts. */
  async function restartAgent(input: { cluster: string; startOnly?: boolean }): Promise<AgentStart> {
    const service = serviceDriver(agentOn(findCluster(config, input.cluster), node).service);
    const wasRunning = input.startOnly ? await service.isRunning() : await service.stop();
    const startedAtMs = Date.now();
    await service.start();
    return { node, startedAtMs, wasRunning };
  }

  /**
   * Waits until the (re)started agent runs, holds an etcd connection and has rewritten its config
   * files since `sinceMs` (it does so just before it opens its watches), then a short grace for the
   * watches themselves: a put before a watch exists is never seen by it.
   */
  async function waitAgentListening(input: { cluster: string; sinceMs: number; timeoutSeconds?: number }): Promise<AgentListening> {
    const ctx = Context.current();
    const cluster = findCluster(config, input.cluster);
    const agent = agentOn(cluster, node);
    const layout = await agentLayout(agent);
    const service = serviceDriver(agent.service);
    const etcdUrls = etcdUrlsOf(layout, cluster);
    const files = [layout.dns?.configPath, layout.dhcp?.configPath].filter((f): f is string => f !== undefined);
    const deadline = Date.now() + (input.timeoutSeconds ?? 60) * 1000;
    let last = 'not started';
    for (;;) {
      const pid = await service.pid();
      const conn = pid === null ? null : await establishedConnectionTo(pid, etcdUrls);
      const rewritten = await Promise.all(
        files.map((f) =>
          stat(f).then(
            (s) => s.mtimeMs >= input.sinceMs - 1000,
            () => false,
          ),
        ),
      );
      if (pid !== null && conn !== null && rewritten.every(Boolean)) {
        await new Promise((done) => setTimeout(done, 1000));
        return { node, pid, etcdConnection: conn, readyAfterMs: Date.now() - input.sinceMs };
      }
      last =
        pid === null
          ? `${service.describe} not running`
          : conn === null
            ? `pid ${pid} has no etcd connection yet`
            : `pid ${pid} has not rewritten ${files.filter((_, i) => !rewritten[i]).join(', ')} yet`;
      if (Date.now() > deadline) {
        throw DomainError.retryable(
          `agent on ${node} not listening ${input.timeoutSeconds ?? 60} s after its start: ${last}`,
          FailureType.AgentUnhealthy,
        );
      }
      ctx.heartbeat({ waiting: last });
      await new Promise((done) => setTimeout(done, 250));
    }
  }

  /** Old runs' restart step: restart, then wait until listening. */
  async function restartAgentAndWait(input: { cluster: string; timeoutSeconds?: number }): Promise<AgentHealth> {
    const started = await restartAgent({ cluster: input.cluster });
    const ready = await waitAgentListening({ cluster: input.cluster, sinceMs: started.startedAtMs, timeoutSeconds: input.timeoutSeconds });
    return { node, healthy: true, readyAfterMs: ready.readyAfterMs };
  }

  async function startAgentAndWait(input: { cluster: string; timeoutSeconds?: number }): Promise<AgentHealth> {
    const started = await restartAgent({ cluster: input.cluster, startOnly: true });
    // An agent that was already running rewrote nothing now: only its connection is waited for.
    const sinceMs = started.wasRunning ? 0 : started.startedAtMs;
    const ready = await waitAgentListening({ cluster: input.cluster, sinceMs, timeoutSeconds: input.timeoutSeconds });
    return { node, healthy: true, readyAfterMs: ready.readyAfterMs };
  }

  return {
    describeAgent: describeAgent,
    checkAgent: checkAgent,
    restartAgent: restartAgent,
    waitAgentListening: waitAgentListening,
    restartAgentAndWait: restartAgentAndWait,
    startAgentAndWait: startAgentAndWait,
  };
}
