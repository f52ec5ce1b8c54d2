/**
 * Activities of the retention runbook: read the catalog, find the sets running restores use,
 * delete expired sets (manifest first) and abort multipart uploads left by crashed backups.
 * The decision itself (planRetention) is pure and runs in the workflow.
 */
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import type { Config, RetentionConfig } from '../config/schema';
import { findTargets } from '../config/load';
import { listBackupSets } from '../catalog/catalog';
import { openStore, s3ClientFor } from '../storage';
import { abortStaleMultipartUploads, deleteBackupSet, type DeletedSet, RETENTION_PROFILES, type RetentionPolicy, type RetentionSet } from '../retention';
import { NnoeBackupSet, NnoeRunbook } from '../common/search-attributes';
import { typedFailures } from './failures';

/** Runbooks that read a backup set while they run: retention must not take their set away. */
export const RESTORE_RUNBOOKS = ['etcd-restore', 'phpipam-restore', 'agent-cache-restore', 'nebula-restore', 'pitr', 'disaster-recovery', 'drill'];

export interface CatalogForRetention {
  sets: Array<RetentionSet & { targets: string[] }>;
  /** The policy that applies to each cluster found (cluster override, else the top-level one). */
  policies: Record<string, RetentionPolicy>;
}

export function retentionPolicyOf(retention: RetentionConfig): RetentionPolicy {
  return retention.profile ? RETENTION_PROFILES[retention.profile].policy : retention.policy!;
}

export function createPruneActivities(deps: { config: Config }) {
  const { config } = deps;
  let temporal: Promise<Client> | undefined;
  const temporalClient = () => (temporal ??= Connection.connect({ address: config.temporal.address })
    .then((connection) => new Client({ connection, namespace: config.temporal.namespace })));

  async function readCatalogForRetention(input: { targets?: string[]; cluster?: string }): Promise<CatalogForRetention> {
    const entries = await listBackupSets(config, { targets: input.targets, cluster: input.cluster });
    const policies: Record<string, RetentionPolicy> = {};
    for (const entry of entries) {
      const override = config.clusters.find((c) => c.name === entry.cluster)?.retention;
      policies[entry.cluster] ??= retentionPolicyOf(override ?? config.retention);
    }
    return {
      sets: entries.map((e) => ({
        setId: e.setId, cluster: e.cluster, createdAt: e.createdAt, status: e.status, targets: e.targets,
        // Written by a passing restore drill: the newest verified set is kept above all.
        ...(e.manifest.verification ? { verifiedAt: e.manifest.verification.verifiedAt } : {}),
      })),
      policies,
    };
  }

  /** Set ids named by running restore-type workflows (their NnoeBackupSet search attribute). */
  async function findSetsInUse(): Promise<string[]> {
    const client = await temporalClient();
    const runbooks = RESTORE_RUNBOOKS.map((r) => `'${r}'`).join(', ');
    const inUse = new Set<string>();
    for await (const run of client.workflow.list({ query: `ExecutionStatus = 'Running' AND ${NnoeRunbook.name} IN (${runbooks})` })) {
      const setId = run.typedSearchAttributes.get(NnoeBackupSet);
      if (setId) inUse.add(setId);
    }
    return [...inUse].sort();
  }

  /**
   * Deletes sets one after another, heartbeating the count done; a retried attempt resumes after
   * the last set reported (deleting a set again is harmless: it finds nothing left).
   */
  async function deleteExpiredSets(input: { sets: Array<{ setId: string; targets: string[] }>; dryRun: boolean }): Promise<{ sets: number; keys: number }> {
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

  /** Aborts multipart uploads older than prune.staleUploadHours in every S3 target chosen. */
  async function abortStaleUploads(input: { targets?: string[]; dryRun: boolean }): Promise<Array<{ target: string; key: string; initiated?: string }>> {
    const olderThan = new Date(Date.now() - config.prune.staleUploadHours * 3600_000);
    const aborted: Array<{ target: string; key: string; initiated?: string }> = [];
    for (const target of findTargets(config, input.targets)) {
      if (target.type !== 's3') continue;
      const uploads = await abortStaleMultipartUploads(await s3ClientFor(target), target.bucket, target.prefix, olderThan, { dryRun: input.dryRun });
      aborted.push(...uploads.map((u) => ({ target: target.name, key: u.key, initiated: u.initiated.toISOString() })));
    }
    return aborted;
  }

  return {
    readCatalogForRetention: typedFailures(readCatalogForRetention),
    findSetsInUse: typedFailures(findSetsInUse),
    deleteExpiredSets: typedFailures(deleteExpiredSets),
    abortStaleUploads: typedFailures(abortStaleUploads),
  };
}
