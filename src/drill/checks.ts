/**
 * The restore drill's comparisons (pure, unit-tested): what a restored etcd snapshot and phpIPAM
 * dump must show against the manifest's facts, the scratch schema's name and the manifest
 * fingerprint that guards the marking.
 *
 * About etcd's `totalKey`: up to 3.5, `snapshot status` counts every entry of every bbolt bucket
 * (each kept revision of each key, tombstones, and the meta, members, cluster, lease, auth and alarm
 * buckets), so it is not a key count: a snapshot with two live keys, five revisions and no
 * compaction reports totalKey 9 on etcd 3.4. 3.6's etcdutl counts the live keys instead. It is
 * compared where both readings mean the same thing (the manifest records which tool read it),
 * against `snapshot status` of the fetched file, and on 3.6 also against the live keys; those are
 * counted on the scratch member (count-only range against a full keys-only scan) and reported.
 */
import { createHash } from 'node:crypto';
import { FailureType } from '../common/failures';
import type { BackupManifest, DrillCheck, EtcdSnapshotFacts, TotalKeyMeaning } from '../common/manifest';
import type { SnapshotStatusReading } from '../etcd/snapshot-file';
import type { KeyspaceDigest } from '../etcd/keyspace-digest';
import type { HashKVResult } from '../etcd/connect';
import { recordedRevisionMatches, type SnapshotRevisions } from '../etcd/snapshot-revisions';
import type { SchemaMismatch, TableFact } from '../phpipam';
import { DomainError } from '../common/domain-errors';

const SCHEMA_NAME = /^[A-Za-z0-9_$]{1,64}$/;

/** `phpipam_drill_20261127_050002`: the scratch schema of a drill started at `date`. */
export function drillSchemaName(database: string, date: Date): string {
  const iso = date.toISOString();
  const name = `${database}_drill_${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
  if (!SCHEMA_NAME.test(name)) {
    throw DomainError.nonRetryable(
      `"${name}" is not a usable schema name (1-64 letters, digits, "_" or "$"); database ${database} has too long a name for a drill schema`,
      FailureType.ConfigError,
    );
  }
  return name;
}

/** sha256 of a manifest without its `verification`: equal for the same set as backed up, whatever drills wrote since. */
export function manifestFingerprint(manifest: BackupManifest): string {
  const { verification: _verification, ...rest } = manifest;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

export interface EtcdObservation {
  /** `snapshot status` of the fetched file. */
  status: SnapshotStatusReading;
  /** Its revisions read from the file (newest key, compaction point, the revision a restore reports). */
  revisions: SnapshotRevisions;
  /** The scratch member's revision once it was ready. */
  scratchRevision: number;
  /** HashKV of the scratch member at the snapshot revision (null when it could not be asked). The reads below are at that revision too. */
  hashKV: HashKVResult | null;
  /** Live keys at the snapshot revision: count-only range and a full keys-only scan. */
  keys: { counted: number; scanned: number };
  criticalKeys: Array<{ key: string; expectedValue?: string; found: boolean; valueMatches: boolean }>;
  /** Digest of the scratch member's keys, values and leases at the snapshot revision (absent: the set recorded none to compare with). */
  digest?: KeyspaceDigest;
}

const TOTAL_KEY_MEANINGS: Record<TotalKeyMeaning, string> = {
  'bucket-entries': 'bbolt entries of every bucket, not live keys',
  'live-keys': 'live keys at the snapshot revision',
};

/** totalKey as recorded against the fetched file's, when both readings count the same thing. */
function totalKeyCheck(facts: EtcdSnapshotFacts, status: SnapshotStatusReading): DrillCheck {
  const name = 'snapshot status totalKey';
  const recorded = facts.totalKeyCounts ?? 'bucket-entries'; // manifests from before the field: etcdctl 3.4
  if (recorded !== status.totalKeyCounts) {
    return {
      component: 'etcd',
      name,
      ok: true,
      skipped: true,
      detail: `not comparable: recorded by ${facts.snapshotTool ?? 'etcdctl 3.4'} as ${TOTAL_KEY_MEANINGS[recorded]}, read by ${status.tool} as ${TOTAL_KEY_MEANINGS[status.totalKeyCounts]}`,
    };
  }
  return {
    component: 'etcd',
    name,
    ok: facts.totalKey === status.totalKey,
    expected: facts.totalKey,
    actual: status.totalKey,
    detail: TOTAL_KEY_MEANINGS[recorded],
  };
}

/** The etcd comparisons of a drill, from the recorded facts and what the scratch restore showed. */
export function etcdChecks(facts: EtcdSnapshotFacts, seen: EtcdObservation): DrillCheck[] {
  const check = (name: string, expected: string | number, actual: string | number, detail?: string): DrillCheck => ({
    component: 'etcd',
    name,
    ok: expected === actual,
    expected,
    actual,
    ...(detail ? { detail } : {}),
  });
  const checks: DrillCheck[] = [
    {
      component: 'etcd',
      name: 'snapshot revision',
      ok: recordedRevisionMatches(facts.revision, seen.revisions),
      expected: facts.revision,
      actual: seen.revisions.revision,
      detail: `newest key at ${seen.revisions.keyRevision}, compacted at ${seen.revisions.compactRevision}`,
    },
    check('snapshot status hash', facts.hash, seen.status.hash),
    totalKeyCheck(facts, seen.status),
    check('scratch member revision', seen.revisions.revision, seen.scratchRevision),
  ];
  // The live keys the backup counted on its source member, against the scratch member's scan. (Not 3.6's
  // own totalKey: after a restore with --bump-revision it was seen one above the live keys, 160 vs 159.)
  if (facts.liveKeys !== undefined) {
    checks.push(check("live keys at the snapshot revision equal the backup's count", facts.liveKeys, seen.keys.scanned));
  }
  if (facts.keyspaceDigest && seen.digest) {
    checks.push(
      check(
        "content (keys, values, leases) equals the backup's digest",
        facts.keyspaceDigest.sha256,
        seen.digest.sha256,
        `${seen.digest.keys} keys`,
      ),
    );
  }
  const recorded = facts.hashKV;
  if (!recorded) {
    checks.push({
      component: 'etcd',
      name: 'hashKV at the snapshot revision',
      ok: true,
      skipped: true,
      detail: 'the backup recorded no hashKV (older manifest)',
    });
  } else if (recorded.revision !== seen.revisions.revision) {
    checks.push({
      component: 'etcd',
      name: 'hashKV at the snapshot revision',
      ok: true,
      skipped: true,
      detail: `the recorded hashKV is at revision ${recorded.revision}, not the snapshot's ${seen.revisions.revision}`,
    });
  } else if (!seen.hashKV) {
    checks.push({
      component: 'etcd',
      name: 'hashKV at the snapshot revision',
      ok: false,
      expected: recorded.hash,
      actual: null,
      detail: 'the scratch member gave no hashKV',
    });
  } else if (Number(seen.hashKV.compactRevision) !== recorded.compactRevision) {
    // HashKV covers the revisions after the compaction point: with another point the hashes differ for equal data.
    checks.push({
      component: 'etcd',
      name: 'hashKV at the snapshot revision',
      ok: true,
      skipped: true,
      detail: `not comparable: compacted at revision ${seen.hashKV.compactRevision} in the scratch member, ${recorded.compactRevision} when recorded`,
    });
  } else {
    checks.push(
      check(
        'hashKV at the snapshot revision',
        recorded.hash,
        seen.hashKV.hash,
        `revision ${recorded.revision}, compacted at ${recorded.compactRevision}`,
      ),
    );
  }
  checks.push(
    check('live keys at the snapshot revision (count vs full scan)', seen.keys.counted, seen.keys.scanned, `${seen.keys.scanned} keys`),
  );
  for (const critical of seen.criticalKeys) {
    const ok = critical.found && critical.valueMatches;
    checks.push({
      component: 'etcd',
      name: `critical key ${critical.key}`,
      ok,
      ...(ok ? {} : { detail: critical.found ? 'present with another value than the config expects' : 'absent at the snapshot revision' }),
    });
  }
  return checks;
}

/** One check per mismatch of the scratch schema, or one passing check naming what was compared. */
export function phpipamChecks(tables: TableFact[], mismatches: SchemaMismatch[], schema: string): DrillCheck[] {
  if (mismatches.length === 0) {
    return [
      {
        component: 'phpipam',
        name: 'row counts and CHECKSUM TABLE',
        ok: true,
        detail: `${tables.length} tables of ${schema} equal to the manifest`,
      },
    ];
  }
  return mismatches.map((m) => ({
    component: 'phpipam',
    name: `table ${m.table}: ${m.what}`,
    ok: false,
    expected: m.expected,
    actual: m.actual,
  }));
}
