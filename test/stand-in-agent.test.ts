/**
 * The stand-in agent under the world's supervisord, as the real agent runs under systemd: it
 * rebuilds its cache from etcd, follows puts and deletes, and serves /health and /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheFileName } from '../src/sandbox/stand-in-agent';
import { supervisorctl } from '../src/sandbox/supervisor';
import { findCluster } from '../src/config/load';
import type { AgentConfig } from '../src/config/schema';
import { CLUSTER, memberClient, openHarness, pollUntil, type Harness } from './support/harness';

let h: Harness;
let agent: AgentConfig;
let program: string;

beforeAll(async () => {
  h = await openHarness();
  // The global setup runs a stand-in agent on node-1 and node-2 under the world's supervisord.
  agent = findCluster(h.config, CLUSTER).agents.find((a) => a.node === 'node-1')!;
  program = (agent.service as { program: string }).program;
  // Earlier test files stop etcd members and this agent on purpose; start from a fresh agent, as
  // operators restart agents after etcd maintenance so they rebuild their cache.
  await supervisorctl(h.world.supervisorConf, 'restart', program);
  await pollUntil(async () => (await get('/health')).status === 200, 60_000, 'the restarted agent to report healthy');
  const etcd = await memberClient(h.config, 'etcd-1');
  await etcd.put('/nnoe/dns/zones/agent-test.example').value('{"domain":"agent-test.example"}');
  await etcd.put('/nnoe/dhcp/leases/lease-1').value('{"ip":"10.10.0.101"}');
  etcd.close();
});

afterAll(async () => {
  // Later tests back up this agent's cache: leave it running.
  await supervisorctl(h.world.supervisorConf, 'start', program).catch(() => undefined);
  await pollUntil(async () => (await get('/health')).status === 200, 60_000, 'the agent to be healthy again');
  await h.close();
});

const get = async (path: string) => {
  const res = await fetch(new URL(path, agent.healthUrl));
  return { status: res.status, body: await res.text() };
};

describe('stand-in agent', () => {
  it('rebuilds its cache from etcd and reports healthy', async () => {
    await pollUntil(async () => (await get('/health')).status === 200, 60_000, 'the agent to report healthy');
    const etcd = await memberClient(h.config, 'etcd-1');
    try {
      const watched = (await etcd.getAll().prefix('/nnoe/').keys())
        .filter((k) => /^\/nnoe\/(dns\/zones|dhcp\/scopes|dhcp\/leases|policies|threats|role-mappings)\//.test(k));
      expect(readdirSync(join(agent.cacheDir, 'entries')).sort()).toEqual(watched.map(cacheFileName).sort());
      expect(await etcd.get('/nnoe/agents/health/node-1').string()).toContain('"node":"node-1"');
    } finally {
      etcd.close();
    }
    const metrics = (await get('/metrics')).body;
    expect(metrics).toMatch(/^nnoe_agent_etcd_connected\{node="node-1"\} 1$/m);
    expect(metrics).toMatch(/^nnoe_agent_cache_size_entries\{node="node-1"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^nnoe_dhcp_leases_active\{node="node-1"\} [1-9]\d*$/m);
  });

  it('follows puts and deletes, and goes away when its service stops', async () => {
    const etcd = await memberClient(h.config, 'etcd-2');
    const file = join(agent.cacheDir, 'entries', cacheFileName('/nnoe/policies/agent-test'));
    try {
      await etcd.put('/nnoe/policies/agent-test').value('{"action":"deny"}');
      await pollUntil(async () => existsSync(file), 30_000, 'the put to reach the cache');
      await etcd.delete().key('/nnoe/policies/agent-test');
      await pollUntil(async () => !existsSync(file), 30_000, 'the delete to reach the cache');
    } finally {
      etcd.close();
    }
    await supervisorctl(h.world.supervisorConf, 'stop', program);
    await expect(get('/health')).rejects.toThrow();
  });
});
