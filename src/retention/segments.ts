/**
 * Retention of change-capture segments (src/capture/segments.ts): which segments and gap markers of
 * a cluster no backup set that survives the prune can need. A pure function like planRetention (no
 * I/O, no clock), run by the prune activity once per target on that target's listing.
 *
 * A point-in-time restore starts from a set's etcd snapshot (revision R of etcd cluster ID I) and
 * replays the segments of I after R (chainSegments). So, over the sets of the cluster that survive:
 * 1. A cluster ID with a surviving snapshot: a segment or gap marker whose `to` is at or below the
 *    smallest surviving snapshot revision of that ID is never replayed again, and goes. A segment
 *    straddling that revision (from <= R < to) is replayed in part and stays; so does all after it.
 * 2. A cluster ID with no surviving snapshot is an earlier incarnation (a restore makes a new ID) or
 *    the live cluster before its first snapshot. No surviving set replays it, but a set not in the
 *    catalog yet may: its snapshot is taken after the set's start, so it needs only what is captured
 *    after that. Segments captured (lastMs) before the oldest surviving set was created, less
 *    SEGMENT_TIME_MARGIN_MS, go; later ones stay. Its gap markers go once a segment after them goes
 *    (gap markers carry no time; PITR never reads them).
 * 3. A backup of the cluster still running has no manifest yet, but its snapshot (taken after it
 *    started) will need what is captured after it: no segment captured from its start on, less
 *    the margin, goes, whatever rule 1 or 2 say.
 * 4. When in doubt, keep: a snapshot whose manifest records no cluster ID protects every chain
 *    above its revision (revisions of two incarnations cannot be compared, so it never lets rule 1
 *    delete anything in another chain); a set with an unreadable time or revision, or a cluster with
 *    no surviving set, keeps everything; keys that are neither segments nor gap markers are never
 *    touched.
 */
import { clusterSegmentsPrefix, parseGapKey, parseSegmentKey, type SegmentName } from '../capture/segments';

/** What segment retention needs to know of a surviving set. */
export interface SegmentRetentionSet {
  setId: string;
  /** ISO 8601. */
  createdAt: string;
  /** The set's etcd snapshot, when it has one; clusterId null when its manifest records none. */
  snapshot?: { revision: number; clusterId: string | null };
}

export interface SegmentRetentionInput {
  cluster: string;
  /** Every set of the cluster that is still in some target after the prune (one entry per etcd snapshot). */
  sets: SegmentRetentionSet[];
  /** Keys under `wal/<cluster>/` in one target. */
  keys: string[];
  /** Start (ISO 8601) of the oldest backup of the cluster still running, if any. */
  runningBackupSince?: string;
}

/** The decision for one chain (one etcd cluster ID). */
export interface ChainRetention {
  clusterId: string;
  /** Segments and gap markers that go, sorted (revision order). */
  delete: string[];
  /** Segments and gap markers that stay. */
  keep: number;
  /** What goes: its revisions, and the capture times of its segments (null when only gap markers go). */
  deletedRange: { fromRevision: number; toRevision: number; firstMs: number | null; lastMs: number | null } | null;
  reason: string;
}

export interface SegmentRetentionPlan {
  /** Every key to delete, sorted. */
  delete: string[];
  /** One per cluster ID found, sorted by ID. */
  chains: ChainRetention[];
  /** Keys under the prefix that are neither a segment nor a gap marker: left alone. */
  unrecognised: string[];
}

/** Clock skew between a capture worker (segment times) and the workflows that date sets and runs. */
export const SEGMENT_TIME_MARGIN_MS = 3600_000;

interface Gap {
  from: number;
  to: number;
  key: string;
}
interface Chain {
  clusterId: string;
  segments: SegmentName[];
  gaps: Gap[];
}
interface Snapshot {
  setId: string;
  revision: number;
  clusterId: string | null;
}

export function planSegmentRetention(input: SegmentRetentionInput): SegmentRetentionPlan {
  const { chains, unrecognised } = groupByChain(input.cluster, input.keys);
  const doubt = doubtAbout(input);
  const decided = chains.map((chain) =>
    doubt !== null ? decision(chain, [], `everything kept: ${doubt}`) : decideChain(chain, input.sets, input.runningBackupSince),
  );
  return { delete: decided.flatMap((c) => c.delete).sort(), chains: decided, unrecognised };
}

function decideChain(chain: Chain, sets: SegmentRetentionSet[], runningSince: string | undefined): ChainRetention {
  // Rule 3: a running backup's snapshot needs what was captured after it started.
  const runningCutoff = runningSince === undefined ? Infinity : Date.parse(runningSince) - SEGMENT_TIME_MARGIN_MS;
  const running =
    runningSince === undefined
      ? ''
      : `; nothing captured after ${new Date(runningCutoff).toISOString()} goes (a backup running since ${runningSince}, less ${SEGMENT_TIME_MARGIN_MS / 3600_000} h)`;
  const snapshots: Snapshot[] = sets.flatMap((s) => (s.snapshot ? [{ setId: s.setId, ...s.snapshot }] : []));
  const unknownId = lowest(snapshots.filter((s) => s.clusterId === null));
  const own = lowest(snapshots.filter((s) => s.clusterId === chain.clusterId || s.clusterId === null));
  if (own && snapshots.some((s) => s.clusterId === chain.clusterId)) {
    // Rule 1: PITR from any surviving snapshot of this ID replays only revisions above the lowest one.
    const floor = own.revision;
    const segments = chain.segments.filter((s) => s.to <= floor && s.lastMs < runningCutoff);
    const gaps = chain.gaps.filter((g) => g.to <= floor);
    const unknown = own.clusterId === null ? ' (its manifest records no cluster ID, so it counts for every chain)' : '';
    return decision(
      chain,
      [...segments, ...gaps],
      `the lowest kept snapshot this chain serves is set ${own.setId} at revision ${floor}${unknown}: what ends at or before it is never replayed${running}`,
    );
  }
  // Rule 2: no surviving snapshot of this ID.
  const oldest = [...sets].sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt) || a.setId.localeCompare(b.setId))[0]!;
  const cutoff = Date.parse(oldest.createdAt) - SEGMENT_TIME_MARGIN_MS;
  const segments = chain.segments.filter((s) => s.lastMs < Math.min(cutoff, runningCutoff) && (!unknownId || s.to <= unknownId.revision));
  const gaps = chain.gaps.filter((g) => segments.some((s) => s.from > g.to));
  const guard = unknownId ? `, and only up to revision ${unknownId.revision} (set ${unknownId.setId} records no cluster ID)` : '';
  return decision(
    chain,
    [...segments, ...gaps],
    `no kept set has a snapshot of cluster ID ${chain.clusterId} (an earlier incarnation, or the live cluster before its first snapshot): ` +
      `segments captured before ${new Date(cutoff).toISOString()} (the oldest kept set, ${oldest.setId}, less ${SEGMENT_TIME_MARGIN_MS / 3600_000} h) go${guard}, later ones stay${running}`,
  );
}

function decision(chain: Chain, going: Array<SegmentName | Gap>, reason: string): ChainRetention {
  const keys = going.map((g) => g.key).sort();
  const segments = going.filter((g): g is SegmentName => 'lastMs' in g);
  // reduce, not Math.min(...): a chain can hold more segments than a call takes arguments.
  const min = (values: number[]) => values.reduce((a, b) => Math.min(a, b));
  const max = (values: number[]) => values.reduce((a, b) => Math.max(a, b));
  const deletedRange =
    going.length === 0
      ? null
      : {
          fromRevision: min(going.map((g) => g.from)),
          toRevision: max(going.map((g) => g.to)),
          firstMs: segments.length ? min(segments.map((s) => s.firstMs)) : null,
          lastMs: segments.length ? max(segments.map((s) => s.lastMs)) : null,
        };
  return { clusterId: chain.clusterId, delete: keys, keep: chain.segments.length + chain.gaps.length - keys.length, deletedRange, reason };
}

function lowest(snapshots: Snapshot[]): Snapshot | undefined {
  return [...snapshots].sort((a, b) => a.revision - b.revision || a.setId.localeCompare(b.setId))[0];
}

/** Why nothing of the cluster may go, or null when the input can be trusted. */
function doubtAbout({ cluster, sets, runningBackupSince }: SegmentRetentionInput): string | null {
  if (runningBackupSince !== undefined && Number.isNaN(Date.parse(runningBackupSince))) {
    return `a running backup's start "${runningBackupSince}" is not an ISO 8601 time`;
  }
  if (sets.length === 0) return `no set of ${cluster} is kept, so nothing tells which changes a restore could need`;
  for (const set of sets) {
    if (Number.isNaN(Date.parse(set.createdAt))) return `set ${set.setId}: createdAt "${set.createdAt}" is not an ISO 8601 time`;
    const revision = set.snapshot?.revision;
    if (set.snapshot && !(Number.isSafeInteger(revision) && revision! >= 0))
      return `set ${set.setId}: snapshot revision "${String(revision)}" is not a revision`;
  }
  return null;
}

/** Segments and gap markers by cluster ID; anything else under the prefix is unrecognised. */
function groupByChain(cluster: string, keys: string[]): { chains: Chain[]; unrecognised: string[] } {
  const prefix = clusterSegmentsPrefix(cluster);
  const chains = new Map<string, Chain>();
  const unrecognised: string[] = [];
  for (const key of keys) {
    const parts = key.startsWith(prefix) ? key.slice(prefix.length).split('/') : [];
    const clusterId = parts.length === 2 ? parts[0]! : '';
    const segment = clusterId ? parseSegmentKey(cluster, clusterId, key) : null;
    const gap = clusterId && !segment ? parseGapKey(cluster, clusterId, key) : null;
    const named = segment ?? gap;
    // A range that runs backwards is no name we write: leave it alone.
    if (!named || named.from > named.to) {
      unrecognised.push(key);
      continue;
    }
    const chain = chains.get(clusterId) ?? { clusterId, segments: [], gaps: [] };
    chains.set(clusterId, chain);
    if (segment) chain.segments.push(segment);
    else if (gap) chain.gaps.push(gap);
  }
  return { chains: [...chains.values()].sort((a, b) => a.clusterId.localeCompare(b.clusterId)), unrecognised: unrecognised.sort() };
}
