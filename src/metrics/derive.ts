/**
 * Our Prometheus series, derived (pure) from what survives any worker restart: the catalog's
 * manifests and Temporal's schedules and visibility. Workflow code cannot export gauges (a replay
 * would set them again, a restarted worker would forget them), so the management worker reads
 * these sources on a timer (./server.ts) and sets every series from scratch each time.
 * Names follow Prometheus conventions: `nnoe_dr_` prefix, base units (seconds, bytes), `_timestamp_seconds`.
 */
import type { BackupManifest } from '../common/manifest';

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every series we export, with its help text and labels (the registry is built from this). */
export const METRICS = {
  nnoe_dr_backup_last_success_timestamp_seconds: {
    help: 'Start of the newest complete backup set holding the component (its data time)',
    labels: ['cluster', 'component'],
  },
  nnoe_dr_backup_last_verified_timestamp_seconds: {
    help: 'When a restore drill last verified a complete set holding the component',
    labels: ['cluster', 'component'],
  },
  nnoe_dr_backup_last_bytes: { help: 'Stored bytes of the component in the newest complete set', labels: ['cluster', 'component'] },
  nnoe_dr_backup_last_duration_seconds: {
    help: 'How long the component took in the newest complete set',
    labels: ['cluster', 'component'],
  },
  nnoe_dr_backup_schedule_period_seconds: { help: "Time between two runs of the cluster's backup schedule (the RPO)", labels: ['cluster'] },
  nnoe_dr_backup_schedule_paused: { help: "1 when the cluster's backup schedule is paused", labels: ['cluster'] },
  nnoe_dr_objective_backup_max_age_seconds: {
    help: "Age the newest complete set may reach: objectives.backupMaxAge, else 1.5 x the backup schedule's period",
    labels: ['cluster'],
  },
  nnoe_dr_objective_verified_max_age_seconds: {
    help: 'Age the newest verification may reach: objectives.verifiedMaxAge, else 2 days with a drill schedule',
    labels: ['cluster'],
  },
  nnoe_dr_objective_capture_max_lag_revisions: {
    help: 'How far the running capture may be behind etcd (objectives.captureMaxLagRevisions)',
    labels: ['cluster'],
  },
  nnoe_dr_backup_sets_keys_at_risk: {
    help: 'Retained sets of the cluster that need a retired age recipient, or that no identity held by this worker opens (nnoe-dr backups keys)',
    labels: ['cluster'],
  },
  nnoe_dr_capture_running: { help: "1 when the cluster's change capture runs", labels: ['cluster'] },
  nnoe_dr_capture_last_durable_revision: { help: 'Newest etcd revision the change capture made durable', labels: ['cluster'] },
  nnoe_dr_capture_lag_revisions: { help: "etcd's revision minus the newest durable revision of the running capture", labels: ['cluster'] },
  nnoe_dr_runbook_last_success: {
    help: 'Whether the newest finished run of the runbook completed (1) or not (0)',
    labels: ['cluster', 'runbook'],
  },
  nnoe_dr_runbook_last_duration_seconds: { help: 'Duration of the newest finished run of the runbook', labels: ['cluster', 'runbook'] },
  nnoe_dr_runbook_last_end_timestamp_seconds: { help: 'When the newest finished run of the runbook ended', labels: ['cluster', 'runbook'] },
  nnoe_dr_prune_last_deleted_sets: { help: 'Backup sets the newest completed prune deleted', labels: [] },
  nnoe_dr_prune_last_deleted_segments: { help: 'Change-capture segment objects the newest completed prune deleted', labels: [] },
  nnoe_dr_task_queue_pollers: { help: 'Workers seen polling the task queue (activities) lately', labels: ['task_queue', 'kind', 'node'] },
  nnoe_dr_metrics_refresh_timestamp_seconds: { help: 'When the management worker last derived these series without an error', labels: [] },
  nnoe_dr_metrics_refresh_errors: { help: 'Sources that failed in the last refresh (0 when all were read)', labels: [] },
} as const satisfies Record<string, { help: string; labels: readonly string[] }>;
export type MetricName = keyof typeof METRICS;

const seconds = (iso: string) => Date.parse(iso) / 1000;

/** Per component: the newest complete set's time, bytes and duration, and the newest verification. */
export function catalogSamples(cluster: string, components: string[], manifests: BackupManifest[]): MetricSample[] {
  const out: MetricSample[] = [];
  const complete = manifests.filter((m) => m.status === 'complete').sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  for (const component of components) {
    const labels = { cluster, component };
    const holding = complete.filter((m) => m.components.some((c) => c.component === component));
    const newest = holding[0];
    if (newest) {
      const records = newest.components.filter((c) => c.component === component);
      const started = Math.min(...records.map((r) => seconds(r.startedAt)));
      const finished = Math.max(...records.map((r) => seconds(r.finishedAt)));
      out.push(
        { name: 'nnoe_dr_backup_last_success_timestamp_seconds', labels, value: seconds(newest.createdAt) },
        { name: 'nnoe_dr_backup_last_bytes', labels, value: records.flatMap((r) => r.artefacts).reduce((sum, a) => sum + a.bytes, 0) },
        { name: 'nnoe_dr_backup_last_duration_seconds', labels, value: Math.max(0, finished - started) },
      );
    }
    const verified = holding
      .map((m) => m.verification?.verifiedAt)
      .filter((v): v is string => v !== undefined)
      .sort()
      .pop();
    if (verified) out.push({ name: 'nnoe_dr_backup_last_verified_timestamp_seconds', labels, value: seconds(verified) });
  }
  return out;
}

export interface FinishedRun {
  runbook: string;
  status: string;
  startedAt: string;
  closedAt: string;
}

/** The newest finished run of each runbook: success, duration, end time. */
export function runbookSamples(cluster: string, runs: FinishedRun[]): MetricSample[] {
  const newest = new Map<string, FinishedRun>();
  for (const run of runs) if ((newest.get(run.runbook)?.closedAt ?? '') < run.closedAt) newest.set(run.runbook, run);
  return [...newest.values()].flatMap((run) => {
    const labels = { cluster, runbook: run.runbook };
    return [
      { name: 'nnoe_dr_runbook_last_success', labels, value: run.status === 'completed' ? 1 : 0 },
      { name: 'nnoe_dr_runbook_last_duration_seconds', labels, value: Math.max(0, seconds(run.closedAt) - seconds(run.startedAt)) },
      { name: 'nnoe_dr_runbook_last_end_timestamp_seconds', labels, value: seconds(run.closedAt) },
    ];
  });
}
