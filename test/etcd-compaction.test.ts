/**
 * A routine compaction at the head (`etcdctl compact <head>` + defrag) leaves the newest key far
 * below the cluster's revision. A backup taken then records the revision a restored cluster
 * reports (the compaction point), a drill of it passes, a restore of it verifies without anyone
 * writing a key, and so does a rollback onto a cluster that sits at its compaction point.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { startEtcdBackup, startEtcdRestore } from '../src/client/temporal';
import { readKeyspace } from '../src/etcd/scratch';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import type { EtcdRestoreResult } from '../src/workflows/etcd-restore';
import { restorePlanQuery } from '../src/workflows/etcd-restore';
import { progressQuery } from '../src/workflows/progress';
import type { DrillReport } from '../src/workflows/drill';
import { CLUSTER, etcdComponent, memberClient, openHarness, pollUntil, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  armFailpoints({});
  await h.close();
});

const failpointsFile = () => join(inject('world').worldDir, 'failpoints.json');
function armFailpoints(points: Record<string, 'error' | 'pause'>): void {
  writeFileSync(failpointsFile(), JSON.stringify(points));
}

const withoutAgentHealth = (keys: Map<string, string>) => new Map([...keys].filter(([key]) => !key.startsWith('/nnoe/agents/health/')));

async function keyspace(): Promise<Map<string, string>> {
  const client = await memberClient(h.config, 'etcd-1');
  try {
    return withoutAgentHealth(await readKeyspace(client));
  } finally {
    client.close();
  }
}

/** Writes, then churns one key and deletes it, then compacts at the head and defragments every member: the newest key is far below the head. */
async function compactAtHead(tag: string): Promise<{ head: number; newestKey: number }> {
  const client = await memberClient(h.config, 'etcd-1');
  try {
    await client.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ domain: 'example.com', tag })); // a critical key of the config
    const newestKey = Number((await client.put(`/compaction-test/${tag}`).value('kept').exec()).header.revision);
    for (let i = 0; i < 40; i++) await client.put(`/compaction-test/${tag}-churn`).value(String(i));
    await client.delete().key(`/compaction-test/${tag}-churn`);
    const head = Number((await client.maintenance.status()).header.revision);
    await client.kv.compact({ revision: String(head), physical: true });
    for (const member of ['etcd-1', 'etcd-2', 'etcd-3']) {
      const m = await memberClient(h.config, member);
      try {
        await m.maintenance.defragment();
      } finally {
        m.close();
      }
    }
    return { head, newestKey };
  } finally {
    client.close();
  }
}

describe('backups and restores after a compaction at the head', () => {
  it('records the compaction revision, drills and restores the set without waiting for a write', async () => {
    await compactAtHead('backup');
    const client = await memberClient(h.config, 'etcd-1');
    const head = Number((await client.maintenance.status()).header.revision);
    client.close();
    const backup = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })
    ).result()) as EtcdBackupResult;
    const facts = etcdComponent(backup.manifest).facts;
    // Agents may write between our read and the snapshot: the recorded revision is the head at the snapshot, never the newest key's.
    expect(facts.revision).toBeGreaterThanOrEqual(head);
    expect(facts.compactRevision).toBeGreaterThanOrEqual(head);
    // On 3.4 the newest key lies below the head (what broke restores); a cluster restored with a revision bump may keep an entry at it.
    expect(facts.keyRevision).toBeLessThanOrEqual(head);
    if (h.world.etcd.version === '3.4') expect(facts.keyRevision).toBeLessThan(head);
    const expected = await keyspace();

    const drill = (await (
      await h.client.workflow.start('restoreDrillWorkflow', {
        taskQueue: h.config.temporal.taskQueue,
        workflowId: `compaction-drill-${Date.now()}`,
        args: [{ cluster: CLUSTER, setId: backup.setId }],
      })
    ).result()) as DrillReport;
    expect(drill.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([]);

    // A short verify bound: before the fix, hashKV at the restored revision (the compaction point) failed until something wrote a key.
    const restored = (await (
      await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: backup.setId, approved: true, verifyTimeout: '30s' })
    ).result()) as EtcdRestoreResult;
    expect(restored.check?.healthy).toBe(true);
    // The restored cluster starts at the snapshot's revision, plus the revision bump where the tool applies one (3.5.10+).
    expect(restored.check?.revision).toBe(facts.revision + (restored.revisionBump?.by ?? 0));
    expect(await keyspace()).toEqual(withoutAgentHealth(expected));
  });

  it('a rollback onto members at their compaction point verifies without waiting for a write', async () => {
    const backup = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })
    ).result()) as EtcdBackupResult;
    await compactAtHead('rollback');
    const live = await keyspace();

    armFailpoints({ 'before-repoint:etcd-3': 'pause' });
    const handle = await startEtcdRestore(h.client, h.config, {
      cluster: CLUSTER,
      setId: backup.setId,
      approved: true,
      verifyTimeout: '15s',
    });
    try {
      // etcd-3's restored bbolt file is corrupted while its repoint is held: the restore fails after the stop and rolls back.
      const dir = await pollUntil(
        async () => {
          const p = await handle.query(progressQuery);
          const d = (await handle.query(restorePlanQuery)).staged.find((s) => s.member === 'etcd-3')?.restoredDataDir;
          return (
            p.steps.find((s) => s.name === 'repoint members')?.state === 'running' && d && existsSync(join(d, 'member', 'snap', 'db')) && d
          );
        },
        60_000,
        'the restore at the repoint step',
      );
      writeFileSync(join(dir, 'member', 'snap', 'db'), 'not a bbolt database');
    } finally {
      armFailpoints({});
    }
    const started = Date.now();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toMatch(/rolled back to the old data dirs/);
    // The old members come back at the compaction point; their check passes within its first rounds, not after a write.
    expect(Date.now() - started).toBeLessThan(100_000);
    expect((await handle.query(progressQuery)).steps.find((s) => s.name === 'rollback')?.state).toBe('done');
    expect(await keyspace()).toEqual(live);
  }, 240_000);
});
