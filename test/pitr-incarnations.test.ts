/**
 * Restores make new incarnations (etcd cluster IDs): a change capture running across a PITR is
 * stopped by the restore (the cluster's own capture) or ends itself on the new cluster ID (any
 * other), never filing the new cluster's events under the old chain; PITR then plans only within
 * one incarnation, and `capture status|stop` tell a stopped capture from a running one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { changeCaptureId, startEtcdBackup } from '../src/client/temporal';
import { clusterSegmentsPrefix, parseSegmentKey } from '../src/capture/segments';
import { openStore } from '../src/storage';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import type { CaptureStatus } from '../src/workflows/change-capture';
import type { PointInTimeResult } from '../src/workflows/pitr';
import { progressQuery, rootMessage } from '../src/workflows/progress';
import { CLUSTER, etcdComponent, memberClient, openHarness, pollUntil, runCli, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

async function write(prefix: string, n: number): Promise<number> {
  const client = await memberClient(h.config, 'etcd-1');
  try {
    let rev = 0;
    for (let i = 0; i < n; i++)
      rev = Number((await client.put(`/incarnation-test/${prefix}/${i}`).value(String(i)).exec()).header.revision);
    return rev;
  } finally {
    client.close();
  }
}

async function liveClusterId(): Promise<string> {
  const client = await memberClient(h.config, 'etcd-1');
  try {
    return String((await client.maintenance.status()).header.cluster_id);
  } finally {
    client.close();
  }
}

/** Every segment of the cluster in a target, by cluster ID. */
async function segmentsIn(target: string): Promise<Array<{ clusterId: string; from: number; to: number }>> {
  const store = await openStore(h.config.storage.find((t) => t.name === target)!);
  return (await store.list(clusterSegmentsPrefix(CLUSTER))).flatMap((key) => {
    const clusterId = key.slice(clusterSegmentsPrefix(CLUSTER).length).split('/')[0]!;
    const s = parseSegmentKey(CLUSTER, clusterId, key);
    return s ? [{ clusterId, from: s.from, to: s.to }] : [];
  });
}

describe('change capture and PITR across incarnations', () => {
  it('a PITR stops the capture, another capture ends itself on the new cluster ID, and nothing is filed under the old one', async () => {
    const oldId = await liveClusterId();
    const seed = await memberClient(h.config, 'etcd-1');
    await seed.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ domain: 'example.com', ttl: 3600 })); // a critical key of the config
    seed.close();
    const base = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] })
    ).result()) as EtcdBackupResult;
    const from = etcdComponent(base.manifest).facts.revision + 1;
    const capture = (workflowId: string, target: string) =>
      h.client.workflow.start('changeCaptureWorkflow', {
        taskQueue: h.config.temporal.taskQueue,
        workflowId,
        args: [{ cluster: CLUSTER, fromRevision: from, flushMs: 200, sliceMinutes: 0.25, targets: [target] }],
      });
    // The cluster's own capture (the one `capture start` runs), and one the restore does not know of.
    const own = await capture(changeCaptureId(CLUSTER), 'local');
    const other = await capture(`unmanaged-capture-${Date.now()}`, 's3');
    const r1 = await write('before', 5);
    await new Promise((r) => setTimeout(r, 1500));
    const at = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1500));
    const head = await write('before-2', 5);
    await pollUntil(
      async () => (await runCli(h.configPath, '--json', 'capture', 'status').then((r) => JSON.parse(r.out).lastDurable as number)) >= head,
      60_000,
      'the capture durable up to the head',
    );

    const pitrId = `pitr-incarnation-${Date.now()}`;
    const pitr = await h.client.workflow.start('pointInTimeRestoreWorkflow', {
      taskQueue: h.config.temporal.taskQueue,
      workflowId: pitrId,
      args: [{ cluster: CLUSTER, targetTime: at, approved: true }],
    });
    const result = (await pitr.result()) as PointInTimeResult;
    expect(result.plan).toMatchObject({ setId: base.setId, clusterId: oldId, liveClusterId: oldId, targetRevision: r1 });
    const newId = await liveClusterId();
    expect(newId).not.toBe(oldId);
    expect(result.check.clusterId).toBe(newId);

    // The restore stopped the cluster's capture before it stopped etcd, and said so.
    const stopStep = (await h.client.workflow.getHandle(`${pitrId}/etcd-restore`).query(progressQuery)).steps.find(
      (s) => s.name === 'stop etcd',
    );
    expect(stopStep?.detail).toMatch(new RegExp(`change capture stopped \\(incarnation ${oldId} durable up to revision \\d+\\)`));
    const stopped = (await own.result()) as CaptureStatus;
    expect(stopped.stopping).toBe(true);
    // The other capture ends itself, non-retryably, naming both incarnations.
    const err = await other.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(rootMessage(err as Error)).toMatch(new RegExp(`answers as incarnation ${newId}, not ${oldId}`));

    // Writes on the restored cluster are in no chain: not under the old ID (the bug), not under the new one (no snapshot of it yet).
    await write('after', 10);
    await new Promise((r) => setTimeout(r, 2000));
    for (const target of ['local', 's3']) {
      const segments = await segmentsIn(target);
      expect(segments.filter((s) => s.clusterId === newId)).toEqual([]);
      expect(Math.max(...segments.filter((s) => s.clusterId === oldId).map((s) => s.to))).toBeLessThanOrEqual(head + 5); // agents may add a few revisions before the stop
    }

    // capture status and stop after the stop: said as it is, and a second stop is no failure.
    const status = await runCli(h.configPath, 'capture', 'status');
    expect(status.out).toMatch(new RegExp(`^capture stopped at .*: incarnation ${oldId} durable up to revision \\d+`));
    const again = await runCli(h.configPath, 'capture', 'stop');
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/^capture already stopped at .*: nothing to stop$/);

    // PITR by revision works in the live incarnation only: it has no snapshot yet, and the old one's (higher revisions) are not taken.
    const refused = await runCli(h.configPath, 'restore', 'pitr', '--cluster', CLUSTER, '--revision', String(head), '--yes');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(
      new RegExp(
        `no complete snapshot of ${CLUSTER} incarnation ${newId} at or before revision ${head}; snapshots of other incarnations \\(.*${oldId}.*\\) cannot start it`,
      ),
    );
    // A time after the newest captured change of the old incarnation is refused, naming its newest point.
    const late = await runCli(
      h.configPath,
      'restore',
      'pitr',
      '--cluster',
      CLUSTER,
      '--time',
      new Date().toISOString(),
      '--incarnation',
      oldId,
      '--yes',
    );
    expect(late.code).toBe(1);
    expect(late.err).toMatch(/captured changes reach revision \d+ \(captured .*\); that is the newest point/);
  }, 300_000);
});
