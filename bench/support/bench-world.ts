/**
 * Helpers for benchmarks that run workflows against etcd in a world: the worker's command line
 * and processes (management and node workers), the world's config with the benchmark's task queue
 * and targets, the fill, the members' data dirs, and the etcdctl command lines an operator would
 * type (mTLS with the world's client certificate).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import type { Config, EtcdMemberConfig } from '../../src/config/schema';
import { generateIdentity } from '../../src/crypto';
import { connectMember } from '../../src/etcd/connect';
import { renderWorldConfig, type World } from '../../src/sandbox/world';
import type { WorkerMode } from './cli';
import { fillEtcd, filledBytes } from './etcd-fill';
import { WORLD_MARKER_ENV } from './lifecycle';
import { MiB, mib, stopChild, type Teardown } from './processes';
import { repoRoot } from './results';

/** The deployment settings the sandbox uses for workers (measured in bench/etcd-backup). */
export const WORKER_ENV = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-semi-space-size=2`.trim(), MALLOC_ARENA_MAX: '2' };

// ------------------------------------------------------------------ the worker

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Runs a build step quietly; its output is shown only when it fails. */
function run(command: string, args: string[], what: string): void {
  const result = spawnSync(command, args, { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trimEnd().split('\n').slice(-30).join('\n');
    throw new Error(`${what} failed (${command} ${args.join(' ')} exited with ${result.status ?? result.signal}):\n${output}`);
  }
}

/**
 * `npm run build` into `buildDir` instead of dist/ (which other work may be using): tsc, then the
 * prebuilt workflow bundle beside worker.js, which the compiled worker loads. Skipped when the
 * build is newer than every file under src/. The new build goes to a side directory and replaces
 * the old one only once it succeeded: when src/ does not compile at the moment (someone is
 * editing it), an earlier build is used with a warning instead of failing the benchmark.
 */
function compileWorker(buildDir: string): { workerJs: string; rebuilt: boolean; seconds: number; warning?: string } {
  const outDir = join(buildDir, 'dist');
  const workerJs = join(outDir, 'worker.js');
  const bundle = join(outDir, 'workflow-bundle.js');
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const built = existsSync(workerJs) && existsSync(bundle);
  if (
    built &&
    statSync(bundle).mtimeMs > Math.max(newestMtimeMs(join(repoRoot, 'src')), statSync(join(repoRoot, 'package-lock.json')).mtimeMs)
  ) {
    return { workerJs, rebuilt: false, seconds: seconds() };
  }
  const next = join(buildDir, 'dist.next');
  rmSync(next, { recursive: true, force: true });
  try {
    run('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', next], 'compiling the worker');
    run('npx', ['tsx', join(repoRoot, 'src', 'scripts', 'build-workflow-bundle.ts'), '--dist', next], 'building the workflow bundle');
  } catch (err) {
    rmSync(next, { recursive: true, force: true });
    if (!built) throw err;
    return {
      workerJs,
      rebuilt: false,
      seconds: seconds(),
      warning: `${(err as Error).message}\nusing the previous build from ${statSync(bundle).mtime.toISOString()}`,
    };
  }
  rmSync(outDir, { recursive: true, force: true });
  renameSync(next, outDir);
  return { workerJs, rebuilt: true, seconds: seconds() };
}

/** `node` arguments that run the worker from src/ with tsx, no build needed. */
export function tsxWorkerArgs(): string[] {
  return ['--import', 'tsx', join(repoRoot, 'src', 'worker.ts')];
}

/** The worker's `node` arguments for --worker compiled (built into `buildDir` by compileWorker) or tsx; says which on stdout. */
export function workerArgs(mode: WorkerMode, buildDir: string): string[] {
  if (mode === 'tsx') {
    console.log('worker: node --import tsx src/worker.ts');
    return tsxWorkerArgs();
  }
  const built = compileWorker(buildDir);
  if (built.warning) console.warn(`warning: src/ does not compile right now: ${built.warning}`);
  console.log(
    `worker: node ${built.workerJs} (${built.rebuilt ? `compiled with its workflow bundle in ${built.seconds.toFixed(1)} s` : 'an earlier build, reused'})`,
  );
  return [built.workerJs];
}

/**
 * Starts `node <args> --config <configPath> [--node N]` in its own process group and resolves once
 * it says it is polling. `env` is its extra environment, by default the deployment's (WORKER_ENV);
 * with `worldDir` it carries the world marker, so stopping the world also sweeps it up.
 */
export async function startWorkerProcess(opts: {
  args: string[];
  configPath: string;
  node?: string;
  logPath: string;
  worldDir?: string;
  env?: Record<string, string>;
}): Promise<ChildProcess> {
  const log = openSync(opts.logPath, 'a');
  const child = spawn(process.execPath, [...opts.args, '--config', opts.configPath, ...(opts.node ? ['--node', opts.node] : [])], {
    cwd: repoRoot,
    env: { ...process.env, ...(opts.env ?? WORKER_ENV), ...(opts.worldDir ? { [WORLD_MARKER_ENV]: opts.worldDir } : {}) },
    stdio: ['ignore', 'pipe', log],
    detached: true, // own process group: Ctrl-C reaches the benchmark, which stops the worker itself
  });
  closeSync(log);
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`the worker${opts.node ? ` of ${opts.node}` : ''} did not start polling within 180 s; see ${opts.logPath}`)),
      180_000,
    );
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      writeFileSync(opts.logPath, chunk, { flag: 'a' });
      seen = (seen + chunk.toString()).slice(-4096);
      if (seen.includes('polling')) {
        clearTimeout(timer);
        ready();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`the worker${opts.node ? ` of ${opts.node}` : ''} exited with ${code}; see ${opts.logPath}`));
    });
  });
  return child;
}

/**
 * The management worker and one worker per node in `nodes`, keyed 'management' or the node's name,
 * each logging to <logDir>/worker-<name>.log. The teardown stops them, also those started before
 * another one failed to start.
 */
export async function startWorkers(
  teardown: Teardown,
  opts: {
    args: string[];
    configPath: string;
    nodes: string[];
    logDir: string;
    worldDir: string;
  },
): Promise<Map<string, ChildProcess>> {
  const workers = new Map<string, ChildProcess>();
  teardown.add('workers', async () => {
    await Promise.all([...workers.values()].map((worker) => stopChild(worker)));
  });
  for (const name of ['management', ...opts.nodes]) {
    workers.set(
      name,
      await startWorkerProcess({
        args: opts.args,
        configPath: opts.configPath,
        node: name === 'management' ? undefined : name,
        logPath: join(opts.logDir, `worker-${name}.log`),
        worldDir: opts.worldDir,
      }),
    );
  }
  return workers;
}

// ------------------------------------------------------------------ config

/**
 * The world's config for one benchmark: its own task queue (no other worker takes its tasks), only
 * the storage targets it measures, and age encryption (as in production) when given a key pair.
 */
export function benchWorldConfig(
  world: World,
  opts: {
    taskQueue: string;
    targets: string[];
    encryption?: { recipient: string; identityFile: string };
  },
): Record<string, unknown> {
  const base = renderWorldConfig(world);
  return {
    ...base,
    temporal: { ...(base.temporal as object), taskQueue: opts.taskQueue },
    storage: (base.storage as Array<{ name: string }>).filter((target) => opts.targets.includes(target.name)),
    ...(opts.encryption
      ? { encryption: { recipients: [opts.encryption.recipient], identity: { file: opts.encryption.identityFile } } }
      : {}),
  };
}

// ------------------------------------------------------------------ etcd

export async function leaderMember(config: Config): Promise<EtcdMemberConfig> {
  const cluster = config.clusters[0]!;
  for (const member of cluster.etcd.members) {
    const client = await connectMember(cluster, member).catch(() => undefined);
    if (!client) continue;
    try {
      const status = await client.maintenance.status();
      if (status.leader === status.header.member_id) return member;
    } catch {
      // this member does not answer: ask the next
    } finally {
      client.close();
    }
  }
  throw new Error(`no member of ${cluster.name} reports itself as leader`);
}

/** A client of the leader of the config's first cluster (`timeoutMs` per call), and which member that is. */
export async function connectLeader(config: Config, timeoutMs: number): Promise<{ leader: EtcdMemberConfig; client: Etcd3 }> {
  const leader = await leaderMember(config);
  return { leader, client: await connectMember(config.clusters[0]!, leader, timeoutMs) };
}

/** Tops etcd up to `sizeMiB` of values through the leader (a reused world keeps its earlier fill); returns the db size afterwards. */
export async function fillCluster(config: Config, sizeMiB: number): Promise<{ dbSizeBytes: number; keys: number; fillSeconds: number }> {
  const { leader, client } = await connectLeader(config, 60_000);
  try {
    const targetBytes = Math.round(sizeMiB * MiB);
    const before = await filledBytes(client);
    if (before.bytes >= targetBytes) {
      console.log(`etcd already holds ${mib(before.bytes)} MiB of values (${before.keys} keys) from an earlier fill`);
    } else {
      console.log(`filling etcd (leader ${leader.name}) with ${mib(targetBytes - before.bytes)} MiB of 64-512 KiB values ...`);
    }
    const result = await fillEtcd(client, {
      targetBytes,
      onProgress: (done, target, seconds) => {
        if (before.bytes >= targetBytes) return;
        const rate = (done - before.bytes) / MiB / Math.max(seconds, 0.001);
        console.log(
          `  ${mib(done, 0)}/${mib(target, 0)} MiB (${((100 * done) / target).toFixed(0)} %), ${seconds.toFixed(0)} s, ${rate.toFixed(1)} MiB/s`,
        );
      },
    });
    const status = await client.maintenance.status();
    return { dbSizeBytes: Number(status.dbSize), keys: result.keys, fillSeconds: result.seconds };
  } finally {
    client.close();
  }
}

/**
 * A fresh age key pair for benchWorldConfig's encryption: the identity goes to
 * <dir>/secrets/age-identity.txt, readable by its owner only.
 */
export async function writeAgeIdentity(dir: string): Promise<{ recipient: string; identityFile: string }> {
  const { identity, recipient } = await generateIdentity();
  const identityFile = join(ensureDir(join(dir, 'secrets')), 'age-identity.txt');
  writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
  return { recipient, identityFile };
}

/** `--cacert/--cert/--key` of the world's trusted client, for etcdctl. */
export function etcdctlTlsArgs(world: World): string[] {
  return [`--cacert=${world.certs.ca}`, `--cert=${world.certs.clientCert}`, `--key=${world.certs.clientKey}`];
}

/** The --data-dir the member's program file points at now. */
function liveDataDir(programConf: string): string {
  const match = /--data-dir[= ](\S+)/.exec(readFileSync(programConf, 'utf8'));
  if (!match) throw new Error(`no --data-dir in ${programConf}`);
  return match[1]!;
}

/**
 * Removes every data dir beside each member's live one (the original `data`, earlier `restored-*`
 * and baseline dirs): restores keep the old dir, and at 1 GiB they would fill the disk.
 */
export function removeDeadDataDirs(world: World): string[] {
  const removed: string[] = [];
  for (const member of world.etcd.members) {
    const live = resolve(liveDataDir(member.programConf));
    const parent = dirname(live);
    for (const entry of readdirSync(parent, { withFileTypes: true })) {
      const path = join(parent, entry.name);
      if (!entry.isDirectory() || path === live) continue;
      if (!existsSync(join(path, 'member'))) continue; // only etcd data dirs
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
