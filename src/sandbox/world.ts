/**
 * The "local world": a 3-member etcd cluster with mTLS, an S3 endpoint (moto)
 * and optionally a Temporal dev server, all on 127.0.0.1 under one supervisord,
 * all state inside one directory. The sandbox and the tests run nnoe-dr
 * against it exactly as against a real platform.
 *
 * Layout of <dir>:
 *   world.json            what startWorld built (ports, paths); read by loadWorld
 *   nnoe-dr.yaml          nnoe-dr config pointing at this world
 *   certs/ secrets/       test PKI and fake S3 credentials (kept across restarts)
 *   supervisor/           supervisord.conf, programs/<name>.conf ("unit files")
 *   etcd/etcd-N/data      member data dirs
 *   logs/<program>.log    one log per program
 *   backups/ work/        local backup store, staging area of the management worker
 *   temporal/             Temporal dev server database
 *
 * This file starts, reuses, stops and loads a world; its parts are beside it: world-types.ts (what
 * a world is), world-etcd.ts, world-services.ts (moto, Temporal), world-readiness.ts, world-config.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';

import { createCertificates } from './certs';
import { initializeDatadir, mariadbLayout, mariadbProgram, PHPIPAM_DATABASE, PHPIPAM_USER, provisionMariadb } from './mariadb';
import { freePorts, waitUntil, waitForPortsFree } from './ports';
import { installedEtcd, requestedEtcdVersion } from './etcd-version';
import {
  isSupervisordAlive,
  processesWithEnvironmentMarker,
  programStates,
  runSupervisorctl,
  ProgramState,
  shutdownSupervisord,
  startSupervisord,
  supervisorctl,
  supervisorLayout,
  terminateProcesses,
  writeProgramConfig,
  writeSupervisordConfig,
} from './supervisor';
import { renderWorldConfig } from './world-config';
import { describeEtcdCluster, etcdctl, etcdProgram } from './world-etcd';
import { waitUntilReady } from './world-readiness';
import { allocateTemporalPorts, ensureBucket, motoProgram, temporalInfo, temporalProgram, writeS3Secrets } from './world-services';
import { TEMPORAL_PROGRAM, WORLD_MARKER_ENV, type EtcdMemberInfo, type World, type WorldOptions } from './world-types';

// The world's parts, each in its own file; importers keep using this module.
export * from './world-types';
export { etcdctl, etcdProgram, worldEtcdPrograms, type EtcdctlResult } from './world-etcd';
export { waitForEtcdHealthy } from './world-readiness';
export { motoServerBinary, temporalBinary } from './world-services';
export { renderWorldConfig } from './world-config';

// ------------------------------------------------------------------ constants

const DEFAULT_MEMBERS = 3;
const DEFAULT_QUOTA_BACKEND_BYTES = 8 * 1024 ** 3;
const DEFAULT_START_TIMEOUT_MS = 180_000;
const WORLD_FORMAT_VERSION = 1;

// ------------------------------------------------------------------ paths

function worldPaths(dir: string) {
  return {
    worldFile: path.join(dir, 'world.json'),
    configPath: path.join(dir, 'nnoe-dr.yaml'),
    certsDir: path.join(dir, 'certs'),
    secretsDir: path.join(dir, 'secrets'),
    etcdDir: path.join(dir, 'etcd'),
    s3Dir: path.join(dir, 's3'),
    temporalDir: path.join(dir, 'temporal'),
    localStoreDir: path.join(dir, 'backups'),
    workDir: path.join(dir, 'work'),
    mariadbDir: path.join(dir, 'mariadb'),
    supervisor: supervisorLayout(dir),
  };
}

// ------------------------------------------------------------------ start / stop / load

/**
 * Starts the world in opts.dir, or returns the one already running there
 * (starting any program that is stopped). A directory whose supervisord is
 * dead gets a fresh world: new ports, new etcd data; certs, secrets, backups
 * and work are kept. On failure everything started is stopped again.
 */
export async function startWorld(opts: WorldOptions): Promise<World> {
  const dir = path.resolve(opts.dir);
  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const running = await reuseRunningWorld(dir, opts, timeoutMs);
  if (running) return running;

  for (let attempt = 1; ; attempt++) {
    try {
      return await startFreshWorld(dir, opts, timeoutMs);
    } catch (error) {
      // Ports are probed free, then bound by the services a moment later; rarely
      // something else takes one in between. New ports fix that.
      if (attempt >= PORT_CLASH_ATTEMPTS || !isPortClash(error)) throw error;
    }
  }
}

const PORT_CLASH_ATTEMPTS = 3;

function isPortClash(error: unknown): boolean {
  return error instanceof Error && /address already in use/i.test(error.message);
}

async function startFreshWorld(dir: string, opts: WorldOptions, timeoutMs: number): Promise<World> {
  await stopProcesses(dir); // orphans of a crashed world would hold ports and data dirs
  removeRuntimeState(dir);
  const world = await writeNewWorld(dir, opts);
  try {
    await startSupervisord(world.supervisorConf, { env: supervisordEnvironment(dir) });
    await waitUntilReady(world, timeoutMs);
    await ensureBucket(world);
    await provisionWorldDatabase(world);
  } catch (error) {
    await stopWorld(dir);
    throw error;
  }
  return world;
}

/** Stops every process of the world in `dir` and waits until its ports are free. No error if nothing runs. */
export async function stopWorld(dir: string): Promise<void> {
  const world = tryLoadWorld(path.resolve(dir));
  const stoppedSomething = await stopProcesses(dir);
  // Only wait for ports we held: in a long-dead world they may belong to someone else by now.
  if (world && stoppedSomething) await waitForPortsFree(worldPorts(world), 30_000);
}

/** Stops supervisord, its programs and any orphan of the world; true if anything was running. */
async function stopProcesses(dir: string): Promise<boolean> {
  const absolute = path.resolve(dir);
  const paths = worldPaths(absolute);
  const world = tryLoadWorld(absolute);
  const supervisordWasAlive = isSupervisordAlive(paths.supervisor.conf);

  if (world && supervisordWasAlive) await stopAllButEtcdLeader(world);
  await shutdownSupervisord(paths.supervisor.conf);
  // supervisord stops its process groups; anything still carrying the marker escaped it.
  const orphans = processesWithEnvironmentMarker(WORLD_MARKER_ENV, absolute);
  await terminateProcesses(orphans);
  fs.rmSync(paths.supervisor.socket, { force: true });
  return supervisordWasAlive || orphans.length > 0;
}

export function loadWorld(dir: string): World {
  const worldFile = worldPaths(path.resolve(dir)).worldFile;
  let record: Partial<WorldRecord>;
  try {
    record = JSON.parse(fs.readFileSync(worldFile, 'utf8')) as Partial<WorldRecord>;
  } catch (error) {
    throw new Error(`cannot read world description ${worldFile} (was startWorld run on this dir?): ${String(error)}`);
  }
  if (record.formatVersion !== WORLD_FORMAT_VERSION || !record.world?.etcd?.members) {
    throw new Error(`${worldFile} is not a world description of format ${WORLD_FORMAT_VERSION}`);
  }
  return record.world;
}

/**
 * supervisord stops programs one by one, and a stopping etcd leader first
 * waits (up to ~6 s) to hand leadership to a peer, which fails when peers are
 * stopping too. Stopping everything but the leader at once, then letting
 * shutdown stop the lone leader, takes about 2 s instead of 5-7 s.
 */
async function stopAllButEtcdLeader(world: World): Promise<void> {
  const states = await programStates(world.supervisorConf);
  const runningMembers = world.etcd.members.filter((member) => states[member.program] === 'RUNNING');
  const leader = await etcdLeaderName(world, runningMembers);
  const others = Object.keys(states).filter((program) => states[program] === 'RUNNING' && program !== leader);
  if (others.length === 0) return;
  await runSupervisorctl(world.supervisorConf, ['signal', 'TERM', ...others]);
  await waitUntil(
    async () => {
      const now = await programStates(world.supervisorConf);
      return others.every((program) => !STILL_UP_STATES.has(now[program] ?? 'UNKNOWN'));
    },
    // Not fatal: supervisorctl shutdown below escalates to SIGKILL after stopwaitsecs.
    { timeoutMs: 15_000, intervalMs: 200, describeFailure: () => 'programs still up' },
  ).catch(() => undefined);
}

const STILL_UP_STATES: ReadonlySet<ProgramState> = new Set(['RUNNING', 'STARTING', 'STOPPING']);

/** The program of the current etcd leader among `members`, or undefined if none answers. */
async function etcdLeaderName(world: World, members: EtcdMemberInfo[]): Promise<string | undefined> {
  if (members.length === 0) return undefined;
  const result = await etcdctl(world, ['--command-timeout=2s', 'endpoint', 'status', '--write-out=json'], {
    endpoints: members.map((member) => member.clientUrl),
    timeoutMs: 10_000,
  });
  // Member ids are uint64 and lose precision in JSON.parse, so compare them as text.
  const entries = [...result.stdout.matchAll(/"Endpoint":"([^"]+)".*?"member_id":(\d+).*?"leader":(\d+)/g)];
  const leaderEntry = entries.find(([, , memberId, leaderId]) => memberId === leaderId);
  const leaderUrl = leaderEntry?.[1];
  return world.etcd.members.find((member) => member.clientUrl === leaderUrl)?.program;
}

/** The world described in `dir`, or undefined if there is no readable world.json. */
function tryLoadWorld(dir: string): World | undefined {
  if (!fs.existsSync(worldPaths(dir).worldFile)) return undefined;
  try {
    return loadWorld(dir);
  } catch {
    return undefined;
  }
}

/** What world.json holds: the World plus bookkeeping that callers do not need. */
interface WorldRecord {
  formatVersion: number;
  createdAt: string;
  supervisorSocket: string;
  world: World;
}

function saveWorld(world: World): void {
  const record: WorldRecord = {
    formatVersion: WORLD_FORMAT_VERSION,
    createdAt: new Date().toISOString(),
    supervisorSocket: supervisorLayout(world.dir).socket,
    world,
  };
  fs.writeFileSync(worldPaths(world.dir).worldFile, `${JSON.stringify(record, null, 2)}\n`);
  fs.writeFileSync(world.configPath, YAML.stringify(renderWorldConfig(world)));
}

/** Every TCP port the world listens on (etcd client/peer, S3, Temporal frontend/UI). */
export function worldPorts(world: World): number[] {
  const portOf = (url: string) => Number(new URL(url).port);
  const ports = world.etcd.members.flatMap((member) => [portOf(member.clientUrl), portOf(member.peerUrl)]);
  ports.push(portOf(world.s3.endpoint));
  if (world.mariadb) ports.push(world.mariadb.port);
  if (world.temporal) ports.push(portOf(`http://${world.temporal.address}`), portOf(world.temporal.uiUrl));
  return ports;
}

// ------------------------------------------------------------------ reuse

async function reuseRunningWorld(dir: string, opts: WorldOptions, timeoutMs: number): Promise<World | undefined> {
  let world = tryLoadWorld(dir);
  if (!world || !isSupervisordAlive(world.supervisorConf)) return undefined;

  const wantedVersion = opts.etcdVersion ?? requestedEtcdVersion();
  if (world.etcd.version !== wantedVersion) {
    throw new Error(
      `the world running in ${dir} runs etcd ${world.etcd.version ?? '3.4 (a world from before etcd versions)'}, not the ${wantedVersion} asked for; ` +
        `stop it first (stopWorld) or use another dir`,
    );
  }
  const wantedMembers = opts.members ?? DEFAULT_MEMBERS;
  if (world.etcd.members.length !== wantedMembers) {
    throw new Error(
      `the world running in ${dir} has ${world.etcd.members.length} etcd members, not the ${wantedMembers} asked for; ` +
        `stop it first (stopWorld) or use another dir`,
    );
  }
  if (opts.temporal && !world.temporal) world = await addTemporal(world);
  // `start all` starts what is stopped and leaves running programs alone. Its
  // exit code is not checked: a program that fails to start is FATAL, and
  // waitUntilReady reports that with the program's log.
  await runSupervisorctl(world.supervisorConf, ['start', 'all']);
  await waitUntilReady(world, timeoutMs);
  await ensureBucket(world); // moto keeps buckets in memory: a restarted moto has lost it
  await provisionWorldDatabase(world);
  return world;
}

async function addTemporal(world: World): Promise<World> {
  const ports = await allocateTemporalPorts();
  const withTemporal: World = { ...world, temporal: temporalInfo(ports) };
  writeProgramConfig(supervisorLayout(world.dir), temporalProgram(world.dir, ports));
  await supervisorctl(world.supervisorConf, 'reread');
  await supervisorctl(world.supervisorConf, 'update', TEMPORAL_PROGRAM);
  saveWorld(withTemporal);
  return withTemporal;
}

// ------------------------------------------------------------------ fresh world

/** Runtime state of a dead world; certs, secrets, backups and work survive. */
function removeRuntimeState(dir: string): void {
  const paths = worldPaths(dir);
  for (const stale of [paths.etcdDir, paths.temporalDir, paths.s3Dir, paths.mariadbDir, paths.supervisor.dir, paths.supervisor.logsDir]) {
    fs.rmSync(stale, { recursive: true, force: true });
  }
  fs.rmSync(paths.worldFile, { force: true });
  fs.rmSync(paths.configPath, { force: true });
}

/** Chooses ports, creates certs/secrets/dirs, writes supervisor configs, world.json and the nnoe-dr config. */
async function writeNewWorld(dir: string, opts: WorldOptions): Promise<World> {
  const memberCount = opts.members ?? DEFAULT_MEMBERS;
  if (!Number.isInteger(memberCount) || memberCount < 1) throw new Error(`members must be >= 1, got ${memberCount}`);
  const installed = installedEtcd(opts.etcdVersion ?? requestedEtcdVersion());
  const paths = worldPaths(dir);
  for (const needed of [dir, paths.localStoreDir, paths.workDir, paths.s3Dir, paths.temporalDir]) {
    fs.mkdirSync(needed, { recursive: true });
  }

  const [motoPort, mariadbPort, ...etcdPorts] = await freePorts(2 + 2 * memberCount);
  const temporalPorts = opts.temporal ? await allocateTemporalPorts() : undefined;
  const certs = await createCertificates(paths.certsDir);
  const s3 = writeS3Secrets(paths.secretsDir, motoPort as number);
  const etcd = describeEtcdCluster(dir, etcdPorts, installed);
  const mariadb = mariadbLayout(paths.mariadbDir);
  await initializeDatadir(mariadb); // system tables; root gets its password in provisionWorldDatabase

  const layout = paths.supervisor;
  writeSupervisordConfig(layout);
  const quota = opts.quotaBackendBytes ?? DEFAULT_QUOTA_BACKEND_BYTES;
  const world: World = {
    dir,
    configPath: paths.configPath,
    supervisorConf: layout.conf,
    certs: {
      dir: certs.dir,
      ca: certs.ca,
      serverCert: certs.serverCert,
      serverKey: certs.serverKey,
      clientCert: certs.clientCert,
      clientKey: certs.clientKey,
      rogueCa: certs.rogueCa,
      rogueClientCert: certs.rogueClientCert,
      rogueClientKey: certs.rogueClientKey,
    },
    etcd,
    s3,
    localStoreDir: paths.localStoreDir,
    workDir: paths.workDir,
    mariadb: {
      dir: mariadb.dir,
      port: mariadbPort as number,
      socket: mariadb.socket,
      database: PHPIPAM_DATABASE,
      user: PHPIPAM_USER,
      passwordFile: mariadb.phpipamPasswordFile,
      rootOptionFile: mariadb.rootOptionFile,
    },
    ...(temporalPorts ? { temporal: temporalInfo(temporalPorts) } : {}),
  };
  for (const member of etcd.members) {
    fs.mkdirSync(path.dirname(member.dataDir), { recursive: true }); // etcd creates data/ itself, mode 0700
    writeProgramConfig(layout, etcdProgram(world, member, quota));
  }
  writeProgramConfig(layout, motoProgram(paths.s3Dir, motoPort as number));
  writeProgramConfig(layout, mariadbProgram(mariadb, mariadbPort as number));
  if (temporalPorts) writeProgramConfig(layout, temporalProgram(paths.temporalDir, temporalPorts));
  saveWorld(world);
  return world;
}

function supervisordEnvironment(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [WORLD_MARKER_ENV]: dir };
  // ETCD_* / ETCDCTL_* from the caller's shell would silently configure the members.
  for (const key of Object.keys(env)) if (/^ETCD(CTL)?_/.test(key)) delete env[key];
  return env;
}
// ------------------------------------------------------------------ MariaDB (phpIPAM)

/** Root password, database `phpipam` and its user, on first start only (provisionMariadb is idempotent). */
async function provisionWorldDatabase(world: World): Promise<void> {
  if (world.mariadb) await provisionMariadb(mariadbLayout(world.mariadb.dir), world.mariadb.port);
}
