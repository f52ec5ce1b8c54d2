/**
 * Retention on a synthetic 60-day catalog in the real stores (local + moto S3): the dry run lists
 * and deletes nothing; the real prune deletes expired sets from both targets, keeps the set a
 * running restore uses, aborts a stale multipart upload, and deletes exactly the change-capture
 * segments no kept set can replay.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand, DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { startPrune } from '../src/client/temporal';
import { listBackupSets } from '../src/catalog/catalog';
import { openStore, s3ClientFor, artefactKey, MANIFEST_FILE } from '../src/storage';
import { MANIFEST_FORMAT_VERSION, utcStamp, type BackupManifest } from '../src/common/manifest';
import { clusterSegmentsPrefix, gapKey, segmentKey } from '../src/capture/segments';
import { NnoeBackupSet, NnoeRunbook } from '../src/common/search-attributes';
import type { S3TargetConfig, StorageTargetConfig } from '../src/config/schema';
import { mkdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PruneResult } from '../src/workflows/prune';
import { openHarness, recordHistory, runCli, type Harness } from './support/harness';
import { writeObject } from './support/objects';
import { VARIANTS } from './support/shared';

const CLUSTER: string = VARIANTS.syntheticCluster; // in the config (the CLI refuses unknown clusters); its sets are written by hand
const TARGETS = ['local', 's3'];
const HOUR = 3600_000;
let h: Harness;
let setIds: string[];

/** etcd cluster IDs: the one every synthetic snapshot records, an earlier incarnation, one with no snapshot yet. */
const LIVE_ID = '7300000000000000001';
const OLD_ID = '7300000000000000002';
const FRESH_ID = '7300000000000000003';
/** Set i (0 = newest) holds a snapshot at this revision: the newest at 10000, 10 revisions per set. */
const revisionOf = (i: number) => 10_000 - i * 10;

async function writeSyntheticSet(setId: string, createdAt: Date, status: 'complete' | 'partial', revision: number): Promise<void> {
  const etcd = {
    component: 'etcd',
    status: 'ok',
    artefacts: [],
    facts: { clusterId: LIVE_ID, revision },
    startedAt: createdAt.toISOString(),
    finishedAt: createdAt.toISOString(),
  };
  const manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    tool: 'nnoe-dr',
    setId,
    cluster: CLUSTER,
    status,
    createdAt: createdAt.toISOString(),
    completedAt: createdAt.toISOString(),
    workflow: { workflowId: `synthetic-${setId}`, runId: 'synthetic' },
    components: [etcd],
    failures: status === 'partial' ? [{ component: 'phpipam', reason: 'synthetic failure' }] : [],
  } as unknown as BackupManifest;
  for (const target of h.config.storage.filter((t) => TARGETS.includes(t.name))) {
    const store = await openStore(target);
    for (const [file, body] of [
      ['etcd-snapshot.db.gz', 'synthetic artefact'],
      [MANIFEST_FILE, JSON.stringify(manifest)],
    ] as const) {
      await writeObject(store, artefactKey(setId, file), Buffer.from(body));
    }
  }
}

/**
 * Change-capture objects in both targets, each SEGMENT_BYTES long. The dry run keeps the 28 newest
 * sets (oldest kept snapshot: revision 9730, created ~163 h ago); the real prune also keeps the set
 * a restore uses (setIds[100]: revision 9000, ~601 h ago).
 */
const SEGMENT_BYTES = 50;
const segmentAt = (clusterId: string, from: number, to: number, hoursAgo: number, cluster = CLUSTER) => {
  const lastMs = Date.now() - hoursAgo * HOUR;
  return segmentKey(cluster, clusterId, { from, to, firstMs: lastMs - 60_000, lastMs }, '.age');
};
const SEGMENTS = {
  /** Before both oldest kept snapshots: deleted by both runs. */
  goneInBoth: [
    segmentAt(LIVE_ID, 8000, 8999, 700),
    gapKey(CLUSTER, LIVE_ID, 100, 200),
    // An earlier incarnation captured long before the oldest kept set, and the gap before it.
    gapKey(CLUSTER, OLD_ID, 10, 20),
    segmentAt(OLD_ID, 21, 5000, 50 * 24),
  ],
  /** After revision 9000 but at or before 9730: the dry run would delete them, the restore's set keeps them. */
  neededByTheRestore: [segmentAt(LIVE_ID, 8990, 9010, 600), segmentAt(LIVE_ID, 9001, 9500, 400)],
  /** Kept by both: straddling 9730, after it, an earlier incarnation captured recently, a chain with no snapshot yet. */
  keptByBoth: [
    segmentAt(LIVE_ID, 9725, 9800, 160),
    segmentAt(LIVE_ID, 9801, 10_050, 1),
    segmentAt(OLD_ID, 5001, 5100, 48),
    segmentAt(FRESH_ID, 9000, 9100, 1),
  ],
  /** Another cluster's (wal/nnoe-synthetic-other/ must not match wal/nnoe-synthetic/): never touched by this prune. */
  otherCluster: [segmentAt(OLD_ID, 1, 100, 50 * 24, `${CLUSTER}-other`)],
};
const ALL_SEGMENTS = Object.values(SEGMENTS).flat();

async function segmentKeysIn(target: string, cluster = CLUSTER): Promise<string[]> {
  const store = await openStore(h.config.storage.find((t) => t.name === target)!);
  return (await store.list(clusterSegmentsPrefix(cluster))).sort();
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
    await writeSyntheticSet(setId, createdAt, i % 10 === 5 ? 'partial' : 'complete', revisionOf(i));
  }
  for (const target of h.config.storage.filter((t) => TARGETS.includes(t.name))) {
    const store = await openStore(target);
    for (const key of ALL_SEGMENTS) await writeObject(store, key, Buffer.alloc(SEGMENT_BYTES, 1));
  }
});
afterAll(async () => {
  await h.close();
});

describe('prune by retention', () => {
  it('dry run: lists what would go by the production profile (keep 7 days), sets and segments, and deletes nothing', async () => {
    const run = await runCli(h.configPath, '--json', 'backups', 'prune', '--cluster', CLUSTER, '--target', ...TARGETS, '--dry-run');
    expect(run.err).toBe('');
    const result = JSON.parse(run.out) as PruneResult;
    expect(result.dryRun).toBe(true);
    // Ages 1 h, 7 h, ..., 163 h are inside 7 days: the 28 newest stay.
    expect(result.keep.map((k) => k.setId)).toEqual(setIds.slice(0, 28));
    expect(result.expire.map((e) => e.setId)).toEqual(setIds.slice(28));
    expect(result.deletedKeys).toBe(212 * 2 * 2);
    expect(await syntheticIds()).toHaveLength(240);

    // Segments: it lists what would go (six per target) and deletes none.
    const wouldGo = [...SEGMENTS.goneInBoth, ...SEGMENTS.neededByTheRestore].length;
    expect(result.segments).toMatchObject({ dryRun: true, objects: wouldGo * 2, bytes: wouldGo * 2 * SEGMENT_BYTES });
    const live = result.segments!.chains.find((c) => c.target === 's3' && c.clusterId === LIVE_ID)!;
    expect(live).toMatchObject({ deleted: 4, kept: 2, deletedRange: expect.objectContaining({ fromRevision: 100, toRevision: 9500 }) });
    expect(live.reason).toMatch(new RegExp(`${setIds[27]} at revision ${revisionOf(27)}`));
    for (const target of TARGETS) {
      expect(await segmentKeysIn(target), `${target} lost a segment in a dry run`).toEqual(
        ALL_SEGMENTS.filter((k) => !k.includes('-other/')).sort(),
      );
    }
  });

  it('deletes expired sets from both targets, keeps the set a running restore uses, aborts stale uploads and partial files, prunes segments', async () => {
    const inUse = setIds[100]!;
    const restore = await h.client.workflow.start('etcdRestoreWorkflow', {
      taskQueue: 'nnoe-dr-test-no-worker',
      workflowId: `synthetic-restore-${inUse}`,
      args: [],
      typedSearchAttributes: [
        { key: NnoeRunbook, value: 'etcd-restore' },
        { key: NnoeBackupSet, value: inUse },
      ],
    });
    const s3Target = h.config.storage.find((t) => t.name === 's3') as S3TargetConfig;
    const upload = await (
      await s3ClientFor(s3Target)
    ).send(new CreateMultipartUploadCommand({ Bucket: s3Target.bucket, Key: 'crashed-backup/etcd-snapshot.db.gz' }));
    // A local partial file a killed writer left two days ago goes; one written a minute ago (a writer still running) stays.
    const localTarget = h.config.storage.find((t) => t.name === 'local') as Extract<StorageTargetConfig, { type: 'local' }>;
    const crashedDir = join(localTarget.path, 'crashed-backup');
    await mkdir(crashedDir, { recursive: true });
    const stalePartial = join(crashedDir, '.etcd-snapshot.db.gz.partial-0badc0de');
    const runningPartial = join(crashedDir, '.phpipam.sql.gz.partial-0900d000');
    await writeFile(stalePartial, 'half a snapshot');
    await writeFile(runningPartial, 'a dump in progress');
    const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
    await utimes(stalePartial, twoDaysAgo, twoDaysAgo);
    try {
      const handle = await startPrune(h.client, h.config, { cluster: CLUSTER, targets: TARGETS });
      const result = (await handle.result()) as PruneResult;
      await recordHistory(handle, 'prune-with-change-segments');
      expect(result.protectedSetIds).toContain(inUse);
      expect(result.keep.find((k) => k.setId === inUse)?.reasons.join(' ')).toMatch(/restore|protected/i);
      expect(result.expire).toHaveLength(211);
      expect(result.abortedUploads).toContainEqual(expect.objectContaining({ target: 's3', key: 'crashed-backup/etcd-snapshot.db.gz' }));
      expect(upload.UploadId).toBeTruthy();
      expect(result.abortedUploads).toContainEqual(
        expect.objectContaining({ target: 'local', key: 'crashed-backup/etcd-snapshot.db.gz', location: stalePartial }),
      );
      expect(result.abortedUploads.filter((u) => u.target === 'local')).toHaveLength(1);
      await expect(stat(stalePartial)).rejects.toThrow(/ENOENT/);
      expect((await stat(runningPartial)).isFile()).toBe(true);

      expect((await syntheticIds()).sort()).toEqual([...setIds.slice(0, 28), inUse].sort());

      // Segments: exactly those no kept set can replay went, from both targets.
      expect(result.segments).toMatchObject({
        dryRun: false,
        objects: SEGMENTS.goneInBoth.length * 2,
        bytes: SEGMENTS.goneInBoth.length * 2 * SEGMENT_BYTES,
      });
      for (const target of TARGETS) {
        expect(await segmentKeysIn(target), `${target} segments after the prune`).toEqual(
          [...SEGMENTS.neededByTheRestore, ...SEGMENTS.keptByBoth].sort(),
        );
        expect(await segmentKeysIn(target, `${CLUSTER}-other`)).toEqual(SEGMENTS.otherCluster);
      }
      for (const target of h.config.storage.filter((t) => TARGETS.includes(t.name))) {
        const keys = await (await openStore(target)).list(`${setIds[200]}/`);
        expect(keys, `${target.name} still holds an expired set`).toEqual([]);
      }
    } finally {
      await restore.terminate('test finished');
      await rm(crashedDir, { recursive: true, force: true }); // the "running" writer's file: other files scan the store for debris
    }
  });
});

describe('prune and S3 Object Lock', () => {
  it('keeps an expired set whose objects are locked, saying why; deletes an unlocked one with every version', async () => {
    const lockedTarget = h.config.storage.find((t) => t.name === VARIANTS.lockedS3Target) as S3TargetConfig;
    const locking = await openStore(lockedTarget);
    const plain = await openStore({ ...lockedTarget, objectLock: undefined }); // same bucket, objects without retention
    const sets = { newest: HOUR, locked: 30 * 24 * HOUR, unlocked: 31 * 24 * HOUR };
    const ids = Object.fromEntries(
      Object.entries(sets).map(([name, age]) => [name, `${CLUSTER}-lock-${utcStamp(new Date(Date.now() - age))}`]),
    ) as Record<keyof typeof sets, string>;
    for (const [name, age] of Object.entries(sets) as Array<[keyof typeof sets, number]>) {
      const createdAt = new Date(Date.now() - age).toISOString();
      const manifest = {
        formatVersion: MANIFEST_FORMAT_VERSION,
        tool: 'nnoe-dr',
        setId: ids[name],
        cluster: CLUSTER,
        status: 'complete',
        createdAt,
        completedAt: createdAt,
        workflow: { workflowId: `synthetic-${ids[name]}`, runId: 'synthetic' },
        components: [{ component: 'etcd', status: 'ok', artefacts: [], facts: { clusterId: LIVE_ID, revision: 1 } }],
        failures: [],
      };
      const store = name === 'locked' ? locking : plain;
      await writeObject(store, artefactKey(ids[name], 'etcd-snapshot.db.gz'), 'synthetic artefact');
      await writeObject(store, artefactKey(ids[name], MANIFEST_FILE), JSON.stringify(manifest));
    }
    // Written with its retention: S3 (moto) refuses to delete the locked version.
    const retention = await locking.retention!(artefactKey(ids.locked, MANIFEST_FILE));
    expect(retention).toMatchObject({ mode: 'GOVERNANCE', bypassable: false });
    expect(Date.parse(retention!.until) - Date.now()).toBeGreaterThan(23 * HOUR);
    expect(await plain.retention!(artefactKey(ids.unlocked, MANIFEST_FILE))).toBeNull();

    const result = (await (
      await startPrune(h.client, h.config, { cluster: CLUSTER, targets: [VARIANTS.lockedS3Target] })
    ).result()) as PruneResult;
    expect(result.expire.map((e) => e.setId)).toEqual([ids.unlocked]);
    expect(result.keep.find((k) => k.setId === ids.locked)?.reasons).toEqual([
      `object lock (GOVERNANCE) in ${VARIANTS.lockedS3Target} until ${retention!.until}: S3 refuses its deletion before then`,
    ]);
    const s3 = await s3ClientFor(lockedTarget);
    const versionsOf = async (setId: string) => {
      const out = await s3.send(new ListObjectVersionsCommand({ Bucket: lockedTarget.bucket, Prefix: `${setId}/` }));
      return [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])].length;
    };
    expect(await versionsOf(ids.locked)).toBe(2);
    expect(await versionsOf(ids.unlocked)).toBe(0); // every version gone, no delete marker hiding a kept copy
    const refused = await s3
      .send(
        new DeleteObjectCommand({
          Bucket: lockedTarget.bucket,
          Key: artefactKey(ids.locked, MANIFEST_FILE),
          VersionId: (await s3.send(new HeadObjectCommand({ Bucket: lockedTarget.bucket, Key: artefactKey(ids.locked, MANIFEST_FILE) })))
            .VersionId,
        }),
      )
      .catch((e: unknown) => e);
    expect((refused as Error).name).toBe('AccessDenied');
  });
});
