/**
 * What the restore drill tells monitoring (pure, unit-tested): the Prometheus textfile (one file for
 * every cluster, replaced atomically by the activity) and the alert a failing drill POSTs.
 */
import type { DrillCheck } from '../common/manifest';

export interface DrillMetricsSample {
  cluster: string;
  success: boolean;
  /** Measured RTO per component; a component without one (absent, or its restore failed) has no series. */
  rtoSeconds: { etcd?: number; phpipam?: number };
  /** Unix seconds. */
  runAt: number;
}

export interface DrillMetrics {
  success: 0 | 1;
  rtoSeconds: { etcd?: number; phpipam?: number };
  lastRunTimestampSeconds: number;
  /** The last passing drill of the cluster (kept from the file when this one failed); null if none known. */
  lastSuccessTimestampSeconds: number | null;
}

const METRIC_HELP: Record<string, string> = {
  nnoe_dr_drill_success: '1 if the last restore drill of the cluster passed and marked its set verified, else 0.',
  nnoe_dr_drill_rto_seconds: 'Restore time measured by the last drill, per component (fetch, decrypt, decompress, restore, ready).',
  nnoe_dr_drill_last_run_timestamp_seconds: 'When the last restore drill of the cluster finished, in Unix seconds.',
  nnoe_dr_drill_last_success_timestamp_seconds: 'When a restore drill of the cluster last passed, in Unix seconds.',
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE_LINE.exec(line.trim());
    if (!m || line.trim().startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(m[3]);
    if (Number.isFinite(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

const escapeLabel = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * The textfile after one drill: this cluster's series replaced, other clusters' kept (one file for
 * every cluster the worker drills), the last-success time carried over from the file when the drill failed.
 */
export function renderDrillMetrics(existing: string | null, sample: DrillMetricsSample): { text: string; metrics: DrillMetrics } {
  const previous = parseSamples(existing ?? '').filter((s) => s.name in METRIC_HELP);
  const others = previous.filter((s) => s.labels.cluster !== sample.cluster);
  const lastSuccess = sample.success
    ? sample.runAt
    : (previous.find((s) => s.name === 'nnoe_dr_drill_last_success_timestamp_seconds' && s.labels.cluster === sample.cluster)?.value ??
      null);
  const ours: Sample[] = [
    { name: 'nnoe_dr_drill_success', labels: { cluster: sample.cluster }, value: sample.success ? 1 : 0 },
    ...(['etcd', 'phpipam'] as const).flatMap((component) => {
      const value = sample.rtoSeconds[component];
      return value === undefined ? [] : [{ name: 'nnoe_dr_drill_rto_seconds', labels: { cluster: sample.cluster, component }, value }];
    }),
    { name: 'nnoe_dr_drill_last_run_timestamp_seconds', labels: { cluster: sample.cluster }, value: sample.runAt },
    ...(lastSuccess === null
      ? []
      : [{ name: 'nnoe_dr_drill_last_success_timestamp_seconds', labels: { cluster: sample.cluster }, value: lastSuccess }]),
  ];
  const all = [...others, ...ours];
  const lines: string[] = [];
  for (const [name, help] of Object.entries(METRIC_HELP)) {
    const samples = all.filter((s) => s.name === name).sort((a, b) => JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)));
    if (samples.length === 0) continue;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const s of samples) {
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(',');
      lines.push(`${name}{${labels}} ${s.value}`);
    }
  }
  return {
    text: `${lines.join('\n')}\n`,
    metrics: {
      success: sample.success ? 1 : 0,
      rtoSeconds: sample.rtoSeconds,
      lastRunTimestampSeconds: sample.runAt,
      lastSuccessTimestampSeconds: lastSuccess,
    },
  };
}

/** What a failing drill POSTs: names, ids, times and the failed checks; never a secret, a URL with credentials or data. */
export interface DrillAlert {
  source: 'nnoe-dr';
  event: 'restore-drill-failed';
  cluster: string;
  setId: string | null;
  workflowId: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  summary: string;
  failedChecks: DrillCheck[];
}
