/**
 * manifest.json: what a backup set holds. Plain types only, shared by workflows (which build it)
 * and activities/CLI (which store and read it). The catalog is the set of manifests in a store.
 */
import type { KeyspaceDigest } from '../etcd/keyspace-digest';

export const MANIFEST_FORMAT_VERSION = 1;

export interface StoredCopy {
  target: string;
  location: string;
  bytes: number;
  sha256: string;
}

export interface ArtefactRecord {
  file: string;
  /** Key inside every target: `<setId>/<file>`. */
  key: string;
  /** gzip (one or more members), zstd (one or more frames) or none; older manifests always say gzip. */
  compression: 'gzip' | 'zstd' | 'none';
  /** age (age-encryption.org/v1) to these recipients, applied after compression; null when stored in clear. */
  encryption: null | { format: 'age'; recipients: string[] };
  /** Size and sha256 of the stored (compressed) bytes: identical in every copy. */
  bytes: number;
  sha256: string;
  /** Size and sha256 of the source bytes before compression. */
  raw: { bytes: number; sha256: string };
  copies: StoredCopy[];
}

/**
 * What `snapshot status`'s totalKey counts. Up to etcd 3.5 every entry of every bbolt bucket (each
 * kept revision, tombstones, meta, members, leases...); 3.6's etcdutl counts the live keys at the
 * snapshot's revision. Two totalKeys compare only when both mean the same.
 */
export type TotalKeyMeaning = 'bucket-entries' | 'live-keys';

export interface EtcdSnapshotFacts {
  member: string;
  memberId: string;
  clusterId: string;
  etcdVersion: string;
  /**
   * The revision a cluster restored from the snapshot reports: the newest key's or, after a
   * compaction past it, the compaction's (src/etcd/snapshot-revisions.ts). Sets written before
   * `keyRevision` was recorded hold the newest key's here (what `snapshot status` 3.4/3.5 prints).
   */
  revision: number;
  /** The newest key's revision in the snapshot (absent in older manifests). */
  keyRevision?: number;
  /** Where the last compaction before the snapshot finished; 0 when none (absent in older manifests). */
  compactRevision?: number;
  hash: number;
  /** What it counts depends on the tool: see totalKeyCounts. */
  totalKey: number;
  totalSize: number;
  /** The program that read `snapshot status`, e.g. `etcdutl 3.6.17` (absent from older manifests: etcdctl 3.4). */
  snapshotTool?: string;
  /** Bbolt entries of every bucket (etcdctl 3.4, etcdutl 3.5) or live keys (etcdutl 3.6+); absent means bucket-entries. */
  totalKeyCounts?: TotalKeyMeaning;
  /** etcd 3.6+ snapshots: the storage version written in the snapshot. */
  storageVersion?: string;
  /** The 32-byte sha256 trailer was present and matched the database bytes. */
  trailerVerified: true;
  /** HashKV of the source member at the snapshot revision (absent when it had moved on and compacted past it), for later checks. */
  hashKV?: { revision: number; hash: number; compactRevision: number };
  /** Live keys at the snapshot revision, counted on the source member (absent when it had compacted past it, and in older manifests). */
  liveKeys?: number;
  /** Digest of every live key, value and lease at the snapshot revision (src/etcd/keyspace-digest.ts); absent like liveKeys. */
  keyspaceDigest?: KeyspaceDigest;
}

/** "13 live keys", or what snapshot status counted when the backup recorded no live count. */
export function describeKeyCount(facts: Pick<EtcdSnapshotFacts, 'liveKeys' | 'totalKey' | 'totalKeyCounts'>): string {
  if (facts.liveKeys !== undefined) return `${facts.liveKeys} live keys`;
  return facts.totalKeyCounts === 'live-keys' ? `${facts.totalKey} live keys` : `${facts.totalKey} bbolt entries (not live keys)`;
}

export interface EtcdComponentRecord {
  component: 'etcd';
  status: 'ok';
  artefacts: ArtefactRecord[];
  facts: EtcdSnapshotFacts;
  startedAt: string;
  finishedAt: string;
}

export interface AgentCacheComponentRecord {
  component: 'agent-cache';
  node: string;
  status: 'ok';
  artefacts: ArtefactRecord[];
  facts: { node: string; cacheDir: string; entries: number; online: boolean; agentRestarted: boolean };
  startedAt: string;
  finishedAt: string;
}

// ---- the phpIPAM dump's facts (written by the backup, checked by restores and drills)

/** The phpIPAM database server's kind. */
export type DatabaseFlavour = 'mariadb' | 'mysql';

/** Where the dump's snapshot sits in the binary log: the point-in-time-recovery start. */
export interface BinlogPosition {
  file: string;
  position: number;
  /** MariaDB `gtid_slave_pos` / MySQL `GTID_PURGED` as printed by the dump, if any. */
  gtid?: string;
}

export interface TableFact {
  name: string;
  engine: string;
  /** Exact `COUNT(*)`. */
  rows: number;
  /** `CHECKSUM TABLE` value as a decimal string (null if the server could not compute one). */
  checksum: string | null;
}

export interface PhpipamDumpFacts {
  flavour: DatabaseFlavour;
  version: string;
  database: string;
  /** `mariadb-dump 10.11.19`: the program that wrote the artefact. */
  dumpTool: string;
  /** The dump's argv (no secrets: the password is in a 0600 option file, named here only by path). */
  dumpCommand: string[];
  binlog: BinlogPosition | null;
  tables: TableFact[];
  /**
   * true: the table facts were read at exactly the dump's binlog position, so a restore of this dump
   * must reproduce them. false: writes happened between the two snapshots. null: cannot tell
   * (binlog off, or a MySQL server, which does not report a snapshot's position).
   */
  tablesMatchDump: boolean | null;
}

export interface PhpipamComponentRecord {
  component: 'phpipam';
  status: 'ok';
  artefacts: ArtefactRecord[];
  /** Server, dump tool and command, binlog position, per-table rows and CHECKSUM TABLE. */
  facts: PhpipamDumpFacts;
  startedAt: string;
  finishedAt: string;
}

/** One archived file: absolute path on the node, type, permission bits (e.g. 0o600 = 384), size. */
export interface ArchivedFileRecord {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  size: number;
}

/**
 * Files archived from one node with their modes: Nebula's ca.crt/host.crt/host.key/config.yml
 * (always encrypted), or the agent's host state (`agent-config`: agent.toml, its drop-in dir, the
 * etcd client TLS dir, Knot's DNSSEC keys, Kea's lease file, the Nebula CA key on the CA host).
 */
interface HostFilesComponentRecord<C extends 'nebula' | 'agent-config'> {
  component: C;
  node: string;
  status: 'ok';
  artefacts: ArtefactRecord[];
  facts: {
    node: string;
    dir: string;
    files: ArchivedFileRecord[];
    /** agent-config since host state: each archived root (absolute) and what was left out, with why. */
    roots?: string[];
    skipped?: Array<{ path: string; reason: string }>;
  };
  startedAt: string;
  finishedAt: string;
}
export type NebulaComponentRecord = HostFilesComponentRecord<'nebula'>;
export type AgentConfigComponentRecord = HostFilesComponentRecord<'agent-config'>;

export type ComponentRecord =
  EtcdComponentRecord | AgentCacheComponentRecord | PhpipamComponentRecord | NebulaComponentRecord | AgentConfigComponentRecord;

export interface BackupManifest {
  formatVersion: typeof MANIFEST_FORMAT_VERSION;
  tool: 'nnoe-dr';
  setId: string;
  cluster: string;
  status: 'complete' | 'partial';
  createdAt: string;
  completedAt: string;
  workflow: { workflowId: string; runId: string };
  components: ComponentRecord[];
  /** Components that failed, for a partial set. */
  failures: Array<{ component: string; reason: string }>;
  /**
   * Written by a passing restore drill (src/workflows/drill.ts), never by a failing one; absent on
   * sets never drilled (and on every manifest written before drills existed).
   */
  verification?: SetVerification;
}

/** One comparison a restore drill made, e.g. etcd `hashKV at revision 1234`. */
export interface DrillCheck {
  component: 'set' | 'etcd' | 'phpipam' | 'artefacts';
  name: string;
  ok: boolean;
  expected?: string | number | null;
  actual?: string | number | null;
  /** One line a person can read; why a check was skipped or failed. */
  detail?: string;
  /** True when the check could not be made (e.g. no hashKV recorded by an older backup): it neither passes nor fails the drill. */
  skipped?: boolean;
}

/** A set restored into scratch etcd / a scratch schema and found equal to its recorded facts. */
export interface SetVerification {
  verifiedAt: string;
  drillWorkflowId: string;
  drillRunId: string;
  /** Measured restore time per component (fetch, decrypt, decompress, restore, ready); null: the set has no such component. */
  rto: { etcdMs: number | null; phpipamMs: number | null };
  checks: DrillCheck[];
}

export function isBackupManifest(value: unknown): value is BackupManifest {
  const m = value as Partial<BackupManifest> | null;
  return (
    !!m && m.tool === 'nnoe-dr' && m.formatVersion === MANIFEST_FORMAT_VERSION && typeof m.setId === 'string' && Array.isArray(m.components)
  );
}

/** `20261127-143502` from a date, in UTC: the runbook's `etcd-snapshot-YYYYMMDD-HHMMSS.db` stamp. */
export function utcStamp(date: Date): string {
  const iso = date.toISOString(); // 2026-11-27T14:35:02.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

export function backupSetId(cluster: string, date: Date): string {
  return `${cluster}-${utcStamp(date)}`;
}

/** The runbook's `node-<hostname>-<stamp>.tar.gz`, one per agent node in a set. */
export function agentCacheFileName(node: string, date: Date): string {
  return `agent-cache-${node}-${utcStamp(date)}.tar.gz`;
}

/** `phpipam-20261127-143502.sql.gz`, like the etcd snapshot's name. */
export function phpipamDumpFileName(date: Date): string {
  return `phpipam-${utcStamp(date)}.sql.gz`;
}

/** `nebula-node-1-20261127-143502.tar.gz` */
export function nebulaArchiveFileName(node: string, date: Date): string {
  return `nebula-${node}-${utcStamp(date)}.tar.gz`;
}

/** `agent-config-node-1-20261127-143502.tar.gz` */
export function agentConfigFileName(node: string, date: Date): string {
  return `agent-config-${node}-${utcStamp(date)}.tar.gz`;
}

export function etcdSnapshotFileName(date: Date): string {
  return `etcd-snapshot-${utcStamp(date)}.db.gz`;
}
