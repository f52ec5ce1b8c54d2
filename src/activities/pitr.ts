/**
 * Point-in-time recovery, the cluster-wide parts: resolve the target (a revision, or a time via the
 * segments' capture times), pick the newest complete snapshot at or before it, prove the captured
 * segments chain from that snapshot to the target, and replay the events onto the restored cluster.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { FailureType } from '../common/failures';
import { listBackupSets } from '../catalog/catalog';
import { connectCluster } from '../etcd/connect';
import { chainSegments, revisionAtTime, transactions, type CapturedEvent, type SegmentName } from '../capture/segments';
import { segmentStore } from './change-capture';
import { typedFailures } from './failures';

export interface PointInTimePlan {
  cluster: string;
  setId: string;
  snapshotRevision: number;
  clusterId: string;
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

  async function planPointInTime(input: { cluster: string; targetRevision?: number; targetTime?: string }): Promise<PointInTimePlan> {
    const cluster = findCluster(config, input.cluster);
    if ((input.targetRevision === undefined) === (input.targetTime === undefined)) {
      throw ApplicationFailure.nonRetryable('a point-in-time restore needs exactly one target: { targetRevision } or { targetTime: ISO-8601 }', FailureType.InvalidInput);
    }
    const targetMs = input.targetTime === undefined ? null : Date.parse(input.targetTime);
    if (targetMs !== null && Number.isNaN(targetMs)) {
      throw ApplicationFailure.nonRetryable(`targetTime "${input.targetTime}" is not a time; expected ISO-8601 like 2026-11-27T14:35:02Z`, FailureType.InvalidInput);
    }
    const snapshots = (await listBackupSets(config, { cluster: cluster.name, onUnreadableTarget: () => undefined }))
      .flatMap((set) => set.manifest.components.filter((c) => c.component === 'etcd').map((c) => ({ set, facts: c.component === 'etcd' ? c.facts : null })))
      .filter((s) => s.set.status === 'complete' && s.facts !== null)
      .map((s) => ({ setId: s.set.setId, createdMs: Date.parse(s.set.createdAt), revision: s.facts!.revision, clusterId: s.facts!.clusterId }));

    // The newest snapshot at or before the target (by revision, or by the time it was taken).
    const eligible = snapshots
      .filter((s) => (input.targetRevision !== undefined ? s.revision <= input.targetRevision : s.createdMs <= targetMs!))
      .sort((a, b) => b.revision - a.revision);
    const base = eligible[0];
    if (!base) {
      throw ApplicationFailure.nonRetryable(`no complete snapshot of ${cluster.name} at or before ${input.targetTime ?? `revision ${input.targetRevision}`}`, FailureType.PitrUnreachable);
    }
    const all = await segments.listSegments(cluster.name, base.clusterId);
    const chain = chainSegments(all, base.revision);
    let targetRevision = input.targetRevision ?? base.revision;
    if (targetMs !== null) {
      // The last captured revision at or before the time; the snapshot's own when nothing changed since.
      const candidates = chain.segments.filter((s) => s.firstMs <= targetMs);
      const last = candidates[candidates.length - 1];
      if (last) targetRevision = revisionAtTime(await segments.readSegmentEvents([last]), targetMs) ?? last.from - 1;
    }
    if (targetRevision > chain.reachable) {
      const reach = chain.reachableMs !== null ? ` (captured ${new Date(chain.reachableMs).toISOString()})` : '';
      throw ApplicationFailure.nonRetryable(
        `cannot reach ${input.targetTime ?? `revision ${targetRevision}`}: from snapshot ${base.setId} (revision ${base.revision}) the captured changes reach revision ${chain.reachable}${reach}; that is the newest point this cluster can be restored to`,
        FailureType.PitrUnreachable);
    }
    const used = chain.segments.filter((s) => s.from <= targetRevision);
    return {
      cluster: cluster.name, setId: base.setId, snapshotRevision: base.revision, clusterId: base.clusterId, targetRevision,
      target: { revision: input.targetRevision, time: input.targetTime }, segments: used, events: 0,
    };
  }

  /**
   * Replays the captured events after the snapshot, up to exactly the target revision, in revision
   * order. Consecutive revisions share one transaction while their keys differ (etcd refuses a key
   * twice in one txn) and it stays under etcd's op limit: the end state is the same.
   */
  async function replayChanges(input: { cluster: string; segments: SegmentName[]; afterRevision: number; targetRevision: number }): Promise<{ revisions: number; events: number; transactions: number }> {
    const ctx = Context.current();
    const events = (await segments.readSegmentEvents(input.segments)).filter((e) => e.rev > input.afterRevision && e.rev <= input.targetRevision);
    const groups = transactions(events);
    const client = await connectCluster(findCluster(config, input.cluster));
    let batch: CapturedEvent[] = [];
    let keys = new Set<string>();
    let sent = 0;
    const send = async () => {
      if (batch.length === 0) return;
      await client.kv.txn({
        compare: [],
        success: batch.map((e) => (e.type === 'put'
          ? { request_put: { key: Buffer.from(e.key, 'base64'), value: Buffer.from(e.value ?? '', 'base64') } }
          : { request_delete_range: { key: Buffer.from(e.key, 'base64') } })),
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
        for (const e of group) { batch.push(e); keys.add(e.key); }
      }
      await send();
    } finally {
      client.close();
    }
    return { revisions: groups.length, events: events.length, transactions: sent };
  }

  return {
    planPointInTime: typedFailures(planPointInTime),
    replayChanges: typedFailures(replayChanges),
  };
}
