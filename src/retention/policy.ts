/**
 * Retention: which backup sets to keep and which have expired. A pure function (no I/O, no clock:
 * `now` is an input), so the prune workflow can call it deterministically and tests can pin it.
 *
 * Rules, per cluster (every decision carries a reason a human can read):
 * 1. Never expired: the newest complete set, the newest verified (complete) set, and protected sets
 *    (in use by a running restore). A cluster is never left without a set: when it has no
 *    complete set at all, its newest partial set is kept.
 * 2. `keepDays`: every set created within the last keepDays days is kept, complete or partial.
 *    A partial set can still hold a good component (e.g. etcd ok, phpIPAM failed), so within the
 *    window it stays; past it, it expires.
 * 3. `gfs` (grandfather-father-son): the newest complete set of each of the N most recent UTC days,
 *    ISO weeks and months that have one. A partial set never represents a day, week or month.
 * 4. Everything else expires.
 * So a partial set never counts as a good set: it is kept only by the window, by protection, or as a
 * cluster's last resort, never in place of a complete one.
 */

/** How long sets are kept. At least one of keepDays or a gfs count must be set. */
export interface RetentionPolicy {
  /** Keep every set younger than this many days. */
  keepDays?: number;
  /** Keep the newest complete set of each of the N most recent days / ISO weeks / months (UTC). */
  gfs?: { daily?: number; weekly?: number; monthly?: number };
}

export interface RetentionProfile {
  /** Cron schedule of the backup, in UTC. */
  schedule: string;
  policy: RetentionPolicy;
}

/** The runbook's profiles. */
export const RETENTION_PROFILES = {
  /** Every 6 hours, keep 7 days. */
  production: { schedule: '0 */6 * * *', policy: { keepDays: 7 } },
  /** Daily, keep 3 days. */
  development: { schedule: '0 3 * * *', policy: { keepDays: 3 } },
} as const satisfies Record<string, RetentionProfile>;
export type RetentionProfileName = keyof typeof RETENTION_PROFILES;

/** What retention needs to know of a set (a catalog entry). */
export interface RetentionSet {
  setId: string;
  cluster: string;
  /** ISO 8601. */
  createdAt: string;
  status: 'complete' | 'partial';
  /** When a restore drill last passed on this set (manifest `verification.verifiedAt`), ISO 8601. */
  verifiedAt?: string;
  /**
   * The longest S3 Object Lock retention on any of its objects that this tool may not bypass: S3
   * refuses the set's deletion until then, so it is kept (a set goes only when all its objects may).
   */
  lockedUntil?: { target: string; mode: 'GOVERNANCE' | 'COMPLIANCE'; until: string };
}

export interface RetentionInput {
  sets: RetentionSet[];
  policy: RetentionPolicy;
  now: Date;
  /** Sets that must stay whatever their age: those a running restore uses. */
  protectedSetIds?: string[];
}

export interface KeptSet {
  setId: string;
  cluster: string;
  createdAt: string;
  reasons: string[];
}

export interface ExpiredSet {
  setId: string;
  cluster: string;
  createdAt: string;
  reason: string;
}

/** Both lists newest first (ties: cluster, then set id), every input set in exactly one. */
export interface RetentionPlan {
  keep: KeptSet[];
  expire: ExpiredSet[];
}

export class RetentionPolicyError extends Error {
  override readonly name = 'RetentionPolicyError';
}

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

type GfsLevel = 'daily' | 'weekly' | 'monthly';
const GFS_LEVELS: GfsLevel[] = ['daily', 'weekly', 'monthly'];

/** A set with its parsed time, sorted newest first inside the planner. */
interface Dated extends RetentionSet {
  time: number;
}

export function planRetention(input: RetentionInput): RetentionPlan {
  checkPolicy(input.policy);
  const sets = checkSets(input.sets).sort(newestFirst);
  const protectedIds = new Set(input.protectedSetIds ?? []);
  const reasons = new Map<string, string[]>(sets.map((s) => [s.setId, []]));
  for (const cluster of new Set(sets.map((s) => s.cluster))) {
    const clusterSets = sets.filter((s) => s.cluster === cluster);
    for (const [setId, reason] of keepReasons(clusterSets, input.policy, input.now, protectedIds)) {
      reasons.get(setId)?.push(reason);
    }
  }
  const plan: RetentionPlan = { keep: [], expire: [] };
  for (const set of sets) {
    const { setId, cluster, createdAt } = set;
    const kept = reasons.get(setId) ?? [];
    if (kept.length > 0) plan.keep.push({ setId, cluster, createdAt, reasons: kept });
    else plan.expire.push({ setId, cluster, createdAt, reason: expiryReason(set, input.policy, input.now) });
  }
  return plan;
}

/** Every reason to keep a set of one cluster, as [setId, reason] pairs, rule by rule. */
function keepReasons(sets: Dated[], policy: RetentionPolicy, now: Date, protectedIds: Set<string>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const complete = sets.filter((s) => s.status === 'complete');
  for (const set of sets) {
    if (protectedIds.has(set.setId)) out.push([set.setId, 'protected: in use by a running restore']);
    if (set.lockedUntil && Date.parse(set.lockedUntil.until) > now.getTime()) {
      out.push([
        set.setId,
        `object lock (${set.lockedUntil.mode}) in ${set.lockedUntil.target} until ${set.lockedUntil.until}: S3 refuses its deletion before then`,
      ]);
    }
  }
  const newestVerified = complete.find((s) => s.verifiedAt !== undefined);
  if (newestVerified)
    out.push([newestVerified.setId, `newest verified set of ${newestVerified.cluster} (verified ${newestVerified.verifiedAt})`]);
  const newestComplete = complete[0];
  if (newestComplete) out.push([newestComplete.setId, `newest complete set of ${newestComplete.cluster}`]);
  const newest = sets[0];
  if (!newestComplete && newest) {
    out.push([newest.setId, `newest partial set of ${newest.cluster}, kept because the cluster has no complete set`]);
  }
  const { keepDays } = policy;
  if (keepDays !== undefined) {
    for (const set of sets.filter((s) => ageMs(s, now) <= keepDays * DAY_MS)) {
      const partial = set.status === 'partial' ? '; partial, so it counts for nothing else' : '';
      out.push([set.setId, `within ${keepDays} days (${ageText(set, now)} old)${partial}`]);
    }
  }
  for (const level of GFS_LEVELS) {
    const count = policy.gfs?.[level] ?? 0;
    gfsRepresentatives(complete, level, count).forEach(({ set, bucket }, index) => {
      out.push([set.setId, `GFS ${level}: newest complete set of ${bucket} (${index + 1} of ${count})`]);
    });
  }
  return out;
}

/** The newest complete set of each of the `count` most recent buckets that have one. */
function gfsRepresentatives(completeNewestFirst: Dated[], level: GfsLevel, count: number): Array<{ set: Dated; bucket: string }> {
  const chosen: Array<{ set: Dated; bucket: string }> = [];
  const seen = new Set<string>();
  for (const set of completeNewestFirst) {
    if (chosen.length >= count) break;
    const bucket = gfsBucket(level, new Date(set.time));
    if (seen.has(bucket)) continue;
    seen.add(bucket);
    chosen.push({ set, bucket });
  }
  return chosen;
}

/** The UTC day (2026-11-27), ISO week (2026-W48) or month (2026-11) a time falls in. */
export function gfsBucket(level: GfsLevel, date: Date): string {
  const iso = date.toISOString();
  if (level === 'daily') return iso.slice(0, 10);
  if (level === 'monthly') return iso.slice(0, 7);
  return isoWeek(date);
}

/** ISO 8601 week: weeks start on Monday, and a week belongs to the year of its Thursday. */
function isoWeek(date: Date): string {
  const day = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
  const weekday = day.getUTCDay() || 7; // Monday 1 .. Sunday 7
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // that week's Thursday
  const year = day.getUTCFullYear();
  const week = Math.ceil(((day.getTime() - Date.UTC(year, 0, 1)) / DAY_MS + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

function expiryReason(set: Dated, policy: RetentionPolicy, now: Date): string {
  const age = ageText(set, now);
  if (set.status === 'partial') {
    return policy.keepDays !== undefined
      ? `partial set older than ${policy.keepDays} days (${age} old); partial sets never count for GFS or as the newest complete set`
      : 'partial set; partial sets are kept only within keepDays, which this policy does not set';
  }
  const parts: string[] = [];
  if (policy.keepDays !== undefined) parts.push(`older than ${policy.keepDays} days (${age} old)`);
  if (describeGfs(policy)) parts.push(`not the newest complete set of a day, week or month kept by GFS (${describeGfs(policy)})`);
  return parts.join(' and ');
}

function describeGfs(policy: RetentionPolicy): string {
  return GFS_LEVELS.filter((level) => (policy.gfs?.[level] ?? 0) > 0)
    .map((level) => `${level} ${policy.gfs?.[level]}`)
    .join(', ');
}

function ageMs(set: Dated, now: Date): number {
  return Math.max(0, now.getTime() - set.time); // a set dated in the future (clock skew) counts as new
}

function ageText(set: Dated, now: Date): string {
  const hours = Math.floor(ageMs(set, now) / HOUR_MS);
  return hours >= 24 ? `${Math.floor(hours / 24)}d ${hours % 24}h` : `${hours}h`;
}

function newestFirst(a: Dated, b: Dated): number {
  return b.time - a.time || a.cluster.localeCompare(b.cluster) || b.setId.localeCompare(a.setId);
}

/** A policy that keeps nothing but the newest set is a mistake, not a wish: refuse it. */
function checkPolicy(policy: RetentionPolicy): void {
  const { keepDays, gfs } = policy;
  if (keepDays !== undefined && !(Number.isFinite(keepDays) && keepDays > 0)) {
    throw new RetentionPolicyError(`keepDays: expected a number of days above 0, got ${keepDays}`);
  }
  for (const level of GFS_LEVELS) {
    const count = gfs?.[level];
    if (count !== undefined && !(Number.isInteger(count) && count >= 0)) {
      throw new RetentionPolicyError(`gfs.${level}: expected a whole number of ${level} sets to keep (0 or more), got ${count}`);
    }
  }
  if (keepDays === undefined && !describeGfs(policy)) {
    throw new RetentionPolicyError('retention policy keeps nothing: expected keepDays and/or a gfs daily, weekly or monthly count');
  }
}

function checkSets(sets: RetentionSet[]): Dated[] {
  const seen = new Set<string>();
  return sets.map((set) => {
    const time = Date.parse(set.createdAt);
    if (Number.isNaN(time)) throw new RetentionPolicyError(`set ${set.setId}: createdAt "${set.createdAt}" is not an ISO 8601 time`);
    if (seen.has(set.setId)) throw new RetentionPolicyError(`set ${set.setId} is listed twice`);
    if (set.status !== 'complete' && set.status !== 'partial') {
      throw new RetentionPolicyError(`set ${set.setId}: status "${String(set.status)}" is not complete or partial`);
    }
    seen.add(set.setId);
    return { ...set, time };
  });
}
