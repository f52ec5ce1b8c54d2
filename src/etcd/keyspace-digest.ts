/**
 * A digest of a keyspace's content at one revision: every live key with its value and lease, in
 * key order. Revisions (create/mod/version) are left out, so a restored cluster, bumped or not,
 * digests like its snapshot's source did at the snapshot revision: equal digests mean equal
 * content key for key. HashKV cannot say that after a bumped restore (it hashes revisions too,
 * and the snapshot revision is compacted away there).
 */
import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';

export interface KeyspaceDigest {
  /** sha256 (hex) over each live key's length-framed key, value and lease id, in key order. */
  sha256: string;
  keys: number;
}

const PAGE = 1000;

function framed(bytes: Buffer): Buffer[] {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return [length, bytes];
}

/** Reads the whole keyspace at `revision` in pages (fails, like any read, when that revision is compacted). */
export async function keyspaceDigest(client: Etcd3, revision: number): Promise<KeyspaceDigest> {
  const hash = createHash('sha256');
  let keys = 0;
  let from = Buffer.from([0]);
  for (;;) {
    const page = await client.kv.range({ key: from, range_end: Buffer.from([0]), revision: String(revision), limit: String(PAGE) });
    for (const kv of page.kvs) {
      for (const part of [kv.key, kv.value, Buffer.from(String(kv.lease ?? '0'))]) for (const piece of framed(part)) hash.update(piece);
      keys++;
    }
    if (!page.more || page.kvs.length === 0) return { sha256: hash.digest('hex'), keys };
    from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

/** Where two digests differ, in words; undefined when equal. */
export function keyspaceDigestDifference(expected: KeyspaceDigest, actual: KeyspaceDigest): string | undefined {
  if (expected.sha256 === actual.sha256 && expected.keys === actual.keys) return undefined;
  return `content differs from the snapshot's: ${actual.keys} keys (sha256 ${actual.sha256.slice(0, 12)}) where the backup read ${expected.keys} (sha256 ${expected.sha256.slice(0, 12)})`;
}
