/**
 * The catalog lists one level of each store (a delimiter listing) instead of every key: it must
 * find exactly the sets the full walk found (several components, sets in one target only, a set
 * still being written, a rekey's sub-directory, wal/ beside them), in a local directory and in S3
 * (a moto server of this file's own), with `backups list` printing what it printed before. A
 * point-in-time plan lists segments from its snapshot on: the chain it builds must equal the one
 * built from the whole listing.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { listBackupSets } from '../../src/catalog/catalog';
import { MANIFEST_FILE, openStore, type BackupStore } from '../../src/storage';
import { segmentStore } from '../../src/capture/segment-store';
import { chainSegments, gapKey, segmentKey } from '../../src/capture/segments';
import { startMotoServer, type MotoServer } from '../../src/sandbox/moto';
import { main } from '../../src/client/cli';
import { syntheticSet } from '../../bench/catalog/synthetic';
import { writeObject } from '../support/objects';

const BUCKET = 'nnoe-dr-catalog-listing';
let dir: string;
let moto: MotoServer;
let config: Config;
let configPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'catalog-listing-'));
  moto = await startMotoServer([BUCKET]);
  process.env.CATALOG_TEST_S3_KEY = 'testing';
  const raw = {
    workDir: join(dir, 'work'),
    clusters: [
      {
        name: 'prod',
        etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
      },
    ],
    storage: [
      { name: 'local', type: 'local', path: join(dir, 'local') },
      // A prefix: keys in the bucket are <prefix><key>, and listings must cut it off again.
      {
        name: 's3',
        type: 's3',
        bucket: BUCKET,
        prefix: 'site-a/',
        endpoint: moto.endpoint,
        forcePathStyle: true,
        accessKeyId: { env: 'CATALOG_TEST_S3_KEY' },
        secretAccessKey: { env: 'CATALOG_TEST_S3_KEY' },
      },
    ],
  };
  config = parseConfig(raw);
  configPath = join(dir, 'nnoe-dr.json');
  await writeFile(configPath, JSON.stringify(raw));
}, 60_000);

afterAll(async () => {
  await moto?.stop();
  await rm(dir, { recursive: true, force: true });
});

const stores = async () => ({ local: await openStore(config.storage[0]!), s3: await openStore(config.storage[1]!) });

async function putSet(store: BackupStore, set: ReturnType<typeof syntheticSet>, options: { withManifest?: boolean } = {}): Promise<void> {
  for (const key of set.keys) {
    if (key.endsWith(`/${MANIFEST_FILE}`)) {
      if (options.withManifest !== false) await writeObject(store, key, JSON.stringify(set.manifest));
    } else {
      await writeObject(store, key, 'x');
    }
  }
}

/** The catalog's way before the delimiter listing: every key of the store, those ending in /manifest.json. */
async function setIdsByFullWalk(store: BackupStore): Promise<string[]> {
  return (await store.list())
    .filter((k) => k.endsWith(`/${MANIFEST_FILE}`))
    .map((k) => k.slice(0, -MANIFEST_FILE.length - 1))
    .sort();
}

describe('the catalog lists one level', () => {
  const full = syntheticSet('prod', new Date('2026-12-01T06:00:00Z'), { revision: 1200, clusterId: 'c1' });
  const etcdOnly = syntheticSet('prod', new Date('2026-12-02T06:00:00Z'), {
    revision: 1500,
    clusterId: 'c1',
    status: 'partial',
    components: ['etcd'],
  });
  const localOnly = syntheticSet('lab', new Date('2026-12-03T06:00:00Z'), {
    revision: 40,
    clusterId: 'c9',
    components: ['etcd', 'phpipam'],
  });
  const writing = syntheticSet('prod', new Date('2026-12-04T06:00:00Z'), { revision: 1900, clusterId: 'c1' });

  beforeAll(async () => {
    const { local, s3 } = await stores();
    for (const store of [local, s3]) {
      await putSet(store, full);
      await putSet(store, etcdOnly);
      await putSet(store, writing, { withManifest: false }); // a backup still writing: no manifest yet
      await writeObject(store, `${full.setId}/rekey-0123456789ab/agent-cache-node-1.tar.gz.age`, 'x'); // a rekey's sub-directory
      for (let i = 0; i < 30; i++)
        await writeObject(store, segmentKey('prod', 'c1', { from: 1001 + i * 10, to: 1010 + i * 10, firstMs: i, lastMs: i }, ''), 'x');
      await writeObject(store, gapKey('prod', 'c1', 1, 1000), '{}');
      await writeObject(store, 'README.txt', 'not a set');
    }
    await putSet(local, localOnly);
  }, 60_000);

  it('finds in each store exactly the sets the full walk found', async () => {
    const { local, s3 } = await stores();
    for (const store of [local, s3]) {
      const level = await store.listLevel('');
      expect(level.keys).toEqual(['README.txt']);
      expect(level.prefixes).toContain('wal/');
      const listed = (await listBackupSets(config, { targets: [store.name] })).map((s) => s.setId).sort();
      expect(listed).toEqual(await setIdsByFullWalk(store));
    }
    expect((await s3.listLevel('wal/prod/')).prefixes).toEqual(['wal/prod/c1/']);
  });

  it('merges the targets as before: clusters, components, status, size, copies', async () => {
    const entries = (await listBackupSets(config)).map(({ manifest: _m, ...entry }) => entry);
    expect(entries).toEqual([
      {
        setId: localOnly.setId,
        cluster: 'lab',
        status: 'complete',
        createdAt: '2026-12-03T06:00:00.000Z',
        components: ['etcd', 'phpipam'],
        targets: ['local'],
        bytes: 2033,
      },
      {
        setId: etcdOnly.setId,
        cluster: 'prod',
        status: 'partial',
        createdAt: '2026-12-02T06:00:00.000Z',
        components: ['etcd'],
        targets: ['local', 's3'],
        bytes: 1019,
      },
      {
        setId: full.setId,
        cluster: 'prod',
        status: 'complete',
        createdAt: '2026-12-01T06:00:00.000Z',
        components: ['etcd', 'phpipam', 'agent-cache'],
        targets: ['local', 's3'],
        bytes: 3058,
      },
    ]);
    expect((await listBackupSets(config, { cluster: 'prod', targets: ['s3'] })).map((s) => s.setId)).toEqual([etcdOnly.setId, full.setId]);
  });

  it('`backups list` prints what it printed before', async () => {
    const lines: string[] = [];
    expect(
      await main(
        ['-c', configPath, 'backups', 'list'],
        (line) => lines.push(line),
        (line) => lines.push(line),
      ),
    ).toBe(0);
    expect(lines.join('\n')).toBe(
      [
        'SET\tSTATUS\tCREATED\tCOMPONENTS\tSIZE\tTARGETS',
        `${localOnly.setId}\tcomplete\t2026-12-03T06:00:00.000Z\tetcd,phpipam\t2.0 KiB\tlocal`,
        `${etcdOnly.setId}\tpartial\t2026-12-02T06:00:00.000Z\tetcd\t1019 B\tlocal,s3`,
        `${full.setId}\tcomplete\t2026-12-01T06:00:00.000Z\tetcd,phpipam,agent-cache\t3.0 KiB\tlocal,s3`,
      ].join('\n'),
    );
  });

  it('refuses a level that is not one', async () => {
    const { local, s3 } = await stores();
    for (const store of [local, s3]) await expect(store.listLevel('wal')).rejects.toThrow(/prefix ending in '\/', got "wal"/);
  });
});

describe('`backups list` into a pipe', () => {
  it('prints every set before the process exits (it used to stop after ~18 KB with Node 24)', async () => {
    const root = join(dir, 'many');
    const sets = Array.from({ length: 400 }, (_, i) =>
      syntheticSet('prod', new Date(Date.UTC(2026, 0, 1) + i * 3600_000), { revision: i, clusterId: 'c1' }),
    );
    for (const set of sets) {
      await mkdir(join(root, set.setId), { recursive: true });
      await writeFile(join(root, set.setId, MANIFEST_FILE), JSON.stringify(set.manifest));
    }
    const many = join(dir, 'many.json');
    await writeFile(
      many,
      JSON.stringify({
        workDir: join(dir, 'work'),
        clusters: [
          {
            name: 'prod',
            etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
          },
        ],
        storage: [{ name: 'many', type: 'local', path: root }],
      }),
    );
    const cli = spawnSync(
      process.execPath,
      [join(__dirname, '../../node_modules/tsx/dist/cli.mjs'), join(__dirname, '../../src/client/cli.ts'), '-c', many, 'backups', 'list'],
      { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
    );
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout.split('\n').filter((line) => line.startsWith('prod-'))).toHaveLength(400);
  });
});

describe('a point-in-time plan lists the segments from its snapshot on', () => {
  // Chain of incarnation c2: mostly 10-revision segments, one of 5000 (a burst: the start is found
  // below a wide window), a retried duplicate, a hole at 20001..20010, more than a page after it, a gap marker.
  const ranges: Array<{ from: number; to: number }> = [];
  for (let from = 101; from < 3101; from += 10) ranges.push({ from, to: from + 9 });
  ranges.push({ from: 3101, to: 8100 });
  for (let from = 8101; from < 20001; from += 100) ranges.push({ from, to: from + 99 });
  ranges.push({ from: 8101, to: 8150 }); // a crashed writer's retry wrote a shorter one at the same start
  for (let from = 20011; from < 30011; from += 10) ranges.push({ from, to: from + 9 });

  beforeAll(async () => {
    const { local, s3 } = await stores();
    for (const store of [local, s3]) {
      for (let i = 0; i < ranges.length; i += 32) {
        await Promise.all(
          ranges
            .slice(i, i + 32)
            .map((r, j) => writeObject(store, segmentKey('prod', 'c2', { ...r, firstMs: i + j, lastMs: i + j }, ''), 'x')),
        );
      }
      await writeObject(store, gapKey('prod', 'c2', 1, 100), '{}');
    }
  }, 120_000);

  // Every kind of start on the local target; on S3 (slower to list) one of each of the main kinds.
  it.each([
    [
      'local',
      [
        0, 50, 100, 101, 105, 110, 3099, 3100, 3101, 5000, 8100, 8101, 8120, 8150, 12_345, 20_000, 20_005, 20_010, 20_100, 25_000, 30_005,
        30_010, 40_000,
      ],
    ],
    ['s3', [0, 105, 5000, 8120, 20_005, 30_010]],
  ])('chains from every kind of start exactly as the whole listing does (%s)', async (target, starts) => {
    const segments = segmentStore(config);
    const all = await segments.listSegments('prod', 'c2', [target]);
    for (const after of starts) {
      const listed = await segments.listSegmentsAfter('prod', 'c2', after, { targets: [target] });
      expect(chainSegments(listed, after), `after ${after}`).toEqual(chainSegments(all, after));
      expect(listed.length, `after ${after}: listed only from the snapshot on`).toBeLessThanOrEqual(
        all.filter((s) => s.to > after).length + 1,
      );
    }
  });

  it('stops listing once a page reaches past the target', async () => {
    const listed = await segmentStore(config).listSegmentsAfter('prod', 'c2', 105, { targets: ['s3'], enough: (s) => s.from > 400 });
    expect((await segmentStore(config).listSegments('prod', 'c2', ['s3'])).length).toBeGreaterThan(1400);
    expect(listed.length).toBe(1000); // the first page only
    expect(chainSegments(listed, 105).reachable).toBeGreaterThan(400);
  });
});
