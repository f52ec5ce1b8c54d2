/**
 * Retention (src/retention): the pure policy on a synthetic catalog, and pruning against a real
 * local directory and a moto S3 server that this file starts itself (not the shared world's).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  deleteBackupSet,
  gfsBucket,
  listBackupSetKeys,
  planRetention,
  RETENTION_PROFILES,
  RetentionPolicyError,
  type RetentionPlan,
  type RetentionPolicy,
  type RetentionSet,
} from '../src/retention';
import { artefactKey, LocalStore, MANIFEST_FILE, S3Store, type BackupStore } from '../src/storage';
import { listMultipartUploads } from '../src/storage/s3';
import { backupSetId } from '../src/common/manifest';
import { freePort, waitForPortOpen } from '../src/sandbox/ports';
import { writeObject } from './support/objects';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
/** A Friday, 12:00 UTC; ISO week 2026-W48 runs Mon 23 to Sun 29 November. */
const NOW = new Date('2026-11-27T12:00:00Z');

const at = (iso: string) => new Date(iso);
const setAt = (date: Date, cluster = 'prod') => backupSetId(cluster, date);

/**
 * 60 days of production backups, one every 6 hours (00, 06, 12, 18 UTC), newest at NOW.
 * Partial: the newest run, the last run of October and of ISO week 47, and every 17th run.
 * Verified: one set 10 days old.
 */
const PARTIAL = new Set(['2026-11-27T12:00:00.000Z', '2026-10-31T18:00:00.000Z', '2026-11-22T18:00:00.000Z']);
const VERIFIED = '2026-11-17T06:00:00.000Z';

function syntheticCatalog(cluster = 'prod', days = 60, newest = NOW): RetentionSet[] {
  return Array.from({ length: days * 4 }, (_, k) => {
    const created = new Date(newest.getTime() - k * 6 * HOUR);
    const iso = created.toISOString();
    const partial = PARTIAL.has(iso) || k % 17 === 5;
    return {
      setId: setAt(created, cluster),
      cluster,
      createdAt: iso,
      status: partial ? ('partial' as const) : ('complete' as const),
      ...(iso === VERIFIED ? { verifiedAt: '2026-11-17T09:30:00.000Z' } : {}),
    };
  });
}

function reasonsOf(plan: RetentionPlan, setId: string): string[] {
  return plan.keep.find((k) => k.setId === setId)?.reasons ?? [];
}

function expiryOf(plan: RetentionPlan, setId: string): string | undefined {
  return plan.expire.find((e) => e.setId === setId)?.reason;
}

/** Invariants every plan must hold, whatever the policy. */
function checkInvariants(sets: RetentionSet[], plan: RetentionPlan): void {
  const kept = plan.keep.map((k) => k.setId);
  const expired = plan.expire.map((e) => e.setId);
  expect(new Set([...kept, ...expired])).toEqual(new Set(sets.map((s) => s.setId)));
  expect(kept.length + expired.length).toBe(sets.length); // disjoint, no duplicates
  for (const k of plan.keep) {
    expect(k.reasons.length, k.setId).toBeGreaterThan(0);
    for (const reason of k.reasons) expect(reason.length).toBeGreaterThan(10);
  }
  for (const e of plan.expire) expect(e.reason.length, e.setId).toBeGreaterThan(10);
  for (const list of [plan.keep, plan.expire]) {
    const times = list.map((x) => Date.parse(x.createdAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
  }
  // Per cluster: the newest complete set and the newest verified set are kept.
  for (const cluster of new Set(sets.map((s) => s.cluster))) {
    const complete = sets
      .filter((s) => s.cluster === cluster && s.status === 'complete')
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    if (complete[0]) expect(kept).toContain(complete[0].setId);
    const verified = complete.find((s) => s.verifiedAt);
    if (verified) expect(kept).toContain(verified.setId);
    if (sets.some((s) => s.cluster === cluster)) expect(plan.keep.some((k) => k.cluster === cluster)).toBe(true);
  }
}

describe('retention policy', () => {
  const catalog = syntheticCatalog();

  it('has the runbook profiles', () => {
    expect(RETENTION_PROFILES.production).toEqual({ schedule: '0 */6 * * *', policy: { keepDays: 7 } });
    expect(RETENTION_PROFILES.development).toEqual({ schedule: '0 3 * * *', policy: { keepDays: 3 } });
  });

  it('production: keeps 7 days of sets (partial ones too) plus the newest verified set', () => {
    const plan = planRetention({ sets: catalog, policy: RETENTION_PROFILES.production.policy, now: NOW });
    checkInvariants(catalog, plan);
    const windowIds = catalog.filter((s) => NOW.getTime() - Date.parse(s.createdAt) <= 7 * DAY).map((s) => s.setId);
    expect(windowIds).toHaveLength(29); // 7 days of 4 a day, both ends included
    expect(plan.keep.map((k) => k.setId)).toEqual([...windowIds, setAt(at(VERIFIED))]);

    expect(reasonsOf(plan, setAt(NOW))).toEqual(['within 7 days (0h old); partial, so it counts for nothing else']);
    expect(reasonsOf(plan, setAt(at('2026-11-27T06:00:00Z')))).toEqual(['newest complete set of prod', 'within 7 days (6h old)']);
    expect(reasonsOf(plan, setAt(at('2026-11-20T12:00:00Z')))).toEqual(['within 7 days (7d 0h old)']);
    expect(reasonsOf(plan, setAt(at(VERIFIED)))).toEqual(['newest verified set of prod (verified 2026-11-17T09:30:00.000Z)']);
    expect(expiryOf(plan, setAt(at('2026-11-20T06:00:00Z')))).toBe('older than 7 days (7d 6h old)');
    const oldPartial = catalog.find((s) => s.status === 'partial' && Date.parse(s.createdAt) < NOW.getTime() - 7 * DAY)!;
    expect(expiryOf(plan, oldPartial.setId)).toMatch(/^partial set older than 7 days \(\d+d \d+h old\); partial sets never count/);
  });

  it('development: keeps 3 days of daily sets', () => {
    const daily: RetentionSet[] = Array.from({ length: 60 }, (_, k) => {
      const created = new Date(Date.parse('2026-11-27T03:00:00Z') - k * DAY);
      return { setId: setAt(created, 'dev'), cluster: 'dev', createdAt: created.toISOString(), status: k === 1 ? 'partial' : 'complete' };
    });
    const plan = planRetention({ sets: daily, policy: RETENTION_PROFILES.development.policy, now: at('2026-11-27T03:30:00Z') });
    checkInvariants(daily, plan);
    expect(plan.keep).toEqual([
      {
        setId: 'dev-20261127-030000',
        cluster: 'dev',
        createdAt: '2026-11-27T03:00:00.000Z',
        reasons: ['newest complete set of dev', 'within 3 days (0h old)'],
      },
      {
        setId: 'dev-20261126-030000',
        cluster: 'dev',
        createdAt: '2026-11-26T03:00:00.000Z',
        reasons: ['within 3 days (1d 0h old); partial, so it counts for nothing else'],
      },
      { setId: 'dev-20261125-030000', cluster: 'dev', createdAt: '2026-11-25T03:00:00.000Z', reasons: ['within 3 days (2d 0h old)'] },
    ]);
    expect(plan.expire[0]).toEqual({
      setId: 'dev-20261124-030000',
      cluster: 'dev',
      createdAt: '2026-11-24T03:00:00.000Z',
      reason: 'older than 3 days (3d 0h old)',
    });
    expect(plan.expire).toHaveLength(57);
  });

  it('GFS 7/4/6: newest complete set of each recent day, ISO week and month; partial sets never count', () => {
    const policy: RetentionPolicy = { gfs: { daily: 7, weekly: 4, monthly: 6 } };
    const plan = planRetention({ sets: catalog, policy, now: NOW });
    checkInvariants(catalog, plan);
    const byReason = (level: string) =>
      plan.keep.filter((k) => k.reasons.some((r) => r.startsWith(`GFS ${level}:`))).map((k) => k.createdAt);
    // Day 27's newest run is partial, so its 06:00 set stands for the day.
    expect(byReason('daily')).toEqual([
      '2026-11-27T06:00:00.000Z',
      '2026-11-26T18:00:00.000Z',
      '2026-11-25T18:00:00.000Z',
      '2026-11-24T18:00:00.000Z',
      '2026-11-23T18:00:00.000Z',
      '2026-11-22T12:00:00.000Z',
      '2026-11-21T18:00:00.000Z',
    ]);
    // W47 ends on Sunday 22 with a partial set: 12:00 stands for the week.
    expect(byReason('weekly')).toEqual([
      '2026-11-27T06:00:00.000Z',
      '2026-11-22T12:00:00.000Z',
      '2026-11-15T18:00:00.000Z',
      '2026-11-08T18:00:00.000Z',
    ]);
    // Only three months in 60 days; October ends with a partial set.
    expect(byReason('monthly')).toEqual(['2026-11-27T06:00:00.000Z', '2026-10-31T12:00:00.000Z', '2026-09-30T18:00:00.000Z']);
    expect(reasonsOf(plan, setAt(at('2026-11-22T12:00:00Z')))).toEqual([
      'GFS daily: newest complete set of 2026-11-22 (6 of 7)',
      'GFS weekly: newest complete set of 2026-W47 (2 of 4)',
    ]);
    // No keepDays: partial sets all go, even the newest.
    expect(expiryOf(plan, setAt(NOW))).toBe('partial set; partial sets are kept only within keepDays, which this policy does not set');
    expect(expiryOf(plan, setAt(at('2026-11-26T12:00:00Z')))).toBe(
      'not the newest complete set of a day, week or month kept by GFS (daily 7, weekly 4, monthly 6)',
    );
    const kept = new Set([...byReason('daily'), ...byReason('weekly'), ...byReason('monthly'), VERIFIED]);
    expect(plan.keep).toHaveLength(kept.size);
    for (const k of plan.keep) expect(catalog.find((s) => s.setId === k.setId)!.status).toBe('complete');
  });

  it('keepDays and GFS together: the union of both', () => {
    const policy: RetentionPolicy = { keepDays: 7, gfs: { weekly: 4, monthly: 6 } };
    const plan = planRetention({ sets: catalog, policy, now: NOW });
    checkInvariants(catalog, plan);
    expect(plan.keep).toHaveLength(29 + 2 /* W46, W45 */ + 2 /* Oct, Sep */ + 1 /* verified */);
    expect(expiryOf(plan, setAt(at('2026-11-01T00:00:00Z')))).toBe(
      'older than 7 days (26d 12h old) and not the newest complete set of a day, week or month kept by GFS (weekly 4, monthly 6)',
    );
  });

  it('never expires the newest complete set, even when backups stopped 10 days ago', () => {
    const stopped = syntheticCatalog('prod', 30, new Date(NOW.getTime() - 10 * DAY))
      .map((s, k) => (k === 0 ? { ...s, status: 'partial' as const } : s))
      .map(({ verifiedAt: _v, ...s }) => s);
    const plan = planRetention({ sets: stopped, policy: RETENTION_PROFILES.production.policy, now: NOW });
    checkInvariants(stopped, plan);
    expect(plan.keep).toEqual([
      {
        setId: stopped[1]!.setId,
        cluster: 'prod',
        createdAt: stopped[1]!.createdAt,
        reasons: ['newest complete set of prod'],
      },
    ]);
    expect(expiryOf(plan, stopped[0]!.setId)).toMatch(/^partial set older than 7 days \(10d 0h old\)/);
  });

  it('keeps protected sets (a running restore uses them) whatever their age', () => {
    const old = setAt(at('2026-10-15T06:00:00Z'));
    const plan = planRetention({ sets: catalog, policy: { keepDays: 7 }, now: NOW, protectedSetIds: [old, 'prod-unknown'] });
    checkInvariants(catalog, plan);
    expect(reasonsOf(plan, old)).toEqual(['protected: in use by a running restore']);
  });

  it('never keeps a partial set in place of a complete one; a cluster with none complete keeps its newest partial', () => {
    const sets: RetentionSet[] = [
      { setId: 'lab-1', cluster: 'lab', createdAt: '2026-11-27T00:00:00Z', status: 'partial' },
      { setId: 'lab-2', cluster: 'lab', createdAt: '2026-11-10T00:00:00Z', status: 'partial' },
      { setId: 'lab-3', cluster: 'lab', createdAt: '2026-11-01T00:00:00Z', status: 'partial', verifiedAt: '2026-11-02T00:00:00Z' },
      { setId: 'edge-1', cluster: 'edge', createdAt: '2026-11-20T00:00:00Z', status: 'partial' },
      { setId: 'edge-2', cluster: 'edge', createdAt: '2026-11-19T00:00:00Z', status: 'partial' },
    ];
    const plan = planRetention({ sets, policy: { keepDays: 3, gfs: { daily: 7 } }, now: NOW });
    checkInvariants(sets, plan);
    expect(plan.keep).toEqual([
      {
        setId: 'lab-1',
        cluster: 'lab',
        createdAt: '2026-11-27T00:00:00Z',
        reasons: [
          'newest partial set of lab, kept because the cluster has no complete set',
          'within 3 days (12h old); partial, so it counts for nothing else',
        ],
      },
      {
        setId: 'edge-1',
        cluster: 'edge',
        createdAt: '2026-11-20T00:00:00Z',
        reasons: ['newest partial set of edge, kept because the cluster has no complete set'],
      },
    ]);
    expect(plan.expire.map((e) => e.setId)).toEqual(['edge-2', 'lab-2', 'lab-3']); // a verified partial set is not "verified good"
  });

  it('plans each cluster on its own, and orders the result newest first whatever the input order', () => {
    const sets = [...syntheticCatalog('prod', 20), ...syntheticCatalog('dr', 20, new Date(NOW.getTime() - 3 * HOUR))];
    const shuffled = [...sets].sort((a, b) => (a.setId.split('').reverse().join('') < b.setId.split('').reverse().join('') ? -1 : 1));
    const plan = planRetention({ sets: shuffled, policy: { keepDays: 2 }, now: NOW });
    checkInvariants(sets, plan);
    expect(planRetention({ sets, policy: { keepDays: 2 }, now: NOW })).toEqual(plan);
    expect(plan.keep.slice(0, 3).map((k) => k.setId)).toEqual([
      setAt(NOW, 'prod'),
      setAt(at('2026-11-27T09:00:00Z'), 'dr'),
      setAt(at('2026-11-27T06:00:00Z'), 'prod'),
    ]);
    expect(reasonsOf(plan, setAt(at('2026-11-27T09:00:00Z'), 'dr'))).toContain('newest complete set of dr');
  });

  it('refuses a policy that keeps nothing and a malformed catalog', () => {
    const plan =
      (policy: RetentionPolicy, sets: RetentionSet[] = catalog) =>
      () =>
        planRetention({ sets, policy, now: NOW });
    expect(plan({})).toThrow(RetentionPolicyError);
    expect(plan({ gfs: { daily: 0 } })).toThrow(/keeps nothing: expected keepDays and\/or a gfs/);
    expect(plan({ keepDays: 0 })).toThrow(/keepDays: expected a number of days above 0, got 0/);
    expect(plan({ gfs: { weekly: 1.5 } })).toThrow(/gfs.weekly: expected a whole number/);
    expect(plan({ keepDays: 7 }, [...catalog, catalog[3]!])).toThrow(`set ${catalog[3]!.setId} is listed twice`);
    expect(plan({ keepDays: 7 }, [{ ...catalog[0]!, createdAt: 'yesterday' }])).toThrow(/createdAt "yesterday" is not an ISO 8601 time/);
  });

  it('puts times in UTC days, ISO weeks and months', () => {
    expect(gfsBucket('daily', at('2026-11-27T23:59:59Z'))).toBe('2026-11-27');
    expect(gfsBucket('weekly', at('2026-11-23T00:00:00Z'))).toBe('2026-W48');
    expect(gfsBucket('weekly', at('2026-11-22T23:59:59Z'))).toBe('2026-W47');
    expect(gfsBucket('weekly', at('2021-01-03T12:00:00Z'))).toBe('2020-W53');
    expect(gfsBucket('weekly', at('2024-12-30T12:00:00Z'))).toBe('2025-W01');
    expect(gfsBucket('weekly', at('2026-01-01T00:00:00Z'))).toBe('2026-W01');
    expect(gfsBucket('monthly', at('2026-02-28T23:00:00Z'))).toBe('2026-02');
  });
});

/** Records the keys a store deletes, in order: a thin wrapper around the real store. */
function recordingDeletes(store: BackupStore, deleted: string[]): BackupStore {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'delete')
        return async (key: string) => {
          deleted.push(key);
          await target.delete(key);
        };
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Puts a set (two artefacts and a manifest) and a neighbour whose id starts the same. */
async function putSets(store: BackupStore, setId: string): Promise<void> {
  for (const id of [setId, `${setId}0`]) {
    await writeObject(store, artefactKey(id, 'etcd-snapshot.db.gz'), 'snapshot');
    await writeObject(store, artefactKey(id, 'phpipam.sql.gz'), 'dump');
    await writeObject(store, artefactKey(id, MANIFEST_FILE), '{}');
  }
}

async function checkDeleteBackupSet(store: BackupStore): Promise<void> {
  const setId = 'prod-20261120-060000';
  await putSets(store, setId);
  const expected = [`${setId}/${MANIFEST_FILE}`, `${setId}/etcd-snapshot.db.gz`, `${setId}/phpipam.sql.gz`];
  expect(await listBackupSetKeys(store, setId)).toEqual(expected);

  const deleted: string[] = [];
  const recorded = recordingDeletes(store, deleted);
  expect(await deleteBackupSet(recorded, setId, { dryRun: true })).toEqual({ target: store.name, setId, keys: expected, dryRun: true });
  expect(deleted).toEqual([]);
  expect(await deleteBackupSet(recorded, setId)).toEqual({ target: store.name, setId, keys: expected, dryRun: false });
  expect(deleted).toEqual(expected); // manifest first
  expect(await store.list(`${setId}/`)).toEqual([]);
  expect((await store.list(`${setId}0/`)).sort()).toHaveLength(3); // the neighbour is untouched
  expect((await deleteBackupSet(store, setId)).keys).toEqual([]); // again: nothing left, no error

  // A set whose deletion was interrupted after its manifest: the rest goes on the next run.
  await writeObject(store, artefactKey(setId, 'etcd-snapshot.db.gz'), 'snapshot');
  expect((await deleteBackupSet(store, setId)).keys).toEqual([`${setId}/etcd-snapshot.db.gz`]);

  await expect(deleteBackupSet(store, '')).rejects.toThrow(/is not a backup set id/);
  await expect(deleteBackupSet(store, '../etc')).rejects.toThrow(/is not a backup set id/);
  await expect(deleteBackupSet(store, 'prod/x')).rejects.toThrow(/is not a backup set id/);
}

describe('pruning a local target', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'nnoe-dr-prune-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('deletes a set manifest first, and its directory', async () => {
    const store = new LocalStore('local', root);
    await checkDeleteBackupSet(store);
    expect(await readdir(root)).toEqual(['prod-20261120-0600000']);
  });

  it("lists a killed writer's partial file as a leftover, by key or by age, never a committed artefact", async () => {
    const store = new LocalStore('local', join(root, 'leftovers'));
    const killed = await store.createWriter('prod-20261121-060000/etcd-snapshot.db.gz');
    killed.stream.write('half a snapshot'); // and then the worker died: neither commit nor abort
    await new Promise((done) => setTimeout(done, 50));
    const committed = await store.createWriter('prod-20261121-060000/etcd-snapshot.db.gz.age');
    committed.stream.end('whole');
    await committed.commit();

    const byKey = await store.listLeftovers({ key: 'prod-20261121-060000/etcd-snapshot.db.gz' });
    expect(byKey.map((l) => l.key)).toEqual(['prod-20261121-060000/etcd-snapshot.db.gz']);
    expect(byKey[0]!.location).toMatch(/prod-20261121-060000\/\.etcd-snapshot\.db\.gz\.partial-[0-9a-f]{8}$/);
    expect(await store.listLeftovers({ key: 'prod-20261121-060000/etcd-snapshot.db.gz.age' })).toEqual([]);
    expect(await store.listLeftovers({ olderThan: new Date(Date.now() - 3600_000) })).toEqual([]); // written just now: maybe still running
    expect((await store.listLeftovers({ olderThan: new Date(Date.now() + 60_000) })).map((l) => l.handle)).toEqual([byKey[0]!.handle]);

    await expect(
      store.removeLeftover({ ...byKey[0]!, handle: store.location('prod-20261121-060000/etcd-snapshot.db.gz.age') }),
    ).rejects.toThrow(/is not a partial file of this store/);
    await store.removeLeftover(byKey[0]!);
    expect(await store.list()).toEqual(['prod-20261121-060000/etcd-snapshot.db.gz.age']);
    expect(await store.listLeftovers({ olderThan: new Date(Date.now() + 60_000) })).toEqual([]);
    await killed.abort();
  });
});

describe('multipart uploads across pages', () => {
  // moto ignores MaxUploads, so paging is checked against recorded pages: the request markers
  // must follow NextKeyMarker / NextUploadIdMarker until IsTruncated is false.
  it('follows the markers to the last page', async () => {
    const initiated = new Date('2026-11-01T00:00:00Z');
    const pages = [
      { IsTruncated: true, NextKeyMarker: 'a', NextUploadIdMarker: 'u1', Uploads: [{ Key: 'a', UploadId: 'u1', Initiated: initiated }] },
      { IsTruncated: true, NextKeyMarker: 'b', NextUploadIdMarker: 'u2', Uploads: [{ Key: 'b', UploadId: 'u2', Initiated: NOW }] },
      { IsTruncated: false, Uploads: [{ Key: 'c', UploadId: 'u3', Initiated: initiated }] },
    ];
    const markers: Array<[string | undefined, string | undefined]> = [];
    const client = {
      send: async (command: ListMultipartUploadsCommand) => {
        markers.push([command.input.KeyMarker, command.input.UploadIdMarker]);
        return pages[markers.length - 1];
      },
    } as unknown as S3Client;
    const uploads = await listMultipartUploads(client, 'b', '');
    expect(uploads.map((u) => u.uploadId)).toEqual(['u1', 'u2', 'u3']);
    expect(markers).toEqual([
      [undefined, undefined],
      ['a', 'u1'],
      ['b', 'u2'],
    ]);
  });
});

describe('pruning an S3 target (moto)', () => {
  const bucket = 'nnoe-dr-prune';
  let moto: ChildProcess;
  let s3: S3Client;

  beforeAll(async () => {
    const port = await freePort();
    moto = spawn('.tools/venv/bin/moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await waitForPortOpen(port, 'moto_server', 30_000);
    s3 = new S3Client({
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  afterAll(async () => {
    s3?.destroy();
    if (moto && moto.exitCode === null) {
      const exited = new Promise((resolve) => moto.once('exit', resolve));
      moto.kill('SIGTERM');
      await exited;
    }
  });

  it('lists open multipart uploads under its prefix as leftovers, by key or by age, and aborts them', async () => {
    const store = new S3Store(s3, { name: 's3', bucket, prefix: 'nnoe/', partSizeBytes: 5 * 1024 * 1024 });
    const create = async (key: string) => (await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))).UploadId!;
    const staleId = await create('nnoe/prod-20261120-060000/etcd-snapshot.db.gz');
    const encryptedId = await create('nnoe/prod-20261120-060000/etcd-snapshot.db.gz.age');
    await create('other-tool/big.bin');
    const all = await store.listLeftovers({ olderThan: new Date(Date.now() + 60_000) });
    expect(all.map((u) => [u.key, u.handle]).sort()).toEqual([
      ['prod-20261120-060000/etcd-snapshot.db.gz', staleId],
      ['prod-20261120-060000/etcd-snapshot.db.gz.age', encryptedId],
    ]);
    expect(all[0]!.location).toMatch(/^s3:\/\/nnoe-dr-prune\/nnoe\/prod-20261120-060000\/etcd-snapshot\.db\.gz/);
    // Uploads started after the cut-off (a backup still running) are left alone. moto reports
    // every upload as initiated on 2010-11-10, hence a cut-off before that.
    expect(await store.listLeftovers({ olderThan: new Date('2010-01-01T00:00:00Z') })).toEqual([]);
    // By key: exactly that key, not every key it prefixes (a retry of one artefact must not abort another's upload).
    const ofKey = await store.listLeftovers({ key: 'prod-20261120-060000/etcd-snapshot.db.gz' });
    expect(ofKey.map((u) => u.handle)).toEqual([staleId]);

    await store.removeLeftover(ofKey[0]!);
    await store.removeLeftover(ofKey[0]!); // idempotent: already aborted
    expect((await store.listLeftovers({ olderThan: new Date(Date.now() + 60_000) })).map((u) => u.handle)).toEqual([encryptedId]);
    await store.removeLeftover((await store.listLeftovers({ key: 'prod-20261120-060000/etcd-snapshot.db.gz.age' }))[0]!);
    const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect((left.Uploads ?? []).map((u) => u.Key)).toEqual(['other-tool/big.bin']);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'other-tool/big.bin', UploadId: left.Uploads![0]!.UploadId }));
  });

  it('deletes a set manifest first', async () => {
    await checkDeleteBackupSet(new S3Store(s3, { name: 's3', bucket, prefix: 'nnoe/', partSizeBytes: 5 * 1024 * 1024 }));
  });
});
