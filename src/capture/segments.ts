/**
 * Change-capture segments (the runbook's "WAL backups", done for real): every etcd change after a
 * snapshot, in revision order, in small files named by what they cover, so that listing a target
 * is enough to know which revisions and which seconds can be reached.
 *
 *   wal/<cluster>/<clusterId>/<from>-<to>-<firstMs>-<lastMs>.jsonl.gz[.age]
 *
 * Segments live under the etcd cluster ID: a restored cluster (fresh token, new ID) starts a new
 * chain, and revisions of two incarnations never mix. A snapshot's manifest records its cluster ID.
 * `from`..`to` is the revision range the segment covers (from = previous segment's to + 1), so
 * contiguity is exact; `firstMs`/`lastMs` the capture times of its first and last event. Inside:
 * one JSON line per event `{ rev, type, key, value?, lease?, ms }` (key/value base64), ordered by
 * revision; the events of one revision are one etcd transaction and are replayed as one.
 */

export const SEGMENT_PREFIX = 'wal';
const REV_DIGITS = 20;
const MS_DIGITS = 15;

export interface CapturedEvent {
  rev: number;
  type: 'put' | 'delete';
  /** base64 */
  key: string;
  /** base64; puts only */
  value?: string;
  /** capture time (ms since epoch) of the watch response that carried the event */
  ms: number;
}

export interface SegmentName {
  cluster: string;
  from: number;
  to: number;
  firstMs: number;
  lastMs: number;
  /** Key inside a target. */
  key: string;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');

export function segmentDir(cluster: string, clusterId: string): string {
  return `${SEGMENT_PREFIX}/${cluster}/${clusterId}/`;
}

export function segmentKey(
  cluster: string,
  clusterId: string,
  range: { from: number; to: number; firstMs: number; lastMs: number },
  suffix: string,
): string {
  return `${segmentDir(cluster, clusterId)}${pad(range.from, REV_DIGITS)}-${pad(range.to, REV_DIGITS)}-${pad(range.firstMs, MS_DIGITS)}-${pad(range.lastMs, MS_DIGITS)}.jsonl.gz${suffix}`;
}

/** A listing's StartAfter (a key just below) whose first segment is the first starting at `from` or later: keys sort by their start. */
export function segmentListingStart(cluster: string, clusterId: string, from: number): string {
  return `${segmentDir(cluster, clusterId)}${pad(from, REV_DIGITS)}`;
}

const SEGMENT_RE = /^(\d+)-(\d+)-(\d+)-(\d+)\.jsonl\.gz(\.age)?$/;

/** Parses a key of `segmentDir(cluster)`; null for anything else (a gap marker, a stray file). */
export function parseSegmentKey(cluster: string, clusterId: string, key: string): SegmentName | null {
  const dir = segmentDir(cluster, clusterId);
  if (!key.startsWith(dir)) return null;
  const m = SEGMENT_RE.exec(key.slice(dir.length));
  if (!m) return null;
  return { cluster, from: Number(m[1]), to: Number(m[2]), firstMs: Number(m[3]), lastMs: Number(m[4]), key };
}

/** Gap markers: `wal/<cluster>/<etcd cluster id>/gap-<from>-<to>.json`, written when compaction made revisions unreachable. */
export function gapKey(cluster: string, clusterId: string, from: number, to: number): string {
  return `${segmentDir(cluster, clusterId)}gap-${pad(from, REV_DIGITS)}-${pad(to, REV_DIGITS)}.json`;
}

const GAP_RE = /^gap-(\d+)-(\d+)\.json$/;

/** Parses a gap marker key of `segmentDir(cluster, clusterId)`; null for anything else. */
export function parseGapKey(cluster: string, clusterId: string, key: string): { from: number; to: number; key: string } | null {
  const dir = segmentDir(cluster, clusterId);
  if (!key.startsWith(dir)) return null;
  const m = GAP_RE.exec(key.slice(dir.length));
  return m ? { from: Number(m[1]), to: Number(m[2]), key } : null;
}

/** Where every chain (one directory per etcd cluster ID) of a cluster lives: `wal/<cluster>/`. */
export function clusterSegmentsPrefix(cluster: string): string {
  return `${SEGMENT_PREFIX}/${cluster}/`;
}

export interface Coverage {
  /** Segments chained from `after + 1`, in order. */
  segments: SegmentName[];
  /** The last revision reachable from `after` without a hole. */
  reachable: number;
  /** The capture time of that revision's segment end (ms), when any segment is used. */
  reachableMs: number | null;
}

/**
 * The segments that carry every revision after `after`, chained without a hole, as far as they go.
 * Overlapping duplicates (a crashed writer's retry) are tolerated: the chain takes, at each step,
 * the segment starting exactly at the next revision that reaches furthest.
 */
export function chainSegments(all: SegmentName[], after: number): Coverage {
  const byFrom = new Map<number, SegmentName>();
  for (const s of all) {
    const known = byFrom.get(s.from);
    if (!known || s.to > known.to) byFrom.set(s.from, s);
  }
  const segments: SegmentName[] = [];
  let next = after + 1;
  // A segment may also start before `next` and reach past it (the snapshot fell inside it).
  const straddling = all.filter((s) => s.from < next && s.to >= next).sort((a, b) => b.to - a.to)[0];
  if (straddling) {
    segments.push(straddling);
    next = straddling.to + 1;
  }
  for (;;) {
    const s = byFrom.get(next);
    if (!s) break;
    segments.push(s);
    next = s.to + 1;
  }
  const last = segments[segments.length - 1];
  return { segments, reachable: next - 1, reachableMs: last ? last.lastMs : null };
}

/** The last captured revision whose capture time is at or before `ms`, from the events themselves. */
export function revisionAtTime(events: CapturedEvent[], ms: number): number | null {
  let found: number | null = null;
  for (const e of events) {
    if (e.ms <= ms) found = e.rev;
    else break;
  }
  return found;
}

export function encodeEvents(events: CapturedEvent[]): Buffer {
  return Buffer.from(events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : ''));
}

export function decodeEvents(text: string): CapturedEvent[] {
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as CapturedEvent);
}

/** Groups events by revision (one etcd transaction each), keeping revision order. */
export function transactions(events: CapturedEvent[]): CapturedEvent[][] {
  const groups: CapturedEvent[][] = [];
  for (const e of events) {
    const last = groups[groups.length - 1];
    if (last && last[0]!.rev === e.rev) last.push(e);
    else groups.push([e]);
  }
  return groups;
}
