/** `nnoe-dr status`'s judgement (src/status/objectives.ts): facts in, lines and verdicts out. */
import { describe, expect, it } from 'vitest';
import { evaluateCluster, formatLine, humanAge, periodOf, type ClusterFacts } from '../../src/status/objectives';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-12-04T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function facts(over: Partial<ClusterFacts> = {}): ClusterFacts {
  return {
    cluster: 'prod',
    now: NOW,
    components: ['etcd', 'phpipam'],
    sets: [
      { setId: 'prod-new', status: 'complete', createdAt: ago(2 * HOUR), components: ['etcd', 'phpipam'] },
      { setId: 'prod-old', status: 'complete', createdAt: ago(20 * HOUR), components: ['etcd', 'phpipam'], verifiedAt: ago(19 * HOUR) },
    ],
    unreadableTargets: [],
    backupSchedule: { scheduleId: 'nnoe-dr-backup-set-prod', paused: false, periodMs: 6 * HOUR },
    drillSchedule: { scheduleId: 'nnoe-dr-drill-prod', paused: false, periodMs: 24 * HOUR },
    objectives: { captureMaxLagRevisions: 1000 },
    lastDrill: { workflowId: 'drill-prod-1', status: 'completed', closedAt: ago(19 * HOUR) },
    capture: { state: 'running', lastDurable: 500, currentRevision: 510 },
    running: [],
    agents: [{ node: 'node-1', state: 'serving', reason: null }],
    ...over,
  };
}

const line = (f: ClusterFacts, subject: string) => evaluateCluster(f).find((l) => l.subject === subject)!;
const outOf = (f: ClusterFacts) =>
  evaluateCluster(f)
    .filter((l) => !l.ok)
    .map((l) => l.subject);

describe('status objectives', () => {
  it('a healthy cluster: every line ok, with the newest and verified sets, lag and agents', () => {
    const f = facts();
    expect(outOf(f)).toEqual([]);
    expect(evaluateCluster(f).map((l) => l.subject)).toEqual([
      'etcd',
      'phpipam',
      'drill',
      'capture',
      'schedules',
      'runbooks',
      'agent node-1',
    ]);
    expect(line(f, 'etcd').summary).toBe('newest prod-new 2h old (limit 9h); verified prod-old 19h ago (limit 2d)');
    expect(line(f, 'capture').summary).toBe('running, durable up to revision 500, etcd at 510: lag 10 revisions (limit 1000)');
  });

  it("a backup older than 1.5 x the schedule's period is out; a run in progress (below it) is not", () => {
    const late = facts({
      sets: [
        { setId: 'prod-a', status: 'complete', createdAt: ago(9 * HOUR + 60_000), components: ['etcd', 'phpipam'], verifiedAt: ago(HOUR) },
      ],
    });
    expect(outOf(late)).toEqual(['etcd', 'phpipam']);
    expect(line(late, 'etcd').problem).toBe("newest complete set is 9h 1m old, over 9h (1.5 x the schedule's 6h)");
    const due = facts({
      sets: [{ setId: 'prod-a', status: 'complete', createdAt: ago(7 * HOUR), components: ['etcd', 'phpipam'], verifiedAt: ago(HOUR) }],
    });
    expect(outOf(due)).toEqual([]);
  });

  it('objectives.backupMaxAge overrides the schedule; without either there is no RPO', () => {
    expect(outOf(facts({ objectives: { backupMaxAgeMs: HOUR } }))).toEqual(['etcd', 'phpipam']);
    expect(line(facts({ objectives: { backupMaxAgeMs: HOUR } }), 'etcd').problem).toContain('(objectives.backupMaxAge)');
    const unscheduled = facts({
      backupSchedule: null,
      sets: [{ setId: 'x', status: 'complete', createdAt: ago(100 * HOUR), components: ['etcd', 'phpipam'], verifiedAt: ago(HOUR) }],
    });
    expect(outOf(unscheduled)).toEqual([]);
    expect(line(unscheduled, 'etcd').summary).toContain('no RPO: no backup schedule');
  });

  it('a component no complete set holds is out, partial sets do not count', () => {
    const f = facts({
      sets: [
        { setId: 'p', status: 'partial', createdAt: ago(HOUR), components: ['etcd', 'phpipam'] },
        { setId: 'e', status: 'complete', createdAt: ago(HOUR), components: ['etcd'], verifiedAt: ago(HOUR) },
      ],
    });
    expect(outOf(f)).toEqual(['phpipam']);
    expect(line(f, 'phpipam').problem).toBe('never backed up: no complete set holds this component');
  });

  it('verification older than 2 days with a drill schedule is out; without one only an objective makes it so', () => {
    const stale = facts({
      sets: [{ setId: 's', status: 'complete', createdAt: ago(HOUR), components: ['etcd', 'phpipam'], verifiedAt: ago(49 * HOUR) }],
    });
    expect(outOf(stale)).toEqual(['etcd', 'phpipam']);
    expect(line(stale, 'etcd').problem).toBe('newest verification is 2d 1h old, over 2d (daily drill schedule)');
    expect(outOf({ ...stale, drillSchedule: null })).toEqual([]);
    expect(outOf({ ...stale, drillSchedule: null, objectives: { verifiedMaxAgeMs: 24 * HOUR } })).toEqual(['etcd', 'phpipam']);
    const never = facts({ sets: [{ setId: 's', status: 'complete', createdAt: ago(HOUR), components: ['etcd', 'phpipam'] }] });
    expect(line(never, 'etcd')).toMatchObject({ ok: false, problem: 'no set holding it was ever verified by a drill' });
  });

  it('the newest drill failing is out, naming the run; a later passing drill clears it', () => {
    const failed = facts({ lastDrill: { workflowId: 'drill-prod-2', status: 'failed', closedAt: ago(HOUR) } });
    expect(outOf(failed)).toEqual(['drill']);
    expect(line(failed, 'drill')).toMatchObject({
      summary: 'newest drill drill-prod-2 failed 1h ago',
      problem: 'the newest restore drill failed: see drill-prod-2',
    });
    expect(line(facts({ lastDrill: { workflowId: 'd', status: 'timed_out', closedAt: null } }), 'drill').problem).toBe(
      'the newest restore drill timed out: see d',
    );
  });

  it('capture: lag over the bound, a failed capture and an unreadable etcd are out; off and stopped are not', () => {
    expect(line(facts({ capture: { state: 'running', lastDurable: 100, currentRevision: 1200 } }), 'capture').problem).toBe(
      'capture is 1100 revisions behind etcd, over 1000',
    );
    expect(
      outOf(
        facts({ capture: { state: 'running', lastDurable: 100, currentRevision: 1200 }, objectives: { captureMaxLagRevisions: 5000 } }),
      ),
    ).toEqual([]);
    expect(line(facts({ capture: { state: 'failed', lastDurable: 42, currentRevision: null } }), 'capture').problem).toBe(
      'the change capture failed: changes since revision 42 are not captured',
    );
    expect(
      line(facts({ capture: { state: 'running', lastDurable: 42, currentRevision: null, etcdError: 'no leader' } }), 'capture').problem,
    ).toBe("etcd's revision could not be read: no leader");
    expect(line(facts({ capture: { state: 'running', lastDurable: null, currentRevision: 900 } }), 'capture')).toMatchObject({
      ok: true,
      summary: 'running, starting (its first revision not chosen yet)',
    });
    expect(line(facts({ capture: { state: 'absent', lastDurable: null, currentRevision: null } }), 'capture')).toMatchObject({
      ok: true,
      summary: 'off (never started)',
    });
    expect(line(facts({ capture: { state: 'completed', lastDurable: 9, currentRevision: null } }), 'capture').ok).toBe(true);
  });

  it('a deaf or stale agent is out with its reason; an agent check without an answer is out', () => {
    const f = facts({
      agents: [
        { node: 'node-1', state: 'deaf', reason: 'deaf: pid 12 runs but holds no connection to etcd' },
        { node: 'node-2', state: 'serving', reason: null },
      ],
    });
    expect(outOf(f)).toEqual(['agent node-1']);
    expect(formatLine(line(f, 'agent node-1'))).toMatch(
      /^prod\s+agent node-1\s+OUT\s+deaf\n\s+deaf: pid 12 runs but holds no connection to etcd$/,
    );
    expect(line(facts({ agents: 'the agent check x did not answer within 60 s' }), 'agents')).toMatchObject({
      ok: false,
      problem: 'the agent check x did not answer within 60 s',
    });
    expect(evaluateCluster(facts({ agents: null })).some((l) => l.subject.startsWith('agent'))).toBe(false);
  });

  it('schedules show paused ones, runbooks running are listed, unreadable targets are out', () => {
    const f = facts({
      backupSchedule: { scheduleId: 'nnoe-dr-backup-set-prod', paused: true, periodMs: 6 * HOUR },
      running: [{ workflowId: 'etcd-restore-prod-1', runbook: 'etcd-restore', startedAt: ago(5 * 60_000) }],
      unreadableTargets: ['s3: connect ECONNREFUSED'],
    });
    expect(line(f, 'schedules').summary).toBe('backup nnoe-dr-backup-set-prod every 6h PAUSED; drill nnoe-dr-drill-prod every 1d');
    expect(line(f, 'runbooks').summary).toBe('etcd-restore etcd-restore-prod-1 (5m)');
    expect(line(f, 'storage')).toMatchObject({ ok: false, problem: 's3: connect ECONNREFUSED' });
  });

  it('periods from upcoming run times, ages for people', () => {
    expect(periodOf([3, 1, 2].map((n) => n * 6 * HOUR))).toBe(6 * HOUR);
    expect(periodOf([HOUR])).toBeNull();
    expect([humanAge(42_000), humanAge(61 * 60_000), humanAge(49 * HOUR)]).toEqual(['42s', '1h 1m', '2d 1h']);
  });
});
