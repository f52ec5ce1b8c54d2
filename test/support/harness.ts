/** Helpers shared by the integration tests: the world, the config, a Temporal client, the CLI. */
import { readAgentToml } from '../../src/agent/agent-toml';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import type { Etcd3 } from 'etcd3';
import { inject } from 'vitest';
import { findCluster, loadConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { connectMember } from '../../src/etcd/connect';
import { loadWorld, temporalBinary, type World } from '../../src/sandbox/world';
import { supervisorctl } from '../../src/sandbox/supervisor';
import { openStore } from '../../src/storage';
import { main } from '../../src/client/cli';
import type { ArtefactRecord, BackupManifest, EtcdComponentRecord } from '../../src/common/manifest';
import { createDecryptStream, readDecryptionIdentity } from '../../src/crypto';

export const CLUSTER = 'nnoe-local';

/** The sled cache dir of a node's agent, as its agent.toml says (`[cache].path`). */
export async function agentCacheDir(config: Config, node: string): Promise<string> {
  const agent = config.clusters.find((c) => c.name === CLUSTER)!.agents.find((a) => a.node === node)!;
  return (await readAgentToml(agent.agentToml)).cachePath;
}

export interface Harness {
  world: World;
  config: Config;
  configPath: string;
  client: Client;
  close(): Promise<void>;
}

export async function openHarness(): Promise<Harness> {
  const info = inject('world');
  const connection = await Connection.connect({ address: info.temporalAddress });
  return {
    world: loadWorld(info.worldDir),
    config: loadConfig(info.configPath),
    configPath: info.configPath,
    client: new Client({ connection }),
    close: () => connection.close(),
  };
}

/** A client bound to one member of the main cluster, over mTLS. */
export async function memberClient(config: Config, memberName: string): Promise<Etcd3> {
  const cluster = findCluster(config, CLUSTER);
  return connectMember(
    cluster,
    cluster.etcd.members.find((m) => m.name === memberName)!,
  );
}

/** The member that currently leads the cluster. */
export async function leaderName(config: Config): Promise<string> {
  for (const member of findCluster(config, CLUSTER).etcd.members) {
    const client = await memberClient(config, member.name);
    try {
      const status = await client.maintenance.status();
      if (status.leader === status.header.member_id) return member.name;
    } catch {
      // a stopped member: ask the next one
    } finally {
      client.close();
    }
  }
  throw new Error('no etcd member reports itself as leader');
}

export async function stopMember(world: World, member: string, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
  if (signal === 'KILL') await supervisorctl(world.supervisorConf, 'signal', 'KILL', member);
  else await supervisorctl(world.supervisorConf, 'stop', member);
}

/** Starts stopped members again and waits until each answers a status call. */
export async function startMembers(world: World, config: Config, members: string[]): Promise<void> {
  for (const member of members) await supervisorctl(world.supervisorConf, 'start', member).catch(() => undefined);
  await pollUntil(
    async () => {
      for (const member of members) {
        const client = await memberClient(config, member);
        try {
          await client.maintenance.status();
        } finally {
          client.close();
        }
      }
      return true;
    },
    60_000,
    `members ${members.join(', ')} healthy again`,
  );
}

/**
 * Polls `probe` until it returns a value (kept polling through its errors; the last one is named on
 * timeout) and returns that value. Not src/common/poll.ts `waitUntil`, which stops at an error.
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the CLI in-process; returns its exit code and what it printed. */
export async function runCli(configPath: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['--config', configPath, ...args],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Downloads a stored etcd artefact from one target and gunzips it to a file. */
export async function fetchSnapshot(config: Config, target: string, artefact: ArtefactRecord, dir: string): Promise<string> {
  const store = await openStore(config.storage.find((t) => t.name === target)!);
  const file = join(dir, `${target}-snapshot.db`);
  const decrypt = artefact.encryption ? [createDecryptStream(await readDecryptionIdentity(config.encryption!.identity!))] : [];
  await pipeline([await store.read(artefact.key), ...decrypt, createGunzip(), createWriteStream(file)]);
  return file;
}

export async function tempDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `nnoe-dr-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Keeps the history of a finished run as a replay fixture (test/fixtures/histories). Existing
 * fixtures are only replaced when NNOE_RECORD_HISTORIES=1, so CI replays what was committed.
 */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  const path = join(__dirname, '..', 'fixtures', 'histories', `${name}.json`);
  const { existsSync } = await import('node:fs');
  if (existsSync(path) && process.env.NNOE_RECORD_HISTORIES !== '1') return;
  // The CLI's export is the format the UI downloads and historyFromJSON reads.
  const { stdout } = await promisify(execFile)(
    temporalBinary(),
    ['workflow', 'show', '--workflow-id', handle.workflowId, '--address', inject('world').temporalAddress, '--output', 'json'],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  await writeFile(path, stdout);
}

/** Writes `count` keys of `valueBytes` random bytes under `prefix`, in parallel batches. */
export async function fillKeys(client: Etcd3, prefix: string, count: number, valueBytes: number): Promise<void> {
  const batch = 16;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, (_v, j) =>
        client.put(`${prefix}${String(i + j).padStart(6, '0')}`).value(randomBytes(valueBytes)),
      ),
    );
  }
}

/**
 * Takes fill data away again (delete, compact, defragment every member) so later backups are small:
 * bbolt keeps a file's size until a defragment. The deadline is generous: seconds on a busy machine.
 */
export async function removeFill(config: Config, prefix: string): Promise<void> {
  const cluster = findCluster(config, CLUSTER);
  const etcd = await memberClient(config, cluster.etcd.members[0]!.name);
  try {
    await etcd.delete().prefix(prefix);
    const { header } = await etcd.maintenance.status();
    await etcd.kv.compact({ revision: header.revision, physical: true });
  } finally {
    etcd.close();
  }
  for (const member of cluster.etcd.members) {
    const client = await memberClient(config, member.name);
    try {
      await client.maintenance.defragment({ deadline: Date.now() + 120_000 });
    } finally {
      client.close();
    }
  }
}

/** The etcd component of a manifest (every set has one). */
export function etcdComponent(manifest: BackupManifest): EtcdComponentRecord {
  const component = manifest.components.find((c): c is EtcdComponentRecord => c.component === 'etcd');
  if (!component) throw new Error(`set ${manifest.setId} has no etcd component`);
  return component;
}
