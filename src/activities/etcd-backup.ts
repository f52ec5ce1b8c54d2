/**
 * Activities of the etcd backup runbook (management worker: they talk to etcd and storage over the
 * network). Artefact bytes stream through here and never enter a Temporal payload; activities
 * return references and facts.
 */
import { mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Context } from '@temporalio/activity';
import type { Etcd3 } from 'etcd3';
import type { Config } from '../config/schema';
import { findCluster, findTargets } from '../config/load';
import { connectMember, hashKVAt, openSnapshotStream } from '../etcd/connect';
import { keyspaceDigest } from '../etcd/keyspace-digest';
import { readSnapshotStatus, SnapshotTrailerCheck } from '../etcd/snapshot-file';
import { readSnapshotRevisions } from '../etcd/snapshot-revisions';
import { allPipelines, fanOut } from '../storage/fan-out';
import { artefactEncryption } from './artefact-encryption';
import { artefactCompression } from '../compression';
import { artefactKey, MANIFEST_FILE, openStore, publishToStores } from '../storage';
import { fileWriteStream } from '../storage/local';
import { FailureType } from '../common/failures';
import type { ArtefactRecord, BackupManifest, EtcdSnapshotFacts, StoredCopy } from '../common/manifest';
import { DomainError, errorMessage } from '../common/domain-errors';

export interface MemberHealth {
  name: string;
  healthy: boolean;
  isLeader: boolean;
  raftIndex?: string;
  error?: string;
}

export interface StreamSnapshotInput {
  cluster: string;
  member: string;
  setId: string;
  fileName: string;
  targets: string[];
}

export interface EtcdSnapshotOutcome {
  artefact: ArtefactRecord;
  facts: EtcdSnapshotFacts;
  /** Present when this attempt replaced an interrupted one: its number and what the earlier ones left that it removed. */
  retried?: AttemptCleanup;
}

export interface AttemptCleanup {
  attempt: number;
  leftoversCleared: string[];
}

/** gRPC/TLS error text that means the member refused our certificate (or we refused its). */
const TLS_REJECTION = /certificate|handshake|ssl|tls|alert|self.signed|unable to verify/i;

export function createEtcdBackupActivities(deps: { config: Config }) {
  const { config } = deps;

  async function withMember<T>(clusterName: string, memberName: string, fn: (client: Etcd3) => Promise<T>): Promise<T> {
    const cluster = findCluster(config, clusterName);
    const member = cluster.etcd.members.find((m) => m.name === memberName);
    if (!member) {
      throw DomainError.nonRetryable(`cluster ${clusterName} has no member named "${memberName}"`, FailureType.InvalidInput);
    }
    const client = await connectMember(cluster, member);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }

  /** Checks the request against this worker's config and that every target can take a backup. */
  /**
   * Storage preflight; with `freeSetId`, also the set id to use: set ids are stamped to the second,
   * so a second backup of a cluster within one second would get the first one's id and overwrite
   * its artefacts and manifest. The id is returned as given when no target holds anything under it,
   * else the first free of `<id>-2` ... `<id>-9`.
   */
  async function prepareEtcdBackup(input: {
    cluster: string;
    targets?: string[];
    freeSetId?: string;
    preflight?: boolean;
  }): Promise<{ targets: string[]; members: string[]; setId?: string }> {
    const cluster = findCluster(config, input.cluster);
    const targets = findTargets(config, input.targets);
    const stores = await Promise.all(
      targets.map(async (target) => {
        try {
          const store = await openStore(target);
          // A backup set's components preflight their own targets (each fails on its own); the set only asks for an id.
          if (input.preflight !== false) await store.preflight();
          return store;
        } catch (err) {
          throw DomainError.retryable(
            `storage target ${target.name} cannot take a backup: ${errorMessage(err)}`,
            FailureType.StorageUnavailable,
          );
        }
      }),
    );
    const prepared = { targets: targets.map((t) => t.name), members: cluster.etcd.members.map((m) => m.name) };
    if (!input.freeSetId) return prepared;
    for (const candidate of [input.freeSetId, ...[2, 3, 4, 5, 6, 7, 8, 9].map((n) => `${input.freeSetId}-${n}`)]) {
      // A target that cannot be read holds nothing this backup could overwrite now (writing there fails anyway).
      const taken = await Promise.all(stores.map(async (store) => (await store.list(`${candidate}/`).catch(() => [])).length > 0));
      if (!taken.includes(true)) return { ...prepared, setId: candidate };
    }
    throw DomainError.nonRetryable(
      `backup set ids ${input.freeSetId} to ${input.freeSetId}-9 are all taken: too many backups of ${cluster.name} in one second`,
      FailureType.SetIdTaken,
    );
  }

  /**
   * Every member's status, leader first, then the other healthy members by raft index (most
   * up to date first). Fails (retryably) when none is healthy; non-retryably when every member
   * rejected our TLS material.
   */
  async function rankEtcdMembers(input: { cluster: string }): Promise<MemberHealth[]> {
    const cluster = findCluster(config, input.cluster);
    const health = await Promise.all(
      cluster.etcd.members.map(async (member): Promise<MemberHealth> => {
        try {
          return await withMember(cluster.name, member.name, async (client) => {
            const status = await client.maintenance.status();
            return {
              name: member.name,
              healthy: true,
              isLeader: status.leader === status.header.member_id,
              raftIndex: String(status.raftIndex),
            };
          });
        } catch (err) {
          if (err instanceof DomainError) throw err; // TLS material, a secret, etcd auth: the same on every member
          return { name: member.name, healthy: false, isLeader: false, error: errorMessage(err) };
        }
      }),
    );
    const healthy = health.filter((m) => m.healthy);
    if (healthy.length === 0) {
      const detail = health.map((m) => `${m.name}: ${m.error}`).join('; ');
      if (health.every((m) => TLS_REJECTION.test(m.error ?? ''))) {
        const tls = cluster.etcd.tls;
        throw DomainError.nonRetryable(
          `every etcd member of ${cluster.name} rejected the TLS connection (client certificate ${tls?.certFile ?? 'none'}, CA ${tls?.caFile ?? 'none'}): ${detail}`,
          FailureType.EtcdTlsRejected,
        );
      }
      throw DomainError.retryable(`no healthy etcd member in cluster ${cluster.name}: ${detail}`, FailureType.NoHealthyEtcdMember);
    }
    const byIndex = (a: MemberHealth, b: MemberHealth) => Number(BigInt(b.raftIndex ?? '0') - BigInt(a.raftIndex ?? '0'));
    return [...healthy.filter((m) => m.isLeader), ...healthy.filter((m) => !m.isLeader).sort(byIndex), ...health.filter((m) => !m.healthy)];
  }

  /**
   * Streams a snapshot from one member: sha256 + byte count + trailer check on the way, raw copy to
   * the staging dir (for `snapshot status`) and gzip to every target at once. Targets are committed
   * only after the snapshot is verified; on any failure every uncommitted write is aborted and
   * every copy committed by this attempt is deleted again.
   */
  async function streamEtcdSnapshot(input: StreamSnapshotInput): Promise<EtcdSnapshotOutcome> {
    const ctx = Context.current();
    const targets = findTargets(config, input.targets);
    const stores = await Promise.all(targets.map(openStore));
    const stagingDir = join(config.workDir, input.setId, `attempt-${ctx.info.attempt}-${input.member}`);
    const rawPath = join(stagingDir, 'snapshot.db');
    const encryption = artefactEncryption(config);
    const compression = artefactCompression(config, input.cluster);
    const compressedName = compression.fileName(input.fileName);
    const fileName = encryption ? encryption.fileName(compressedName) : compressedName;
    const key = artefactKey(input.setId, fileName);

    // A killed attempt (any member) left its raw copy here: gone before this one writes.
    const stagingLeftovers = await removeEarlierAttempts(join(config.workDir, input.setId));
    await mkdir(stagingDir, { recursive: true });
    try {
      return await withMember(input.cluster, input.member, async (client) => {
        const status = await client.maintenance.status();
        const {
          result: facts,
          copies,
          leftoversCleared,
        } = await publishToStores(stores, key, async (sink) => {
          const check = new SnapshotTrailerCheck(throttledHeartbeat(ctx));
          const source = await openSnapshotStream(client);
          const abortOnCancel = () => source.destroy(new Error('backup cancelled'));
          ctx.cancellationSignal.addEventListener('abort', abortOnCancel);
          const compress = compression.createStream(); // parallel on worker threads (src/compression)
          // Encryption comes after compression (ciphertext does not compress) and before every target.
          const stored = encryption ? [compress, encryption.createStream()] : [compress];
          try {
            await allPipelines([pipeline(source, check, fanOut([fileWriteStream(rawPath), compress])), pipeline([...stored, sink])]);
          } finally {
            ctx.cancellationSignal.removeEventListener('abort', abortOnCancel);
            source.destroy(); // a failed attempt must not leave etcd streaming to nobody (see openSnapshotStream)
          }

          const trailer = check.result();
          if (!trailer.trailerValid) {
            throw DomainError.retryable(
              `snapshot from ${input.member} failed its integrity check (${trailer.bytes} bytes, ${trailer.hasTrailer ? 'sha256 trailer does not match' : 'no sha256 trailer'})`,
              FailureType.SnapshotTrailerMismatch,
            );
          }
          const snapshot = await readSnapshotStatus(rawPath, config.etcdBinDir);
          // Not snapshot status's revision: after a compaction at the head that is the newest key's, which no restored cluster can read at.
          const revisions = await readSnapshotRevisions(rawPath);
          const kvHash = await hashKVAt(client, revisions.revision).catch(() => undefined); // moved on and compacted past it: the fact is optional
          // What operators mean by "keys" (snapshot status counts bbolt entries before 3.6): one count-only range, optional like hashKV.
          const liveKeys = await client.kv
            .range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true, revision: String(revisions.revision) })
            .then(
              (r) => Number(r.count),
              () => undefined,
            );
          // The content, key for key, for restores to prove theirs equal (bumped or not); optional like hashKV.
          const digest = await keyspaceDigest(client, revisions.revision).catch(() => undefined);
          return {
            trailer,
            facts: {
              member: input.member,
              memberId: String(status.header.member_id),
              clusterId: String(status.header.cluster_id),
              etcdVersion: status.version,
              revision: revisions.revision,
              keyRevision: revisions.keyRevision,
              compactRevision: revisions.compactRevision,
              hash: snapshot.hash,
              totalKey: snapshot.totalKey,
              totalSize: snapshot.totalSize,
              snapshotTool: snapshot.tool,
              totalKeyCounts: snapshot.totalKeyCounts,
              ...(snapshot.storageVersion ? { storageVersion: snapshot.storageVersion } : {}),
              trailerVerified: true,
              hashKV: kvHash && { revision: Number(kvHash.revision), hash: kvHash.hash, compactRevision: Number(kvHash.compactRevision) },
              ...(liveKeys !== undefined ? { liveKeys } : {}),
              ...(digest ? { keyspaceDigest: digest } : {}),
            } satisfies EtcdSnapshotFacts,
          };
        });
        const first = copies[0]!;
        return {
          artefact: {
            file: fileName,
            key,
            compression: compression.format,
            encryption: encryption?.record ?? null,
            bytes: first.bytes,
            sha256: first.sha256,
            raw: { bytes: facts.trailer.bytes, sha256: facts.trailer.sha256 },
            copies,
          },
          facts: facts.facts,
          ...(ctx.info.attempt > 1 || stagingLeftovers.length + leftoversCleared.length > 0
            ? { retried: { attempt: ctx.info.attempt, leftoversCleared: [...stagingLeftovers, ...leftoversCleared] } }
            : {}),
        };
      });
    } finally {
      await rm(stagingDir, { recursive: true, force: true });
      await rmdir(join(config.workDir, input.setId)).catch(() => undefined); // the set's staging parent, once empty
    }
  }

  /** Removes the staging dirs earlier attempts of this set's snapshot left (`attempt-<n>-<member>`); returns their paths. */
  async function removeEarlierAttempts(setStagingDir: string): Promise<string[]> {
    const names = await readdir(setStagingDir).catch(() => [] as string[]);
    const earlier = names.filter((name) => name.startsWith('attempt-')).map((name) => join(setStagingDir, name));
    for (const dir of earlier) await rm(dir, { recursive: true, force: true });
    return earlier;
  }

  /** Writes manifest.json into every target; the set exists for `backups list` only once this is done. */
  async function writeBackupManifest(input: { manifest: BackupManifest; targets: string[] }): Promise<StoredCopy[]> {
    const body = Buffer.from(`${JSON.stringify(input.manifest, null, 2)}\n`);
    const key = artefactKey(input.manifest.setId, MANIFEST_FILE);
    return Promise.all(
      findTargets(config, input.targets).map(async (target) => {
        const writer = await (await openStore(target)).createWriter(key);
        writer.stream.end(body);
        const copy = await writer.commit();
        return { target: copy.target, location: copy.location, bytes: copy.bytes, sha256: copy.sha256 };
      }),
    );
  }

  /** Removes artefacts of a set that will not get a manifest (the workflow failed after storing them). */
  async function discardBackupArtefacts(input: { keys: string[]; targets: string[] }): Promise<void> {
    await Promise.all(
      findTargets(config, input.targets).map(async (target) => {
        const store = await openStore(target);
        await Promise.all(input.keys.map((key) => store.delete(key)));
      }),
    );
  }

  return {
    discardBackupArtefacts: discardBackupArtefacts,
    prepareEtcdBackup: prepareEtcdBackup,
    rankEtcdMembers: rankEtcdMembers,
    streamEtcdSnapshot: streamEtcdSnapshot,
    writeBackupManifest: writeBackupManifest,
  };
}

/** Heartbeat with the byte count at most once a second (the SDK throttles too; this saves the calls). */
function throttledHeartbeat(ctx: Context): (bytes: number) => void {
  let last = 0;
  return (bytes) => {
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    ctx.heartbeat({ bytes });
  };
}
