/**
 * Revisions of a snapshot after a compaction at the head (src/etcd/snapshot-revisions.ts, hashKVAt
 * in src/etcd/connect.ts), on a real one-member etcd: the snapshot's newest key is far below the
 * cluster's revision, a cluster restored from it reports the compaction revision, and hashKV at
 * that revision answers without anything being written.
 */
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { readSnapshotRevisions } from '../../src/etcd/snapshot-revisions';
import { readSnapshotStatus } from '../../src/etcd/snapshot-file';
import { startScratchEtcd } from '../../src/etcd/scratch';
import { hashKVAt } from '../../src/etcd/connect';
import { freePort } from '../../src/sandbox/ports';

const execFileAsync = promisify(execFile);

let dir: string;
let stopEtcd: () => Promise<void>;
let client: Etcd3;
let clientUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapshot-revisions-'));
  const [cp, pp] = [await freePort(), await freePort()];
  clientUrl = `http://127.0.0.1:${cp}`;
  const peerUrl = `http://127.0.0.1:${pp}`;
  const child = spawn(
    'etcd',
    [
      '--name',
      'one',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `one=${peerUrl}`,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  stopEtcd = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  client = new Etcd3({ hosts: clientUrl });
  for (let i = 0; i < 100; i++) {
    try {
      await client.maintenance.status();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}, 60_000);

afterAll(async () => {
  client?.close();
  await stopEtcd?.();
  await rm(dir, { recursive: true, force: true });
});

describe('snapshot revisions after a compaction at the head', () => {
  it('records the compaction revision, which a restored cluster reports and can hash', async () => {
    // Enough keys for a multi-page key bucket (branch pages), then rewrites of one key, deletes, a compaction at the head.
    for (let i = 0; i < 600; i++) await client.put(`/bulk/key-${String(i).padStart(4, '0')}`).value('x'.repeat(200));
    const newestKey = Number((await client.put('/kept').value('v').exec()).header.revision);
    for (let i = 0; i < 50; i++) await client.put('/churn').value(String(i));
    await client.delete().key('/churn');
    const head = Number((await client.maintenance.status()).header.revision);
    await client.kv.compact({ revision: String(head), physical: true });
    await client.maintenance.defragment();
    expect(head).toBeGreaterThan(newestKey + 50);

    const file = join(dir, 'snapshot.db');
    await execFileAsync('etcdctl', ['--endpoints', clientUrl, 'snapshot', 'save', file], { env: { ...process.env, ETCDCTL_API: '3' } });
    const revisions = await readSnapshotRevisions(file);
    expect(revisions).toEqual({ keyRevision: newestKey, compactRevision: head, revision: head });
    // What the offline tool of this etcd calls the revision is one of the two (3.4/3.5: the newest key's).
    expect([revisions.keyRevision, revisions.revision]).toContain((await readSnapshotStatus(file)).revision);

    const scratch = await startScratchEtcd(file, join(dir, 'scratch'));
    try {
      const restored = scratch.client();
      expect(Number((await restored.maintenance.status()).header.revision)).toBe(revisions.revision);
      // etcd refuses hashKV at the compaction point; the current revision is that point, so it is hashed.
      const hash = await hashKVAt(restored, revisions.revision);
      expect(Number(hash.revision)).toBe(head);
      expect(hash.hash).toBe((await hashKVAt(client, head)).hash);
    } finally {
      await scratch.stop();
    }
  }, 120_000);

  it('reads an uncompacted snapshot: no compaction revision, the newest key is the revision', async () => {
    const rev = Number((await client.put('/after').value('x').exec()).header.revision);
    const file = join(dir, 'snapshot-2.db');
    await execFileAsync('etcdctl', ['--endpoints', clientUrl, 'snapshot', 'save', file], { env: { ...process.env, ETCDCTL_API: '3' } });
    const revisions = await readSnapshotRevisions(file);
    expect(revisions.keyRevision).toBe(rev);
    expect(revisions.revision).toBe(rev);
  }, 60_000);
});
