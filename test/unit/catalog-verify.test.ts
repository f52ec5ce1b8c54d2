/**
 * Reading artefacts back from local targets (no world): `backups verify` of a full set checks each
 * artefact by its kind (the etcd trailer only on the snapshot, the completion line on the dump), and
 * segment replay fails over to the next copy when one cannot be read mid-stream (the decryptor
 * used to wait forever for a source that had failed).
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { verifyBackupSet } from '../../src/catalog/catalog';
import type { ArtefactRecord, BackupManifest, ComponentRecord } from '../../src/common/manifest';
import { segmentStore } from '../../src/capture/segment-store';
import { encodeEvents, segmentKey, type CapturedEvent } from '../../src/capture/segments';
import { createEncryptStream, generateIdentity } from '../../src/crypto';
import { LocalStore } from '../../src/storage/local';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'catalog-verify-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function configFor(targets: string[], encryption?: { recipient: string; identityFile: string }): Config {
  return parseConfig({
    workDir: join(dir, 'work'),
    clusters: [
      {
        name: 'prod',
        etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
      },
    ],
    storage: targets.map((t) => ({ name: t, type: 'local', path: join(dir, t) })),
    ...(encryption ? { encryption: { recipients: [encryption.recipient], identity: { file: encryption.identityFile } } } : {}),
  });
}

async function writeArtefact(root: string, setId: string, file: string, raw: Buffer): Promise<ArtefactRecord> {
  const stored = gzipSync(raw);
  await mkdir(join(root, setId), { recursive: true });
  await writeFile(join(root, setId, file), stored);
  return {
    file,
    key: `${setId}/${file}`,
    compression: 'gzip',
    encryption: null,
    bytes: stored.length,
    sha256: sha(stored),
    raw: { bytes: raw.length, sha256: sha(raw) },
    copies: [],
  };
}

describe('backups verify', () => {
  it('passes a full set (snapshot, phpIPAM dump, agent cache, Nebula) and fails a cut-short dump', async () => {
    const root = join(dir, 'local');
    const setId = 'prod-20261204-120000';
    const body = Buffer.alloc(1024, 7); // bbolt pages are 512-byte multiples; etcd appends the body's sha256
    const snapshot = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const dumpText = '-- MariaDB dump\nCREATE TABLE `ipaddresses` (id int);\n-- Dump completed on 2026-12-04 12:00:00\n';
    const record = (component: string, artefacts: ArtefactRecord[]) =>
      ({ component, status: 'ok', artefacts, facts: {}, startedAt: '', finishedAt: '' }) as unknown as ComponentRecord;
    const components = [
      record('etcd', [await writeArtefact(root, setId, 'etcd-snapshot.db.gz', snapshot)]),
      record('phpipam', [await writeArtefact(root, setId, 'phpipam.sql.gz', Buffer.from(dumpText))]),
      record('agent-cache', [await writeArtefact(root, setId, 'node-node-1.tar.gz', Buffer.from('a tar archive, no trailer'))]),
      record('nebula', [await writeArtefact(root, setId, 'nebula-node-1.tar.gz', Buffer.from('another archive'))]),
    ];
    const manifest = {
      formatVersion: 1,
      tool: 'nnoe-dr',
      setId,
      cluster: 'prod',
      status: 'complete',
      createdAt: '2026-12-04T12:00:00Z',
      completedAt: '',
      workflow: { workflowId: 'w', runId: 'r' },
      components,
      failures: [],
    } as unknown as BackupManifest;
    await writeFile(join(root, setId, 'manifest.json'), JSON.stringify(manifest));

    const report = await verifyBackupSet(configFor(['local']), setId);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.map((c) => c.file)).toEqual([
      'etcd-snapshot.db.gz',
      'phpipam.sql.gz',
      'node-node-1.tar.gz',
      'nebula-node-1.tar.gz',
    ]);
    expect(report.ok).toBe(true);

    // A dump without its completion line (with matching hashes) is a cut-short dump.
    const cut = Buffer.from('-- MariaDB dump\nCREATE TABLE `ipaddresses` (id int);\n');
    components[1] = record('phpipam', [await writeArtefact(root, setId, 'phpipam.sql.gz', cut)]);
    await writeFile(join(root, setId, 'manifest.json'), JSON.stringify({ ...manifest, components }));
    const cutReport = await verifyBackupSet(configFor(['local']), setId);
    expect(cutReport.ok).toBe(false);
    expect(cutReport.checks.find((c) => c.file === 'phpipam.sql.gz')?.problems).toEqual([
      'dump does not end with "-- Dump completed": it was cut short',
    ]);
  });
});

describe('segment replay', () => {
  it('fails over to the next copy when the first cannot be read mid-stream', async () => {
    const { identity, recipient } = await generateIdentity();
    const identityFile = join(dir, 'age-identity.txt');
    await writeFile(identityFile, `${identity}\n`, { mode: 0o600 });
    const config = configFor(['broken', 'good'], { recipient, identityFile });
    const events: CapturedEvent[] = [
      { rev: 5, type: 'put', key: Buffer.from('/k').toString('base64'), value: Buffer.from('v').toString('base64'), ms: 1000 },
    ];
    const key = segmentKey('prod', '42', { from: 5, to: 5, firstMs: 1000, lastMs: 1000 }, '.age');
    await mkdir(join(dir, 'good', ...key.split('/').slice(0, -1)), { recursive: true });
    await pipeline(
      Readable.from([gzipSync(encodeEvents(events))]),
      createEncryptStream([recipient]),
      createWriteStream(join(dir, 'good', key)),
    );
    // The first target's copy gives its first bytes, then a read error (a disk or network failing mid-segment).
    await mkdir(join(dir, 'broken', ...key.split('/').slice(0, -1)), { recursive: true });
    await copyFile(join(dir, 'good', key), join(dir, 'broken', key));
    const realRead = LocalStore.prototype.read;
    vi.spyOn(LocalStore.prototype, 'read').mockImplementation(async function (this: LocalStore, k: string) {
      if (this.name !== 'broken') return realRead.call(this, k);
      const head = (await readFile(this.location(k))).subarray(0, 40);
      let sent = false;
      return new Readable({
        read() {
          if (sent) {
            this.destroy(new Error('EIO: i/o error, read'));
            return;
          }
          sent = true;
          this.push(head);
        },
      }) as unknown as ReturnType<typeof realRead> extends Promise<infer R> ? R : never;
    });

    const store = segmentStore(config);
    const [segment] = await store.listSegments('prod', '42', ['good']);
    const read = store.readSegmentEvents([segment!]);
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('readSegmentEvents hung on the broken copy')), 10_000));
    try {
      expect(await Promise.race([read, timeout])).toEqual(events);
    } finally {
      vi.restoreAllMocks();
    }
  }, 20_000);
});
