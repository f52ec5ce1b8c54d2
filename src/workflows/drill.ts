/**
 * Restore drill, on the management queue (scheduled daily by `schedules apply`):
 *
 *   choose set -> restore etcd -> restore phpIPAM -> check other artefacts -> mark verified -> emit metrics [-> alert]
 *
 * The newest complete set (or the one asked for) is restored where it cannot hurt: its etcd
 * snapshot into a one-member etcd on loopback in a temp dir, its phpIPAM dump into a new
 * `<db>_drill_<stamp>` schema, both compared with what the manifest recorded and both removed
 * afterwards whatever happened. How long each restore took is the measured RTO. Only a drill whose
 * every check passed writes `verification` into the set's manifest in every target holding it
 * (retention then keeps the newest verified set above all). Every drill, passing or not, writes
 * its figures to the Prometheus textfile and returns them. A failing drill POSTs an alert to the
 * webhook, marks nothing, and fails the run (non-retryable `DrillFailed`, the report as details).
 * Nothing live is written: the cluster and the live schema are only read by the backup that made the set.
 */
import { ApplicationFailure, CancellationScope, isCancellation, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { createDrillActivities, DrillPlan } from '../activities/drill';
import type { DrillAlert, DrillMetrics } from '../drill/metrics';
import type { DrillCheck, SetVerification } from '../common/manifest';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { ProgressTracker, rootMessage } from './progress';
import { runFailure } from './approval';

export interface DrillInput {
  cluster: string;
  /** A set id; the newest complete set of the cluster when omitted (what the schedule does). */
  setId?: string;
}

export interface DrillReport {
  cluster: string;
  /** null when no set could be chosen. */
  setId: string | null;
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  /** Measured restore times (fetch, decrypt, decompress, restore, ready); null: not restored (absent, or the restore failed). */
  rto: { etcdMs: number | null; phpipamMs: number | null };
  /** Every comparison made, passing, failing and skipped. */
  checks: DrillCheck[];
  /** Targets whose manifest now carries `verification` (empty unless ok). */
  marked: string[];
  /** The figures written to the textfile (also when no file is configured); null if they could not be recorded. */
  metrics: (DrillMetrics & { file: string | null }) | null;
  /** Failing drills only: whether the webhook took the alert. */
  alert: { sent: boolean; status: number | null; error?: string } | null;
  /** Why the drill failed, one line. */
  failure?: string;
  /** Targets that could not be listed while choosing the set. */
  unreachableTargets: string[];
}

type Activities = ReturnType<typeof createDrillActivities>;

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});
/** The restores stream whole artefacts and run etcd/the database client: long, heartbeating, one retry. */
const restore = proxyActivities<Activities>({
  startToCloseTimeout: '2h',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 2, initialInterval: '10s', nonRetryableErrorTypes: NON_RETRYABLE },
});
/** Clean-up must happen: a few more tries, never cancelled. */
const cleanup = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: {
    maximumAttempts: 5,
    initialInterval: '5s',
    backoffCoefficient: 2,
    nonRetryableErrorTypes: [FailureType.InvalidInput, FailureType.ConfigError],
  },
});
/** The webhook gets three tries within a couple of minutes, then the run fails without it (the failure says so). */
const alerting = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '5s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

const STEPS = ['choose set', 'restore etcd', 'restore phpIPAM', 'check other artefacts', 'mark verified', 'emit metrics', 'alert'];

const failing = (checks: DrillCheck[]) => checks.filter((c) => !c.ok && !c.skipped);
const describeCheck = (c: DrillCheck) =>
  `${c.component}: ${c.name}${c.expected !== undefined || c.actual !== undefined ? ` (expected ${c.expected}, got ${c.actual})` : ''}${c.detail && !c.ok ? `: ${c.detail}` : ''}`;

export async function restoreDrillWorkflow(input: DrillInput): Promise<DrillReport> {
  if (!input || typeof input.cluster !== 'string' || input.cluster.length === 0) {
    throw ApplicationFailure.nonRetryable(
      'a restore drill needs { cluster: "<name>" } naming a cluster from the config',
      FailureType.InvalidInput,
    );
  }
  const info = workflowInfo();
  const tracker = new ProgressTracker('drill', input.cluster, STEPS);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'drill' },
  ]);
  const startedAt = new Date().toISOString();
  const report: DrillReport = {
    cluster: input.cluster,
    setId: null,
    ok: false,
    startedAt,
    finishedAt: startedAt,
    rto: { etcdMs: null, phpipamMs: null },
    checks: [],
    marked: [],
    metrics: null,
    alert: null,
    unreachableTargets: [],
  };

  /** One restore step: its checks join the report; a failed activity becomes a failed check; the drill goes on. */
  async function component(step: string, what: DrillCheck['component'], run: () => Promise<DrillCheck[]>): Promise<void> {
    const before = report.checks.length;
    try {
      await tracker.step(
        step,
        async () => {
          const checks = await run();
          report.checks.push(...checks);
          const bad = failing(checks);
          if (bad.length > 0) throw ApplicationFailure.nonRetryable(bad.map(describeCheck).join('; '), FailureType.DrillFailed);
          return checks;
        },
        (checks) =>
          `${checks.filter((c) => c.ok && !c.skipped).length} checks passed${checks.some((c) => c.skipped) ? `, ${checks.filter((c) => c.skipped).length} skipped` : ''}`,
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      if (report.checks.length === before) {
        report.checks.push({ component: what, name: step, ok: false, detail: err instanceof Error ? rootMessage(err) : String(err) });
      }
    }
  }

  let plan: DrillPlan | null = null;
  try {
    try {
      plan = await tracker.step(
        'choose set',
        () => quick.planRestoreDrill({ cluster: input.cluster, setId: input.setId, at: startedAt }),
        (p) =>
          `set ${p.setId} of ${p.setCreatedAt} in ${p.targets.join(', ')}${p.previouslyVerifiedAt ? ` (verified before, ${p.previouslyVerifiedAt})` : ''}`,
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      report.checks.push({
        component: 'set',
        name: 'choose a complete set',
        ok: false,
        detail: err instanceof Error ? rootMessage(err) : String(err),
      });
    }
    if (plan) {
      const chosen = plan;
      report.setId = chosen.setId;
      report.unreachableTargets = chosen.unreachableTargets;
      tracker.progress.setId = chosen.setId;
      upsertSearchAttributes([{ key: NnoeBackupSet, value: chosen.setId }]);
      report.checks.push(...chosen.checks);
      try {
        const etcd = chosen.etcd;
        if (etcd) {
          await component('restore etcd', 'etcd', async () => {
            const result = await restore.drillEtcdRestore({
              cluster: chosen.cluster,
              setId: chosen.setId,
              artefact: etcd.artefact,
              facts: etcd.facts,
            });
            report.rto.etcdMs = result.rtoMs;
            tracker.note(
              'restore etcd',
              `${result.rtoMs} ms from ${result.target} to a ready scratch member (fetch ${result.fetchMs}, restore ${result.restoreMs}); revision ${result.revision}, ${result.liveKeys} keys`,
            );
            return result.checks;
          });
        } else {
          tracker.note('restore etcd', 'the set has no etcd snapshot');
        }
        const phpipam = chosen.phpipam;
        if (phpipam) {
          await component('restore phpIPAM', 'phpipam', async () => {
            const result = await restore.drillPhpipamRestore({
              cluster: chosen.cluster,
              setId: chosen.setId,
              artefact: phpipam.artefact,
              facts: phpipam.facts,
              schema: phpipam.schema,
            });
            report.rto.phpipamMs = result.rtoMs;
            return result.checks;
          });
        } else {
          tracker.note('restore phpIPAM', 'the set has no phpIPAM dump');
        }
        if (chosen.otherArtefacts.length > 0) {
          await component('check other artefacts', 'artefacts', () => restore.drillCheckArtefacts({ artefacts: chosen.otherArtefacts }));
        }
      } finally {
        await CancellationScope.nonCancellable(() =>
          cleanup.cleanUpDrill({ cluster: chosen.cluster, schema: chosen.phpipam?.schema ?? null }),
        ).catch((err: unknown) => {
          report.checks.push({
            component: 'set',
            name: 'clean up scratch schema and dirs',
            ok: false,
            detail: err instanceof Error ? rootMessage(err) : String(err),
          });
        });
      }
    }

    const bad = failing(report.checks);
    if (plan && bad.length === 0) {
      const verification: SetVerification = {
        verifiedAt: new Date().toISOString(),
        drillWorkflowId: info.workflowId,
        drillRunId: info.runId,
        rto: report.rto,
        checks: report.checks,
      };
      const chosen = plan;
      try {
        const marked = await tracker.step(
          'mark verified',
          () =>
            quick.markSetVerified({
              setId: chosen.setId,
              targets: chosen.targets,
              fingerprint: chosen.fingerprint,
              verification,
            }),
          (m) => `verification written to ${m.map((c) => c.target).join(', ')}`,
        );
        report.marked = marked.map((m) => m.target);
        report.ok = true;
      } catch (err) {
        if (isCancellation(err)) throw err;
        report.checks.push({
          component: 'set',
          name: 'mark verified',
          ok: false,
          detail: err instanceof Error ? rootMessage(err) : String(err),
        });
      }
    }
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('drill failed', err); // cancelled: no verdict, no alert
  }

  report.finishedAt = new Date().toISOString();
  const rtoSeconds = {
    ...(report.rto.etcdMs !== null ? { etcd: report.rto.etcdMs / 1000 } : {}),
    ...(report.rto.phpipamMs !== null ? { phpipam: report.rto.phpipamMs / 1000 } : {}),
  };
  try {
    const recorded = await tracker.step(
      'emit metrics',
      () =>
        quick.recordDrillMetrics({
          cluster: input.cluster,
          success: report.ok,
          rtoSeconds,
          runAt: Math.floor(Date.parse(report.finishedAt) / 1000),
        }),
      (r) => (r.file ? `written to ${r.file}` : 'no drills.metricsFile configured: figures in the result only'),
    );
    report.metrics = { ...recorded.metrics, file: recorded.file };
  } catch (err) {
    if (isCancellation(err)) throw err;
    // A drill's verdict does not depend on its metrics: a passing drill stays passed (the step shows the error).
  }

  if (report.ok) {
    tracker.finish('completed');
    return report;
  }

  const bad = failing(report.checks);
  report.failure = bad.map(describeCheck).join('; ') || 'the drill could not run';
  const alert: DrillAlert = {
    source: 'nnoe-dr',
    event: 'restore-drill-failed',
    cluster: input.cluster,
    setId: report.setId,
    workflowId: info.workflowId,
    runId: info.runId,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    summary: `restore drill of ${input.cluster}${report.setId ? ` (set ${report.setId})` : ''} failed: ${report.failure}`,
    failedChecks: bad,
  };
  try {
    const sent = await tracker.step(
      'alert',
      () => alerting.sendDrillAlert({ alert }),
      (s) => (s.sent ? `POSTed to ${s.webhook} (HTTP ${s.status})` : 'no drills.alertWebhook configured'),
    );
    report.alert = { sent: sent.sent, status: sent.status };
  } catch (err) {
    if (isCancellation(err)) throw err;
    report.alert = { sent: false, status: null, error: err instanceof Error ? rootMessage(err) : String(err) };
  }
  tracker.finish('failed');
  throw ApplicationFailure.create({
    message: `${alert.summary}${report.alert?.error ? ` (and the alert failed: ${report.alert.error})` : ''}; the set was not marked verified`,
    type: FailureType.DrillFailed,
    nonRetryable: true,
    details: [report],
  });
}
