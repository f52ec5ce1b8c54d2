/**
 * Runbooks "sled Cache Restore" and "Nebula Certificate Restore", one node at a time.
 *
 * Management side (`createHostRestorePlanActivities`): choose the set and the node's artefact.
 * Node side (`createHostRestoreActivities`, on the node's own queue), in this order:
 *   stage    fetch the artefact (checksums, age, gunzip) into the workDir and validate every tar
 *            entry: an archive that cannot be restored is refused before anything is stopped;
 *   prepare  extract into a fresh `<dir>.restoring-*` beside the live dir; for Nebula also enforce
 *            the runbook's modes, check host.crt against ca.crt and load the config with `nebula -test`;
 *   stop / swap / start   the service is down only for the swap (two renames); the old dir is kept
 *            as `<dir>.pre-restore-<stamp>`.
 * Archives are made relative to `/` (src/archive/create.ts), so the archived dir (from the manifest)
 * is the `stripPrefix` that maps onto the dir configured for the node today.
 */
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { Context } from '@temporalio/activity';
import { parse, stringify } from 'yaml';
import type { ClusterConfig, Config } from '../config/schema';
import { removeRestoreStaging, restoreStagingDir } from '../restore/staging';
import { findCluster } from '../config/load';
import { FailureType } from '../common/failures';
import type { ArtefactRecord, ComponentRecord } from '../common/manifest';
import { chooseRestoreSet } from '../catalog/choose-set';
import { fetchArtefact } from '../restore/fetch';
import { extractIntoFreshDir, listArchive, swapDirectory, type ArchiveEntryType } from '../archive/extract';
import {
  checkNebulaConfig,
  NEBULA_FILES,
  describeNebulaCert,
  enforceNebulaModes,
  verifyHostCert,
  type NebulaModeChange,
} from '../nebula/certs';
import { serviceDriver, type ServiceDriver } from '../services/driver';
import { withHeartbeat } from './heartbeat';
import { DomainError } from '../common/domain-errors';
import { agentLayout, agentOn } from '../agent/node-agent';

export type HostRestoreKind = 'agent-cache' | 'nebula';

export interface HostRestorePlan {
  cluster: string;
  node: string;
  kind: HostRestoreKind;
  setId: string;
  setCreatedAt: string;
  setStatus: 'complete' | 'partial';
  artefact: ArtefactRecord;
  /** The dir the archive was made from (entries stored relative to `/`). */
  archivedDir: string;
  /** Where it is restored: the dir configured for the node today. */
  targetDir: string;
  /** The service stopped for the swap; null when none is configured (Nebula's is optional). */
  service: string | null;
  /** Targets that could not be listed while choosing the set (the set came from the others). */
  unreachableTargets: string[];
}

export interface StagedArchive {
  node: string;
  path: string;
  bytes: number;
  /** The copy used. */
  target: string;
  entries: number;
  targetDir: string;
}

export interface PreparedDir {
  node: string;
  /** `<targetDir>.restoring-XXXXXX`, complete and checked, not yet in place. */
  dir: string;
  /** Its inode: after the swap the live dir has it (how a retried swap knows it was done). */
  ino: number;
  entries: number;
  /** Files in the live dir that the archive does not hold: they stay in the kept old dir. */
  notInArchive: string[];
  /** Nebula: modes changed to the runbook's (keys/config 0600, certificates 0644). */
  modeChanges: NebulaModeChange[];
  /** Nebula: the restored host certificate. */
  hostCert?: { name: string; issuer: string; notAfter: string };
}

// ---------------------------------------------------------------------------------- per-node config

interface NodeTarget {
  dir: string;
  service: ServiceDriver | null;
  allowedTypes?: readonly ArchiveEntryType[];
}

async function nodeTarget(cluster: ClusterConfig, node: string, kind: HostRestoreKind): Promise<NodeTarget> {
  if (kind === 'agent-cache') {
    const agent = agentOn(cluster, node);
    return { dir: resolve((await agentLayout(agent)).cachePath), service: serviceDriver(agent.service) };
  }
  if (kind === 'nebula') {
    const nebula = cluster.nebula.find((n) => n.node === node);
    if (!nebula)
      throw DomainError.nonRetryable(`cluster ${cluster.name} configures no Nebula files on node ${node}`, FailureType.InvalidInput);
    // Nebula needs four regular files: no links, so an archive with one is refused outright.
    return {
      dir: resolve(nebula.dir),
      service: nebula.service ? serviceDriver(nebula.service) : null,
      allowedTypes: ['File', 'Directory'],
    };
  }
  throw DomainError.nonRetryable(`unknown host restore kind ${String(kind)}; expected agent-cache or nebula`, FailureType.InvalidInput);
}

/** Archive entries are relative to `/`: `/var/nnoe/cache` was archived as `var/nnoe/cache/...`. */
const stripPrefixOf = (archivedDir: string) => archivedDir.replace(/^\/+/, '').replace(/\/+$/, '');

function requireAbsolute(archivedDir: string): void {
  if (!isAbsolute(archivedDir) || archivedDir.split('/').includes('..')) {
    throw DomainError.nonRetryable(
      `the manifest's archived dir ${JSON.stringify(archivedDir)} is not an absolute path without '..'`,
      FailureType.InvalidInput,
    );
  }
}

/**
 * The target as the management worker can name it: an agent's cache path lives in agent.toml on its
 * node, which the node's own steps read; the plan names the file it comes from.
 */
async function describedTarget(
  cluster: ClusterConfig,
  node: string,
  kind: HostRestoreKind,
): Promise<{ dir: string; service: ServiceDriver | null }> {
  if (kind !== 'agent-cache') return nodeTarget(cluster, node, kind);
  const agent = agentOn(cluster, node);
  return { dir: agent.cacheDir ?? `[cache].path of ${agent.agentToml}`, service: serviceDriver(agent.service) };
}

export function createHostRestorePlanActivities(deps: { config: Config }) {
  const { config } = deps;

  async function planHostRestore(input: {
    cluster: string;
    node: string;
    kind: HostRestoreKind;
    setId?: string;
  }): Promise<HostRestorePlan> {
    const cluster = findCluster(config, input.cluster);
    const target = await describedTarget(cluster, input.node, input.kind);
    const what = `${input.kind === 'nebula' ? 'Nebula files' : 'an agent cache'} of node ${input.node}`;
    const { entry, component, unreachableTargets } = await chooseRestoreSet(config, {
      cluster: cluster.name,
      setId: input.setId,
      what,
      pick: (m) =>
        m.components.find(
          (c): c is Extract<ComponentRecord, { component: HostRestoreKind }> =>
            c.component === input.kind && 'node' in c && c.node === input.node,
        ),
    });
    const archivedDir = component.component === 'agent-cache' ? component.facts.cacheDir : component.facts.dir;
    requireAbsolute(archivedDir);
    const artefact = component.artefacts[0];
    if (!artefact) throw DomainError.nonRetryable(`backup set ${entry.setId} records no artefact for ${what}`, FailureType.RestoreRefused);
    return {
      cluster: cluster.name,
      node: input.node,
      kind: input.kind,
      setId: entry.setId,
      setCreatedAt: entry.createdAt,
      setStatus: entry.status,
      artefact,
      archivedDir,
      targetDir: target.dir,
      service: target.service?.describe ?? null,
      unreachableTargets,
    };
  }

  return { planHostRestore: planHostRestore };
}

// ---------------------------------------------------------------------------------- node side

export function createHostRestoreActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  const targetOf = (clusterName: string, kind: HostRestoreKind) => nodeTarget(findCluster(config, clusterName), node, kind);
  const stagingDir = (setId: string, kind: HostRestoreKind) => restoreStagingDir(config.workDir, setId, `${kind}-${node}`);
  const stagedPath = (setId: string, kind: HostRestoreKind) => join(stagingDir(setId, kind), 'archive.tar');

  /** A dir this restore prepared beside the target, never anything else (the path comes from a payload). */
  function requirePreparedDir(target: NodeTarget, dir: string): string {
    const path = resolve(dir);
    if (dirname(path) !== dirname(target.dir) || !basename(path).startsWith(`${basename(target.dir)}.restoring-`)) {
      throw DomainError.nonRetryable(`${dir} is not a restore dir prepared beside ${target.dir}`, FailureType.InvalidInput);
    }
    return path;
  }

  /** Preflight on the node: the archive fetched and checked, every entry validated, room to extract it. */
  async function stageHostArchive(input: {
    cluster: string;
    kind: HostRestoreKind;
    setId: string;
    artefact: ArtefactRecord;
    archivedDir: string;
  }): Promise<StagedArchive> {
    const target = await targetOf(input.cluster, input.kind);
    requireAbsolute(input.archivedDir);
    const ctx = Context.current();
    const path = stagedPath(input.setId, input.kind);
    const fetched = await fetchArtefact(config, input.artefact, path, { onProgress: (bytes) => ctx.heartbeat({ bytes }) });
    const { entries } = await withHeartbeat({ phase: 'validate archive' }, () =>
      listArchive(createReadStream(path), { stripPrefix: stripPrefixOf(input.archivedDir), allowedTypes: target.allowedTypes }),
    );
    if (input.kind === 'nebula') {
      const files = entries.filter((e) => e.type === 'File').map((e) => e.path);
      const missing = NEBULA_FILES.filter((f) => !files.includes(f));
      const extra = entries.filter((e) => e.path !== '.' && !(NEBULA_FILES as readonly string[]).includes(e.path)).map((e) => e.path);
      if (missing.length > 0 || extra.length > 0) {
        throw DomainError.nonRetryable(
          `Nebula archive ${input.artefact.file} holds ${files.join(', ') || 'no files'}; expected exactly ${NEBULA_FILES.join(', ')}` +
            `${missing.length ? ` (missing ${missing.join(', ')})` : ''}${extra.length ? ` (unexpected ${extra.join(', ')})` : ''}`,
          FailureType.RestoreRefused,
        );
      }
    }
    await mkdir(dirname(target.dir), { recursive: true });
    const fs = await statfs(dirname(target.dir));
    const free = fs.bavail * fs.bsize;
    // extractIntoFreshDir spools the tar beside the target, then extracts it.
    if (free < 2 * fetched.bytes) {
      throw DomainError.nonRetryable(
        `${dirname(target.dir)} on ${node} has ${free} bytes free; restoring ${fetched.bytes} bytes of archive needs ${2 * fetched.bytes}`,
        FailureType.InsufficientDisk,
      );
    }
    return { node, path, bytes: fetched.bytes, target: fetched.target, entries: entries.length, targetDir: target.dir };
  }

  /**
   * The restored dir, complete and checked, beside the live one; the live dir is not touched.
   * Nebula: the runbook's modes, host.crt issued by ca.crt, and the config loading with these files.
   * Any failure removes the new dir.
   */
  async function prepareRestoredDir(input: {
    cluster: string;
    kind: HostRestoreKind;
    setId: string;
    archivedDir: string;
  }): Promise<PreparedDir> {
    const target = await targetOf(input.cluster, input.kind);
    requireAbsolute(input.archivedDir);
    const path = stagedPath(input.setId, input.kind);
    if (
      !(await lstat(path).then(
        (s) => s.isFile(),
        () => false,
      ))
    ) {
      throw DomainError.nonRetryable(
        `no staged archive at ${path} on ${node}: the preflight (stageHostArchive) did not run here`,
        FailureType.InvalidInput,
      );
    }
    await mkdir(dirname(target.dir), { recursive: true });
    const { dir, entries } = await withHeartbeat({ phase: 'extract' }, () =>
      extractIntoFreshDir(createReadStream(path), target.dir, {
        stripPrefix: stripPrefixOf(input.archivedDir),
        allowedTypes: target.allowedTypes,
      }),
    );
    try {
      const archived = new Set(entries.map((e) => e.path.split('/')[0]));
      const live = await readdir(target.dir).catch(() => [] as string[]);
      const prepared: PreparedDir = {
        node,
        dir,
        ino: (await lstat(dir)).ino,
        entries: entries.length,
        notInArchive: live.filter((name) => !archived.has(name)).sort(),
        modeChanges: [],
      };
      if (input.kind === 'nebula') {
        prepared.modeChanges = await enforceNebulaModes(dir);
        await verifyHostCert({ caCrt: join(dir, 'ca.crt'), hostCrt: join(dir, 'host.crt') });
        await checkRestoredNebulaConfig(dir, target.dir);
        const cert = await describeNebulaCert(join(dir, 'host.crt'));
        prepared.hostCert = { name: cert.name, issuer: cert.issuer, notAfter: cert.notAfter };
      }
      return prepared;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * `nebula -test` on the restored files: the restored config.yml with its pki paths that point into
   * the live dir pointed at the prepared dir instead (a temp copy; the restored config is not changed).
   */
  async function checkRestoredNebulaConfig(dir: string, liveDir: string): Promise<void> {
    const doc = parse(await readFile(join(dir, 'config.yml'), 'utf8')) as { pki?: Record<string, unknown> } | null;
    const pki = doc?.pki ?? {};
    for (const key of ['ca', 'cert', 'key']) {
      const value = pki[key];
      // Inline PEM stays as it is; a path into the live dir is redirected to the restored file.
      if (typeof value === 'string' && !value.includes('-----BEGIN') && resolve(value).startsWith(`${liveDir}/`)) {
        pki[key] = join(dir, resolve(value).slice(liveDir.length + 1));
      }
    }
    await mkdir(config.workDir, { recursive: true });
    const scratch = await mkdtemp(join(config.workDir, 'nebula-check-')); // 0700: the config may hold secrets
    try {
      const copy = join(scratch, 'config.yml');
      await writeFile(copy, stringify({ ...doc, pki }), { mode: 0o600 });
      await checkNebulaConfig(copy);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  async function stopServiceForRestore(input: {
    cluster: string;
    kind: HostRestoreKind;
  }): Promise<{ node: string; service: string | null; wasRunning: boolean }> {
    const { service } = await targetOf(input.cluster, input.kind);
    if (!service) return { node, service: null, wasRunning: false };
    const wasRunning = await service.isRunning();
    await service.stop();
    return { node, service: service.describe, wasRunning };
  }

  /** Idempotent start (Nebula; the agent is started by startAgentAndWait, which also waits for its health). */
  async function startServiceAfterRestore(input: {
    cluster: string;
    kind: HostRestoreKind;
  }): Promise<{ node: string; service: string | null; running: boolean }> {
    const { service } = await targetOf(input.cluster, input.kind);
    if (!service) return { node, service: null, running: false };
    await service.start();
    const running = await service.isRunning();
    if (!running) throw DomainError.retryable(`${service.describe} on ${node} is not running after its start`, FailureType.RestoreFailed);
    return { node, service: service.describe, running };
  }

  /** The prepared dir in place of the live one; the old one kept as `<dir>.pre-restore-<stamp>`. */
  async function swapRestoredDir(input: {
    cluster: string;
    kind: HostRestoreKind;
    preparedDir: string;
    preparedIno: number;
  }): Promise<{ node: string; dir: string; previousDir: string | null }> {
    const target = await targetOf(input.cluster, input.kind);
    const prepared = requirePreparedDir(target, input.preparedDir);
    if (
      !(await lstat(prepared).then(
        (s) => s.isDirectory(),
        () => false,
      ))
    ) {
      // An earlier attempt may have swapped and died before reporting: the live dir is then the prepared one.
      if ((await lstat(target.dir).catch(() => null))?.ino === input.preparedIno) {
        const kept = (await readdir(dirname(target.dir)))
          .filter((n) => n.startsWith(`${basename(target.dir)}.pre-restore-`))
          .sort()
          .pop();
        return { node, dir: target.dir, previousDir: kept ? join(dirname(target.dir), kept) : null };
      }
      throw DomainError.nonRetryable(
        `prepared dir ${prepared} is gone on ${node} and ${target.dir} is not it: nothing to swap`,
        FailureType.RestoreFailed,
      );
    }
    const swapped = await swapDirectory(prepared, target.dir);
    return { node, dir: swapped.finalDir, previousDir: swapped.previousDir };
  }

  /** After a failure before the swap: the prepared dir goes; the live dir was never touched. */
  async function discardPreparedDir(input: { cluster: string; kind: HostRestoreKind; preparedDir: string }): Promise<void> {
    await rm(requirePreparedDir(await targetOf(input.cluster, input.kind), input.preparedDir), { recursive: true, force: true });
  }

  async function discardStagedArchive(input: { setId: string; kind: HostRestoreKind }): Promise<void> {
    await removeRestoreStaging(config.workDir, input.setId, `${input.kind}-${node}`);
  }

  return {
    stageHostArchive: stageHostArchive,
    prepareRestoredDir: prepareRestoredDir,
    stopServiceForRestore: stopServiceForRestore,
    startServiceAfterRestore: startServiceAfterRestore,
    swapRestoredDir: swapRestoredDir,
    discardPreparedDir: discardPreparedDir,
    discardStagedArchive: discardStagedArchive,
  };
}
