/**
 * Step 1 of the phpIPAM restore (src/phpipam/restore.ts): a NEW staging schema (refused if it
 * exists), the dump piped into the `mariadb`/`mysql` client with --database=<staging> through
 * the dump's schema guard (dump-schema-guard.ts). The client, not mysql2, because only the client
 * understands the DELIMITER blocks around triggers, routines and events. The password reaches the
 * client through a 0600 option file only.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mysql, { type Connection } from 'mysql2/promise';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { PhpipamConfig } from './config';
import { collectTail, dumpEnvironment } from './dump';
import { databaseFailure, redact } from './failures';
import { writeClientOptionFile } from './option-file';
import { preflight } from './server';
import type { DatabaseFlavour } from './types';
import { DumpNotRestorableError, DumpSchemaGuard, type NeutralisedStatement } from './dump-schema-guard';
import { listSchemaObjects, q, requireSchemaName, routineLabel, schemaCharset } from './restore-schemas';

export const DEFAULT_CLIENT_BINARY: Record<DatabaseFlavour, string> = { mariadb: 'mariadb', mysql: 'mysql' };

const STDERR_KEEP_BYTES = 64 * 1024;
const PROGRESS_INTERVAL_MS = 1000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface LoadCommandInput {
  binary: string;
  flavour: DatabaseFlavour;
  host: string;
  port: number;
  user: string;
  /** 0600 file holding the password (option-file.ts). */
  optionFile: string;
  schema: string;
}

/**
 * The client's command line. Like the dump's, it names host, port, user and schema (visible in `ps`
 * on purpose) and never the password.
 */
export function buildLoadCommand(input: LoadCommandInput): { binary: string; argv: string[] } {
  return {
    binary: input.binary,
    argv: [
      `--defaults-file=${input.optionFile}`, // first, or the client ignores it
      `--host=${input.host}`,
      `--port=${input.port}`,
      '--protocol=TCP',
      `--user=${input.user}`,
      '--default-character-set=utf8mb4',
      // No client commands from the dump (system, source, connect, \u ...): only DELIMITER is parsed.
      '--binary-mode',
      // Keep comments: they are part of the trigger/routine bodies the server stores.
      '--comments',
      '--max-allowed-packet=1G',
      // MariaDB's client echoes a failing statement to stderr: a megabyte of rows (password hashes
      // of phpIPAM's users among them) in an error message. MySQL's client does not.
      ...(input.flavour === 'mariadb' ? ['--skip-print-query-on-error'] : []),
      `--database=${input.schema}`,
    ],
  };
}

export interface LoadDumpOptions {
  /** Plain SQL text (already decrypted and decompressed). */
  dump: Readable;
  /** The staging schema to create, e.g. phpipam_restore_20261127_143502. Refused if it exists. */
  schema: string;
  /** Default: `mariadb` or `mysql` after the server's flavour. */
  clientBinary?: string;
  /** Parent of the 0700 directory that holds the option file while the client runs. Default: the OS temp dir. */
  workDir?: string;
  /** Aborting kills the client and drops the staging schema (activity cancellation). */
  signal?: AbortSignal;
  /** About once a second: dump bytes fed to the client so far. */
  onProgress?: (bytes: number) => void;
}

export interface DumpLoadResult {
  schema: string;
  characterSet: string | null;
  collation: string | null;
  server: { flavour: DatabaseFlavour; version: string };
  /** The client's argv (no secrets: the password is in a 0600 option file, named here only by path). */
  clientCommand: string[];
  /** Dump bytes fed to the client. */
  bytes: number;
  /** Statements the schema guard removed or retargeted (none for our own dumps). */
  neutralised: NeutralisedStatement[];
  /** What landed in the staging schema. */
  tables: string[];
  triggers: string[];
  routines: string[];
  events: string[];
  startedAt: string;
  finishedAt: string;
  ms: number;
}

/**
 * Creates `schema` (refused if it exists) with the live schema's character set and collation, and
 * replays the dump into it with the command-line client. On any failure the staging schema this
 * call created is dropped again and the error names the client's exit and the last lines of its
 * stderr, with the password redacted.
 */
export async function loadDumpIntoSchema(cfg: PhpipamConfig, password: string, options: LoadDumpOptions): Promise<DumpLoadResult> {
  requireSchemaName(options.schema);
  const startedAt = new Date();
  const t0 = performance.now();
  const conn = await connectServer(cfg, password);
  let created = false;
  try {
    const server = await preflight(conn).catch((err: unknown) => {
      throw databaseFailure(err, cfg, password);
    });
    const charset = await schemaCharset(conn, cfg.database);
    try {
      await conn.query(
        `CREATE DATABASE ${q(options.schema)}${charset ? ` CHARACTER SET ${charset.characterSet} COLLATE ${charset.collation}` : ''}`,
      );
      created = true;
    } catch (err) {
      if ((err as { errno?: number }).errno === 1007) {
        throw DomainError.nonRetryable(
          `staging schema ${options.schema} already exists on ${cfg.host}:${cfg.port}; a restore loads only into a new schema (drop it or choose another name)`,
          FailureType.RestoreSchemaExists,
        );
      }
      throw databaseFailure(err, cfg, password);
    }

    const binary = options.clientBinary ?? DEFAULT_CLIENT_BINARY[server.flavour];
    const run = await withOptionFile(options.workDir ?? tmpdir(), password, async (optionFile) => {
      const command = buildLoadCommand({
        binary,
        flavour: server.flavour,
        host: cfg.host,
        port: cfg.port,
        user: cfg.user,
        optionFile,
        schema: options.schema,
      });
      const outcome = await runClient(command, options.schema, options);
      return { command, ...outcome };
    });
    const where = `${options.schema}@${cfg.host}:${cfg.port}`;
    if (run.exit.code !== 0) {
      const text = redactSecret(run.stderr.trim(), password);
      const lastLines = text.split('\n').slice(-5).join('\n') || '(no error output)';
      const lost = /\bERROR 20(?:02|03|05|06|13)\b|Lost connection|gone away|Can't connect/i.test(text);
      const message = `${binary} could not load the dump into ${where} (${describeClientExit(run.exit)}): ${lastLines}`;
      throw lost
        ? DomainError.retryable(message, FailureType.DatabaseUnavailable)
        : DomainError.nonRetryable(message, FailureType.DumpLoadFailed);
    }
    const objects = await listSchemaObjects(conn, options.schema);
    return {
      schema: options.schema,
      characterSet: charset?.characterSet ?? null,
      collation: charset?.collation ?? null,
      server: { flavour: server.flavour, version: server.version },
      clientCommand: [run.command.binary, ...run.command.argv],
      bytes: run.bytes,
      neutralised: run.neutralised,
      tables: objects.tables.map((t) => t.name),
      triggers: objects.triggers.map((t) => t.name),
      routines: objects.routines.map(routineLabel),
      events: objects.events.map((e) => e.name),
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      ms: Math.round(performance.now() - t0),
    };
  } catch (err) {
    if (created) {
      await conn.query(`DROP DATABASE IF EXISTS ${q(options.schema)}`).catch((dropErr: unknown) => {
        if (err instanceof Error)
          err.message += ` (and the half-loaded staging schema ${options.schema} could not be dropped: ${redactSecret(String((dropErr as Error).message), password)})`;
      });
    }
    if (err instanceof DomainError || isAbort(err)) throw err;
    if (err instanceof DumpStreamError) {
      throw DomainError.retryable(
        `the dump stream failed while loading into ${options.schema}: ${redactSecret(err.message, password)}`,
        FailureType.DumpStreamFailed,
      );
    }
    if (err instanceof DumpNotRestorableError) {
      throw DomainError.nonRetryable(
        `the dump cannot be restored into ${options.schema} safely: ${err.message}; nothing of it is kept`,
        FailureType.DumpLoadFailed,
      );
    }
    throw databaseFailure(err, cfg, password);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** The password as it is, and as it would appear inside an SQL string literal echoed by the server or client. */
function redactSecret(text: string, password: string): string {
  const sqlEscaped = password.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/"/g, '\\"');
  const doubled = password.replace(/'/g, "''");
  return [password, sqlEscaped, doubled].reduce((out, secret) => redact(out, secret), text);
}

/** A server connection without a default schema (the live one may not exist, e.g. on a rebuilt server). */
async function connectServer(cfg: PhpipamConfig, password: string): Promise<Connection> {
  try {
    return await mysql.createConnection({
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password,
      connectTimeout: CONNECT_TIMEOUT_MS,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
  } catch (err) {
    throw databaseFailure(err, cfg, password);
  }
}

async function withOptionFile<T>(workDir: string, password: string, fn: (optionFile: string) => Promise<T>): Promise<T> {
  await mkdir(workDir, { recursive: true });
  const dir = await mkdtemp(join(workDir, 'phpipam-restore-')); // mode 0700
  try {
    return await fn(await writeClientOptionFile(dir, { password }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type ClientExit = { code: number | null; signal: NodeJS.Signals | null };

function describeClientExit(exit: ClientExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

interface ClientRun {
  exit: ClientExit;
  stderr: string;
  bytes: number;
  neutralised: NeutralisedStatement[];
}

type ClientChild = ChildProcessByStdio<Writable, Readable, Readable>;

/**
 * dump -> DumpSchemaGuard (schema statements, trailer) -> byte count -> client stdin. Resolves once
 * the client has exited. A failed stream kills the client before its stdin closes: at EOF the client
 * would run the half-sent last statement.
 */
async function runClient(command: { binary: string; argv: string[] }, schema: string, options: LoadDumpOptions): Promise<ClientRun> {
  const child: ClientChild = spawn(command.binary, command.argv, { stdio: ['pipe', 'pipe', 'pipe'], env: dumpEnvironment() });
  const stderr = collectTail(child.stderr, STDERR_KEEP_BYTES);
  collectTail(child.stdout, STDERR_KEEP_BYTES); // drained; the dump selects nothing
  const exited = new Promise<ClientExit>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? DomainError.nonRetryable(
              `database client ${command.binary} not found on this worker (Debian package mariadb-client, or set the client binary)`,
              FailureType.ConfigError,
            )
          : err,
      );
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const guard = new DumpSchemaGuard(schema, { requireTrailer: true });
  guard.once('error', kill); // registered before pipeline's own listener, which closes stdin
  options.dump.once('error', kill);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const progress = options.onProgress && setInterval(() => options.onProgress!(bytes), PROGRESS_INTERVAL_MS);
  const streamed = pipeline([options.dump, guard, counter, child.stdin], { signal: options.signal });
  try {
    const [stream, exit] = await Promise.allSettled([
      streamed.catch((err: unknown) => {
        kill();
        throw err;
      }),
      exited,
    ]);
    if (exit.status === 'rejected') throw exit.reason;
    if (stream.status === 'rejected') {
      // A client that failed on its own explains the broken pipe (EPIPE) better than the pipe does.
      const clientFailed = exit.value.code !== null && exit.value.code !== 0;
      if (!clientFailed)
        throw stream.reason instanceof DumpNotRestorableError || isAbort(stream.reason)
          ? stream.reason
          : new DumpStreamError(stream.reason);
    }
    return { exit: exit.value, stderr: stderr(), bytes, neutralised: guard.neutralised };
  } finally {
    if (progress) clearInterval(progress);
  }
}

class DumpStreamError extends Error {
  constructor(readonly reason: unknown) {
    super(reason instanceof Error ? reason.message : String(reason));
  }
}

const isAbort = (err: unknown) => (err as { name?: string } | null)?.name === 'AbortError';
