/**
 * Fills etcd with semi-realistic values for benchmarks: 64-512 KiB each (etcd refuses requests
 * over 1.5 MiB), built from 4 KiB blocks that are either random bytes or JSON-ish records, so
 * gzip has real work to do without the data being all noise or all repetition.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import { MiB } from './processes';

export const FILL_PREFIX = 'bench/fill/';
/** Holds how many value bytes earlier fills wrote, so a reused world is only topped up. */
export const FILL_MARKER_KEY = 'bench/fill-bytes';

export interface FillOptions {
  /** Total value bytes wanted under FILL_PREFIX (counting earlier fills). */
  targetBytes: number;
  minValueBytes?: number;
  maxValueBytes?: number;
  /** Share of 4 KiB blocks that are random bytes. */
  randomShare?: number;
  /** Puts in flight at once. */
  concurrency?: number;
  onProgress?: (doneBytes: number, targetBytes: number, elapsedSeconds: number) => void;
}

export interface FillResult {
  /** Bytes written by this call. */
  writtenBytes: number;
  /** Value bytes under FILL_PREFIX now, earlier fills included. */
  totalBytes: number;
  keys: number;
  seconds: number;
}

const BLOCK = 4096;

/** ~1 MiB of newline-separated records that look like what NNOE keeps in etcd. */
function textPool(): Buffer {
  const kinds = ['DnsRecord', 'DhcpLease', 'IpamPrefix', 'ZoneSerial', 'NodeStatus'];
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < MiB; i++) {
    const line = JSON.stringify({
      kind: kinds[i % kinds.length],
      name: `host-${randomInt(100000)}.zone-${i % 37}.nnoe.example`,
      ttl: [60, 300, 3600][i % 3],
      addresses: [`10.${randomInt(256)}.${randomInt(256)}.${randomInt(256)}`],
      labels: { site: `site-${i % 11}`, rack: `r${randomInt(48)}`, managed: true },
      updatedAt: new Date(1_700_000_000_000 + randomInt(1_000_000_000)).toISOString(),
      revision: randomInt(1_000_000),
    });
    lines.push(line);
    size += line.length + 1;
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

export function makeValue(pool: Buffer, bytes: number, randomShare: number): Buffer {
  const value = Buffer.allocUnsafe(bytes);
  for (let offset = 0; offset < bytes; offset += BLOCK) {
    const length = Math.min(BLOCK, bytes - offset);
    if (Math.random() < randomShare) {
      randomBytes(length).copy(value, offset);
    } else {
      const from = randomInt(pool.length - length);
      pool.copy(value, offset, from, from + length);
    }
  }
  return value;
}

/** Value bytes an earlier fill of this cluster wrote (0 if none). */
export async function filledBytes(client: Etcd3): Promise<{ bytes: number; keys: number }> {
  const marker = await client.get(FILL_MARKER_KEY).string();
  if (!marker) return { bytes: 0, keys: 0 };
  const parsed = JSON.parse(marker) as { bytes: number; keys: number };
  return { bytes: parsed.bytes, keys: parsed.keys };
}

/** Tops the fill up to `targetBytes` of values, `concurrency` puts at a time. */
export async function fillEtcd(client: Etcd3, options: FillOptions): Promise<FillResult> {
  const minBytes = options.minValueBytes ?? 64 * 1024;
  const maxBytes = options.maxValueBytes ?? 512 * 1024;
  const randomShare = options.randomShare ?? 0.35;
  const concurrency = options.concurrency ?? 8;
  const started = performance.now();
  const pool = textPool();
  const before = await filledBytes(client);
  let total = before.bytes;
  let keys = before.keys;

  const next = (): { key: string; value: Buffer } | undefined => {
    const remaining = options.targetBytes - total;
    if (remaining <= 0) return undefined;
    const size = Math.min(remaining, minBytes + randomInt(maxBytes - minBytes + 1));
    total += size;
    return { key: `${FILL_PREFIX}${String(keys++).padStart(8, '0')}`, value: makeValue(pool, Math.max(size, 1), randomShare) };
  };

  let done = before.bytes;
  let lastReport = 0;
  const lane = async () => {
    for (let item = next(); item; item = next()) {
      await client.put(item.key).value(item.value);
      done += item.value.length;
      const now = performance.now();
      if (now - lastReport > 2000) {
        lastReport = now;
        options.onProgress?.(done, options.targetBytes, (now - started) / 1000);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  await client.put(FILL_MARKER_KEY).value(JSON.stringify({ bytes: total, keys }));
  const seconds = (performance.now() - started) / 1000;
  options.onProgress?.(done, options.targetBytes, seconds);
  return { writtenBytes: total - before.bytes, totalBytes: total, keys, seconds };
}
