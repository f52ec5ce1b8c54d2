/**
 * Reading change-capture segments back from the stores (PITR's time resolution and replay, and
 * the capture's own resume): listing which revisions and seconds are reachable, and the events
 * of some segments, decrypted and in order. A target that cannot give a segment back is passed
 * over for the next: a restore must work with a target down.
 */
import { gunzipSync } from 'node:zlib';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config/schema';
import { findTargets } from '../config/load';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { openStore, type BackupStore } from '../storage';
import { createDecryptStream, readDecryptionIdentity } from '../crypto';
import { decodeEvents, parseSegmentKey, segmentDir, segmentListingStart, type CapturedEvent, type SegmentName } from './segments';

/** Reading segments back: listing (which revisions and seconds are reachable) and their events. */
export function segmentStore(config: Config) {
  async function storesFor(targets?: string[]): Promise<BackupStore[]> {
    return Promise.all(findTargets(config, targets).map(openStore));
  }

  /** Segments of a cluster in the first target that answers (targets hold the same segments). */
  async function listSegments(cluster: string, clusterId: string, targets?: string[]): Promise<SegmentName[]> {
    return fromFirstAnswering(targets, async (store) =>
      parsedSegments(cluster, clusterId, await store.list(segmentDir(cluster, clusterId))),
    );
  }

  /**
   * What chainSegments(all, after) needs, without listing the whole chain: the segments from the
   * one holding revision after + 1 on, in revision order (keys sort by revision), up to the page
   * where `enough` first holds for a segment. A replay from a snapshot lists only what follows it.
   */
  async function listSegmentsAfter(
    cluster: string,
    clusterId: string,
    after: number,
    options: { targets?: string[]; enough?: (s: SegmentName) => boolean } = {},
  ): Promise<SegmentName[]> {
    return fromFirstAnswering(options.targets, async (store) => {
      const from = await listingStartFor(store, cluster, clusterId, after + 1);
      const found: SegmentName[] = [];
      for await (const page of store.listInOrder(segmentDir(cluster, clusterId), segmentListingStart(cluster, clusterId, from))) {
        const segments = parsedSegments(cluster, clusterId, page);
        found.push(...segments);
        if (options.enough && segments.some(options.enough)) break;
      }
      return found;
    });
  }

  async function fromFirstAnswering<T>(targets: string[] | undefined, read: (store: BackupStore) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (const store of await storesFor(targets)) {
      try {
        return await read(store);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError ?? new Error('no storage target');
  }

  /** The events of some segments, decrypted and in order (used by PITR replay and time resolution). */
  async function readSegmentEvents(segments: SegmentName[], targets?: string[]): Promise<CapturedEvent[]> {
    const identity = config.encryption?.identity ? await readDecryptionIdentity(config.encryption.identity) : null;
    const events: CapturedEvent[] = [];
    const stores = await storesFor(targets);
    for (const segment of segments) {
      // The first target that can give this segment back: a restore must work with a target down.
      let lastError: unknown;
      let text: string | null = null;
      for (const store of stores) {
        try {
          const chunks: Buffer[] = [];
          const encrypted = segment.key.endsWith('.age');
          if (encrypted && !identity)
            throw DomainError.nonRetryable(
              'change segments are encrypted and the config names no encryption.identity',
              FailureType.ConfigError,
            );
          // pipeline, not .pipe(): a read error mid-segment must reach us (and the next copy be tried), not leave the decryptor waiting.
          await pipeline([
            await store.read(segment.key),
            ...(encrypted ? [createDecryptStream(identity!)] : []),
            new Writable({
              write: (chunk: Buffer, _enc, done) => {
                chunks.push(chunk);
                done();
              },
            }),
          ]);
          text = gunzipSync(Buffer.concat(chunks)).toString('utf8');
          break;
        } catch (err) {
          if (err instanceof DomainError) throw err;
          lastError = err;
        }
      }
      if (text === null) throw lastError ?? new Error(`segment ${segment.key} is in no target`);
      events.push(...decodeEvents(text));
    }
    return events;
  }

  return { storesFor, listSegments, listSegmentsAfter, readSegmentEvents };
}

function parsedSegments(cluster: string, clusterId: string, keys: string[]): SegmentName[] {
  return keys.map((key) => parseSegmentKey(cluster, clusterId, key)).filter((s): s is SegmentName => s !== null);
}

/**
 * The revision a listing for revision `revision` on may start at: the start of the last segment
 * beginning at or before it (the one holding it, when the chain has no hole there), found by
 * probing ever wider windows below it, one short listing each. Segments of a chain do not overlap
 * (a crashed writer's retry starts where the last durable segment ended), so none starting earlier
 * reaches further. `revision` itself when no segment starts at or before it.
 */
async function listingStartFor(store: BackupStore, cluster: string, clusterId: string, revision: number): Promise<number> {
  for (let window = 1024; ; window *= 16) {
    const low = Math.max(revision - window, 0);
    let start: number | null = null;
    for await (const page of store.listInOrder(segmentDir(cluster, clusterId), segmentListingStart(cluster, clusterId, low))) {
      const segments = parsedSegments(cluster, clusterId, page);
      for (const segment of segments) if (segment.from <= revision) start = segment.from;
      const last = segments[segments.length - 1];
      // Gap markers sort after every segment: a page holding one has shown the last segment.
      if (!last || last.from > revision || segments.length < page.length) break;
    }
    if (start !== null) return start;
    if (low === 0) return revision;
  }
}
