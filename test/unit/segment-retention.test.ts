/**
 * Retention of change-capture segments: the pure planSegmentRetention (what no surviving set can
 * replay goes; a straddling segment, later ones, a chain a new set may need, what a running backup
 * may need and anything in doubt stay), checked against chainSegments itself, and the deletion and
 * its dry run on a local target.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainSegments, gapKey, parseSegmentKey, segmentKey, type SegmentName } from '../../src/capture/segments';
import {
  deleteSegmentObjects,
  listSegmentObjects,
  planSegmentRetention,
  SEGMENT_TIME_MARGIN_MS,
  type SegmentRetentionSet,
} from '../../src/retention';
import { LocalStore } from '../../src/storage';
import { writeObject } from '../support/objects';

const CLUSTER = 'prod';
const LIVE = '1111';
const OLD = '2222';
const HOUR = 3600_000;
const T0 = Date.parse('2026-11-20T00:00:00Z');

/** A segment of `clusterId` covering from..to, captured `hours` after T0 (its first event a minute earlier). */
const seg = (clusterId: string, from: number, to: number, hours: number, cluster = CLUSTER) =>
  segmentKey(cluster, clusterId, { from, to, firstMs: T0 + hours * HOUR - 60_000, lastMs: T0 + hours * HOUR }, '.age');
const set = (setId: string, hours: number, snapshot?: { revision: number; clusterId: string | null }): SegmentRetentionSet => ({
  setId,
  createdAt: new Date(T0 + hours * HOUR).toISOString(),
  ...(snapshot ? { snapshot } : {}),
});
const plan = (sets: SegmentRetentionSet[], keys: string[]) => planSegmentRetention({ cluster: CLUSTER, sets, keys });

describe('planSegmentRetention, a chain with kept snapshots', () => {
  // Kept snapshots of the live cluster at revisions 100 (oldest kept) and 200.
  const sets = [set('prod-a', 10, { revision: 100, clusterId: LIVE }), set('prod-b', 20, { revision: 200, clusterId: LIVE })];
  const before = [seg(LIVE, 1, 40, 2), seg(LIVE, 41, 99, 8), seg(LIVE, 100, 100, 9)];
  const straddling = seg(LIVE, 91, 130, 11); // a retried writer's overlap, reaching past 100
  const after = [seg(LIVE, 101, 150, 12), seg(LIVE, 151, 220, 21), seg(LIVE, 221, 230, 22)];

  it('deletes what ends at or before the oldest kept snapshot, keeps what straddles it and all after', () => {
    const p = plan(sets, [...before, straddling, ...after]);
    expect(p.delete).toEqual([...before].sort());
    expect(p.chains).toHaveLength(1);
    expect(p.chains[0]).toMatchObject({
      clusterId: LIVE,
      keep: 4,
      deletedRange: { fromRevision: 1, toRevision: 100, firstMs: T0 + 2 * HOUR - 60_000, lastMs: T0 + 9 * HOUR },
    });
    expect(p.chains[0]!.reason).toMatch(/set prod-a at revision 100/);
  });

  it('does not lower the floor for an older set without an etcd snapshot', () => {
    // A set without an etcd snapshot (phpIPAM only) is older still: it does not protect revisions.
    const p = plan([set('prod-phpipam-only', 1), ...sets], [...before, ...after]);
    expect(p.delete).toEqual([...before].sort());
  });

  it('deletes gap markers that end at or before it, keeps later ones', () => {
    const early = gapKey(CLUSTER, LIVE, 10, 30);
    const late = gapKey(CLUSTER, LIVE, 140, 160);
    const p = plan(sets, [early, late, ...after]);
    expect(p.delete).toEqual([early]);
    expect(p.chains[0]!.deletedRange).toEqual({ fromRevision: 10, toRevision: 30, firstMs: null, lastMs: null });
  });

  it('never breaks the chain of a kept snapshot (checked with chainSegments)', () => {
    const keys = [...before, straddling, ...after];
    const kept = keys.filter((k) => !plan(sets, keys).delete.includes(k)).map(parse);
    for (const snapshot of [100, 200]) {
      const all = chainSegments(keys.map(parse), snapshot);
      expect(chainSegments(kept, snapshot)).toEqual(all);
    }
  });
});

describe('planSegmentRetention, other incarnations (cluster IDs without a kept snapshot)', () => {
  // The oldest kept set was created at T0 + 48 h; the old incarnation was captured until T0 + 40 h.
  const sets = [set('prod-c', 48, { revision: 500, clusterId: LIVE })];
  const cutoffHours = 48 - SEGMENT_TIME_MARGIN_MS / HOUR;

  it('deletes their segments captured before the oldest kept set (less the margin), keeps later ones', () => {
    const old = [seg(OLD, 1, 900, 30), seg(OLD, 901, 950, 40)];
    const late = seg(OLD, 951, 960, cutoffHours + 0.5); // inside the margin: stays
    const p = plan(sets, [...old, late]);
    expect(p.delete).toEqual(old.sort());
    expect(p.chains[0]).toMatchObject({ clusterId: OLD, keep: 1 });
    expect(p.chains[0]!.reason).toMatch(/no kept set has a snapshot of cluster ID 2222.*prod-c/);
  });

  it('revisions of another incarnation are never compared with a kept snapshot of this one', () => {
    // Revisions 1..40 are below the live snapshot's 500, but of another cluster ID and recent: kept.
    const recent = seg(OLD, 1, 40, 50);
    expect(plan(sets, [recent]).delete).toEqual([]);
  });

  it('keeps the live cluster before its first snapshot (a set being written may need it)', () => {
    const fresh = '3333'; // a restore made it at T0 + 60 h; no set of it yet
    expect(plan(sets, [seg(fresh, 480, 520, 60), seg(fresh, 521, 600, 61)]).delete).toEqual([]);
  });

  it('deletes a gap marker once a segment after it goes, keeps one after the last deleted segment', () => {
    const gapBefore = gapKey(CLUSTER, OLD, 10, 20);
    const gapAfter = gapKey(CLUSTER, OLD, 961, 970);
    const p = plan(sets, [gapBefore, seg(OLD, 21, 900, 30), seg(OLD, 901, 960, cutoffHours + 1), gapAfter]);
    expect(p.delete).toEqual([seg(OLD, 21, 900, 30), gapBefore].sort());
  });

  it('handles several chains at once, each by its own rule', () => {
    const keys = [seg(LIVE, 1, 499, 40), seg(LIVE, 500, 510, 49), seg(OLD, 1, 900, 30)];
    const p = plan(sets, keys);
    expect(p.delete).toEqual([seg(LIVE, 1, 499, 40), seg(OLD, 1, 900, 30)].sort());
    expect(p.chains.map((c) => [c.clusterId, c.delete.length, c.keep])).toEqual([
      [LIVE, 1, 1],
      [OLD, 1, 0],
    ]);
  });
});

describe('planSegmentRetention with a backup still running (its set not in the catalog yet)', () => {
  it('keeps everything captured since it started, less the margin, whatever the kept snapshots say', () => {
    // A slow backup started at T0 + 5 h, before the only kept set (T0 + 10 h, revision 100).
    const sets = [set('prod-a', 10, { revision: 100, clusterId: LIVE })];
    const keys = [seg(LIVE, 1, 40, 3), seg(LIVE, 41, 60, 4.5), seg(LIVE, 61, 99, 8), seg(OLD, 1, 900, 3.5), seg(OLD, 901, 950, 4.5)];
    const p = planSegmentRetention({ cluster: CLUSTER, sets, keys, runningBackupSince: new Date(T0 + 5 * HOUR).toISOString() });
    expect(p.delete).toEqual([seg(LIVE, 1, 40, 3), seg(OLD, 1, 900, 3.5)].sort());
    expect(p.chains[0]!.reason).toMatch(
      /nothing captured after 2026-11-20T04:00:00.000Z goes \(a backup running since 2026-11-20T05:00:00.000Z/,
    );
  });

  it('keeps everything when its start is not a time', () => {
    const sets = [set('prod-a', 10, { revision: 100, clusterId: LIVE })];
    expect(planSegmentRetention({ cluster: CLUSTER, sets, keys: [seg(LIVE, 1, 40, 3)], runningBackupSince: 'soon' }).delete).toEqual([]);
  });
});

describe('planSegmentRetention keeps what it cannot be sure of', () => {
  const keys = [seg(LIVE, 1, 99, 5), seg(OLD, 1, 900, 1)];

  it('keeps everything of a cluster with no kept set', () => {
    const p = plan([], keys);
    expect(p.delete).toEqual([]);
    expect(p.chains.every((c) => /everything kept: no set of prod is kept/.test(c.reason))).toBe(true);
  });

  it('keeps everything when a set has no readable time or revision', () => {
    const good = set('prod-a', 10, { revision: 100, clusterId: LIVE });
    expect(plan([good, { setId: 'prod-bad', createdAt: 'yesterday' }], keys).delete).toEqual([]);
    expect(plan([good, set('prod-bad', 20, { revision: Number.NaN, clusterId: LIVE })], keys).chains[0]!.reason).toMatch(
      /prod-bad: snapshot revision "NaN" is not a revision/,
    );
  });

  it('lets a snapshot without a recorded cluster ID protect every chain above its revision', () => {
    const sets = [set('prod-a', 10, { revision: 100, clusterId: LIVE }), set('prod-unknown', 48, { revision: 50, clusterId: null })];
    const old = [seg(OLD, 1, 50, 1), seg(OLD, 51, 900, 2)];
    const live = [seg(LIVE, 1, 50, 3), seg(LIVE, 51, 99, 4)];
    const p = plan(sets, [...old, ...live]);
    // Old incarnation: old enough, but only up to 50 may go. Live chain: floor min(100, 50) = 50.
    expect(p.delete).toEqual([old[0]!, live[0]!].sort());
    expect(p.chains.find((c) => c.clusterId === LIVE)!.reason).toMatch(/prod-unknown at revision 50 \(its manifest records no cluster ID/);
  });

  it('leaves other clusters and keys it does not recognise alone', () => {
    const sets = [set('prod-a', 10, { revision: 100, clusterId: LIVE })];
    const stray = [
      `wal/${CLUSTER}/${LIVE}/notes.txt`,
      `wal/${CLUSTER}/stray.json`,
      `wal/${CLUSTER}/${LIVE}/sub/${seg(LIVE, 1, 2, 1).split('/').pop()}`,
      segmentKey(CLUSTER, LIVE, { from: 9, to: 3, firstMs: T0, lastMs: T0 }, ''),
    ];
    const otherCluster = seg(LIVE, 1, 2, 1, 'prod2'); // wal/prod2/ must not match wal/prod/
    const p = plan(sets, [...stray, otherCluster, seg(LIVE, 1, 2, 1)]);
    expect(p.delete).toEqual([seg(LIVE, 1, 2, 1)]);
    expect(p.unrecognised).toEqual([...stray, otherCluster].sort());
  });
});

describe('deleting segments from a local target', () => {
  let root: string;
  let store: LocalStore;
  const keys = [seg(OLD, 1, 900, 30), gapKey(CLUSTER, OLD, 901, 905), seg(LIVE, 1, 99, 40), seg(LIVE, 100, 200, 50)];

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'nnoe-dr-segments-'));
    store = new LocalStore('local', root);
    for (const [i, key] of keys.entries()) await writeObject(store, key, Buffer.alloc(100 * (i + 1)));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('dry run: reports what would go, with bytes, and deletes nothing', async () => {
    const listed = await listSegmentObjects(store, CLUSTER);
    expect(listed.map((o) => o.key).sort()).toEqual([...keys].sort());
    const doomed = listed.filter((o) => o.key === keys[0] || o.key === keys[2]);
    expect(await deleteSegmentObjects(store, doomed, { dryRun: true })).toEqual({ objects: 2, bytes: 100 + 300 });
    expect((await listSegmentObjects(store, CLUSTER)).map((o) => o.key).sort()).toEqual([...keys].sort());
  });

  it('deletes exactly what it is given, removes a chain directory left empty, and a rerun finds nothing', async () => {
    const doomed = (await listSegmentObjects(store, CLUSTER)).filter((o) => o.key.includes(`/${OLD}/`));
    expect(await deleteSegmentObjects(store, doomed)).toEqual({ objects: 2, bytes: 100 + 200 });
    expect((await listSegmentObjects(store, CLUSTER)).map((o) => o.key).sort()).toEqual([keys[2], keys[3]].sort());
    expect(await readdir(join(root, 'wal', CLUSTER))).toEqual([LIVE]);
    expect((await listSegmentObjects(store, CLUSTER)).filter((o) => o.key.includes(`/${OLD}/`))).toEqual([]); // a retry lists again: nothing
    await deleteSegmentObjects(store, doomed); // a stale list: what is gone already is no error
  });
});

function parse(key: string): SegmentName {
  const clusterId = key.split('/')[2]!;
  const parsed = parseSegmentKey(CLUSTER, clusterId, key);
  if (!parsed) throw new Error(`not a segment key: ${key}`);
  return parsed;
}
