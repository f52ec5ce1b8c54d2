/**
 * The revisions of an etcd snapshot, read from its bbolt file directly (the same on etcd 3.4, 3.5
 * and 3.6, whatever their `snapshot status` prints):
 *
 * - keyRevision: the newest revision in the `key` bucket (what `snapshot status` of 3.4/3.5 calls
 *   "revision": the newest key's);
 * - compactRevision: `meta/finishedCompactRev`, where the last compaction finished;
 * - revision: the larger of the two, which is what a cluster restored from the file reports and
 *   the newest revision it can still answer (etcd's mvcc restore does the same). After a
 *   compaction at the head, the newest key can be far below it: `etcdctl compact 161` on a cluster
 *   whose keys were last written at 10 gives a snapshot a restored cluster reports at 161, and
 *   reads or hashKV at 10 fail with "required revision has been compacted".
 *
 * Only the pages on the path to what is read are read: memory stays flat for a 1 GiB snapshot.
 */
import { open, type FileHandle } from 'node:fs/promises';

export interface SnapshotRevisions {
  keyRevision: number;
  compactRevision: number;
  revision: number;
}

const PAGE_HEADER = 16;
const ELEMENT = 16;
const BRANCH = 0x01;
const LEAF = 0x02;
const META = 0x04;
const BUCKET_LEAF = 0x01;
const MAGIC = 0xed0cdaed;
/** magic, version, pageSize, flags, root{root, sequence}, freelist, pgid, txid: the bytes the checksum covers. */
const META_CHECKSUMMED = 56;

/** A node of a bbolt B+tree: a whole page, or an inline bucket's page inside its parent's value. */
type Page = Buffer;

export async function readSnapshotRevisions(file: string): Promise<SnapshotRevisions> {
  const handle = await open(file, 'r');
  try {
    const reader = new BoltReader(handle, file);
    const root = await reader.rootBucket();
    const keyBucket = await reader.bucketPage(root, Buffer.from('key'));
    const metaBucket = await reader.bucketPage(root, Buffer.from('meta'));
    const newestKey = keyBucket ? await reader.lastKey(keyBucket) : null;
    const compacted = metaBucket ? await reader.get(metaBucket, Buffer.from('finishedCompactRev')) : null;
    const keyRevision = newestKey ? mainRevision(newestKey, file) : 0;
    const compactRevision = compacted ? mainRevision(compacted, file) : 0;
    return { keyRevision, compactRevision, revision: Math.max(keyRevision, compactRevision) };
  } finally {
    await handle.close();
  }
}

/** etcd's revision bytes: 8-byte big-endian main revision, `_`, 8-byte sub revision (a `t` may follow for a tombstone). */
function mainRevision(bytes: Buffer, file: string): number {
  if (bytes.length < 17) throw new Error(`${file}: "${bytes.toString('hex')}" is not an etcd revision`);
  return Number(bytes.readBigUInt64BE(0));
}

class BoltReader {
  private pageSize = 4096;

  constructor(
    private readonly handle: FileHandle,
    private readonly file: string,
  ) {}

  private async readAt(offset: number, length: number): Promise<Buffer> {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await this.handle.read(buffer, 0, length, offset);
    if (bytesRead < length) throw new Error(`${this.file} is truncated: ${length} bytes wanted at offset ${offset}, ${bytesRead} there`);
    return buffer;
  }

  /** The page of the root bucket, from the newer of the two meta pages that is intact. */
  async rootBucket(): Promise<Page> {
    const first = await this.readAt(0, 4096);
    const metas = [readMeta(first)];
    if (metas[0]) this.pageSize = metas[0].pageSize;
    metas.push(readMeta(await this.readAt(this.pageSize, 4096)));
    const meta = metas.filter((m): m is NonNullable<typeof m> => m !== null).sort((a, b) => Number(b.txid - a.txid))[0];
    if (!meta) throw new Error(`${this.file} is not a bbolt database (no valid meta page)`);
    this.pageSize = meta.pageSize;
    return this.page(meta.root);
  }

  private async page(id: bigint): Promise<Page> {
    const offset = Number(id) * this.pageSize;
    const head = await this.readAt(offset, this.pageSize);
    const overflow = head.readUInt32LE(12);
    return overflow === 0 ? head : this.readAt(offset, (overflow + 1) * this.pageSize);
  }

  /** The root page of a sub-bucket of `parent`, or null when it has none by that name. */
  async bucketPage(parent: Page, name: Buffer): Promise<Page | null> {
    const found = await this.find(parent, name);
    if (!found || !(found.flags & BUCKET_LEAF)) return null;
    const root = found.value.readBigUInt64LE(0);
    return root === 0n ? found.value.subarray(16) : this.page(root);
  }

  /** A plain value of a bucket, or null. */
  async get(bucket: Page, key: Buffer): Promise<Buffer | null> {
    const found = await this.find(bucket, key);
    return found && !(found.flags & BUCKET_LEAF) ? found.value : null;
  }

  private async find(node: Page, key: Buffer): Promise<{ flags: number; value: Buffer } | null> {
    for (;;) {
      const flags = node.readUInt16LE(8);
      const count = node.readUInt16LE(10);
      if (flags & LEAF) {
        for (let i = 0; i < count; i++) {
          const e = leafElement(node, i);
          if (e.key.equals(key)) return { flags: e.flags, value: e.value };
        }
        return null;
      }
      if (!(flags & BRANCH)) throw new Error(`${this.file}: page of unexpected kind ${flags} in a bucket`);
      // The last child whose first key is at or before the key.
      let child = branchElement(node, 0).pgid;
      for (let i = 1; i < count; i++) {
        const e = branchElement(node, i);
        if (Buffer.compare(e.key, key) > 0) break;
        child = e.pgid;
      }
      node = await this.page(child);
    }
  }

  /** The largest key of a bucket (keys are sorted), or null when it is empty. */
  async lastKey(node: Page): Promise<Buffer | null> {
    for (;;) {
      const flags = node.readUInt16LE(8);
      const count = node.readUInt16LE(10);
      if (count === 0) return null;
      if (flags & LEAF) return leafElement(node, count - 1).key;
      if (!(flags & BRANCH)) throw new Error(`${this.file}: page of unexpected kind ${flags} in a bucket`);
      node = await this.page(branchElement(node, count - 1).pgid);
    }
  }
}

function readMeta(page: Buffer): { pageSize: number; root: bigint; txid: bigint } | null {
  if (!(page.readUInt16LE(8) & META)) return null;
  const meta = page.subarray(PAGE_HEADER);
  if (meta.readUInt32LE(0) !== MAGIC) return null;
  if (meta.readBigUInt64LE(META_CHECKSUMMED) !== fnv64a(meta.subarray(0, META_CHECKSUMMED))) return null;
  return { pageSize: meta.readUInt32LE(8), root: meta.readBigUInt64LE(16), txid: meta.readBigUInt64LE(48) };
}

function leafElement(page: Page, i: number): { flags: number; key: Buffer; value: Buffer } {
  const at = PAGE_HEADER + i * ELEMENT;
  const start = at + page.readUInt32LE(at + 4);
  const ksize = page.readUInt32LE(at + 8);
  const vsize = page.readUInt32LE(at + 12);
  return {
    flags: page.readUInt32LE(at),
    key: page.subarray(start, start + ksize),
    value: page.subarray(start + ksize, start + ksize + vsize),
  };
}

function branchElement(page: Page, i: number): { key: Buffer; pgid: bigint } {
  const at = PAGE_HEADER + i * ELEMENT;
  const start = at + page.readUInt32LE(at);
  return { key: page.subarray(start, start + page.readUInt32LE(at + 4)), pgid: page.readBigUInt64LE(at + 8) };
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

function fnv64a(bytes: Buffer): bigint {
  let hash = FNV_OFFSET;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & U64;
  return hash;
}

/**
 * Whether a snapshot file is the one a manifest recorded at `recorded`: its restored revision, or
 * (sets written before the compaction point was recorded) its newest key's.
 */
export function recordedRevisionMatches(recorded: number, seen: SnapshotRevisions): boolean {
  return recorded === seen.revision || recorded === seen.keyRevision;
}
