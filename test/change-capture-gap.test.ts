/**
 * A capture that starts after etcd compacted the revisions it needed: the gap is recorded in the
 * store, a fresh snapshot is taken, and capture goes on after that snapshot. And a stop that lands
 * in the middle of a long slice ends it early, with what it captured counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSegmentsPrefix } from '../src/capture/segments';
import { startEtcdBackup, changeCaptureId } from '../src/client/temporal';
import { openStore } from '../src/storage';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import { captureStatusQuery, stopCaptureSignal, type CaptureStatus } from '../src/workflows/change-capture';
import { CLUSTER, etcdComponent, memberClient, openHarness, pollUntil, recordHistory, runCli, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

describe('change capture across a compaction gap', () => {
  it('records the gap, takes a fresh snapshot, and captures after it', async () => {
    const base = (await (await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })).result()) as EtcdBackupResult;
    const baseRevision = etcdComponent(base.manifest).facts.revision;
    const etcd = await memberClient(h.config, 'etcd-1');
    for (let i = 0; i < 5; i++) await etcd.put(`/gap-test/key-${i}`).value(String(i));
    const compactedTo = Number((await etcd.get('/gap-test/key-4').exec()).header.revision);
    await etcd.kv.compact({ revision: String(compactedTo), physical: true });

    const handle = await h.client.workflow.start('changeCaptureWorkflow', {
      taskQueue: h.config.temporal.taskQueue,
      workflowId: `${changeCaptureId(CLUSTER)}-gap-test-${Date.now()}`,
      // Two slices per run: the capture continues-as-new during the test and must carry on.
      args: [{ cluster: CLUSTER, fromRevision: baseRevision + 1, flushMs: 200, sliceMinutes: 0.1, slicesPerRun: 2, targets: ['local'] }],
    });
    const status = await pollUntil(
      async () => {
        const s = await handle.query(captureStatusQuery);
        return s.gaps.length > 0 && (s.lastDurable ?? 0) >= compactedTo && s;
      },
      120_000,
      'the capture past the gap',
    );
    expect(status.gaps[0]).toMatchObject({ from: baseRevision + 1 });
    expect(status.gaps[0]!.to).toBeGreaterThanOrEqual(compactedTo);

    // The gap is on record beside the segments, and the fresh snapshot is a complete set.
    const store = await openStore(h.config.storage.find((t) => t.name === 'local')!);
    const gapMarkers = (await store.list(clusterSegmentsPrefix(CLUSTER))).filter((k) => /\/gap-0*\d+-0*\d+\.json$/.test(k));
    expect(gapMarkers.length).toBeGreaterThanOrEqual(1);
    const snapshot = (await h.client.workflow.getHandle(status.gaps[0]!.snapshotWorkflowId).result()) as { manifest: { status: string } };
    expect(snapshot.manifest.status).toBe('complete');

    // Changes after the fresh snapshot are captured.
    const after = Number((await etcd.put('/gap-test/after').value('captured').exec()).header.revision);
    etcd.close();
    await pollUntil(
      async () => ((await handle.query(captureStatusQuery)).lastDurable ?? 0) >= after,
      60_000,
      'the write after the gap captured',
    );
    await handle.signal(stopCaptureSignal);
    const final = (await handle.result()) as CaptureStatus;
    expect(final.gaps).toHaveLength(1); // carried across continue-as-new
    expect(final.runs).toBeGreaterThan(1);
    expect(final.lastDurable).toBeGreaterThanOrEqual(after);
  }, 300_000);

  it('a stop cancels the running slice: the capture ends long before the slice would, its events counted', async () => {
    const etcd = await memberClient(h.config, 'etcd-1');
    const from = Number((await etcd.put('/stop-test/before').value('x').exec()).header.revision) + 1;
    const handle = await h.client.workflow.start('changeCaptureWorkflow', {
      // The cluster's own capture id: the CLI's `capture status|stop` address it.
      taskQueue: h.config.temporal.taskQueue,
      workflowId: changeCaptureId(CLUSTER),
      // One 30-minute slice: without the cancel, the stop would wait for its end (this test's timeout is 2 minutes).
      args: [{ cluster: CLUSTER, fromRevision: from, flushMs: 200, sliceMinutes: 30, targets: ['local'] }],
    });
    let last = 0;
    for (let i = 0; i < 5; i++) last = Number((await etcd.put(`/stop-test/key-${i}`).value(String(i)).exec()).header.revision);
    etcd.close();
    // The segments are durable within the flush bound; the status only learns of them when the slice returns.
    const store = await openStore(h.config.storage.find((t) => t.name === 'local')!);
    const endsAtLast = (key: string) => Number(/\/\d+-(\d+)-\d+-\d+\.jsonl/.exec(key)?.[1]) === last;
    await pollUntil(async () => (await store.list(clusterSegmentsPrefix(CLUSTER))).some(endsAtLast), 30_000, 'the five writes durable');
    // `capture status` mid-slice: the running slice's heartbeat (sent at most every 3 s) says how far it is.
    await pollUntil(
      async () => JSON.parse((await runCli(h.configPath, '--json', 'capture', 'status')).out).lastDurable >= last,
      60_000,
      'capture status to show the last write',
    );
    const stopped = await runCli(h.configPath, 'capture', 'stop');
    expect(stopped.code).toBe(0);
    const final = (await handle.result()) as CaptureStatus;
    expect(stopped.out).toBe(
      `capture stopped: durable up to revision ${final.lastDurable} (${final.segments} segments, ${final.events} events)`,
    );
    expect(final.stopping).toBe(true);
    // The cancelled slice still reported what it made durable (other writers may have added revisions).
    expect(final.lastDurable).toBeGreaterThanOrEqual(last);
    expect(final.events).toBeGreaterThanOrEqual(last - from + 1);
    await recordHistory(handle, 'change-capture-stopped-mid-slice');
  }, 120_000);
});
