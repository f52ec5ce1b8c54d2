/**
 * Runbook "Retain last 7 days" as a workflow: read the catalog, decide with the pure retention
 * policy (here, in the workflow, at workflow time, so the decision is in history), then delete each
 * expired set from every target holding it (manifest first), delete the change-capture segments no
 * kept set can replay, and abort stale multipart uploads. A dry run does everything but delete and
 * abort, and returns the same report.
 */
import { patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { createPruneActivities, SegmentPruneResult } from '../activities/prune';
import { NON_RETRYABLE } from '../common/failures';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { planRetention, type ExpiredSet, type KeptSet } from '../retention/policy';
import { ProgressTracker } from './progress';
import { runFailure } from './approval';

export interface PruneInput {
  /** Storage targets to prune; all configured targets when omitted. */
  targets?: string[];
  /** Only this cluster's sets; all clusters when omitted. */
  cluster?: string;
  dryRun?: boolean;
}

export interface PruneResult {
  dryRun: boolean;
  keep: KeptSet[];
  expire: ExpiredSet[];
  protectedSetIds: string[];
  deletedKeys: number;
  /** Change-capture segments pruned; absent in runs started before segments were pruned. */
  segments?: SegmentPruneResult;
  /** What interrupted writers left and prune removed: open multipart uploads, local partial files. */
  abortedUploads: Array<{ target: string; key: string; initiated?: string; location?: string }>;
}

const prune = proxyActivities<ReturnType<typeof createPruneActivities>>({
  startToCloseTimeout: '10m',
  retry: { maximumAttempts: 3, initialInterval: '2s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});
const { readCatalogForRetention, findSetsInUse, abortStaleUploads } = prune;
/** Deleting many sets or segments heartbeats as it goes, so a dead worker is noticed quickly and the retry resumes. */
const { deleteExpiredSets, pruneChangeSegments } = proxyActivities<ReturnType<typeof createPruneActivities>>({
  startToCloseTimeout: '2h',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '2s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function pruneBackupSetsWorkflow(input: PruneInput = {}): Promise<PruneResult> {
  const dryRun = input.dryRun === true;
  // Runs started before segment pruning replay without its activity.
  const withSegments = patched('prune-change-segments');
  const tracker = new ProgressTracker('prune', input.cluster ?? '*', [
    'read catalog',
    'find sets in use',
    'plan retention',
    'delete expired sets',
    ...(withSegments ? ['prune change segments'] : []),
    'abort stale uploads',
  ]);
  upsertSearchAttributes([{ key: NnoeRunbook, value: 'prune' }, ...(input.cluster ? [{ key: NnoeCluster, value: input.cluster }] : [])]);
  try {
    const catalog = await tracker.step(
      'read catalog',
      () => readCatalogForRetention({ targets: input.targets, cluster: input.cluster }),
      (c) => `${c.sets.length} sets`,
    );
    const protectedSetIds = await tracker.step(
      'find sets in use',
      () => findSetsInUse(),
      (ids) => (ids.length ? ids.join(', ') : 'none'),
    );

    const now = new Date(workflowInfo().startTime);
    const plan = await tracker.step(
      'plan retention',
      async () => {
        const keep: KeptSet[] = [];
        const expire: ExpiredSet[] = [];
        for (const [cluster, policy] of Object.entries(catalog.policies)) {
          const part = planRetention({ sets: catalog.sets.filter((s) => s.cluster === cluster), policy, now, protectedSetIds });
          keep.push(...part.keep);
          expire.push(...part.expire);
        }
        return { keep, expire };
      },
      (p) => `keep ${p.keep.length}, expire ${p.expire.length}${dryRun ? ' (dry run)' : ''}`,
    );

    const targetsOf = new Map(catalog.sets.map((s) => [s.setId, s.targets]));
    const deleted = await tracker.step(
      'delete expired sets',
      () => deleteExpiredSets({ sets: plan.expire.map((e) => ({ setId: e.setId, targets: targetsOf.get(e.setId) ?? [] })), dryRun }),
      (d) => `${dryRun ? 'would delete' : 'deleted'} ${d.sets} sets (${d.keys} objects)`,
    );
    const deletedKeys = deleted.keys;

    // After the sets: which segments go depends on which sets are left.
    const segments = withSegments
      ? await tracker.step(
          'prune change segments',
          () =>
            pruneChangeSegments({
              clusters: Object.keys(catalog.policies).sort(),
              targets: input.targets,
              expiredSetIds: plan.expire.map((e) => e.setId),
              dryRun,
            }),
          (r) => describeSegmentPrune(r),
        )
      : undefined;

    const abortedUploads = await tracker.step(
      'abort stale uploads',
      () => abortStaleUploads({ targets: input.targets, dryRun }),
      (a) => `${dryRun ? 'would remove' : 'removed'} ${a.length} (open multipart uploads, partial files)`,
    );

    tracker.finish('completed');
    return {
      dryRun,
      keep: plan.keep,
      expire: plan.expire,
      protectedSetIds,
      deletedKeys,
      ...(segments ? { segments } : {}),
      abortedUploads,
    };
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('prune failed', err);
  }
}

function describeSegmentPrune(r: SegmentPruneResult): string {
  const mib = (r.bytes / (1024 * 1024)).toFixed(1);
  const done = `${r.dryRun ? 'would delete' : 'deleted'} ${r.objects} segments and gap markers (${mib} MiB)`;
  return r.notes.length ? `${done}; ${r.notes.join('; ')}` : done;
}
