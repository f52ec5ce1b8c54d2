/**
 * `nnoe-dr status`: is each cluster protected right now? Pure: ./gather.ts collects the facts
 * (catalog, schedules, Temporal visibility, the capture, the agent check); this judges them
 * against the objectives and says, one line per subject, what is out and why. Tested without a world.
 *
 * Objectives: a backup may be 1.5 x its schedule's period old (one missed run is a problem, a run
 * still in progress is not), or the cluster's `objectives.backupMaxAge`; the newest verified set
 * 2 days old when a drill schedule exists (or `objectives.verifiedMaxAge`); the newest drill must
 * not have failed; a running capture at most `objectives.captureMaxLagRevisions` behind etcd; every
 * agent serving. The management worker exports the same bounds (`nnoe_dr_objective_*`), and
 * deploy/prometheus/alerts.yml alerts on them.
 */

export const BACKUP_AGE_GRACE = 1.5;
export const DEFAULT_VERIFIED_MAX_AGE_MS = 2 * 24 * 3_600_000;
export const DEFAULT_CAPTURE_MAX_LAG_REVISIONS = 1000;

export interface SetFact {
  setId: string;
  status: 'complete' | 'partial';
  createdAt: string;
  components: string[];
  verifiedAt?: string;
}

export interface ScheduleFact {
  scheduleId: string;
  paused: boolean;
  /** Time between two runs; null when it cannot be told. */
  periodMs: number | null;
}

export interface DrillRunFact {
  workflowId: string;
  /** Temporal's execution status, lower case: completed, failed, timed_out, terminated, canceled. */
  status: string;
  closedAt: string | null;
}

export interface CaptureFact {
  /** `absent`: never started; otherwise Temporal's execution status, lower case (running, completed, failed...). */
  state: string;
  lastDurable: number | null;
  /** etcd's revision when looked at (running captures only); null when etcd could not be asked. */
  currentRevision: number | null;
  /** Why etcd could not be asked. */
  etcdError?: string;
}

export interface RunbookFact {
  workflowId: string;
  runbook: string;
  startedAt: string;
}

export interface AgentFact {
  node: string;
  state: 'serving' | 'deaf' | 'stale' | 'down';
  reason: string | null;
}

export interface ClusterFacts {
  cluster: string;
  now: number;
  /** What the config says the cluster has: etcd, phpipam, agent-cache, agent-config, nebula. */
  components: string[];
  sets: SetFact[];
  /** Targets whose catalog could not be read, with why. */
  unreadableTargets: string[];
  backupSchedule: ScheduleFact | null;
  drillSchedule: ScheduleFact | null;
  objectives: { backupMaxAgeMs?: number; verifiedMaxAgeMs?: number; captureMaxLagRevisions?: number };
  lastDrill: DrillRunFact | null;
  capture: CaptureFact;
  running: RunbookFact[];
  /** null: the cluster has no agents; a string: the check could not be made, and why. */
  agents: AgentFact[] | string | null;
}

export interface StatusLine {
  cluster: string;
  /** `etcd`, `phpipam`, ..., `drill`, `capture`, `schedules`, `runbooks`, `storage`, `agent node-1`. */
  subject: string;
  ok: boolean;
  summary: string;
  /** Why it is out of its objective (ok false only). */
  problem?: string;
}

/** `2d 3h`, `5h 12m`, `42s`: ages an operator reads at a glance. */
export function humanAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d${h ? ` ${h}h` : ''}`;
  if (h > 0) return `${h}h${m ? ` ${m}m` : ''}`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

/** The shortest gap between consecutive upcoming run times: a schedule's period. */
export function periodOf(nextRunTimes: number[]): number | null {
  const sorted = [...nextRunTimes].sort((a, b) => a - b);
  const gaps = sorted
    .slice(1)
    .map((t, i) => t - sorted[i]!)
    .filter((g) => g > 0);
  return gaps.length > 0 ? Math.min(...gaps) : null;
}

/** The age a component's newest complete set may reach (also exported as a series for the alerts); null: no RPO. */
export function backupLimit(facts: Pick<ClusterFacts, 'objectives' | 'backupSchedule'>): { ms: number; why: string } | null {
  if (facts.objectives.backupMaxAgeMs !== undefined) return { ms: facts.objectives.backupMaxAgeMs, why: 'objectives.backupMaxAge' };
  const period = facts.backupSchedule?.periodMs;
  if (period) return { ms: period * BACKUP_AGE_GRACE, why: `${BACKUP_AGE_GRACE} x the schedule's ${humanAge(period)}` };
  return null;
}

/** The age the newest verification may reach; null: not judged. */
export function verifiedLimit(facts: Pick<ClusterFacts, 'objectives' | 'drillSchedule'>): { ms: number; why: string } | null {
  if (facts.objectives.verifiedMaxAgeMs !== undefined) return { ms: facts.objectives.verifiedMaxAgeMs, why: 'objectives.verifiedMaxAge' };
  if (facts.drillSchedule) return { ms: DEFAULT_VERIFIED_MAX_AGE_MS, why: 'daily drill schedule' };
  return null;
}

function componentLine(facts: ClusterFacts, component: string): StatusLine {
  const line = (ok: boolean, summary: string, problem?: string): StatusLine => ({
    cluster: facts.cluster,
    subject: component,
    ok,
    summary,
    ...(problem ? { problem } : {}),
  });
  const holding = facts.sets
    .filter((s) => s.status === 'complete' && s.components.includes(component))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const newest = holding[0];
  if (!newest) return line(false, 'no complete set holds it', 'never backed up: no complete set holds this component');
  const problems: string[] = [];
  const age = facts.now - Date.parse(newest.createdAt);
  const limit = backupLimit(facts);
  if (limit && age > limit.ms) problems.push(`newest complete set is ${humanAge(age)} old, over ${humanAge(limit.ms)} (${limit.why})`);
  const newestText = `newest ${newest.setId} ${humanAge(age)} old (${limit ? `limit ${humanAge(limit.ms)}` : 'no RPO: no backup schedule'})`;

  const verified = holding.filter((s) => s.verifiedAt).sort((a, b) => b.verifiedAt!.localeCompare(a.verifiedAt!))[0];
  const vLimit = verifiedLimit(facts);
  let verifiedText: string;
  if (!verified) {
    verifiedText = 'never verified';
    if (vLimit) problems.push('no set holding it was ever verified by a drill');
  } else {
    const vAge = facts.now - Date.parse(verified.verifiedAt!);
    verifiedText = `verified ${verified.setId} ${humanAge(vAge)} ago${vLimit ? ` (limit ${humanAge(vLimit.ms)})` : ''}`;
    if (vLimit && vAge > vLimit.ms)
      problems.push(`newest verification is ${humanAge(vAge)} old, over ${humanAge(vLimit.ms)} (${vLimit.why})`);
  }
  return line(problems.length === 0, `${newestText}; ${verifiedText}`, problems.join('; ') || undefined);
}

function drillLine(facts: ClusterFacts): StatusLine {
  const base = { cluster: facts.cluster, subject: 'drill' };
  const drill = facts.lastDrill;
  if (!drill) return { ...base, ok: true, summary: facts.drillSchedule ? 'no drill has run yet' : 'no drill has run (no drill schedule)' };
  const when = drill.closedAt ? ` ${humanAge(facts.now - Date.parse(drill.closedAt))} ago` : '';
  if (drill.status === 'completed') return { ...base, ok: true, summary: `newest drill ${drill.workflowId} passed${when}` };
  return {
    ...base,
    ok: false,
    summary: `newest drill ${drill.workflowId} ${drill.status}${when}`,
    problem: `the newest restore drill ${drill.status.replace('_', ' ')}: see ${drill.workflowId}`,
  };
}

function captureLine(facts: ClusterFacts): StatusLine {
  const base = { cluster: facts.cluster, subject: 'capture' };
  const { state, lastDurable, currentRevision, etcdError } = facts.capture;
  if (state === 'absent') return { ...base, ok: true, summary: 'off (never started)' };
  if (state === 'completed') return { ...base, ok: true, summary: `stopped, durable up to revision ${lastDurable ?? '-'}` };
  if (state !== 'running')
    return {
      ...base,
      ok: false,
      summary: `${state}, durable up to revision ${lastDurable ?? '-'}`,
      problem: `the change capture ${state.replace('_', ' ')}: changes since revision ${lastDurable ?? '-'} are not captured`,
    };
  if (lastDurable === null) return { ...base, ok: true, summary: 'running, starting (its first revision not chosen yet)' };
  if (currentRevision === null)
    return {
      ...base,
      ok: false,
      summary: `running, durable up to revision ${lastDurable ?? '-'}`,
      problem: `etcd's revision could not be read: ${etcdError ?? 'unknown'}`,
    };
  const bound = facts.objectives.captureMaxLagRevisions ?? DEFAULT_CAPTURE_MAX_LAG_REVISIONS;
  const lag = Math.max(0, currentRevision - lastDurable);
  const summary = `running, durable up to revision ${lastDurable}, etcd at ${currentRevision}: lag ${lag} revisions (limit ${bound})`;
  return lag > bound
    ? { ...base, ok: false, summary, problem: `capture is ${lag} revisions behind etcd, over ${bound}` }
    : { ...base, ok: true, summary };
}

function schedulesLine(facts: ClusterFacts): StatusLine {
  const describe = (what: string, s: ScheduleFact | null) =>
    s ? `${what} ${s.scheduleId}${s.periodMs ? ` every ${humanAge(s.periodMs)}` : ''}${s.paused ? ' PAUSED' : ''}` : `no ${what} schedule`;
  return {
    cluster: facts.cluster,
    subject: 'schedules',
    ok: true,
    summary: `${describe('backup', facts.backupSchedule)}; ${describe('drill', facts.drillSchedule)}`,
  };
}

function runbooksLine(facts: ClusterFacts): StatusLine {
  const summary =
    facts.running.length === 0
      ? 'none running'
      : facts.running.map((r) => `${r.runbook} ${r.workflowId} (${humanAge(facts.now - Date.parse(r.startedAt))})`).join(', ');
  return { cluster: facts.cluster, subject: 'runbooks', ok: true, summary };
}

function agentLines(facts: ClusterFacts): StatusLine[] {
  if (facts.agents === null) return [];
  if (typeof facts.agents === 'string')
    return [{ cluster: facts.cluster, subject: 'agents', ok: false, summary: 'not checked', problem: facts.agents }];
  return facts.agents.map((a) => ({
    cluster: facts.cluster,
    subject: `agent ${a.node}`,
    ok: a.state === 'serving',
    summary: a.state,
    ...(a.state === 'serving' ? {} : { problem: a.reason ?? a.state }),
  }));
}

/** Every line of one cluster, components first. */
export function evaluateCluster(facts: ClusterFacts): StatusLine[] {
  const lines = facts.components.map((c) => componentLine(facts, c));
  if (facts.unreadableTargets.length > 0) {
    lines.push({
      cluster: facts.cluster,
      subject: 'storage',
      ok: false,
      summary: `${facts.unreadableTargets.length} target(s) unreadable`,
      problem: facts.unreadableTargets.join('; '),
    });
  }
  lines.push(drillLine(facts), captureLine(facts), schedulesLine(facts), runbooksLine(facts), ...agentLines(facts));
  return lines;
}

/** `nnoe-local  etcd         OK    newest ...`, with the problem on the next line when out. */
export function formatLine(line: StatusLine): string {
  const head = `${line.cluster.padEnd(12)} ${line.subject.padEnd(14)} ${(line.ok ? 'ok' : 'OUT').padEnd(4)} ${line.summary}`;
  return line.problem ? `${head}\n${' '.repeat(33)}${line.problem}` : head;
}
