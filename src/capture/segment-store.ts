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
import { decodeEvents, parseSegmentKey, segmentDir, type CapturedEvent, type SegmentName } from './segments';

/** Reading segments back: listing (which revisions and seconds are reachable) and their events. */
export function segmentStore(config: Config) {
  async function storesFor(targets?: string[]): Promise<BackupStore[]> {
    return Promise.all(findTargets(config, targets).map(openStore));
  }

  /** Segments of a cluster in the first target that answers (targets hold the same segments). */
  async function listSegments(cluster: string, clusterId: string, targets?: string[]): Promise<SegmentName[]> {
    let lastError: unknown;
    for (const store of await storesFor(targets)) {
      try {
        return (await store.list(segmentDir(cluster, clusterId))).map((key) => parseSegmentKey(cluster, clusterId, key)).filter((s): s is SegmentName => s !== null);
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
          if (encrypted && !identity) throw DomainError.nonRetryable('change segments are encrypted and the config names no encryption.identity', FailureType.ConfigError);
          // pipeline, not .pipe(): a read error mid-segment must reach us (and the next copy be tried), not leave the decryptor waiting.
          await pipeline([
            await store.read(segment.key),
            ...(encrypted ? [createDecryptStream(identity!)] : []),
            new Writable({ write: (chunk: Buffer, _enc, done) => { chunks.push(chunk); done(); } }),
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

  return { storesFor, listSegments, readSegmentEvents };
}
