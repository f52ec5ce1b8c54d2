/**
 * Change capture: watch etcd from a revision with a long-running activity and make every event
 * durable in every target within `flushMs`, as segments named by the revisions they cover (see
 * src/capture/segments.ts). The last durable revision is heartbeated AND readable from the segment
 * names, so a retry after a worker crash resumes exactly after the last durable segment: no event
 * lost, none written twice.
 */
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Context } from '@temporalio/activity';
import type { Etcd3, IWatchResponse } from 'etcd3';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { FailureType } from '../common/failures';
import { connectCluster } from '../etcd/connect';
import { publishToStores } from '../storage';
import { chainSegments, encodeEvents, gapKey, segmentKey, type CapturedEvent } from '../capture/segments';
import { segmentStore } from '../capture/segment-store';
import { listBackupSets } from '../catalog/catalog';
import { artefactEncryption } from './artefact-encryption';
import { DomainError, errorMessage } from '../common/domain-errors';

export interface CaptureInput {
  cluster: string;
  /** First revision to capture (the snapshot's revision + 1). */
  fromRevision: number;
  /**
   * The incarnation (etcd cluster ID) whose chain this capture writes; the live cluster's when
   * absent. A cluster answering with another ID (restored since) ends the capture: its events
   * never go under this ID, and durability is never claimed for them.
   */
  clusterId?: string;
  targets?: string[];
  /** Flush period bound: a flush every flushMs/4. Default 500, which keeps p99 durability under 1 s (bench/pitr-lag). */
  flushMs?: number;
  /** The activity returns after this long, so the workflow can continue-as-new. */
  runForMs: number;
}

export interface CaptureOutcome {
  /** The etcd cluster ID the segments belong to. */
  clusterId: string;
  /** Last revision durable in every target. */
  lastDurable: number;
  segments: number;
  events: number;
  /** Largest (durable time - receive time) seen, ms. */
  maxLagMs: number;
  /** Set when compaction removed revisions the capture still needed. */
  gap?: { from: number; compactRevision: number };
}

const COMPACTED = /compacted/i;

export function createChangeCaptureActivities(deps: { config: Config }) {
  const { config } = deps;
  const { storesFor, listSegmentsAfter } = segmentStore(config);

  /** Where a capture should start: after the newest complete snapshot of the live incarnation (a snapshot of another one counts other revisions). */
  async function captureStartRevision(input: {
    cluster: string;
  }): Promise<{ fromRevision: number; setId: string | null; clusterId: string }> {
    const client = await connectCluster(findCluster(config, input.cluster));
    let liveId: string;
    try {
      liveId = String((await client.maintenance.status()).header.cluster_id);
    } finally {
      client.close();
    }
    const sets = await listBackupSets(config, { cluster: input.cluster, onUnreadableTarget: () => undefined });
    for (const set of sets) {
      const etcd = set.manifest.components.find((c) => c.component === 'etcd');
      if (set.status === 'complete' && etcd?.component === 'etcd' && etcd.facts.clusterId === liveId) {
        return { fromRevision: etcd.facts.revision + 1, setId: set.setId, clusterId: liveId };
      }
    }
    throw DomainError.nonRetryable(
      `cluster ${input.cluster} has no complete snapshot of its live incarnation (cluster ID ${liveId}) to capture changes after: take a backup set first`,
      FailureType.BackupSetNotFound,
    );
  }

  async function captureEtcdChanges(input: CaptureInput): Promise<CaptureOutcome> {
    const ctx = Context.current();
    const cluster = findCluster(config, input.cluster);
    const stores = await storesFor(input.targets);
    const encryption = artefactEncryption(config);
    const flushMs = input.flushMs ?? 500;

    const client = await connectCluster(cluster);
    const liveId = async () => String((await client.maintenance.status()).header.cluster_id);
    // A retry continues the chain of the attempt before it (its heartbeat names it), never the live
    // cluster's: that may be a restored one by now.
    const beat = ctx.info.heartbeatDetails as { lastDurable?: number; clusterId?: string } | undefined;
    const clusterId = input.clusterId ?? beat?.clusterId ?? (await liveId());
    const incarnationChanged = (now: string, durable: number) =>
      DomainError.nonRetryable(
        `etcd cluster ${cluster.name} answers as incarnation ${now}, not ${clusterId} whose changes this capture writes (restored since?): ` +
          `the capture of ${clusterId} ends, durable up to revision ${durable}; take a backup set and start a capture for the new incarnation`,
        FailureType.CaptureIncarnationChanged,
      );
    const startId = await liveId().catch((err: unknown) => {
      client.close();
      throw err;
    });
    if (startId !== clusterId) {
      client.close();
      throw incarnationChanged(startId, Math.max(input.fromRevision - 1, 0));
    }
    // Resume after whatever is already durable: the heartbeat, or the segments themselves (a
    // segment written just before a crash may not have reached a heartbeat).
    const written = chainSegments(
      await listSegmentsAfter(cluster.name, clusterId, input.fromRevision - 1, { targets: input.targets }),
      input.fromRevision - 1,
    );
    let lastDurable = Math.max(input.fromRevision - 1, beat?.lastDurable ?? 0, written.reachable);
    const outcome: CaptureOutcome = { clusterId, lastDurable, segments: 0, events: 0, maxLagMs: 0 };

    let buffer: CapturedEvent[] = [];
    let failure: Error | null = null;
    /** Set when the watch delivered a response of another cluster ID: its events are not ours and are dropped. */
    let foreignId: string | null = null;
    try {
      const compactedAt = await compactionPoint(client, lastDurable + 1);
      if (compactedAt !== null) {
        return { ...outcome, gap: { from: lastDurable + 1, compactRevision: compactedAt } };
      }
      const watcher = await client
        .watch()
        .prefix('')
        .startRevision(String(lastDurable + 1))
        .create();
      watcher.on('data', (res: IWatchResponse) => {
        // etcd3's watcher reconnects by itself, also to a restored cluster: never file its events under this ID.
        if (foreignId !== null || String(res.header.cluster_id) !== clusterId) {
          foreignId ??= String(res.header.cluster_id);
          return;
        }
        const ms = Date.now();
        for (const event of res.events) {
          buffer.push({
            rev: Number(event.kv.mod_revision),
            type: event.type === 'Delete' ? 'delete' : 'put',
            key: event.kv.key.toString('base64'),
            ...(event.type === 'Delete' ? {} : { value: event.kv.value.toString('base64') }),
            ms,
          });
        }
      });
      watcher.on('error', (err: Error) => {
        failure = err;
      });

      const flush = async () => {
        if (buffer.length === 0) return;
        const events = buffer;
        buffer = [];
        const range = {
          from: lastDurable + 1,
          to: events[events.length - 1]!.rev,
          firstMs: events[0]!.ms,
          lastMs: events[events.length - 1]!.ms,
        };
        const body = gzipSync(encodeEvents(events));
        const key = segmentKey(cluster.name, clusterId, range, encryption ? '.age' : '');
        await publishToStores(stores, key, (sink) =>
          pipeline([Readable.from([body]), ...(encryption ? [encryption.createStream()] : []), sink]),
        );
        const durableAt = Date.now();
        lastDurable = range.to;
        outcome.lastDurable = lastDurable;
        outcome.segments += 1;
        outcome.events += events.length;
        outcome.maxLagMs = Math.max(outcome.maxLagMs, durableAt - events[0]!.ms);
        ctx.heartbeat({ lastDurable, clusterId, lagMs: durableAt - events[0]!.ms });
      };

      // The live cluster ID, checked before a flush claims durability (at least once a second): a
      // restored cluster may answer the watch with nothing yet, its revisions below ours.
      let checkedAt = 0;
      const checkIncarnation = async () => {
        if (foreignId === null && (buffer.length > 0 || Date.now() - checkedAt >= 1000)) {
          const now = await liveId();
          checkedAt = Date.now();
          if (now !== clusterId) foreignId = now;
        }
      };
      const deadline = Date.now() + input.runForMs;
      while (Date.now() < deadline && !ctx.cancellationSignal.aborted) {
        // Flushing every quarter of the bound leaves the rest for the flush itself (gzip, age, every
        // target): an event waits at most a tick plus one flush (bench/pitr-lag measures it).
        await new Promise((done) => setTimeout(done, flushMs / 4));
        if (failure) break;
        await checkIncarnation();
        // What was buffered came with our ID (checked per watch response), so it is still ours to write.
        await flush();
        if (foreignId !== null) break;
        ctx.heartbeat({ lastDurable, clusterId });
      }
      await watcher.cancel();
      await flush();
      if (foreignId !== null) throw incarnationChanged(foreignId, lastDurable);
      if (failure) {
        const compacted = await compactionPoint(client, lastDurable + 1);
        if (compacted !== null || COMPACTED.test(errorMessage(failure))) {
          return { ...outcome, gap: { from: lastDurable + 1, compactRevision: compacted ?? lastDurable + 1 } };
        }
        throw failure;
      }
      return outcome;
    } finally {
      client.close();
    }
  }

  /** Records revisions lost to compaction, for operators and for PITR's "newest reachable point". */
  async function recordCaptureGap(input: {
    cluster: string;
    clusterId: string;
    from: number;
    to: number;
    targets?: string[];
  }): Promise<string> {
    const key = gapKey(input.cluster, input.clusterId, input.from, input.to);
    const body = Buffer.from(
      JSON.stringify({
        cluster: input.cluster,
        from: input.from,
        to: input.to,
        reason: 'compacted before capture',
        at: new Date().toISOString(),
      }),
    );
    await publishToStores(await storesFor(input.targets), key, async (sink) => {
      sink.end(body);
      await new Promise((done) => sink.once('finish', done));
    });
    return key;
  }

  return {
    captureStartRevision: captureStartRevision,
    captureEtcdChanges: captureEtcdChanges,
    recordCaptureGap: recordCaptureGap,
  };
}

/** The compaction revision when `revision` is no longer readable, else null. */
async function compactionPoint(client: Etcd3, revision: number): Promise<number | null> {
  try {
    await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), revision: String(revision), limit: '1', keys_only: true });
    return null;
  } catch (err) {
    if (!COMPACTED.test(errorMessage(err))) {
      // A future revision (nothing written yet) is fine; anything else is for the caller's retry.
      if (/future revision/i.test(errorMessage(err))) return null;
      throw err;
    }
    const status = await client.maintenance.status();
    return Number(status.header.revision);
  }
}
