/**
 * Point-in-time recovery, the cluster-wide parts: resolve the target (a revision, or a time via the
 * segments' capture times), pick the newest complete snapshot at or before it of one incarnation
 * (src/capture/point-in-time.ts), prove the captured
 * segments chain from that snapshot to the target, and replay the events onto the restored cluster.
 */
import { Context } from '@temporalio/activity';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { listBackupSets } from '../catalog/catalog';
import { connectCluster } from '../etcd/connect';
import { chainSegments, revisionAtTime, transactions, type CapturedEvent, type SegmentName } from '../capture/segments';
import { chooseBaseSnapshot, chooseIncarnation, targetProblem, type PitrSnapshot, type PitrTarget } from '../capture/point-in-time';
import { segmentStore } from '../capture/segment-store';
import { SEGMENT_TIME_MARGIN_MS } from '../retention/segments';

export interface PointInTimePlan {
  cluster: string;
  setId: string;
  snapshotRevision: number;
  /** The incarnation (etcd cluster ID) restored: its snapshot and its change chain. */
  clusterId: string;
  /** The live cluster's ID when planned (null: no member answered); equal to clusterId unless an earlier incarnation is restored. */
  liveClusterId?: string | null;
  targetRevision: number;
  /** How the target was given, for the report. */
  target: { revision?: number; time?: string };
  segments: SegmentName[];
  events: number;
}

/** etcd's default --max-txn-ops. */
const MAX_TXN_OPS = 128;

export function createPitrActivities(deps: { config: Config }) {
  const { config } = deps;
  const segments = segmentStore(config);

  /** The live cluster's ID and revision; null when no member answers (a PITR may be what brings it back). */
  async function liveCluster(name: string): Promise<{ clusterId: string; revision: number } | null> {
    const client = await connectCluster(findCluster(config, name));
    try {
      const status = await Promise.race([
        client.maintenance.status(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer')), 5000)),
      ]);
      return { clusterId: String(status.header.cluster_id), revision: Number(status.header.revision) };
    } catch {
      return null;
    } finally {
      client.close();
    }
  }

  async function planPointInTime(input: {
    cluster: string;
    targetRevision?: number;
    targetTime?: string;
    clusterId?: string;
  }): Promise<PointInTimePlan> {
    const cluster = findCluster(config, input.cluster);
    const problem = targetProblem(input, Date.now());
    if (problem) throw DomainError.nonRetryable(problem, FailureType.InvalidInput);
    const targetMs = input.targetTime === undefined ? null : Date.parse(input.targetTime);
    const target: PitrTarget = targetMs === null ? { revision: input.targetRevision! } : { timeMs: targetMs };
    const targetText = input.targetTime ?? `revision ${input.targetRevision}`;
    const snapshots: PitrSnapshot[] = (await listBackupSets(config, { cluster: cluster.name, onUnreadableTarget: () => undefined }))
      .filter((set) => set.status === 'complete')
      .flatMap((set) =>
        set.manifest.components.flatMap((c) =>
          c.component === 'etcd' && c.facts.clusterId
            ? [{ setId: set.setId, createdMs: Date.parse(set.createdAt), revision: c.facts.revision, clusterId: c.facts.clusterId }]
            : [],
        ),
      );

    const live = await liveCluster(cluster.name);
    const clusterId = chooseIncarnation(snapshots, target, input.clusterId, live?.clusterId ?? null);
    const base = clusterId === null ? null : chooseBaseSnapshot(snapshots, target, clusterId);
    if (!base) {
      const others = [...new Set(snapshots.map((s) => s.clusterId))].filter((id) => id !== clusterId);
      throw DomainError.nonRetryable(
        `no complete snapshot of ${cluster.name} incarnation ${clusterId ?? '(unknown: etcd does not answer)'} at or before ${targetText}` +
          (others.length
            ? `; snapshots of other incarnations (${others.join(', ')}) cannot start it: their revisions count another history`
            : ''),
        FailureType.PitrUnreachable,
      );
    }
    const isLive = live?.clusterId === base.clusterId;
    // Only the segments from the snapshot on, up to the target: a long chain is never listed whole
    // for one restore. Past a time by the clock-skew margin: capture times of two workers may disagree.
    const enough =
      targetMs === null
        ? (s: SegmentName) => s.from > input.targetRevision!
        : (s: SegmentName) => s.firstMs > targetMs + SEGMENT_TIME_MARGIN_MS;
    const chain = chainSegments(await segments.listSegmentsAfter(cluster.name, base.clusterId, base.revision, { enough }), base.revision);
    const reachMs = chain.reachableMs ?? base.createdMs;
    const newest = `revision ${chain.reachable} (captured ${new Date(reachMs).toISOString()})`;
    const unreachable = () =>
      DomainError.nonRetryable(
        `cannot reach ${targetText}: from snapshot ${base.setId} (revision ${base.revision} of incarnation ${base.clusterId}) the captured changes reach ${newest}; that is the newest point this cluster can be restored to`,
        FailureType.PitrUnreachable,
      );
    let targetRevision = input.targetRevision ?? base.revision;
    if (targetMs !== null) {
      // Later than the newest captured change: only true of the live incarnation when nothing has changed since.
      if (targetMs > reachMs && !(isLive && live.revision === chain.reachable)) throw unreachable();
      // The last captured revision at or before the time; the snapshot's own when nothing changed since.
      const candidates = chain.segments.filter((s) => s.firstMs <= targetMs);
      const last = candidates[candidates.length - 1];
      if (last) targetRevision = revisionAtTime(await segments.readSegmentEvents([last]), targetMs) ?? last.from - 1;
    }
    if (targetRevision > chain.reachable) throw unreachable();
    const used = chain.segments.filter((s) => s.from <= targetRevision);
    return {
      cluster: cluster.name,
      setId: base.setId,
      snapshotRevision: base.revision,
      clusterId: base.clusterId,
      liveClusterId: live?.clusterId ?? null,
      targetRevision,
      target: { revision: input.targetRevision, time: input.targetTime },
      segments: used,
      events: 0,
    };
  }

  /**
   * Replays the captured events after the snapshot, up to exactly the target revision, in revision
   * order. Consecutive revisions share one transaction while their keys differ (etcd refuses a key
   * twice in one txn) and it stays under etcd's op limit: the end state is the same.
   */
  async function replayChanges(input: {
    cluster: string;
    segments: SegmentName[];
    afterRevision: number;
    targetRevision: number;
  }): Promise<{ revisions: number; events: number; transactions: number }> {
    const ctx = Context.current();
    const events = (await segments.readSegmentEvents(input.segments)).filter(
      (e) => e.rev > input.afterRevision && e.rev <= input.targetRevision,
    );
    const groups = transactions(events);
    const client = await connectCluster(findCluster(config, input.cluster));
    let batch: CapturedEvent[] = [];
    let keys = new Set<string>();
    let sent = 0;
    const send = async () => {
      if (batch.length === 0) return;
      await client.kv.txn({
        compare: [],
        success: batch.map((e) =>
          e.type === 'put'
            ? { request_put: { key: Buffer.from(e.key, 'base64'), value: Buffer.from(e.value ?? '', 'base64') } }
            : { request_delete_range: { key: Buffer.from(e.key, 'base64') } },
        ),
        failure: [],
      });
      sent += 1;
      batch = [];
      keys = new Set();
      if (sent % 50 === 0) ctx.heartbeat({ sent });
    };
    try {
      for (const group of groups) {
        const clash = group.some((e) => keys.has(e.key));
        if (clash || batch.length + group.length > MAX_TXN_OPS) await send();
        for (const e of group) {
          batch.push(e);
          keys.add(e.key);
        }
      }
      await send();
    } finally {
      client.close();
    }
    return { revisions: groups.length, events: events.length, transactions: sent };
  }

  return {
    planPointInTime: planPointInTime,
    replayChanges: replayChanges,
  };
}
