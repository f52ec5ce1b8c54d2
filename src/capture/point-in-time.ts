/**
 * Which snapshot a point-in-time restore starts from, and whether a target is a valid input. Pure
 * (unit-tested); the PITR activity reads the catalog and the live cluster and calls these.
 *
 * Revisions only mean something within one incarnation (etcd cluster ID): every restore makes a new
 * one that counts from the snapshot's revision again. So a restore considers only the snapshots of
 * one incarnation, the one the change chain belongs to: the one named, else for a time the one whose
 * snapshot is the newest taken at or before it, else for a revision the live cluster's.
 */

export interface PitrSnapshot {
  setId: string;
  createdMs: number;
  revision: number;
  clusterId: string;
}

export type PitrTarget = { revision: number } | { timeMs: number };

/** Why a target given by an operator is not one (null when it is). `nowMs` bounds a time. */
export function targetProblem(input: { targetRevision?: unknown; targetTime?: unknown }, nowMs: number): string | null {
  if ((input.targetRevision === undefined) === (input.targetTime === undefined)) {
    return 'a point-in-time restore needs exactly one target: a revision or a time (ISO-8601)';
  }
  if (input.targetRevision !== undefined) {
    const r = input.targetRevision;
    if (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 1)
      return `revision "${String(r)}" is not a revision: expected a whole number of at least 1`;
    return null;
  }
  const t = input.targetTime;
  const ms = typeof t === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms)) return `time "${String(t)}" is not a time: expected ISO-8601 like 2026-11-27T14:35:02Z`;
  if (ms > nowMs) return `time ${String(t)} is in the future (now is ${new Date(nowMs).toISOString()}): nothing is captured after now`;
  return null;
}

/** The incarnation a restore works in: named, else by time (newest snapshot at or before it), else the live one, else the newest snapshot's. */
export function chooseIncarnation(
  snapshots: PitrSnapshot[],
  target: PitrTarget,
  named: string | undefined,
  liveClusterId: string | null,
): string | null {
  if (named) return named;
  if ('timeMs' in target) {
    const before = snapshots.filter((s) => s.createdMs <= target.timeMs).sort((a, b) => b.createdMs - a.createdMs)[0];
    return before?.clusterId ?? liveClusterId;
  }
  return liveClusterId ?? [...snapshots].sort((a, b) => b.createdMs - a.createdMs)[0]?.clusterId ?? null;
}

/** The snapshot of `clusterId` to start from: the highest revision at or before a revision target, the newest taken at or before a time. */
export function chooseBaseSnapshot(snapshots: PitrSnapshot[], target: PitrTarget, clusterId: string): PitrSnapshot | null {
  const own = snapshots.filter((s) => s.clusterId === clusterId);
  if ('revision' in target) return own.filter((s) => s.revision <= target.revision).sort((a, b) => b.revision - a.revision)[0] ?? null;
  return own.filter((s) => s.createdMs <= target.timeMs).sort((a, b) => b.createdMs - a.createdMs || b.revision - a.revision)[0] ?? null;
}
