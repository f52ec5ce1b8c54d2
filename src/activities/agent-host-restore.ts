/**
 * Restoring an agent node's host state (component `agent-config`: agent.toml, its drop-in dir, the
 * etcd client TLS dir, Knot's DNSSEC keys, Kea's lease file, the Nebula CA key on the CA host).
 * Each archived root is put back whole beside the live one first (`<path>.restoring-*`, modes
 * from the archive), then swapped in; the old file or dir stays as `<path>.pre-restore-<stamp>`.
 * Nothing live is touched before every root of the archive is extracted and checked.
 */
import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { AgentConfigComponentRecord, ArtefactRecord, ComponentRecord } from '../common/manifest';
import { fetchArtefact } from '../restore/fetch';
import { extractArchive, swapDirectory } from '../archive/extract';
import { agentHostState, agentOn } from '../agent/node-agent';
import { chooseRestoreSet } from '../catalog/choose-set';

const run = promisify(execFile);

export interface AgentHostRestorePlan {
  cluster: string;
  node: string;
  setId: string;
  artefact: ArtefactRecord;
  /** The archived roots (absolute paths on the node). */
  roots: string[];
  /** What the backup left out (private keys without encryption). */
  skippedAtBackup: Array<{ path: string; reason: string }>;
  unreachableTargets: string[];
}

export interface RestoredPath {
  path: string;
  kind: 'file' | 'dir';
  previous: string | null;
}
export interface AgentHostRestoreOutcome {
  node: string;
  restored: RestoredPath[];
  notInArchive: string[];
  entries: number;
  dryRun: boolean;
}

export function createAgentHostRestorePlanActivities(deps: { config: Config }) {
  async function planAgentHostRestore(input: { cluster: string; node: string; setId?: string }): Promise<AgentHostRestorePlan> {
    const cluster = findCluster(deps.config, input.cluster);
    agentOn(cluster, input.node);
    const { entry, component, unreachableTargets } = await chooseRestoreSet(deps.config, {
      cluster: cluster.name,
      setId: input.setId,
      what: `the host state of node ${input.node}`,
      pick: (m) =>
        m.components.find((c: ComponentRecord): c is AgentConfigComponentRecord => c.component === 'agent-config' && c.node === input.node),
    });
    const artefact = component.artefacts[0];
    if (!artefact)
      throw DomainError.nonRetryable(
        `backup set ${entry.setId} records no artefact for node ${input.node}'s host state`,
        FailureType.RestoreRefused,
      );
    return {
      cluster: cluster.name,
      node: input.node,
      setId: entry.setId,
      artefact,
      roots: component.facts.roots ?? [component.facts.dir],
      skippedAtBackup: component.facts.skipped ?? [],
      unreachableTargets,
    };
  }
  return { planAgentHostRestore: planAgentHostRestore };
}

const stamp = () =>
  new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/** Puts a prepared file in place of `path`, keeping the old one; puts it back if the second rename fails. */
async function swapFile(prepared: string, path: string): Promise<string | null> {
  const exists = await lstat(path).then(
    () => true,
    () => false,
  );
  const previous = exists ? `${path}.pre-restore-${stamp()}` : null;
  if (previous) await rename(path, previous);
  try {
    await rename(prepared, path);
  } catch (err) {
    if (previous) await rename(previous, path);
    throw err;
  }
  return previous;
}

export function createAgentHostRestoreActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  async function restoreAgentHostState(input: {
    cluster: string;
    setId: string;
    artefact: ArtefactRecord;
    roots: string[];
    dryRun: boolean;
  }): Promise<AgentHostRestoreOutcome> {
    const ctx = Context.current();
    const agent = agentOn(findCluster(config, input.cluster), node);
    // The roots come from a manifest: only the host-state paths configured for this agent are written.
    const allowed = new Set(agentHostState(agent).map((p) => p.path));
    const foreign = input.roots.filter((r) => !allowed.has(r));
    if (foreign.length > 0) {
      throw DomainError.nonRetryable(
        `the archive's roots ${foreign.join(', ')} are not host-state paths of the agent on ${node} (configured: ${[...allowed].join(', ')})`,
        FailureType.RestoreRefused,
      );
    }
    const staging = join(config.workDir, 'restore', input.setId, `agent-host-${node}`);
    await rm(staging, { recursive: true, force: true });
    try {
      await fetchArtefact(config, input.artefact, join(staging, 'archive.tar'), { onProgress: (bytes) => ctx.heartbeat({ bytes }) });
      // Entries are relative to / (as `tar -czf ... /etc/nnoe/agent.toml` writes them): validated and extracted under a scratch root.
      const root = join(staging, 'root');
      const { entries } = await extractArchive(createReadStream(join(staging, 'archive.tar')), { cwd: root, spoolDir: staging });
      const present = await Promise.all(
        input.roots.map((r) =>
          lstat(join(root, r)).then(
            (s) => ({ path: r, dir: s.isDirectory() }),
            () => null,
          ),
        ),
      );
      const notInArchive = input.roots.filter((_, i) => present[i] === null);
      if (input.dryRun) return { node, restored: [], notInArchive, entries: entries.length, dryRun: true };

      // Every root prepared beside its live path before any is swapped in.
      const prepared: Array<{ path: string; dir: boolean; tmp: string }> = [];
      try {
        for (const item of present) {
          if (!item) continue;
          await run('mkdir', ['-p', dirname(item.path)]);
          const holder = await mkdtemp(`${item.path}.restoring-`);
          const tmp = join(holder, basename(item.path));
          await run('cp', ['-a', join(root, item.path), tmp]); // modes, owners and times as archived
          prepared.push({ path: item.path, dir: item.dir, tmp });
        }
      } catch (err) {
        await Promise.all(prepared.map((p) => rm(dirname(p.tmp), { recursive: true, force: true })));
        throw err;
      }
      const restored: RestoredPath[] = [];
      for (const p of prepared) {
        const previous = p.dir ? (await swapDirectory(p.tmp, p.path)).previousDir : await swapFile(p.tmp, p.path);
        await rm(dirname(p.tmp), { recursive: true, force: true });
        restored.push({ path: p.path, kind: p.dir ? 'dir' : 'file', previous });
      }
      return { node, restored, notInArchive, entries: entries.length, dryRun: false };
    } finally {
      await rm(staging, { recursive: true, force: true });
      await rmdir(dirname(staging)).catch(() => undefined); // restore/<set>/ when nothing else is staged there
    }
  }

  return { restoreAgentHostState: restoreAgentHostState };
}
