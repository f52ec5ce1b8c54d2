/**
 * Host-local steps of the etcd restore runbook, run by the node worker of each member's node:
 * stage and check the snapshot, stop/start the member, restore into a new data dir beside the old
 * one, repoint the member's unit/program file at it (old file kept beside), and put everything
 * back on rollback. The old data dir is never written, moved or removed here.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, rm, statfs } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import type { ClusterConfig, Config, EtcdMemberConfig } from '../config/schema';
import { removeRestoreStaging, restoreStagingDir } from '../restore/staging';
import { findCluster } from '../config/load';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { ArtefactRecord } from '../common/manifest';
import { readSnapshotStatus, SnapshotTrailerCheck, snapshotTool, snapshotToolVersion, supportsRevisionBump } from '../etcd/snapshot-file';
import { readSnapshotRevisions, recordedRevisionMatches } from '../etcd/snapshot-revisions';
import {
  currentDataDir,
  currentEtcdArgs,
  repointEtcdMember,
  revertEtcdMember,
  type EtcdFlagChanges,
  type MemberConfigChange,
} from '../etcd/member-service';
import { restoredDataDir } from '../etcd/etcd-argv';
import { serviceDriver, type ServiceDriver } from '../services/driver';
import { fetchArtefact } from '../restore/fetch';
import { failpoint } from '../common/failpoints';
import { heartbeating } from './heartbeat';

const execFileAsync = promisify(execFile);

export type EtcdServiceRef = { driver: 'supervisor'; supervisorConf: string } | { driver: 'systemd'; unit: string };

export interface StagedSnapshot {
  member: string;
  path: string;
  bytes: number;
  revision: number;
  /** The member's current (live) data dir and the new one the restore will create beside it. */
  dataDir: string;
  restoredDataDir: string;
  freeBytes: number;
  tool: string;
}

/** The member's service: the cluster's etcd service with the member's program (supervisor) or unit (systemd). */
export function etcdService(cluster: ClusterConfig): EtcdServiceRef {
  if (!cluster.service) {
    throw DomainError.nonRetryable(
      `cluster ${cluster.name} names no etcd service (expected clusters[].service: { driver: systemd, unit } or { driver: supervisor, supervisorConf })`,
      FailureType.ConfigError,
    );
  }
  return cluster.service;
}

function memberDriver(cluster: ClusterConfig, member: EtcdMemberConfig): ServiceDriver {
  const service = etcdService(cluster);
  return serviceDriver(
    service.driver === 'supervisor'
      ? { driver: 'supervisor', supervisorConf: service.supervisorConf, program: member.name }
      : { driver: 'systemd', unit: service.unit },
  );
}

/**
 * SnapshotTrailerCheck as a fetch check: a restore refuses a snapshot whose sha256 trailer does
 * not match. The check is the pass-through stage itself, so it holds only its 32-byte tail.
 */
class TrailerProblem extends SnapshotTrailerCheck {
  problem(): string | null {
    const result = this.result();
    if (result.trailerValid) return null;
    return result.hasTrailer ? 'snapshot sha256 trailer does not match its data' : 'snapshot has no sha256 trailer';
  }
}

/** Whether a restore bumped the revision, by how much, and why not when it did not. */
export interface RevisionBump {
  used: boolean;
  /** The bump applied; 0 when not used. */
  by: number;
  detail: string;
}

export interface RestoredMemberData {
  member: string;
  dataDir: string;
  tool: string;
  /** Absent from results recorded before the bump existed (replayed histories). */
  revisionBump?: RevisionBump;
}

/** The bump asked for, if `toolVersion` (`etcdutl 3.5.16`) can apply it. */
export function revisionBumpFor(asked: number, toolVersion: string): RevisionBump {
  if (asked === 0) return { used: false, by: 0, detail: 'off (restore.revisionBump 0 or --no-revision-bump)' };
  if (!supportsRevisionBump(toolVersion))
    return { used: false, by: 0, detail: `${toolVersion} has no --bump-revision (etcdutl 3.5.10+ has)` };
  return { used: true, by: asked, detail: `+${asked} and compacted (${toolVersion} --bump-revision --mark-compacted)` };
}

export function createEtcdMemberActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  function memberOnThisNode(clusterName: string, memberName: string): { cluster: ClusterConfig; member: EtcdMemberConfig } {
    const cluster = findCluster(config, clusterName);
    const member = cluster.etcd.members.find((m) => m.name === memberName);
    if (!member) throw DomainError.nonRetryable(`cluster ${clusterName} has no etcd member ${memberName}`, FailureType.InvalidInput);
    if (member.node !== node) {
      throw DomainError.nonRetryable(
        `etcd member ${memberName} runs on ${member.node}, not on ${node} (wrong task queue)`,
        FailureType.InvalidInput,
      );
    }
    return { cluster, member };
  }

  const stagingPath = (setId: string, member: string) => join(restoreStagingDir(config.workDir, setId, member), 'snapshot.db');

  /** The dir the member runs on now, from its unit/program file. */
  const liveDataDir = async (cluster: ClusterConfig, member: EtcdMemberConfig) =>
    resolve(currentDataDir(await currentEtcdArgs(etcdService(cluster), member.name)));

  /** `dir`, resolved, once it is known not to be (or hold) the member's live data dir: `doing` is what we would do to it. */
  async function notTheLiveDir(
    cluster: ClusterConfig,
    member: EtcdMemberConfig,
    dir: string,
    doing: string,
  ): Promise<{ target: string; live: string }> {
    const live = await liveDataDir(cluster, member);
    const target = resolve(dir);
    if (target === live || live.startsWith(`${target}/`)) {
      throw DomainError.nonRetryable(
        `refusing to ${doing} ${target}: it is (or holds) the live data dir of ${member.name}`,
        FailureType.InvalidInput,
      );
    }
    return { target, live };
  }

  /**
   * Preflight on the node: fetch the snapshot from the first good copy (checksums, trailer), read
   * its status (revision must match the manifest), and check free disk for the restored data dir.
   */
  async function stageEtcdSnapshot(input: {
    cluster: string;
    member: string;
    setId: string;
    restoreTag: string;
    artefact: ArtefactRecord;
    revision: number;
  }): Promise<StagedSnapshot> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const dataDir = await liveDataDir(cluster, member);
    const ctx = Context.current();
    const path = stagingPath(input.setId, member.name);
    // No fsync: a scratch copy, read once by `snapshot restore` (which checks its trailer again) and removed.
    const fetched = await fetchArtefact(config, input.artefact, path, {
      check: () => new TrailerProblem(),
      durable: false,
      onProgress: (bytes) => ctx.heartbeat({ bytes, total: input.artefact.bytes, member: member.name }),
    });
    await readSnapshotStatus(path, config.etcdBinDir); // the offline tool can read it
    const revisions = await readSnapshotRevisions(path);
    if (!recordedRevisionMatches(input.revision, revisions)) {
      throw DomainError.nonRetryable(
        `snapshot ${input.artefact.file} is at revision ${revisions.revision} (newest key ${revisions.keyRevision}), its manifest says ${input.revision}: refusing a snapshot that is not the one recorded`,
        FailureType.ChecksumMismatch,
      );
    }
    const fs = await statfs(dirname(dataDir));
    const freeBytes = fs.bavail * fs.bsize;
    if (freeBytes < 2 * fetched.bytes) {
      throw DomainError.nonRetryable(
        `not enough free disk beside ${dataDir} on ${node}: ${freeBytes} bytes free, the restore needs at least ${2 * fetched.bytes} (2 x the ${fetched.bytes}-byte snapshot)`,
        FailureType.InsufficientDisk,
      );
    }
    return {
      member: member.name,
      path,
      bytes: fetched.bytes,
      revision: revisions.revision,
      dataDir,
      restoredDataDir: restoredDataDir(dataDir, input.restoreTag),
      freeBytes,
      tool: snapshotTool(config.etcdBinDir).command,
    };
  }

  async function stopEtcdMember(input: { cluster: string; member: string }): Promise<{ member: string; wasRunning: boolean }> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const wasRunning = await memberDriver(cluster, member).stop();
    return { member: member.name, wasRunning };
  }

  async function startEtcdMember(input: { cluster: string; member: string }): Promise<{ member: string }> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    await memberDriver(cluster, member).start();
    return { member: member.name };
  }

  /**
   * `snapshot restore` into the new data dir (etcdutl when present, else etcdctl 3.4), with the
   * revision bump where the tool has it (`revisionBump` from the run, else the cluster's config). A
   * dir left by an earlier attempt of this restore is ours and is removed first; the live dir never is.
   */
  async function restoreEtcdMemberData(input: {
    cluster: string;
    member: string;
    setId: string;
    restoredDataDir: string;
    initialCluster: string;
    initialClusterToken: string;
    revisionBump?: number;
  }): Promise<RestoredMemberData> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const { target } = await notTheLiveDir(cluster, member, input.restoredDataDir, 'restore into');
    await failpoint(`before-restore-data:${member.name}`, () =>
      Context.current().heartbeat({ failpoint: `before-restore-data:${member.name}` }),
    );
    await rm(target, { recursive: true, force: true });
    const tool = snapshotTool(config.etcdBinDir);
    const bump = revisionBumpFor(input.revisionBump ?? cluster.restore.revisionBump, await snapshotToolVersion(tool));
    try {
      await execFileAsync(
        tool.command,
        [
          'snapshot',
          'restore',
          stagingPath(input.setId, member.name),
          '--name',
          member.name,
          '--data-dir',
          target,
          '--initial-cluster',
          input.initialCluster,
          '--initial-cluster-token',
          input.initialClusterToken,
          '--initial-advertise-peer-urls',
          member.peerUrl,
          ...(bump.used ? ['--bump-revision', String(bump.by), '--mark-compacted'] : []),
        ],
        { env: tool.env, timeout: 30 * 60_000 },
      );
    } catch (err) {
      await rm(target, { recursive: true, force: true });
      const e = err as { stderr?: string; message: string };
      throw DomainError.retryable(
        `${tool.command} snapshot restore for ${member.name} failed: ${(e.stderr || e.message).trim().slice(-500)}`,
        FailureType.RestoreFailed,
      );
    }
    return { member: member.name, dataDir: target, tool: tool.command, revisionBump: bump };
  }

  /** Rewrites the member's unit/program file (old one kept beside); supervisord restarts it on the new flags. */
  async function repointEtcdMemberConfig(input: {
    cluster: string;
    member: string;
    restoreTag: string;
    changes: EtcdFlagChanges;
  }): Promise<MemberConfigChange> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const ctx = Context.current();
    await failpoint(`before-repoint:${member.name}`, () => ctx.heartbeat({ failpoint: `before-repoint:${member.name}` }));
    await access(input.changes.dataDir).catch(() => {
      if (input.changes.initialClusterState !== 'existing') {
        throw DomainError.nonRetryable(`restored data dir ${input.changes.dataDir} does not exist on ${node}`, FailureType.InvalidInput);
      }
    });
    if (input.changes.initialClusterState === 'existing') {
      // A joining member starts on an empty dir; one left by an earlier attempt of this restore is ours to clear.
      await notTheLiveDir(cluster, member, input.changes.dataDir, 'clear');
      await rm(input.changes.dataDir, { recursive: true, force: true });
      await mkdir(dirname(input.changes.dataDir), { recursive: true });
    }
    return repointEtcdMember({ service: etcdService(cluster), member: member.name, changes: input.changes, backupTag: input.restoreTag });
  }

  /** Rollback: the old unit/program file back, the member running on its untouched old data dir. */
  async function revertEtcdMemberConfig(input: {
    cluster: string;
    member: string;
    change: MemberConfigChange | null;
  }): Promise<{ member: string }> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const driver = memberDriver(cluster, member);
    if (input.change) {
      await driver.stop();
      await revertEtcdMember(input.change, etcdService(cluster));
    }
    await driver.start();
    return { member: member.name };
  }

  /** Where the member's data lives now, whether it runs, and the fresh dir a replacement would start on. */
  async function describeEtcdMember(input: {
    cluster: string;
    member: string;
    tag: string;
  }): Promise<{ member: string; dataDir: string; newDataDir: string; running: boolean }> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const dataDir = await liveDataDir(cluster, member);
    return {
      member: member.name,
      dataDir,
      newDataDir: join(dirname(dataDir), `replaced-${input.tag}`),
      running: await memberDriver(cluster, member).isRunning(),
    };
  }

  /**
   * Removes a new data dir made by `restoreEtcdMemberData` when the run ends before the stop
   * (refused, not approved, cancelled). Never the dir the member runs on.
   */
  async function discardRestoredData(input: {
    cluster: string;
    member: string;
    restoredDataDir: string;
  }): Promise<{ member: string; removed: string }> {
    const { cluster, member } = memberOnThisNode(input.cluster, input.member);
    const { target, live } = await notTheLiveDir(cluster, member, input.restoredDataDir, 'remove');
    if (!basename(target).startsWith('restored-')) {
      throw DomainError.nonRetryable(
        `refusing to remove ${target}: it is not a restored-* dir beside the live data dir ${live} of ${member.name}`,
        FailureType.InvalidInput,
      );
    }
    await rm(target, { recursive: true, force: true });
    return { member: member.name, removed: target };
  }

  /** Removes the staged snapshot once the restore is over (either way). */
  async function discardStagedSnapshot(input: { setId: string; member: string }): Promise<void> {
    await removeRestoreStaging(config.workDir, input.setId, input.member);
  }

  // Host steps heartbeat every 5 s: a `snapshot restore` of a large snapshot takes minutes.
  const activity = <A extends unknown[], R>(fn: (...args: A) => Promise<R>) => heartbeating(fn);
  return {
    stageEtcdSnapshot: activity(stageEtcdSnapshot),
    stopEtcdMember: activity(stopEtcdMember),
    startEtcdMember: activity(startEtcdMember),
    restoreEtcdMemberData: activity(restoreEtcdMemberData),
    repointEtcdMemberConfig: activity(repointEtcdMemberConfig),
    revertEtcdMemberConfig: activity(revertEtcdMemberConfig),
    discardStagedSnapshot: activity(discardStagedSnapshot),
    discardRestoredData: activity(discardRestoredData),
    describeEtcdMember: activity(describeEtcdMember),
  };
}
