/**
 * Retention on a synthetic 60-day catalog in the real stores (local + moto S3): the dry run lists
 * and deletes nothing; the real prune deletes expired sets from both targets, keeps the set a
 * running restore uses, and aborts a stale multipart upload.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import { startPrune } from '../src/client/temporal';
import { listBackupSets } from '../src/catalog/catalog';
import { openStore, s3ClientFor, artefactKey, MANIFEST_FILE } from '../src/storage';
import { MANIFEST_FORMAT_VERSION, utcStamp, type BackupManifest } from '../src/common/manifest';
import { NnoeBackupSet, NnoeRunbook } from '../src/common/search-attributes';
import type { S3TargetConfig } from '../src/config/schema';
import type { PruneResult } from '../src/workflows/prune';
import { openHarness, runCli, type Harness } from './support/harness';

const CLUSTER = 'nnoe-synthetic';
const TARGETS = ['local', 's3'];
const HOUR = 3600_000;
let h: Harness;
let setIds: string[];

async function writeSyntheticSet(setId: string, createdAt: Date, status: 'complete' | 'partial'): Promise<void> {
  const manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION, tool: 'nnoe-dr', setId, cluster: CLUSTER, status,
    createdAt: createdAt.toISOString(), completedAt: createdAt.toISOString(),
    workflow: { workflowId: `synthetic-${setId}`, runId: 'synthetic' }, components: [],
    failures: status === 'partial' ? [{ component: 'phpipam', reason: 'synthetic failure' }] : [],
  } as BackupManifest;
  for (const target of h.config.storage.filter((t) => TARGETS.includes(t.name))) {
    const store = await openStore(target);
    for (const [file, body] of [['etcd-snapshot.db.gz', 'synthetic artefact'], [MANIFEST_FILE, JSON.stringify(manifest)]] as const) {
      const writer = await store.createWriter(artefactKey(setId, file));
      writer.stream.end(Buffer.from(body));
      await writer.commit();
    }
  }
}

const syntheticIds = async () => (await listBackupSets(h.config, { targets: TARGETS, cluster: CLUSTER })).map((s) => s.setId);

beforeAll(async () => {
  h = await openHarness();
  // One set every 6 hours for 60 days, the newest an hour old; every 10th one partial.
  const newest = Date.now() - HOUR;
  setIds = [];
  for (let i = 0; i < 240; i++) {
    const createdAt = new Date(newest - i * 6 * HOUR);
    const setId = `${CLUSTER}-${utcStamp(createdAt)}`;
    setIds.push(setId);
    await writeSyntheticSet(setId, createdAt, i % 10 === 5 ? 'partial' : 'complete');
  }
});
afterAll(async () => { await h.close(); });

describe('prune by retention', () => {
  it('dry run: lists what would go by the production profile (keep 7 days) and deletes nothing', async () => {
    const run = await runCli(h.configPath, '--json', 'backups', 'prune', '--cluster', CLUSTER, '--target', ...TARGETS, '--dry-run');
    expect(run.err).toBe('');
    const result = JSON.parse(run.out) as PruneResult;
    expect(result.dryRun).toBe(true);
    // Ages 1 h, 7 h, ..., 163 h are inside 7 days: the 28 newest stay.
    expect(result.keep.map((k) => k.setId)).toEqual(setIds.slice(0, 28));
    expect(result.expire.map((e) => e.setId)).toEqual(setIds.slice(28));
    expect(result.deletedKeys).toBe(212 * 2 * 2);
    expect(await syntheticIds()).toHaveLength(240);
  });

  it('deletes expired sets from both targets, keeps the set a running restore uses, aborts stale uploads', async () => {
    const inUse = setIds[100]!;
    const restore = await h.client.workflow.start('etcdRestoreWorkflow', {
      taskQueue: 'nnoe-dr-test-no-worker', workflowId: `synthetic-restore-${inUse}`, args: [],
      typedSearchAttributes: [{ key: NnoeRunbook, value: 'etcd-restore' }, { key: NnoeBackupSet, value: inUse }],
    });
    const s3Target = h.config.storage.find((t) => t.name === 's3') as S3TargetConfig;
    const upload = await (await s3ClientFor(s3Target)).send(new CreateMultipartUploadCommand({ Bucket: s3Target.bucket, Key: 'crashed-backup/etcd-snapshot.db.gz' }));
    try {
      const handle = await startPrune(h.client, h.config, { cluster: CLUSTER, targets: TARGETS });
      const result = await handle.result() as PruneResult;
      expect(result.protectedSetIds).toContain(inUse);
      expect(result.keep.find((k) => k.setId === inUse)?.reasons.join(' ')).toMatch(/restore|protected/i);
      expect(result.expire).toHaveLength(211);
      expect(result.abortedUploads).toContainEqual(expect.objectContaining({ target: 's3', key: 'crashed-backup/etcd-snapshot.db.gz' }));
      expect(upload.UploadId).toBeTruthy();

      expect((await syntheticIds()).sort()).toEqual([...setIds.slice(0, 28), inUse].sort());
      for (const target of h.config.storage.filter((t) => TARGETS.includes(t.name))) {
        const keys = await (await openStore(target)).list(`${setIds[200]}/`);
        expect(keys, `${target.name} still holds an expired set`).toEqual([]);
      }
    } finally {
      await restore.terminate('test finished');
    }
  });
});
