/**
 * Activities of the retention runbook: read the catalog, find the sets running restores use,
 * delete expired sets (manifest first), delete the change-capture segments no kept set needs, and
 * abort multipart uploads left by crashed backups. The decision on sets (planRetention) is pure and
 * runs in the workflow; the one on segments (planSegmentRetention) is pure and runs here.
 */
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NAME_PATTERN, type Config } from '../config/schema';
import { findTargets } from '../config/load';
import { listBackupSets, type CatalogEntry } from '../catalog/catalog';
import { openStore } from '../storage';
import {
  deleteBackupSet,
  deleteSegmentObjects,
  listBackupSetKeys,
  listSegmentObjects,
  planSegmentRetention,
  type ChainRetention,
  type DeletedSet,
  type RetentionPolicy,
  type RetentionSet,
  type SegmentRetentionSet,
} from '../retention';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import type { EtcdSnapshotFacts } from '../common/manifest';
import { errorMessage } from '../common/domain-errors';
import { retentionInForce } from '../retention/in-force';

/** Runbooks that read a backup set while they run: retention must not take their set away. */
export const RESTORE_RUNBOOKS = [
  'etcd-restore',
  'phpipam-restore',
  'agent-cache-restore',
  'nebula-restore',
  'pitr',
  'disaster-recovery',
  'drill',
];
/** Runbooks that write a set: until its manifest exists, only their start tells which segments it will need. */
export const BACKUP_RUNBOOKS = ['backup-set', 'etcd-backup'];

export interface CatalogForRetention {
  sets: Array<RetentionSet & { targets: string[] }>;
  /** The policy that applies to each cluster found (cluster override, else the top-level one). */
  policies: Record<string, RetentionPolicy>;
}

/** What segment pruning did (or, in a dry run, would do). */
export interface SegmentPruneResult {
  dryRun: boolean;
  /** Segments and gap markers deleted over every target, and their bytes. */
  objects: number;
  bytes: number;
  /** Per target and etcd cluster ID: what went (revisions, capture times), what stayed, and why. */
  chains: SegmentChainReport[];
  /** What was left alone or could not be consulted, and why. */
  notes: string[];
}

export interface SegmentChainReport {
  target: string;
  cluster: string;
  clusterId: string;
  deleted: number;
  bytes: number;
  kept: number;
  deletedRange: ChainRetention['deletedRange'];
  reason: string;
}

export function createPruneActivities(deps: { config: Config }) {
  const { config } = deps;
  let temporal: Promise<Client> | undefined;
  const temporalClient = () =>
    (temporal ??= Connection.connect({ address: config.temporal.address }).then(
      (connection) => new Client({ connection, namespace: config.temporal.namespace }),
    ));

  async function readCatalogForRetention(input: { targets?: string[]; cluster?: string }): Promise<CatalogForRetention> {
    const entries = await listBackupSets(config, { targets: input.targets, cluster: input.cluster });
    const policies: Record<string, RetentionPolicy> = {};
    for (const entry of entries) {
      policies[entry.cluster] ??= retentionInForce(config, entry.cluster);
    }
    const locks = await objectLocksOf(entries, input.targets);
    return {
      sets: entries.map((e) => ({
        setId: e.setId,
        cluster: e.cluster,
        createdAt: e.createdAt,
        status: e.status,
        targets: e.targets,
        // Written by a passing restore drill: the newest verified set is kept above all.
        ...(e.manifest.verification ? { verifiedAt: e.manifest.verification.verifiedAt } : {}),
        ...(locks.has(e.setId) ? { lockedUntil: locks.get(e.setId)! } : {}),
      })),
      policies,
    };
  }

  /**
   * Per set, the latest Object Lock retention on any of its objects in the chosen targets that ask
   * for locks, among those this tool may not bypass (COMPLIANCE; GOVERNANCE without bypassGovernance).
   */
  async function objectLocksOf(
    entries: CatalogEntry[],
    targets: string[] | undefined,
  ): Promise<Map<string, NonNullable<RetentionSet['lockedUntil']>>> {
    const locks = new Map<string, NonNullable<RetentionSet['lockedUntil']>>();
    for (const target of findTargets(config, targets)) {
      if (target.type !== 's3' || !target.objectLock) continue;
      const store = await openStore(target);
      for (const entry of entries.filter((e) => e.targets.includes(target.name))) {
        for (const key of await listBackupSetKeys(store, entry.setId)) {
          const retention = await store.retention!(key);
          if (!retention || retention.bypassable) continue;
          const known = locks.get(entry.setId);
          if (!known || Date.parse(retention.until) > Date.parse(known.until))
            locks.set(entry.setId, { target: target.name, mode: retention.mode, until: retention.until });
        }
        Context.current().heartbeat();
      }
    }
    return locks;
  }

  /** Running workflows of these runbooks, with their set (NnoeBackupSet), cluster (NnoeCluster) and start. */
  async function listRunning(runbooks: readonly string[]): Promise<Array<{ setId?: string; cluster?: string; startTime: string }>> {
    const client = await temporalClient();
    const running: Array<{ setId?: string; cluster?: string; startTime: string }> = [];
    const query = `ExecutionStatus = 'Running' AND ${NnoeRunbook.name} IN (${runbooks.map((r) => `'${r}'`).join(', ')})`;
    for await (const run of client.workflow.list({ query })) {
      const setId = run.typedSearchAttributes.get(NnoeBackupSet);
      const cluster = run.typedSearchAttributes.get(NnoeCluster);
      running.push({ ...(setId ? { setId } : {}), ...(cluster ? { cluster } : {}), startTime: run.startTime.toISOString() });
    }
    return running;
  }

  /** Set ids named by running restore-type workflows (their NnoeBackupSet search attribute). */
  async function findSetsInUse(): Promise<string[]> {
    return [...new Set((await listRunning(RESTORE_RUNBOOKS)).flatMap((run) => (run.setId ? [run.setId] : [])))].sort();
  }

  /**
   * Deletes sets one after another, heartbeating the count done; a retried attempt resumes after
   * the last set reported (deleting a set again is harmless: it finds nothing left).
   */
  async function deleteExpiredSets(input: {
    sets: Array<{ setId: string; targets: string[] }>;
    dryRun: boolean;
  }): Promise<{ sets: number; keys: number }> {
    const ctx = Context.current();
    const resumed = (ctx.info.heartbeatDetails as { done: number; keys: number } | undefined) ?? { done: 0, keys: 0 };
    let { done, keys } = resumed;
    for (const set of input.sets.slice(done)) {
      for (const target of findTargets(config, set.targets)) {
        const deleted: DeletedSet = await deleteBackupSet(await openStore(target), set.setId, { dryRun: input.dryRun });
        keys += deleted.keys.length;
      }
      done += 1;
      ctx.heartbeat({ done, keys });
    }
    return { sets: done, keys };
  }

  /**
   * Deletes, from every target pruned, the change-capture segments and gap markers that no set
   * surviving this prune can replay (planSegmentRetention). Decided here, not in the workflow: a
   * cluster has segments by the hundred thousand, far too many for a workflow payload. A retry
   * lists again and finds what was deleted gone.
   */
  async function pruneChangeSegments(input: {
    clusters: string[];
    targets?: string[];
    expiredSetIds: string[];
    dryRun: boolean;
  }): Promise<SegmentPruneResult> {
    const ctx = Context.current();
    const result: SegmentPruneResult = { dryRun: input.dryRun, objects: 0, bytes: 0, chains: [], notes: [] };
    if (input.clusters.length === 0) return result;
    const pruned = findTargets(config, input.targets);
    const prunedNames = new Set(pruned.map((t) => t.name));
    // Running backups before the catalog: one that ends in between is then in the catalog.
    const running = await listRunning(BACKUP_RUNBOOKS);
    // Survivors come from every target, not only the pruned ones: a point-in-time restore takes
    // its set from any target. A pruned target must answer (its catalog is what retention decided
    // on); another one that does not is only noted: nothing is deleted there, so the segments it
    // holds for its own sets stay.
    const catalog = await listBackupSets(config, {
      onUnreadableTarget: (target, err) => {
        if (prunedNames.has(target)) throw err;
        result.notes.push(
          `target ${target} could not be read (${errorMessage(err)}): sets held only there were not considered, and its own segments were not touched`,
        );
      },
    });
    const expired = new Set(input.expiredSetIds);
    // An expired set still held by a target this run does not prune survives there.
    const survives = (e: CatalogEntry) => !expired.has(e.setId) || e.targets.some((t) => !prunedNames.has(t));
    for (const cluster of input.clusters) {
      // A cluster name from a manifest must not widen the `wal/<cluster>/` prefix.
      if (!NAME_PATTERN.test(cluster)) {
        result.notes.push(`cluster "${cluster}": not a cluster name (letters, digits, ".", "_" or "-"), its segments were left alone`);
        continue;
      }
      const sets = catalog.filter((e) => e.cluster === cluster && survives(e)).flatMap(segmentRetentionSets);
      // A run that names no cluster could be this one's.
      const since = running
        .filter((r) => r.cluster === undefined || r.cluster === cluster)
        .map((r) => r.startTime)
        .sort()[0];
      for (const target of pruned) {
        const store = await openStore(target);
        const objects = await listSegmentObjects(store, cluster, () => ctx.heartbeat());
        const byKey = new Map(objects.map((o) => [o.key, o]));
        for (const chain of planSegmentRetention({
          cluster,
          sets,
          keys: objects.map((o) => o.key),
          ...(since ? { runningBackupSince: since } : {}),
        }).chains) {
          const done = await deleteSegmentObjects(
            store,
            chain.delete.map((key) => byKey.get(key)!),
            { dryRun: input.dryRun, onProgress: () => ctx.heartbeat() },
          );
          result.objects += done.objects;
          result.bytes += done.bytes;
          result.chains.push({
            target: target.name,
            cluster,
            clusterId: chain.clusterId,
            deleted: done.objects,
            bytes: done.bytes,
            kept: chain.keep,
            deletedRange: chain.deletedRange,
            reason: chain.reason,
          });
          ctx.heartbeat();
        }
      }
    }
    return result;
  }

  /**
   * Removes what interrupted writers left (open multipart uploads in S3, partial files in local
   * targets) older than prune.staleUploadHours; a running writer is younger, or touched its file since.
   */
  async function abortStaleUploads(input: {
    targets?: string[];
    dryRun: boolean;
  }): Promise<Array<{ target: string; key: string; initiated?: string; location?: string }>> {
    const olderThan = new Date(Date.now() - config.prune.staleUploadHours * 3600_000);
    const removed: Array<{ target: string; key: string; initiated?: string; location?: string }> = [];
    for (const target of findTargets(config, input.targets)) {
      const store = await openStore(target);
      for (const leftover of await store.listLeftovers({ olderThan })) {
        if (!input.dryRun) await store.removeLeftover(leftover);
        removed.push({ target: target.name, key: leftover.key, initiated: leftover.startedAt, location: leftover.location });
      }
    }
    return removed;
  }

  return {
    readCatalogForRetention: readCatalogForRetention,
    findSetsInUse: findSetsInUse,
    deleteExpiredSets: deleteExpiredSets,
    pruneChangeSegments: pruneChangeSegments,
    abortStaleUploads: abortStaleUploads,
  };
}

/** A catalog entry as segment retention sees it: one entry per etcd snapshot (one, in practice), or none. */
function segmentRetentionSets(entry: CatalogEntry): SegmentRetentionSet[] {
  const base = { setId: entry.setId, createdAt: entry.createdAt };
  // Read defensively: a manifest missing its facts makes planSegmentRetention keep the whole cluster.
  const snapshots = entry.manifest.components.flatMap((c) =>
    c.component === 'etcd' ? [c.facts as Partial<EtcdSnapshotFacts> | undefined] : [],
  );
  if (snapshots.length === 0) return [base];
  // A manifest without a cluster ID cannot say which chain it needs: planSegmentRetention then protects every chain.
  return snapshots.map((facts) => ({
    ...base,
    snapshot: {
      revision: facts?.revision ?? Number.NaN,
      clusterId: typeof facts?.clusterId === 'string' && facts.clusterId ? facts.clusterId : null,
    },
  }));
}
