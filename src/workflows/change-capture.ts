/**
 * Change capture for one cluster, for as long as it runs: the capture activity watches etcd and
 * makes each event durable in every target within `flushMs`, returning every `sliceMinutes` (default 5) so
 * the workflow can continue-as-new (its history stays small whatever the uptime). A worker crash
 * is an activity retry that resumes after the last durable segment. On a compaction gap the gap
 * is recorded, a fresh backup set is started, and capture goes on after that set's snapshot.
 * A stop cancels the running slice: the activity flushes what it holds and returns, so the capture
 * ends within a heartbeat interval (the workers send one every 3 s at most) rather than at the end of the slice.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  patched,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  ParentClosePolicy,
} from '@temporalio/workflow';
import { proxyActivities, startChild } from './ui-metadata';
import type { createChangeCaptureActivities } from '../activities/change-capture';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { backupSetWorkflow } from './backup-set';
import { runFailure } from './approval';

export interface ChangeCaptureInput {
  cluster: string;
  /** First revision to capture; after the newest complete snapshot of the live incarnation when omitted. */
  fromRevision?: number;
  /** The incarnation (etcd cluster ID) whose chain this capture writes: the snapshot's, or the live one's when fromRevision is given alone. */
  clusterId?: string;
  targets?: string[];
  /** Durability bound per event, ms (a flush every quarter of it). Default 500: measured p99 825 ms at 745 writes/s on a loaded 2-core box (bench/pitr-lag). */
  flushMs?: number;
  /** Length of one capture activity before the workflow checks in (a stop lands between slices). Default 5 minutes: each restart delays capture by 1-2 s (bench/pitr-lag), so fewer restarts keep the p99 low. */
  sliceMinutes?: number;
  /** Slices per run before continue-as-new (keeps the history small). Default 30. */
  slicesPerRun?: number;
  /** Run the capture on this node's worker (e.g. next to etcd) instead of the management worker. */
  node?: string;
  /** Totals carried across continue-as-new, so the status query tells the whole story. */
  carried?: Pick<CaptureStatus, 'segments' | 'events' | 'maxLagMs' | 'gaps' | 'runs'>;
}

export interface CaptureStatus {
  cluster: string;
  fromRevision: number | null;
  lastDurable: number | null;
  clusterId: string | null;
  segments: number;
  events: number;
  maxLagMs: number;
  gaps: Array<{ from: number; to: number; snapshotWorkflowId: string }>;
  /** Runs of this capture so far (continue-as-new starts the next). */
  runs: number;
  stopping: boolean;
}

export const captureStatusQuery = defineQuery<CaptureStatus>('capture');
/** Ends the capture: the running slice flushes and returns (e.g. before a point-in-time restore). */
export const stopCaptureSignal = defineSignal('stop');

const { captureStartRevision, recordCaptureGap } = proxyActivities<ReturnType<typeof createChangeCaptureActivities>>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 5, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function changeCaptureWorkflow(input: ChangeCaptureInput): Promise<CaptureStatus> {
  if (!input?.cluster) throw ApplicationFailure.nonRetryable('change capture needs { cluster }', FailureType.InvalidInput);
  const problem = captureInputProblem(input);
  if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.InvalidInput);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'change-capture' },
  ]);
  const sliceMs = (input.sliceMinutes ?? 5) * 60_000;
  // Runs started before a stop could cancel the slice (no marker in their history) wait for its end.
  const stopCancelsSlice = patched('capture-stop-cancels-slice');
  const { captureEtcdChanges } = proxyActivities<ReturnType<typeof createChangeCaptureActivities>>({
    ...(input.node ? { taskQueue: nodeTaskQueue(workflowInfo().taskQueue, input.node) } : {}),
    startToCloseTimeout: sliceMs + 5 * 60_000,
    // The activity heartbeats at least every flush; a dead worker is noticed in 30 s and the retry resumes.
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE },
    // A cancelled slice still flushes and returns its outcome: wait for it.
    ...(stopCancelsSlice ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
  });

  const carried = input.carried ?? { segments: 0, events: 0, maxLagMs: 0, gaps: [], runs: 0 };
  const status: CaptureStatus = {
    cluster: input.cluster,
    fromRevision: input.fromRevision ?? null,
    lastDurable: null,
    clusterId: null,
    segments: carried.segments,
    events: carried.events,
    maxLagMs: carried.maxLagMs,
    gaps: [...carried.gaps],
    runs: carried.runs + 1,
    stopping: false,
  };
  setHandler(captureStatusQuery, () => status);
  let slice: CancellationScope | null = null;
  setHandler(stopCaptureSignal, () => {
    status.stopping = true;
    if (stopCancelsSlice) slice?.cancel();
  });

  // The chain's incarnation goes with every slice: a cluster restored under the capture ends it instead of joining the chain.
  let chainId = input.clusterId;
  let from: number;
  if (input.fromRevision !== undefined) {
    from = input.fromRevision;
  } else {
    const start = await captureStartRevision({ cluster: input.cluster }).catch((err: unknown) => {
      throw runFailure('change capture cannot start', err);
    });
    from = start.fromRevision;
    chainId ??= start.clusterId; // absent from runs of older workers
  }
  status.fromRevision = from;
  status.clusterId = chainId ?? null;
  for (let n = 0; n < (input.slicesPerRun ?? 30) && !status.stopping; n++) {
    const args = {
      cluster: input.cluster,
      fromRevision: from,
      clusterId: chainId,
      targets: input.targets,
      flushMs: input.flushMs,
      runForMs: sliceMs,
    };
    slice = new CancellationScope();
    const outcome = await slice
      .run(() => captureEtcdChanges(args))
      .catch((err: unknown) => {
        // Cancelled by a stop before it could report (e.g. while waiting for a worker): nothing more was made durable.
        if (status.stopping && isCancellation(err)) return null;
        throw err;
      });
    slice = null;
    if (!outcome) break;
    status.lastDurable = outcome.lastDurable;
    status.clusterId = outcome.clusterId;
    chainId = outcome.clusterId;
    status.segments += outcome.segments;
    status.events += outcome.events;
    status.maxLagMs = Math.max(status.maxLagMs, outcome.maxLagMs);
    from = outcome.lastDurable + 1;
    if (outcome.gap) {
      // Revisions from gap.from were compacted before we saw them: record it, take a fresh snapshot, go on after it.
      await recordCaptureGap({
        cluster: input.cluster,
        clusterId: outcome.clusterId,
        from: outcome.gap.from,
        to: outcome.gap.compactRevision,
        targets: input.targets,
      });
      const child = await startChild(backupSetWorkflow, {
        workflowId: `${workflowInfo().workflowId}/gap-snapshot-${outcome.gap.compactRevision}`,
        args: [{ cluster: input.cluster, components: ['etcd'], targets: input.targets }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      status.gaps.push({ from: outcome.gap.from, to: outcome.gap.compactRevision, snapshotWorkflowId: child.workflowId });
      const result = await child.result();
      const etcd = result.manifest.components.find((c) => c.component === 'etcd');
      from = etcd?.component === 'etcd' ? etcd.facts.revision + 1 : outcome.gap.compactRevision + 1;
    }
    await condition(() => status.stopping, 1); // lets a stop signal land between slices
  }
  if (status.stopping) return status;
  const { segments, events, maxLagMs, gaps, runs } = status;
  return continueAsNew<typeof changeCaptureWorkflow>({
    ...input,
    fromRevision: from,
    clusterId: chainId,
    carried: { segments, events, maxLagMs, gaps, runs },
  });
}

/** Why a capture's numbers are not usable (null when they are): checked before the capture starts. */
export function captureInputProblem(
  input: Pick<ChangeCaptureInput, 'flushMs' | 'sliceMinutes' | 'slicesPerRun' | 'fromRevision'>,
): string | null {
  const { flushMs, sliceMinutes, slicesPerRun, fromRevision } = input;
  if (flushMs !== undefined && !(Number.isSafeInteger(flushMs) && flushMs >= 20))
    return `flushMs "${String(flushMs)}" is not usable: expected whole milliseconds, at least 20`;
  if (sliceMinutes !== undefined && !(typeof sliceMinutes === 'number' && sliceMinutes > 0))
    return `sliceMinutes "${String(sliceMinutes)}" is not usable: expected a number of minutes above 0`;
  if (slicesPerRun !== undefined && !(Number.isSafeInteger(slicesPerRun) && slicesPerRun >= 1))
    return `slicesPerRun "${String(slicesPerRun)}" is not usable: expected a whole number of at least 1`;
  if (fromRevision !== undefined && !(Number.isSafeInteger(fromRevision) && fromRevision >= 1))
    return `fromRevision "${String(fromRevision)}" is not a revision: expected a whole number of at least 1`;
  return null;
}
