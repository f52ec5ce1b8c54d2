/**
 * A private MariaDB for the local world and the tests, standing in for NNOE's phpIPAM database
 * server: its own datadir, socket and free loopback port, binary logging on (ROW, server-id 1) as on
 * a production server that supports point-in-time recovery, sized for a 2-core machine.
 *
 * Layout of <dir>:
 *   data/                    datadir (mariadb-install-db)
 *   binlog/mariadb-bin.*     binary logs
 *   tmp/                     the server's tmpdir
 *   mariadbd.log             server output when started standalone (under supervisord: logs/<program>.log)
 *   root-password            root's password (0600); root logs in over the socket or 127.0.0.1
 *   root.cnf                 [client] option file for root over the socket (0600): `mariadb --defaults-file=root.cnf`
 *   phpipam-password         password of the `phpipam` user (0600)
 *   phpipam-restore-password password of the `phpipam_restore` user, the restores' and drills' (0600)
 *   mariadb.json             what was provisioned (port, database, user; no secrets), so a restart reuses it
 *
 * Two ways to run it: `startMariadb()` spawns mariadbd itself (tests); the world can instead put
 * `mariadbProgram()` under its supervisord and call `initializeDatadir()` before and
 * `provisionMariadb()` after start. Both use the same argv (`mariadbdArgv`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';

import { freePort, isPortFree, LOOPBACK, waitUntil, waitForPortsFree } from './ports';
import { isProcessAlive, processesWithEnvironmentMarker, terminateProcesses, waitForExit, type ProgramSpec } from './supervisor';
import { clientOptionFileText } from '../phpipam/option-file';

export const MARIADBD_BINARY = '/usr/sbin/mariadbd';
export const MARIADB_INSTALL_DB_BINARY = '/usr/bin/mariadb-install-db';
export const MARIADB_CLIENT_BINARY = '/usr/bin/mariadb';
export const MARIADB_PROGRAM = 'mariadb';
export const PHPIPAM_DATABASE = 'phpipam';
export const PHPIPAM_USER = 'phpipam';
/** The restore/drill credential (config `phpipam.restore`), with the grants the README documents. */
export const PHPIPAM_RESTORE_USER = 'phpipam_restore';
/** Every mariadbd started here carries `NNOE_DR_MARIADB=<dir>`, so a later start can end orphans of a crashed run. */
const MARKER_ENV = 'NNOE_DR_MARIADB';
const MAX_SOCKET_PATH = 100; // AF_UNIX paths are limited to 108 bytes
const DEFAULT_START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;
const PORT_CLASH_ATTEMPTS = 3;

// ------------------------------------------------------------------ layout

export interface MariadbLayout {
  dir: string;
  datadir: string;
  binlogBase: string;
  tmpDir: string;
  socket: string;
  pidFile: string;
  logFile: string;
  rootPasswordFile: string;
  rootOptionFile: string;
  phpipamPasswordFile: string;
  restorePasswordFile: string;
  stateFile: string;
}

export function mariadbLayout(dir: string): MariadbLayout {
  const absolute = path.resolve(dir);
  return {
    dir: absolute,
    datadir: path.join(absolute, 'data'),
    binlogBase: path.join(absolute, 'binlog', 'mariadb-bin'),
    tmpDir: path.join(absolute, 'tmp'),
    socket: socketPathFor(absolute),
    pidFile: path.join(absolute, 'mariadbd.pid'),
    logFile: path.join(absolute, 'mariadbd.log'),
    rootPasswordFile: path.join(absolute, 'root-password'),
    rootOptionFile: path.join(absolute, 'root.cnf'),
    phpipamPasswordFile: path.join(absolute, 'phpipam-password'),
    restorePasswordFile: path.join(absolute, 'phpipam-restore-password'),
    stateFile: path.join(absolute, 'mariadb.json'),
  };
}

/** `<dir>/mysqld.sock` if short enough for AF_UNIX, else a short path in the temp dir unique to `dir`. */
function socketPathFor(dir: string): string {
  const preferred = path.join(dir, 'mysqld.sock');
  if (Buffer.byteLength(preferred) < MAX_SOCKET_PATH) return preferred;
  const digest = crypto.createHash('sha256').update(dir).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `nnoe-mdb-${digest}.sock`);
}

// ------------------------------------------------------------------ the server's command line

/**
 * The full argv of the server. `--no-defaults` first: Debian's /etc/mysql/my.cnf points at
 * /var/lib/mysql and /run/mysqld, which belong to the system's own server.
 */
export function mariadbdArgv(layout: MariadbLayout, port: number): string[] {
  return [
    MARIADBD_BINARY,
    '--no-defaults',
    ...(process.getuid?.() === 0 ? ['--user=root'] : []), // mariadbd refuses to run as root without it
    `--datadir=${layout.datadir}`,
    `--tmpdir=${layout.tmpDir}`,
    `--socket=${layout.socket}`,
    `--pid-file=${layout.pidFile}`,
    `--port=${port}`,
    `--bind-address=${LOOPBACK}`,
    '--skip-name-resolve', // no DNS on loopback; grants use IPs and '%'
    // Binary logging as on a production server, so the dump records a binlog position and GTID.
    `--log-bin=${layout.binlogBase}`,
    '--server-id=1',
    '--binlog-format=ROW',
    // phpIPAM's own (non-SUPER) user creates the trigger and the function; with the binlog on that
    // needs this switch, exactly as on a real phpIPAM server.
    '--log-bin-trust-function-creators=1',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    // Small and fast for a 2-core sandbox: the last second of commits may be lost on a crash.
    '--innodb-buffer-pool-size=256M',
    '--innodb-log-file-size=256M', // bulk loads of 1M+ rows without checkpoint stalls
    '--innodb-flush-log-at-trx-commit=2',
    '--sync-binlog=0',
    '--performance-schema=OFF',
    '--max-connections=50',
    '--max-allowed-packet=64M',
  ];
}

/** The supervisord program (the world's stand-in for mariadb.service). */
export function mariadbProgram(layout: MariadbLayout, port: number, name = MARIADB_PROGRAM): ProgramSpec {
  return { name, command: mariadbdArgv(layout, port), directory: layout.dir, stopWaitSecs: 60 };
}

// ------------------------------------------------------------------ datadir

/** Creates the system tables in an empty datadir (a few seconds). Does nothing if the datadir exists. */
export async function initializeDatadir(layout: MariadbLayout): Promise<void> {
  if (fs.existsSync(path.join(layout.datadir, 'mysql'))) return;
  requireServerBinaries();
  for (const dir of [layout.dir, layout.datadir, path.dirname(layout.binlogBase), layout.tmpDir]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  await run(
    MARIADB_INSTALL_DB_BINARY,
    [
      '--no-defaults',
      ...(process.getuid?.() === 0 ? ['--user=root'] : []),
      `--datadir=${layout.datadir}`,
      '--auth-root-authentication-method=normal', // root without password until provisionMariadb sets one
      '--skip-test-db',
      '--skip-name-resolve',
    ],
    120_000,
  );
}

/** Wipes everything the server wrote (a half-provisioned dir is not worth repairing). */
function removeServerState(layout: MariadbLayout): void {
  for (const dir of [layout.datadir, path.dirname(layout.binlogBase), layout.tmpDir]) fs.rmSync(dir, { recursive: true, force: true });
  for (const file of [
    layout.stateFile,
    layout.rootPasswordFile,
    layout.rootOptionFile,
    layout.phpipamPasswordFile,
    layout.restorePasswordFile,
    layout.pidFile,
  ]) {
    fs.rmSync(file, { force: true });
  }
}

// ------------------------------------------------------------------ readiness and provisioning

/** Root's password once provisioned, else undefined (a fresh datadir: root has none yet). */
function rootPassword(layout: MariadbLayout): string | undefined {
  return fs.existsSync(layout.rootPasswordFile) ? fs.readFileSync(layout.rootPasswordFile, 'utf8') : undefined;
}

/** A root connection over the socket (root@localhost). */
export function connectAsRoot(layout: MariadbLayout, database?: string): Promise<Connection> {
  return mysql.createConnection({
    socketPath: layout.socket,
    user: 'root',
    password: rootPassword(layout),
    database,
    connectTimeout: 5_000,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
  });
}

/** Why the server is not ready, or undefined when root can run a query over the socket. */
export async function mariadbProblem(layout: MariadbLayout): Promise<string | undefined> {
  try {
    const conn = await connectAsRoot(layout);
    try {
      await conn.query('SELECT 1');
      return undefined;
    } finally {
      await conn.end();
    }
  } catch (err) {
    return (err as Error).message;
  }
}

interface MariadbState {
  port: number;
  database: string;
  user: string;
  provisionedAt: string;
}

function readState(layout: MariadbLayout): MariadbState | undefined {
  try {
    return JSON.parse(fs.readFileSync(layout.stateFile, 'utf8')) as MariadbState;
  } catch {
    return undefined;
  }
}

function writeSecretFile(file: string, text: string): void {
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
}

/**
 * A password with the characters that break naive option files and shells (`"`, `'`, `\`, `#`,
 * `;`, space), so every test run exercises the dump's option-file escaping.
 */
function awkwardPassword(): string {
  return `${crypto.randomBytes(9).toString('base64url')}"#'\\ ;${crypto.randomBytes(9).toString('base64url')}`;
}

/**
 * First-start setup (idempotent: a provisioned dir is left alone): root gets a password and only
 * root@localhost (socket) and root@127.0.0.1 remain; database `phpipam` (utf8mb4) and user
 * `phpipam`@`%` with ALL on it, which is what a phpIPAM installation gives its own user and
 * all that a MariaDB dump with --single-transaction --master-data needs; and the restore user
 * `phpipam_restore`@`%` with the README's grants (the live schema, the `phpipam\_%` schemas beside it,
 * SET USER and SELECT on mysql.proc for objects of other definers).
 */
export async function provisionMariadb(layout: MariadbLayout, port: number): Promise<void> {
  if (readState(layout)) return;
  const rootSecret = crypto.randomBytes(18).toString('hex');
  const phpipamSecret = awkwardPassword();
  const restoreSecret = awkwardPassword();
  const conn = await connectAsRoot(layout);
  try {
    const [roots] = await conn.query<RowDataPacket[]>("SELECT Host AS host FROM mysql.user WHERE User = 'root'");
    for (const { host } of roots) {
      if (host === 'localhost' || host === LOOPBACK) await conn.query('ALTER USER ?@? IDENTIFIED BY ?', ['root', host, rootSecret]);
      else await conn.query('DROP USER ?@?', ['root', host]);
    }
    await conn.query(`CREATE DATABASE IF NOT EXISTS ${PHPIPAM_DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
    await conn.query('CREATE USER ?@? IDENTIFIED BY ?', [PHPIPAM_USER, '%', phpipamSecret]);
    await conn.query(`GRANT ALL PRIVILEGES ON ${PHPIPAM_DATABASE}.* TO ?@?`, [PHPIPAM_USER, '%']);
    await conn.query('CREATE USER ?@? IDENTIFIED BY ?', [PHPIPAM_RESTORE_USER, '%', restoreSecret]);
    await conn.query(`GRANT ALL PRIVILEGES ON ${PHPIPAM_DATABASE}.* TO ?@?`, [PHPIPAM_RESTORE_USER, '%']);
    await conn.query(`GRANT ALL PRIVILEGES ON \`${PHPIPAM_DATABASE}\\_%\`.* TO ?@?`, [PHPIPAM_RESTORE_USER, '%']);
    await conn.query('GRANT SET USER ON *.* TO ?@?', [PHPIPAM_RESTORE_USER, '%']);
    await conn.query('GRANT SELECT ON mysql.proc TO ?@?', [PHPIPAM_RESTORE_USER, '%']); // SHOW CREATE of routines it does not own
  } finally {
    await conn.end();
  }
  writeSecretFile(layout.rootPasswordFile, rootSecret);
  writeSecretFile(layout.rootOptionFile, clientOptionFileText({ user: 'root', password: rootSecret, socket: layout.socket }));
  writeSecretFile(layout.phpipamPasswordFile, phpipamSecret);
  writeSecretFile(layout.restorePasswordFile, restoreSecret);
  const state: MariadbState = { port, database: PHPIPAM_DATABASE, user: PHPIPAM_USER, provisionedAt: new Date().toISOString() };
  fs.writeFileSync(layout.stateFile, `${JSON.stringify(state, null, 2)}\n`);
}

// ------------------------------------------------------------------ standalone start / stop

export interface MariadbInstance {
  dir: string;
  port: number;
  socket: string;
  datadir: string;
  pid: number;
  /** The server's argv (same as the supervisord program's command). */
  argv: string[];
  rootPasswordFile: string;
  /** `mariadb --defaults-file=<this>` logs in as root over the socket. */
  rootOptionFile: string;
  phpipam: { host: string; port: number; database: string; user: string; passwordFile: string };
  logFile: string;
  layout: MariadbLayout;
  /** Stops the server (clean shutdown, SIGKILL after 60 s) and waits until the process and port are gone. */
  stop(): Promise<void>;
}

export interface StartMariadbOptions {
  dir: string;
  /** Default: the port of an earlier start in this dir if still free, else a free one. */
  port?: number;
  timeoutMs?: number;
}

/**
 * Starts mariadbd on `dir` (initialising and provisioning it on first use; a provisioned dir keeps
 * its data, passwords and, if free, its port) and waits until it answers.
 */
export async function startMariadb(opts: StartMariadbOptions): Promise<MariadbInstance> {
  requireServerBinaries();
  const layout = mariadbLayout(opts.dir);
  await terminateProcesses(processesWithEnvironmentMarker(MARKER_ENV, layout.dir)); // orphans of a crashed run
  let state = readState(layout);
  if (!state) {
    removeServerState(layout);
    await initializeDatadir(layout);
  }
  const { child, port } = await spawnUntilReady(layout, opts, state);
  try {
    if (!state) await provisionMariadb(layout, port);
    state = { ...readState(layout)!, port };
    fs.writeFileSync(layout.stateFile, `${JSON.stringify(state, null, 2)}\n`);
  } catch (err) {
    await stopChild(child, port);
    throw err;
  }
  return {
    dir: layout.dir,
    port,
    socket: layout.socket,
    datadir: layout.datadir,
    pid: child.pid!,
    argv: mariadbdArgv(layout, port),
    rootPasswordFile: layout.rootPasswordFile,
    rootOptionFile: layout.rootOptionFile,
    phpipam: { host: LOOPBACK, port, database: state.database, user: state.user, passwordFile: layout.phpipamPasswordFile },
    logFile: layout.logFile,
    layout,
    stop: () => stopChild(child, port),
  };
}

async function choosePort(opts: StartMariadbOptions, state: MariadbState | undefined): Promise<number> {
  if (opts.port) return opts.port;
  if (state && (await isPortFree(state.port))) return state.port;
  return freePort();
}

/** Spawns the server; on "address already in use" (a port taken between probe and bind) tries a new port. */
async function spawnUntilReady(
  layout: MariadbLayout,
  opts: StartMariadbOptions,
  state: MariadbState | undefined,
): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await choosePort(opts, attempt === 1 ? state : undefined);
    const child = spawnMariadbd(layout, port);
    try {
      await waitUntilAnswering(layout, child, opts.timeoutMs ?? DEFAULT_START_TIMEOUT_MS);
      return { child, port };
    } catch (err) {
      await stopChild(child, port).catch(() => undefined);
      const clash = /address already in use/i.test((err as Error).message);
      if (!clash || opts.port || attempt >= PORT_CLASH_ATTEMPTS) throw err;
    }
  }
}

function spawnMariadbd(layout: MariadbLayout, port: number): ChildProcess {
  const [binary, ...args] = mariadbdArgv(layout, port);
  const log = fs.openSync(layout.logFile, 'a');
  try {
    const child = spawn(binary!, args, {
      cwd: layout.dir,
      // Output goes to a file, not a pipe: the server must not depend on this process staying alive.
      stdio: ['ignore', log, log],
      env: { ...process.env, [MARKER_ENV]: layout.dir },
    });
    child.on('error', () => undefined); // reported by waitUntilAnswering via exitCode/log
    child.unref();
    return child;
  } finally {
    fs.closeSync(log);
  }
}

async function waitUntilAnswering(layout: MariadbLayout, child: ChildProcess, timeoutMs: number): Promise<void> {
  let problem: string | undefined = 'not started';
  await waitUntil(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`mariadbd (${layout.dir}) exited during start (${child.exitCode ?? child.signalCode})\n${logTail(layout.logFile)}`);
      }
      problem = await mariadbProblem(layout);
      return problem === undefined;
    },
    {
      timeoutMs,
      intervalMs: 250,
      describeFailure: () => `mariadbd (${layout.dir}) did not answer within ${timeoutMs} ms: ${problem}\n${logTail(layout.logFile)}`,
    },
  );
}

async function stopChild(child: ChildProcess, port: number): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || !isProcessAlive(pid)) return;
  child.kill('SIGTERM'); // mariadbd shuts down cleanly on TERM
  try {
    await waitForExit(pid, STOP_TIMEOUT_MS, `mariadbd (pid ${pid})`);
  } catch {
    child.kill('SIGKILL');
    await waitForExit(pid, 5_000, `mariadbd (pid ${pid}) after SIGKILL`);
  }
  await waitForPortsFree([port], 10_000);
}

// ------------------------------------------------------------------ helpers for tests and the world

/**
 * Runs the `mariadb` client as root over the socket, e.g. to restore a dump:
 * `runMariadbClient(instance.layout, ['scratch'], { stdinFile: '/tmp/dump.sql' })`.
 */
export function runMariadbClient(
  layout: MariadbLayout,
  args: string[],
  options: { stdinFile?: string; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = options.stdinFile ? fs.openSync(options.stdinFile, 'r') : undefined;
    const child = spawn(MARIADB_CLIENT_BINARY, [`--defaults-file=${layout.rootOptionFile}`, ...args], {
      stdio: [stdin ?? 'ignore', 'pipe', 'pipe'],
    });
    if (stdin !== undefined) fs.closeSync(stdin); // the child has its own copy
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`mariadb ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

function requireServerBinaries(): void {
  for (const binary of [MARIADBD_BINARY, MARIADB_INSTALL_DB_BINARY]) {
    if (!fs.existsSync(binary)) throw new Error(`${binary} is missing (Debian package mariadb-server); run scripts/install-deps.sh`);
  }
}

function run(binary: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${binary} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`.trim()));
      else resolve(stdout);
    });
  });
}

function logTail(file: string, lines = 20): string {
  try {
    return `--- last ${lines} lines of ${file} ---\n${fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')}`;
  } catch {
    return `(no log at ${file})`;
  }
}
