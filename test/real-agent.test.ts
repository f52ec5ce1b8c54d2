/**
 * The real NNOE agent (built from NNOE_SRC) under the world's supervisord, as ../shared/DESIGN.md
 * describes it: it renders only keys put after it started, goes deaf when etcd restarts, and serves
 * the restored config after `restore etcd` only because the restore restarts it and republishes.
 * Without the republish the agent check fails: the check can fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackupSet, startCheckAgents, startEtcdRestore, startRecoverAgents } from '../src/client/temporal';
import { supervisorctl } from '../src/sandbox/supervisor';
import { currentRevision, republishAgentKeys } from '../src/agent/republish';
import type { BackupSetResult } from '../src/workflows/backup-set';
import type { EtcdRestoreResult } from '../src/workflows/etcd-restore';
import { WorkflowFailedError } from '@temporalio/client';
import { CLUSTER, memberClient, openHarness, pollUntil, recordHistory, runCli, type Harness } from './support/harness';
import { AGENT_NODES } from './support/global-setup';
import { servedBy } from './support/agents';

let h: Harness;

beforeAll(async () => {
  h = await openHarness();
  // Earlier test files restart etcd members: bring every agent back before these tests judge them.
  await (await startRecoverAgents(h.client, h.config, { cluster: CLUSTER })).result();
});
afterAll(async () => {
  // Leave every agent serving for the files after this one.
  await (await startRecoverAgents(h.client, h.config, { cluster: CLUSTER })).result().catch(() => undefined);
  await h.close();
});

const servedByAll = () => Promise.all(AGENT_NODES.map((n) => servedBy(h.config, n)));
const zone = (domain: string, records: Array<{ name: string; type: string; value: string }>) =>
  JSON.stringify({ domain, ttl: 300, records });

async function put(entries: Record<string, string>): Promise<void> {
  const etcd = await memberClient(h.config, 'etcd-1');
  try {
    for (const [key, value] of Object.entries(entries)) await etcd.put(key).value(value);
  } finally {
    etcd.close();
  }
}

async function del(keys: string[]): Promise<void> {
  const etcd = await memberClient(h.config, 'etcd-1');
  try {
    for (const key of keys) await etcd.delete().key(key);
  } finally {
    etcd.close();
  }
}

describe('the real NNOE agent', () => {
  it('renders keys put after its start, and a restarted agent serves empty configs until they are put again', async () => {
    await put({ '/nnoe/dns/zones/fresh.test': zone('fresh.test', [{ name: 'a', type: 'A', value: '10.9.0.1' }]) });
    await pollUntil(
      async () => (await servedByAll()).every((v) => v.zones['fresh.test']?.includes('a A 10.9.0.1')),
      30_000,
      'both agents to render fresh.test',
    );

    await supervisorctl(h.world.supervisorConf, 'restart', 'nnoe-agent-node-2');
    await pollUntil(
      async () => Object.keys((await servedBy(h.config, 'node-2')).zones).length === 0 || undefined,
      30_000,
      'the restarted agent to write an empty knot.conf',
    );
    const checks = await (await startCheckAgents(h.client, h.config, { cluster: CLUSTER, nodes: ['node-2'] })).result();
    expect(checks[0]).toMatchObject({ node: 'node-2', serving: false, running: true });
    expect(checks[0]!.reason).toMatch(/^stale: zones in etcd not served: .*fresh\.test/);
    expect(checks[0]!.etcdConnection).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('is found deaf after an etcd restart, by the health activity and the CLI, and recovered by restart + republish', async () => {
    for (const m of h.world.etcd.members) await supervisorctl(h.world.supervisorConf, 'restart', m.program);
    await pollUntil(
      async () => {
        const checks = await (await startCheckAgents(h.client, h.config, { cluster: CLUSTER })).result();
        return checks.every((c) => c.running && c.etcdConnection === null) || undefined;
      },
      60_000,
      'both agents to lose their etcd connection for good',
    );
    // A write now is rendered by nobody: the agents are deaf.
    await put({ '/nnoe/dns/zones/unheard.test': zone('unheard.test', [{ name: 'x', type: 'A', value: '10.9.0.2' }]) });
    const cli = await runCli(h.configPath, 'agents', 'check');
    expect(cli.code).toBe(1);
    for (const node of AGENT_NODES)
      expect(cli.out).toMatch(new RegExp(`${node}\\s+DEAF[^\\n]*\\n\\s+deaf: pid \\d+ runs but holds no connection to etcd`));
    expect((await servedByAll()).some((v) => 'unheard.test' in v.zones)).toBe(false);

    const recovered = await runCli(h.configPath, 'agents', 'recover');
    expect(recovered.code, recovered.err).toBe(0);
    for (const node of AGENT_NODES) {
      expect(recovered.out).toMatch(new RegExp(`${node}\\s+serving`));
      expect((await servedBy(h.config, node)).zones['unheard.test']).toEqual(['x A 10.9.0.2']);
    }
    expect((await runCli(h.configPath, 'agents', 'check')).code).toBe(0);
  });

  it('after restore etcd, every agent serves the snapshot: changed records back, later zones gone; without the republish the check fails', async () => {
    await put({
      '/nnoe/dns/zones/example.com': zone('example.com', [{ name: 'www', type: 'A', value: '10.0.0.1' }]), // the world's critical key
      '/nnoe/dns/zones/keep.test': zone('keep.test', [{ name: 'www', type: 'A', value: '10.1.1.1' }]),
      '/nnoe/dns/zones/doomed.test': zone('doomed.test', [{ name: 'old', type: 'A', value: '10.1.1.2' }]),
      '/nnoe/dhcp/scopes/restore-scope': JSON.stringify({ subnet: '10.77.0.0/24', pool: { start: '10.77.0.10', end: '10.77.0.20' } }),
    });
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['etcd'], targets: ['local'] })
    ).result()) as BackupSetResult;
    // After the backup: a record changes, a zone and a scope go, a zone arrives. The agents render all of it.
    await put({
      '/nnoe/dns/zones/example.com': zone('example.com', [{ name: 'www', type: 'A', value: '10.0.0.1' }]), // the world's critical key
      '/nnoe/dns/zones/keep.test': zone('keep.test', [{ name: 'www', type: 'A', value: '10.2.2.2' }]),
      '/nnoe/dns/zones/later.test': zone('later.test', [{ name: 'new', type: 'A', value: '10.3.3.3' }]),
    });
    await del(['/nnoe/dns/zones/doomed.test', '/nnoe/dhcp/scopes/restore-scope']);
    await pollUntil(
      async () => (await servedByAll()).every((v) => v.zones['later.test'] && v.zones['keep.test']?.includes('www A 10.2.2.2')),
      30_000,
      'the agents to render the changes',
    );

    const restore = await runCli(h.configPath, 'restore', 'etcd', '--cluster', CLUSTER, '--set', set.setId, '--yes');
    expect(restore.code, restore.err).toBe(0);
    expect(restore.out).toMatch(/ok {3}restart agents: node-1 serving \(.*\), node-2 serving \(/);
    const etcd = await memberClient(h.config, 'etcd-1');
    const zones = (await etcd.getAll().prefix('/nnoe/dns/zones/').keys()).map((k) => k.split('/').pop()!);
    etcd.close();
    for (const node of AGENT_NODES) {
      const now = await servedBy(h.config, node);
      expect(now.zones['keep.test']).toEqual(['www A 10.1.1.1']);
      expect(now.zones['doomed.test']).toEqual(['old A 10.1.1.2']);
      expect(now.zones['later.test']).toBeUndefined();
      expect(Object.keys(now.zones).sort()).toEqual(zones.sort());
      expect(now.subnets).toContain('10.77.0.0/24');
    }

    // The same restore with the republish switched off: the agents restart into empty configs and the check says so.
    const handle = await startEtcdRestore(h.client, h.config, {
      cluster: CLUSTER,
      setId: set.setId,
      approved: true,
      republishAgents: false,
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause!;
    expect(cause.message).toMatch(
      /^etcd was restored from .* and verified, but agent on node-1: stale: zones in etcd not served: .*keep\.test/,
    );
    expect((cause as { type?: string }).type).toBe('AgentsNotServing');
    await recordHistory(handle, 'etcd-restore-agents-not-serving');
    const ok = (await (
      await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: set.setId, approved: true })
    ).result()) as EtcdRestoreResult;
    expect(ok.agents?.map((a) => [a.node, a.check.serving])).toEqual(AGENT_NODES.map((n) => [n, true]));
    for (const agent of ok.agents!) {
      expect(agent.republish!.prefixes.find((p) => p.prefix === '/nnoe/dns/zones')!.put).toBe(zones.length);
      expect(agent.emptyForMs).toBeGreaterThan(0);
    }
  });

  it('republishes each key once across a crash, lets a write made meanwhile win, and keeps leases', async () => {
    const etcd = await memberClient(h.config, 'etcd-1');
    try {
      await etcd.delete().prefix('/nnoe/policies/rp-');
      for (let i = 0; i < 250; i++) await etcd.put(`/nnoe/policies/rp-${String(i).padStart(3, '0')}`).value(`v${i}`);
      const lease = etcd.lease(600, { autoKeepAlive: false });
      await lease.put('/nnoe/threats/leased').value('bound');
      const leaseId = await lease.grant();
      const events = new Map<string, string[]>();
      const start = await currentRevision(etcd);
      const watcher = await etcd
        .watch()
        .prefix('/nnoe/')
        .startRevision(String(start + 1))
        .create();
      watcher.on('put', (kv) => events.set(kv.key.toString(), [...(events.get(kv.key.toString()) ?? []), kv.value.toString()]));

      const notAfterRevision = await currentRevision(etcd);
      // The first attempt dies after its first batch of /nnoe/policies (a worker crash mid-republish).
      const crash = republishAgentKeys(etcd, {
        rootPrefix: '/nnoe',
        notAfterRevision,
        dryRun: false,
        onProgress: (done) => {
          if (done.prefix === '/nnoe/policies' && done.put >= 100) throw new Error('worker killed');
        },
      });
      await expect(crash).rejects.toThrow('worker killed');
      // Meanwhile someone writes a key the crashed attempt had not reached.
      await etcd.put('/nnoe/policies/rp-200').value('written meanwhile');
      const retry = await republishAgentKeys(etcd, { rootPrefix: '/nnoe', notAfterRevision, dryRun: false });
      const policies = retry.prefixes.find((p) => p.prefix === '/nnoe/policies')!;
      expect(policies.put + policies.skippedNewer).toBe(policies.keys);

      await pollUntil(async () => events.get('/nnoe/policies/rp-249')?.length === 1 || undefined, 10_000, 'the last put to arrive');
      for (let i = 0; i < 250; i++) {
        const key = `/nnoe/policies/rp-${String(i).padStart(3, '0')}`;
        expect(events.get(key), key).toEqual(i === 200 ? ['written meanwhile'] : [`v${i}`]); // exactly one put each
      }
      expect(await etcd.get('/nnoe/policies/rp-200').string()).toBe('written meanwhile');
      const leased = await etcd.kv.range({ key: Buffer.from('/nnoe/threats/leased') });
      expect(String(leased.kvs[0]!.lease)).toBe(String(leaseId));
      expect(events.get('/nnoe/threats/leased')).toEqual(['bound']);
      await watcher.cancel();
      await lease.revoke();
    } finally {
      await etcd.delete().prefix('/nnoe/policies/rp-');
      etcd.close();
    }
  });
});
