/**
 * Republishing: every key under the agent's five watched prefixes put again with its current value.
 * A real NNOE agent renders only keys put after it started and its watches die with any etcd
 * restart, so after a restore (and after any agent restart) this is what makes it serve etcd's
 * state again. A put of the same value is still an event to every watcher.
 *
 * Guarantees:
 * - a write made meanwhile wins: each put sits in a transaction guarded by the key's mod revision
 *   as read, so a key changed since is left alone (its own write was an event already);
 * - leases are kept (a lease-bound key is put with its lease; a key whose lease has expired is
 *   skipped, it is about to vanish anyway);
 * - exactly once across worker crashes: the run is given `notAfterRevision` (etcd's revision when the
 *   republish began, recorded in workflow history); a key whose mod revision is above it was put by
 *   an earlier attempt (or written by someone since) and is not put again.
 */
import type { Etcd3 } from 'etcd3';
import { AGENT_WATCHED_PREFIXES, watchedPrefix } from './agent-toml';

/** etcd's default --max-txn-ops is 128: a batch's compares and puts each stay below it. */
export const REPUBLISH_BATCH = 100;

export interface PrefixRepublish {
  prefix: string;
  keys: number;
  put: number;
  skippedNewer: number;
  skippedChanged: number;
}
export interface RepublishResult {
  dryRun: boolean;
  notAfterRevision: number;
  prefixes: PrefixRepublish[];
  revision: number;
}

/** The first key after every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all keys
}

interface Kv {
  key: Buffer;
  value: Buffer;
  modRevision: number;
  lease: string;
}

async function* pagesOf(client: Etcd3, prefix: string, atRevision: number): AsyncGenerator<Kv[]> {
  const end = prefixRangeEnd(Buffer.from(prefix));
  let start = Buffer.from(prefix);
  for (;;) {
    // One revision for every page: the listing is a consistent view even while keys change.
    const res = await client.kv.range({ key: start, range_end: end, limit: String(REPUBLISH_BATCH), revision: String(atRevision) });
    const kvs = (res.kvs ?? []).map((kv) => ({
      key: kv.key,
      value: kv.value,
      modRevision: Number(kv.mod_revision),
      lease: String(kv.lease ?? '0'),
    }));
    if (kvs.length > 0) yield kvs;
    if (!res.more || kvs.length === 0) return;
    start = Buffer.concat([kvs[kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

const putOp = (kv: Kv) => ({ request_put: { key: kv.key, value: kv.value, ...(kv.lease !== '0' ? { lease: kv.lease } : {}) } });
const guard = (kv: Kv) => ({ key: kv.key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: String(kv.modRevision) });

/** Puts one batch in a guarded transaction; on a conflict (or a lease gone) falls back to one key at a time. */
async function putBatch(client: Etcd3, batch: Kv[]): Promise<{ put: number; skippedChanged: number }> {
  try {
    const res = await client.kv.txn({ compare: batch.map(guard), success: batch.map(putOp), failure: [] });
    if (res.succeeded) return { put: batch.length, skippedChanged: 0 };
  } catch (err) {
    if (!/lease not found/i.test((err as Error).message)) throw err;
  }
  let put = 0;
  let skippedChanged = 0;
  for (const kv of batch) {
    try {
      const res = await client.kv.txn({ compare: [guard(kv)], success: [putOp(kv)], failure: [] });
      if (res.succeeded) put += 1;
      else skippedChanged += 1;
    } catch (err) {
      if (!/lease not found/i.test((err as Error).message)) throw err;
      skippedChanged += 1;
    }
  }
  return { put, skippedChanged };
}

/**
 * Republishes the watched prefixes below `rootPrefix`. `notAfterRevision` is the revision at which
 * the republish began (see above); `onProgress` is called after each batch (heartbeats).
 */
export async function republishAgentKeys(
  client: Etcd3,
  opts: {
    rootPrefix: string;
    notAfterRevision: number;
    dryRun: boolean;
    onProgress?: (done: PrefixRepublish) => void;
  },
): Promise<RepublishResult> {
  const listedAt = await currentRevision(client);
  const prefixes: PrefixRepublish[] = [];
  for (const sub of AGENT_WATCHED_PREFIXES) {
    const prefix = watchedPrefix(opts.rootPrefix, sub);
    const done: PrefixRepublish = { prefix, keys: 0, put: 0, skippedNewer: 0, skippedChanged: 0 };
    for await (const page of pagesOf(client, prefix, listedAt)) {
      done.keys += page.length;
      const due = page.filter((kv) => kv.modRevision <= opts.notAfterRevision);
      done.skippedNewer += page.length - due.length;
      if (!opts.dryRun && due.length > 0) {
        const r = await putBatch(client, due);
        done.put += r.put;
        done.skippedChanged += r.skippedChanged;
      }
      opts.onProgress?.(done);
    }
    prefixes.push(done);
  }
  return { dryRun: opts.dryRun, notAfterRevision: opts.notAfterRevision, prefixes, revision: await currentRevision(client) };
}

/** etcd's current revision: where a republish begins (recorded by the workflow before it starts). */
export async function currentRevision(client: Etcd3): Promise<number> {
  const res = await client.kv.range({ key: Buffer.from([0]), limit: '1', keys_only: true });
  return Number(res.header?.revision ?? 0);
}
