/**
 * Restore core of the phpIPAM database (a library; the Temporal activity wraps it). Three steps, each
 * returning facts for the manifest/report:
 *
 *   1. loadDumpIntoSchema: a NEW staging schema (refused if it exists), the dump piped into the
 *      `mariadb`/`mysql` client with --database=<staging>. The client, not mysql2, because only the
 *      client understands the DELIMITER blocks around triggers, routines and events.
 *   2. verifySchemaAgainstFacts: exact row counts and CHECKSUM TABLE of the staging schema against the
 *      manifest's facts (tableFacts(), the code that recorded them).
 *   3. swapSchemaIn: the staging tables become the live ones in ONE `RENAME TABLE`; the old ones are
 *      kept in `<db>_pre_restore_<ts>`. Refused unless given a passing verification of the staging
 *      schema, so the live schema is never touched when verification fails.
 *
 * Where the staging schema's SQL may reach: our dumps name no database (dump-command.ts dumps one
 * database without --databases: no CREATE DATABASE/USE), so every statement lands in the staging
 * schema. A dump made otherwise (by hand, or an older tool: --databases, --add-drop-database) is
 * neutralised on the way (DumpSchemaGuard): at the start of a statement, USE and CREATE/DROP
 * DATABASE lines are removed, `ALTER DATABASE <name>` (mysqldump writes it around routines when
 * collations differ) is pointed at the staging schema, and schema qualifiers in a trigger's header
 * (`TRIGGER phpipam.t ... ON phpipam.t`, kept verbatim by the dump tools) are dropped. What the guard
 * cannot see: schema names written inside routine/trigger/event bodies (they run only when called,
 * fired or scheduled; note that an ENABLED event fires in the staging schema too if the server's
 * event_scheduler is ON).
 *
 * What MariaDB does (10.11, checked on the real server, see test/unit/phpipam-restore.test.ts):
 *   - RENAME TABLE of several tables is one atomic statement: all pairs or none (a failing pair,
 *     e.g. error 1435, moves nothing), crash-safe through the DDL log (10.6+); other sessions wait
 *     on metadata locks and then see either all old or all new tables.
 *   - A table with triggers cannot move to another schema: error 1435 "Trigger in wrong schema".
 *   - A view cannot move to another schema: error 1450 "Changing schema from 'a' to 'b' is not
 *     allowed". Views are dropped and recreated from their definitions instead (views.ts).
 *   - RENAME TABLE is refused under LOCK TABLES (error 1192), so writers cannot be locked out around
 *     the trigger steps below; stop phpIPAM's writers (maintenance mode) for the swap.
 *   - Foreign keys follow the renamed tables (they reference tables of their own schema afterwards).
 *   - Routines and events belong to a schema and do not move with tables.
 *
 * So the swap is, in order (each step that changes something pushes its undo; any failure before
 * "committed" undoes in reverse order and the live schema is as before):
 *   create keep schema; copy the live routines and events into it (events DISABLED there)
 *   drop the staging triggers and views (definitions read first)  -- staging only
 *   --- live window starts ---
 *   drop the live triggers and views (definitions read first)     -- old tables lose triggers
 *   RENAME TABLE live.t TO keep.t, ..., staging.t TO live.t, ...   -- ATOMIC (base tables only)
 *   create the staging triggers and views in live                  -- trigger window ends
 *   replace the live routines and events with the staging ones    -- each one atomic (MariaDB: CREATE OR REPLACE)
 *   --- committed ---
 *   recreate the old triggers and views on the kept tables; drop the (empty) staging schema   -- best effort, warnings
 * Not atomic: a write between RENAME and the trigger re-creation (milliseconds) does not fire the
 * restored triggers; a call between RENAME and the routine replacement runs the old routine.
 *
 * Privileges of the restore's user: everything on the staging and keep schemas (e.g. GRANT ALL ON
 * `phpipam\_%`.*), and on the live one what RENAME, triggers, routines and events need (ALTER, DROP,
 * CREATE, INSERT, TRIGGER, CREATE/ALTER ROUTINE, EVENT). Stored objects keep their DEFINER: one that
 * is not the restore's user needs SET USER (SUPER before MariaDB 10.5.2) to be recreated, and SELECT
 * on mysql.proc to be read (MariaDB 10.x shows a routine's body only to its definer otherwise).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { PhpipamConfig } from './config';
import { collectTail, dumpEnvironment } from './dump';
import { databaseFailure, redact } from './failures';
import { createViews, dropViews, readViewDefinitions, SWAPPABLE_TABLE_TYPES, type ViewDefinition } from './views';
import { writeClientOptionFile } from './option-file';
import { preflight, tableFacts } from './server';
import type { DatabaseFlavour, PhpipamDumpFacts, TableFact } from './types';

export const DEFAULT_CLIENT_BINARY: Record<DatabaseFlavour, string> = { mariadb: 'mariadb', mysql: 'mysql' };

const SCHEMA_NAME = /^[A-Za-z0-9_$]{1,64}$/;
const STDERR_KEEP_BYTES = 64 * 1024;
const PROGRESS_INTERVAL_MS = 1000;
const CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_LOCK_WAIT_TIMEOUT_S = 30;

// ====================================================================== names

/**
 * `phpipam_restore_20261127_143502_123` and `phpipam_pre_restore_20261127_143502_123` for a restore
 * started at `date` (milliseconds too: two restores within one second must not ask for one name).
 */
export function restoreSchemaNames(database: string, date: Date): { staging: string; keepAs: string } {
  const iso = date.toISOString();
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}_${iso.slice(20, 23)}`;
  const names = { staging: `${database}_restore_${stamp}`, keepAs: `${database}_pre_restore_${stamp}` };
  requireSchemaName(names.staging);
  requireSchemaName(names.keepAs);
  return names;
}

function requireSchemaName(name: string): void {
  if (!SCHEMA_NAME.test(name)) {
    throw DomainError.nonRetryable(`"${name}" is not a usable schema name (1-64 letters, digits, "_" or "$")`, FailureType.InvalidInput);
  }
}

const q = (name: string) => mysql.escapeId(name);
const qq = (schema: string, name: string) => `${q(schema)}.${q(name)}`;

// ====================================================================== the dump's schema guard

export interface NeutralisedStatement {
  /** 1-based line of the dump. */
  line: number;
  action: 'removed' | 'retargeted';
  /** `USE`, `CREATE DATABASE`, `DROP DATABASE`, `ALTER DATABASE`, `TRIGGER qualifier`. */
  statement: string;
  /** The original line, cut to 120 characters. */
  text: string;
}

export class DumpNotRestorableError extends Error {
  override readonly name = 'DumpNotRestorableError';
}

const ID = '(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)';
const VERSIONED = String.raw`(?:\/\*!\d*\s*)?`; // `/*!40000 ` executable-comment prefix
const USE_LINE = new RegExp(String.raw`^\s*${VERSIONED}USE\b`, 'i');
const DATABASE_LINE = new RegExp(String.raw`^\s*${VERSIONED}(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b`, 'i');
const ALTER_DATABASE_LINE = new RegExp(String.raw`^(\s*${VERSIONED}ALTER\s+(?:DATABASE|SCHEMA)\s+)(${ID})`, 'i');
const ALTER_DATABASE_KEYWORDS = /^(?:DEFAULT|CHARACTER|CHARSET|COLLATE|COMMENT|UPGRADE|READ)$/i;
const CREATE_LINE = new RegExp(String.raw`^\s*${VERSIONED}CREATE\b`, 'i');
const TRIGGER_HEADER = new RegExp(
  String.raw`(\bTRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?)(?:${ID}\s*\.\s*)?(${ID}\s+(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON\s+)(?:${ID}\s*\.\s*)?(${ID})`, 'i');
const QUALIFIED_TRIGGER = new RegExp(String.raw`\bTRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?${ID}\s*\.\s*${ID}|\bON\s+${ID}\s*\.\s*${ID}\s+FOR\s+EACH\s+ROW`, 'i');
// MariaDB's first dump line, `/*M!999999\- enable the sandbox mode */`: a client command, no statement.
const SANDBOX_LINE = /^\/\*M!\d+\\-.*\*\/\s*$/;

/**
 * Pass-through over the dump's lines that keeps every statement inside the target schema (see the
 * top of this file). It tracks statement starts from the dump tools' layout: one statement per line
 * or a multi-line statement that ends on a line ending with the current DELIMITER (values never
 * contain a raw newline, the tools escape it). A statement it cannot neutralise fails the stream
 * before any of it is passed on.
 */
export class DumpSchemaGuard extends Transform {
  readonly neutralised: NeutralisedStatement[] = [];
  private pending: Buffer[] = [];
  private delimiter = ';';
  private atStatementStart = true;
  private line = 0;
  private lastLine = '';

  /** `requireTrailer`: fail at the end unless the last line is `-- Dump completed` (a truncated dump never reaches EOF downstream). */
  constructor(private readonly target: string, private readonly options: { requireTrailer?: boolean } = {}) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl + 1);
        const line = this.pending.length > 0 ? Buffer.concat([...this.pending, piece]) : piece;
        this.pending = [];
        this.push(this.processLine(line));
        start = nl + 1;
      }
      if (start < chunk.length) this.pending.push(Buffer.from(chunk.subarray(start)));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.pending.length > 0) this.push(this.processLine(Buffer.concat(this.pending)));
      this.pending = [];
      if (this.options.requireTrailer && !/^-- Dump completed\b/.test(this.lastLine)) {
        throw new DumpNotRestorableError(`the dump ends at line ${this.line} without its "-- Dump completed" trailer: it is truncated`);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private processLine(line: Buffer): Buffer {
    this.line++;
    if (line.length <= 256) {
      const text = line.toString('utf8').trim();
      if (text !== '') this.lastLine = text;
    } else {
      this.lastLine = ''; // a long line is data, never the trailer
    }
    const wasStart = this.atStatementStart;
    this.atStatementStart = this.endsStatement(line);
    if (!wasStart) return line;

    const head = line.subarray(0, 1024).toString('utf8');
    const trimmed = head.trim();
    if (trimmed === '' || trimmed.startsWith('--') || SANDBOX_LINE.test(trimmed)) {
      this.atStatementStart = true;
      return line;
    }
    const delimiter = /^DELIMITER\s+(\S+)/i.exec(trimmed);
    if (delimiter) {
      this.delimiter = delimiter[1]!;
      this.atStatementStart = true;
      return line;
    }
    if (USE_LINE.test(head) || DATABASE_LINE.test(head)) {
      const statement = USE_LINE.test(head) ? 'USE' : `${DATABASE_LINE.exec(head)![1]!.toUpperCase()} DATABASE`;
      this.requireSingleLine(line, statement);
      this.record('removed', statement, head);
      return Buffer.from(`-- nnoe-dr removed a ${statement} statement here (restoring into \`${this.target}\`)\n`);
    }
    const alter = ALTER_DATABASE_LINE.exec(head);
    if (alter && !ALTER_DATABASE_KEYWORDS.test(alter[2]!)) {
      this.requireSingleLine(line, 'ALTER DATABASE');
      this.record('retargeted', 'ALTER DATABASE', head);
      const text = line.toString('utf8');
      return Buffer.from(text.replace(ALTER_DATABASE_LINE, (_m, prefix: string) => `${prefix}${q(this.target)}`));
    }
    if (CREATE_LINE.test(head) && /\bTRIGGER\b/i.test(head) && QUALIFIED_TRIGGER.test(head)) {
      const text = line.toString('utf8');
      const rewritten = text.replace(TRIGGER_HEADER, (_m, trigger: string, nameAndTiming: string, table: string) => `${trigger}${nameAndTiming}${table}`);
      if (QUALIFIED_TRIGGER.test(rewritten)) {
        throw new DumpNotRestorableError(`line ${this.line}: cannot take the schema name out of this trigger header: ${cut(text)}`);
      }
      this.record('retargeted', 'TRIGGER qualifier', head);
      return Buffer.from(rewritten);
    }
    return line;
  }

  /** The line's last non-blank characters are the current delimiter. */
  private endsStatement(line: Buffer): boolean {
    const tail = line.subarray(Math.max(0, line.length - 64)).toString('latin1').trimEnd();
    return tail.endsWith(this.delimiter);
  }

  private requireSingleLine(line: Buffer, statement: string): void {
    if (!this.endsStatement(line)) {
      throw new DumpNotRestorableError(`line ${this.line}: a ${statement} statement spanning several lines cannot be neutralised safely: ${cut(line.toString('utf8'))}`);
    }
  }

  private record(action: NeutralisedStatement['action'], statement: string, head: string): void {
    this.neutralised.push({ line: this.line, action, statement, text: cut(head) });
  }
}

function cut(text: string, max = 120): string {
  const line = text.replace(/\s+$/, '');
  return line.length > max ? `${line.slice(0, max)}...` : line;
}

// ====================================================================== 1. load the dump

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
    const server = await preflight(conn).catch((err: unknown) => { throw databaseFailure(err, cfg, password); });
    const charset = await schemaCharset(conn, cfg.database);
    try {
      await conn.query(`CREATE DATABASE ${q(options.schema)}${charset ? ` CHARACTER SET ${charset.characterSet} COLLATE ${charset.collation}` : ''}`);
      created = true;
    } catch (err) {
      if ((err as { errno?: number }).errno === 1007) {
        throw DomainError.nonRetryable(
          `staging schema ${options.schema} already exists on ${cfg.host}:${cfg.port}; a restore loads only into a new schema (drop it or choose another name)`,
          FailureType.RestoreSchemaExists);
      }
      throw databaseFailure(err, cfg, password);
    }

    const binary = options.clientBinary ?? DEFAULT_CLIENT_BINARY[server.flavour];
    const run = await withOptionFile(options.workDir ?? tmpdir(), password, async (optionFile) => {
      const command = buildLoadCommand({ binary, flavour: server.flavour, host: cfg.host, port: cfg.port, user: cfg.user, optionFile, schema: options.schema });
      const outcome = await runClient(command, options.schema, options);
      return { command, ...outcome };
    });
    const where = `${options.schema}@${cfg.host}:${cfg.port}`;
    if (run.exit.code !== 0) {
      const text = redactSecret(run.stderr.trim(), password);
      const lastLines = text.split('\n').slice(-5).join('\n') || '(no error output)';
      const lost = /\bERROR 20(?:02|03|05|06|13)\b|Lost connection|gone away|Can't connect/i.test(text);
      const message = `${binary} could not load the dump into ${where} (${describeClientExit(run.exit)}): ${lastLines}`;
      throw lost ? DomainError.retryable(message, FailureType.DatabaseUnavailable) : DomainError.nonRetryable(message, FailureType.DumpLoadFailed);
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
        if (err instanceof Error) err.message += ` (and the half-loaded staging schema ${options.schema} could not be dropped: ${redactSecret(String((dropErr as Error).message), password)})`;
      });
    }
    if (err instanceof DomainError || isAbort(err)) throw err;
    if (err instanceof DumpStreamError) {
      throw DomainError.retryable(`the dump stream failed while loading into ${options.schema}: ${redactSecret(err.message, password)}`, FailureType.DumpStreamFailed);
    }
    if (err instanceof DumpNotRestorableError) {
      throw DomainError.nonRetryable(`the dump cannot be restored into ${options.schema} safely: ${err.message}; nothing of it is kept`, FailureType.DumpLoadFailed);
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
      host: cfg.host, port: cfg.port, user: cfg.user, password, connectTimeout: CONNECT_TIMEOUT_MS,
      supportBigNumbers: true, bigNumberStrings: true, dateStrings: true,
    });
  } catch (err) {
    throw databaseFailure(err, cfg, password);
  }
}

async function schemaCharset(conn: Connection, schema: string): Promise<{ characterSet: string; collation: string } | undefined> {
  const [rows] = await conn.query<RowDataPacket[]>(
    'SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [schema]);
  const row = rows[0];
  // Names of the server's own charsets/collations: letters, digits and "_" only, safe to inline.
  if (!row || !/^\w+$/.test(String(row.cs)) || !/^\w+$/.test(String(row.co))) return undefined;
  return { characterSet: String(row.cs), collation: String(row.co) };
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
      reject(err.code === 'ENOENT'
        ? DomainError.nonRetryable(`database client ${command.binary} not found on this worker (Debian package mariadb-client, or set the client binary)`, FailureType.ConfigError)
        : err);
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const kill = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
  const guard = new DumpSchemaGuard(schema, { requireTrailer: true });
  guard.once('error', kill); // registered before pipeline's own listener, which closes stdin
  options.dump.once('error', kill);
  let bytes = 0;
  const counter = new Transform({ transform(chunk: Buffer, _enc, done) { bytes += chunk.length; done(null, chunk); } });
  const progress = options.onProgress && setInterval(() => options.onProgress!(bytes), PROGRESS_INTERVAL_MS);
  const streamed = pipeline([options.dump, guard, counter, child.stdin], { signal: options.signal });
  try {
    const [stream, exit] = await Promise.allSettled([
      streamed.catch((err: unknown) => { kill(); throw err; }),
      exited,
    ]);
    if (exit.status === 'rejected') throw exit.reason;
    if (stream.status === 'rejected') {
      // A client that failed on its own explains the broken pipe (EPIPE) better than the pipe does.
      const clientFailed = exit.value.code !== null && exit.value.code !== 0;
      if (!clientFailed) throw stream.reason instanceof DumpNotRestorableError || isAbort(stream.reason) ? stream.reason : new DumpStreamError(stream.reason);
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

// ====================================================================== 2. verify against the facts

export interface SchemaMismatch {
  table: string;
  what: 'missing table' | 'unexpected table' | 'rows' | 'checksum';
  expected: string | number | null;
  actual: string | number | null;
}

export interface SchemaVerification {
  schema: string;
  /** No mismatches: what swapSchemaIn requires. */
  ok: boolean;
  mismatches: SchemaMismatch[];
  /** The schema's own facts (exact rows, CHECKSUM TABLE), read in one consistent snapshot. */
  tables: TableFact[];
  ms: number;
}

/**
 * Exact row counts and CHECKSUM TABLE of every base table of `schema` against the manifest's facts
 * (same code that recorded them). A table the facts do not know, or one they know that is missing, is
 * a mismatch too. CHECKSUM TABLE values compare across servers of the same version and row format;
 * restoring into another server version may change them for identical data.
 */
export async function verifySchemaAgainstFacts(
  conn: Connection, schema: string, facts: Pick<PhpipamDumpFacts, 'tables' | 'flavour'>,
): Promise<SchemaVerification> {
  requireSchemaName(schema);
  const t0 = performance.now();
  const { tables } = await tableFacts(conn, schema, facts.flavour);
  const actual = new Map(tables.map((t) => [t.name, t]));
  const mismatches: SchemaMismatch[] = [];
  for (const want of facts.tables) {
    const have = actual.get(want.name);
    if (!have) {
      mismatches.push({ table: want.name, what: 'missing table', expected: 'present', actual: 'absent' });
      continue;
    }
    if (have.rows !== want.rows) mismatches.push({ table: want.name, what: 'rows', expected: want.rows, actual: have.rows });
    if (want.checksum !== null && have.checksum !== want.checksum) {
      mismatches.push({ table: want.name, what: 'checksum', expected: want.checksum, actual: have.checksum });
    }
  }
  const known = new Set(facts.tables.map((t) => t.name));
  for (const have of tables) {
    if (!known.has(have.name)) mismatches.push({ table: have.name, what: 'unexpected table', expected: 'absent', actual: 'present' });
  }
  return { schema, ok: mismatches.length === 0, mismatches, tables, ms: Math.round(performance.now() - t0) };
}

/** `ipaddresses: checksum expected 123, got 456; logs: missing table` for messages. */
export function describeMismatches(mismatches: SchemaMismatch[]): string {
  return mismatches.map((m) => `${m.table}: ${m.what} expected ${m.expected}, got ${m.actual}`).join('; ');
}

/**
 * Scratch schemas beside the live database (a restore's staging and kept-old schemas, a drill's
 * schema) need CREATE on `<db>_%`: created and dropped up front, so a missing privilege is said
 * plainly (with the GRANT that `purpose`, e.g. "a drill", needs), not met half-way as an access error.
 */
export async function requireCreateSchema(conn: Connection, cfg: PhpipamConfig, schema: string, purpose: string): Promise<void> {
  try {
    await conn.query(`CREATE DATABASE ${q(schema)}`);
    await conn.query(`DROP DATABASE ${q(schema)}`);
  } catch (err) {
    const e = err as { errno?: number; sqlMessage?: string };
    if (e.errno === 1044 || e.errno === 1227) {
      throw DomainError.nonRetryable(
        `user ${cfg.user} may not create schema ${schema} on ${cfg.host}:${cfg.port} (${e.sqlMessage}); ${purpose} needs all privileges on ${cfg.database}_% (GRANT ALL ON \`${cfg.database}\\_%\`.* TO ...)`,
        FailureType.DatabasePrivilegeMissing);
    }
    throw err;
  }
}

/** Drops a staging schema (e.g. after a failed verification). Refuses the live schema's name. */
export async function dropStagingSchema(conn: Connection, staging: string, live: string): Promise<void> {
  requireSchemaName(staging);
  if (staging === live) throw DomainError.nonRetryable(`refusing to drop ${staging}: it is the live schema`, FailureType.InvalidInput);
  await conn.query(`DROP DATABASE IF EXISTS ${q(staging)}`);
}

// ====================================================================== 3. swap

/** Steps of swapSchemaIn in order, as passed to `onStep` (heartbeats; tests inject failures there). */
export const SWAP_STEPS = [
  'check schemas',
  'create keep schema',
  'drop staging triggers',
  'drop live triggers',
  'rename tables',
  'create live triggers',
  'replace live routines and events',
  'recreate kept triggers',
  'drop staging schema',
] as const;
export type SwapStep = (typeof SWAP_STEPS)[number];

export interface SwapOptions {
  live: string;
  staging: string;
  /** New schema for the old live tables, e.g. phpipam_pre_restore_20261127_143502. Refused if it exists. */
  keepAs: string;
  /** verifySchemaAgainstFacts of `staging` with no mismatches; anything else is refused. */
  verification: SchemaVerification;
  /** How long a DDL statement may wait for other sessions' metadata locks. Default 30 s. */
  lockWaitTimeoutSeconds?: number;
  onStep?: (step: SwapStep) => void | Promise<void>;
}

export interface SchemaSwapResult {
  live: string;
  staging: string;
  keepAs: string;
  /** Every table now in live with its verified row count; `added`: not in live before; `keptOnly`: moved to keepAs without a replacement. */
  tables: { swapped: Array<{ name: string; rows: number | null }>; added: string[]; keptOnly: string[] };
  /** Trigger names now in live / recreated on the kept tables. */
  triggers: { live: string[]; kept: string[] };
  /** `FUNCTION name` / `PROCEDURE name` now in live / copied to keepAs. */
  routines: { live: string[]; kept: string[] };
  /** Events now in live / copied to keepAs (DISABLED there). */
  events: { live: string[]; kept: string[] };
  /** Views recreated in live (from the staging schema) / on the kept tables. */
  views: { live: string[]; kept: string[] };
  stagingDropped: boolean;
  /** Steps after the commit point that did not succeed (the swap itself did). */
  warnings: string[];
  timings: {
    totalMs: number;
    /** The RENAME TABLE statement alone. */
    renameMs: number;
    /** First live DDL (drop live triggers) until the restored triggers exist. */
    triggerWindowMs: number;
    /** First live DDL until live routines and events are replaced too. */
    liveWindowMs: number;
  };
  startedAt: string;
  finishedAt: string;
}

interface Definition {
  kind: 'TRIGGER' | 'FUNCTION' | 'PROCEDURE' | 'EVENT';
  name: string;
  /** The trigger's table. */
  table?: string;
  create: string;
  sqlMode: string;
  collationConnection: string;
  timeZone?: string;
  enabled?: boolean;
}

interface SchemaObjects {
  exists: boolean;
  tables: Array<{ name: string; type: string }>;
  triggers: Array<{ name: string; table: string }>;
  routines: Array<{ name: string; kind: string }>;
  events: Array<{ name: string; status: string }>;
}

const routineLabel = (r: { name: string; kind: string }) => `${r.kind} ${r.name}`;

async function listSchemaObjects(conn: Connection, schema: string): Promise<SchemaObjects> {
  const [schemata] = await conn.query<RowDataPacket[]>('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [schema]);
  const [tables] = await conn.query<RowDataPacket[]>(
    'SELECT TABLE_NAME AS name, TABLE_TYPE AS type FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME', [schema]);
  // Creation order per table and timing, so re-creating them keeps their firing order.
  const [triggers] = await conn.query<RowDataPacket[]>(
    'SELECT TRIGGER_NAME AS name, EVENT_OBJECT_TABLE AS tbl FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ' +
    'ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER', [schema]);
  const [routines] = await conn.query<RowDataPacket[]>(
    'SELECT ROUTINE_NAME AS name, ROUTINE_TYPE AS kind FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME', [schema]);
  const [events] = await conn.query<RowDataPacket[]>(
    'SELECT EVENT_NAME AS name, STATUS AS status FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME', [schema]);
  return {
    exists: schemata.length > 0,
    tables: tables.map((r) => ({ name: String(r.name), type: String(r.type) })),
    triggers: triggers.map((r) => ({ name: String(r.name), table: String(r.tbl) })),
    routines: routines.map((r) => ({ name: String(r.name), kind: String(r.kind) })),
    events: events.map((r) => ({ name: String(r.name), status: String(r.status) })),
  };
}

/** SHOW CREATE ... of every trigger, routine and event of a schema, with the session settings they need. */
async function readDefinitions(conn: Connection, schema: string, objects: SchemaObjects): Promise<{ triggers: Definition[]; routines: Definition[]; events: Definition[] }> {
  const show = async (kind: Definition['kind'], name: string, column: string): Promise<Definition> => {
    const [rows] = await conn.query<RowDataPacket[]>(`SHOW CREATE ${kind} ${qq(schema, name)}`);
    const row = rows[0];
    const create = row?.[column];
    if (!row || create === null || create === undefined) {
      throw new SwapRefusal(`cannot read the definition of ${kind} ${schema}.${name} (its definer is another user and this user may not see it)`);
    }
    return {
      kind, name, create: String(create), sqlMode: String(row.sql_mode ?? ''), collationConnection: String(row.collation_connection),
      ...(row.time_zone !== undefined ? { timeZone: String(row.time_zone) } : {}),
    };
  };
  const triggers: Definition[] = [];
  for (const t of objects.triggers) triggers.push({ ...(await show('TRIGGER', t.name, 'SQL Original Statement')), table: t.table });
  const routines: Definition[] = [];
  for (const r of objects.routines) {
    if (r.kind !== 'FUNCTION' && r.kind !== 'PROCEDURE') throw new SwapRefusal(`${schema} has a ${r.kind} (${r.name}); only functions and procedures are handled`);
    routines.push(await show(r.kind, r.name, r.kind === 'FUNCTION' ? 'Create Function' : 'Create Procedure'));
  }
  const events: Definition[] = [];
  for (const e of objects.events) events.push({ ...(await show('EVENT', e.name, 'Create Event')), enabled: e.status === 'ENABLED' });
  return { triggers, routines, events };
}

class SwapRefusal extends Error {}

/**
 * Creates a stored definition in `schema` with the sql_mode, collation and time zone it was created
 * under (the default schema is switched: unqualified names in the statement resolve there).
 */
async function createDefinition(conn: Connection, schema: string, def: Definition, orReplace = false): Promise<void> {
  await conn.query(`USE ${q(schema)}`);
  await conn.query('SET SESSION sql_mode = ?, SESSION collation_connection = ?', [def.sqlMode, def.collationConnection]);
  if (def.timeZone !== undefined) await conn.query('SET SESSION time_zone = ?', [def.timeZone]);
  await conn.query(orReplace ? def.create.replace(/^\s*CREATE\s+/i, 'CREATE OR REPLACE ') : def.create);
}

async function dropDefinition(conn: Connection, schema: string, def: Pick<Definition, 'kind' | 'name'>): Promise<void> {
  await conn.query(`DROP ${def.kind} IF EXISTS ${qq(schema, def.name)}`);
}

const key = (def: Pick<Definition, 'kind' | 'name'>) => `${def.kind} ${def.name}`;

interface Undo {
  what: string;
  run: () => Promise<void>;
}

/**
 * Swaps the verified staging schema's tables into the live schema, keeping the old tables (with
 * their triggers, and copies of the old routines and events) in `keepAs`; see the top of this file
 * for the order, what is atomic and what is not. Any failure before the commit point is undone and
 * reported as SchemaSwapFailed (live as before) or, if the undo failed too, SchemaSwapRollbackFailed
 * naming what is left to repair. Changes the connection's default schema and session settings.
 */
export async function swapSchemaIn(conn: Connection, options: SwapOptions): Promise<SchemaSwapResult> {
  const { live, staging, keepAs, verification } = options;
  const startedAt = new Date();
  const t0 = performance.now();
  const step = async (name: SwapStep) => { await options.onStep?.(name); };

  // ---------------------------------------------------------------- checks: nothing changes yet
  await step('check schemas');
  for (const name of [live, staging, keepAs]) requireSchemaName(name);
  const refuse = (why: string) => DomainError.nonRetryable(`swap of ${staging} into ${live} refused: ${why}; nothing was changed`, FailureType.SchemaSwapRefused);
  if (new Set([live, staging, keepAs]).size !== 3) throw refuse('live, staging and keep schema must be three different schemas');
  if (verification.schema !== staging) throw refuse(`the verification given is of ${verification.schema}, not of ${staging}`);
  if (!verification.ok || verification.mismatches.length > 0) {
    throw DomainError.nonRetryable(
      `swap of ${staging} into ${live} refused: the staging schema does not match the backup's facts (${describeMismatches(verification.mismatches)}); nothing was changed`,
      FailureType.RestoreVerificationFailed);
  }
  const [liveObjects, stagingObjects, keepObjects] = [await listSchemaObjects(conn, live), await listSchemaObjects(conn, staging), await listSchemaObjects(conn, keepAs)];
  if (!liveObjects.exists) throw refuse(`live schema ${live} does not exist (load the dump into it directly instead)`);
  if (!stagingObjects.exists) throw refuse(`staging schema ${staging} does not exist`);
  if (keepObjects.exists) throw DomainError.nonRetryable(`swap of ${staging} into ${live} refused: keep schema ${keepAs} already exists; nothing was changed`, FailureType.RestoreSchemaExists);
  const unsupported = unsupportedObjects([live, liveObjects], [staging, stagingObjects]);
  if (unsupported.length > 0) throw refuse(unsupported.join('; '));
  const baseTables = (objects: SchemaObjects) => objects.tables.filter((t) => t.type === 'BASE TABLE').map((t) => t.name);
  const viewNames = (objects: SchemaObjects) => objects.tables.filter((t) => t.type === 'VIEW').map((t) => t.name);
  const stagingTables = baseTables(stagingObjects);
  const liveTables = baseTables(liveObjects);
  if (stagingTables.length === 0) throw refuse(`staging schema ${staging} has no tables`);
  const verifiedRows = new Map(verification.tables.map((t) => [t.name, t.rows]));
  const unverified = stagingTables.filter((t) => !verifiedRows.has(t));
  if (unverified.length > 0) throw refuse(`staging tables not covered by the verification: ${unverified.join(', ')}`);

  let server: Awaited<ReturnType<typeof preflight>>;
  let liveDefs: Awaited<ReturnType<typeof readDefinitions>>;
  let stagingDefs: Awaited<ReturnType<typeof readDefinitions>>;
  let liveViews: ViewDefinition[];
  let stagingViews: ViewDefinition[];
  const [session] = await conn.query<RowDataPacket[]>(
    'SELECT DATABASE() AS db, @@session.sql_mode AS sqlMode, @@session.collation_connection AS collation, @@session.time_zone AS tz, @@session.lock_wait_timeout AS lockWait');
  try {
    server = await preflight(conn);
    liveDefs = await readDefinitions(conn, live, liveObjects);
    stagingDefs = await readDefinitions(conn, staging, stagingObjects);
    liveViews = await readViewDefinitions(conn, live, viewNames(liveObjects)).catch((err: Error) => { throw new SwapRefusal(err.message); });
    stagingViews = await readViewDefinitions(conn, staging, viewNames(stagingObjects)).catch((err: Error) => { throw new SwapRefusal(err.message); });
  } catch (err) {
    if (err instanceof SwapRefusal) throw refuse(err.message);
    throw err;
  }
  const orReplace = server.flavour === 'mariadb'; // MySQL has no CREATE OR REPLACE for routines/events

  const undo: Undo[] = [];
  const timings = { renameMs: 0, triggerWindowMs: 0, liveWindowMs: 0 };
  const warnings: string[] = [];
  let current: SwapStep = 'check schemas';
  const enter = async (name: SwapStep) => { current = name; await step(name); };
  try {
    await conn.query('SET SESSION lock_wait_timeout = ?', [options.lockWaitTimeoutSeconds ?? DEFAULT_LOCK_WAIT_TIMEOUT_S]);

    // ---------------------------------------------------------------- keep schema: copies of the old routines and events
    await enter('create keep schema');
    const charset = await schemaCharset(conn, live);
    await conn.query(`CREATE DATABASE ${q(keepAs)}${charset ? ` CHARACTER SET ${charset.characterSet} COLLATE ${charset.collation}` : ''}`);
    undo.push({ what: `drop keep schema ${keepAs}`, run: () => dropIfNoTables(conn, keepAs) });
    for (const def of liveDefs.routines) await createDefinition(conn, keepAs, def);
    for (const def of liveDefs.events) {
      await createDefinition(conn, keepAs, def);
      await conn.query(`ALTER EVENT ${qq(keepAs, def.name)} DISABLE`); // kept for the record, must not act on kept tables
    }

    // ---------------------------------------------------------------- staging triggers (else error 1435)
    await enter('drop staging triggers');
    for (const def of stagingDefs.triggers) {
      await dropDefinition(conn, staging, def);
      undo.push({ what: `recreate trigger ${staging}.${def.name}`, run: () => createDefinition(conn, staging, def) });
    }
    // Views cannot be renamed across schemas (error 1450): dropped here, recreated in live after the rename.
    await dropViews(conn, staging, stagingViews.map((v) => v.name));
    if (stagingViews.length > 0) undo.push({ what: `recreate views in ${staging}`, run: () => createViews(conn, stagingViews, staging, staging) });

    // ---------------------------------------------------------------- live window
    await enter('drop live triggers');
    const windowStart = performance.now();
    for (const def of liveDefs.triggers) {
      await dropDefinition(conn, live, def);
      undo.push({ what: `recreate trigger ${live}.${def.name}`, run: () => createDefinition(conn, live, def) });
    }
    await dropViews(conn, live, liveViews.map((v) => v.name));
    if (liveViews.length > 0) undo.push({ what: `recreate views in ${live}`, run: () => createViews(conn, liveViews, live, live) });

    await enter('rename tables');
    const forward = [...liveTables.map((t) => `${qq(live, t)} TO ${qq(keepAs, t)}`), ...stagingTables.map((t) => `${qq(staging, t)} TO ${qq(live, t)}`)];
    const backward = [...stagingTables.map((t) => `${qq(live, t)} TO ${qq(staging, t)}`), ...liveTables.map((t) => `${qq(keepAs, t)} TO ${qq(live, t)}`)];
    const renameStart = performance.now();
    await conn.query(`RENAME TABLE ${forward.join(', ')}`);
    timings.renameMs = Math.round(performance.now() - renameStart);
    undo.push({ what: `rename the tables back (${live} -> ${staging}, ${keepAs} -> ${live})`, run: async () => { await conn.query(`RENAME TABLE ${backward.join(', ')}`); } });

    await enter('create live triggers');
    for (const def of stagingDefs.triggers) {
      await createDefinition(conn, live, def);
      undo.push({ what: `drop restored trigger ${live}.${def.name}`, run: () => dropDefinition(conn, live, def) });
    }
    if (stagingViews.length > 0) {
      undo.push({ what: `drop restored views from ${live}`, run: () => dropViews(conn, live, stagingViews.map((v) => v.name)) });
      await createViews(conn, stagingViews, staging, live);
    }
    timings.triggerWindowMs = Math.round(performance.now() - windowStart);

    await enter('replace live routines and events');
    const oldLive = new Map([...liveDefs.routines, ...liveDefs.events].map((d) => [key(d), d]));
    const restored = [...stagingDefs.routines, ...stagingDefs.events];
    for (const def of restored) {
      const old = oldLive.get(key(def));
      if (old && !orReplace) await dropDefinition(conn, live, old);
      await createDefinition(conn, live, def, Boolean(old) && orReplace);
      undo.push(old
        ? { what: `put back ${key(old)} in ${live}`, run: async () => { if (!orReplace) await dropDefinition(conn, live, def); await createDefinition(conn, live, old, orReplace); } }
        : { what: `drop restored ${key(def)} from ${live}`, run: () => dropDefinition(conn, live, def) });
    }
    const restoredKeys = new Set(restored.map(key));
    for (const old of oldLive.values()) {
      if (restoredKeys.has(key(old))) continue;
      await dropDefinition(conn, live, old); // not in the backup; its copy is in keepAs
      undo.push({ what: `recreate ${key(old)} in ${live}`, run: () => createDefinition(conn, live, old) });
    }
    timings.liveWindowMs = Math.round(performance.now() - windowStart);
  } catch (err) {
    const failures = await runUndo(undo);
    await restoreSession(conn, session[0]).catch(() => undefined);
    throw swapFailure(err, { live, staging, keepAs, step: current, undo, failures });
  }

  // ---------------------------------------------------------------- committed: best effort from here
  let stagingDropped = false;
  try {
    await enter('recreate kept triggers');
    for (const def of liveDefs.triggers) {
      await createDefinition(conn, keepAs, def).catch((err: unknown) => { warnings.push(`trigger ${def.name} not recreated on ${keepAs}.${def.table}: ${(err as Error).message}`); });
    }
    if (liveViews.length > 0) await createViews(conn, liveViews, live, keepAs).catch((err: unknown) => { warnings.push((err as Error).message); });
    await enter('drop staging schema');
    stagingDropped = await dropIfNoTables(conn, staging).then(() => true, (err: unknown) => { warnings.push(`staging schema ${staging} not dropped: ${(err as Error).message}`); return false; });
  } catch (err) {
    warnings.push(`after the swap, step "${current}" failed: ${(err as Error).message}`);
  } finally {
    await restoreSession(conn, session[0]).catch((err: unknown) => { warnings.push(`session settings not restored: ${(err as Error).message}`); });
  }

  return {
    live, staging, keepAs,
    tables: {
      swapped: stagingTables.map((name) => ({ name, rows: verifiedRows.get(name) ?? null })),
      added: stagingTables.filter((t) => !liveTables.includes(t)),
      keptOnly: liveTables.filter((t) => !stagingTables.includes(t)),
    },
    triggers: { live: stagingDefs.triggers.map((d) => d.name), kept: liveDefs.triggers.map((d) => d.name) },
    routines: { live: stagingDefs.routines.map(key), kept: liveDefs.routines.map(key) },
    events: { live: stagingDefs.events.map((d) => d.name), kept: liveDefs.events.map((d) => d.name) },
    views: { live: stagingViews.map((v) => v.name), kept: liveViews.map((v) => v.name) },
    stagingDropped,
    warnings,
    timings: { totalMs: Math.round(performance.now() - t0), ...timings },
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
  };
}

/** What a swap cannot handle in these schemas (table types other than base tables and views, routine kinds other than functions and procedures). */
function unsupportedObjects(...schemas: Array<[string, SchemaObjects]>): string[] {
  return schemas.flatMap(([schema, objects]) => [
    ...objects.tables.filter((t) => !SWAPPABLE_TABLE_TYPES.includes(t.type)).map((t) => `${schema}.${t.name} is a ${t.type}, which a swap cannot move`),
    ...objects.routines.filter((r) => r.kind !== 'FUNCTION' && r.kind !== 'PROCEDURE').map((r) => `${schema} has a ${r.kind} (${r.name}); only functions and procedures are handled`),
  ]);
}

/**
 * The live schema's side of the swap checked in the restore's preflight, before anything stops:
 * every object a swap must move or recreate is of a kind it handles and its definition is readable.
 */
export async function requireSwappableLive(conn: Connection, live: string): Promise<void> {
  const objects = await listSchemaObjects(conn, live);
  // The restore's preflight adds "nothing was stopped or changed".
  const refuse = (why: string) => DomainError.nonRetryable(`a swap into ${live} would fail: ${why}`, FailureType.SchemaSwapRefused);
  const unsupported = unsupportedObjects([live, objects]);
  if (unsupported.length > 0) throw refuse(unsupported.join('; '));
  try {
    await readDefinitions(conn, live, objects);
    await readViewDefinitions(conn, live, objects.tables.filter((t) => t.type === 'VIEW').map((t) => t.name));
  } catch (err) {
    throw refuse((err as Error).message);
  }
}

/** DROP DATABASE only when it holds no tables (never lose data while cleaning up). */
async function dropIfNoTables(conn: Connection, schema: string): Promise<void> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [schema]);
  const n = Number(rows[0]?.n ?? 0);
  if (n > 0) throw new Error(`${schema} still holds ${n} table(s); not dropped`);
  await conn.query(`DROP DATABASE IF EXISTS ${q(schema)}`);
}

async function runUndo(undo: Undo[]): Promise<Array<{ what: string; error: string }>> {
  const failures: Array<{ what: string; error: string }> = [];
  for (const step of [...undo].reverse()) {
    try {
      await step.run();
    } catch (err) {
      failures.push({ what: step.what, error: (err as Error).message });
    }
  }
  return failures;
}

async function restoreSession(conn: Connection, saved: RowDataPacket | undefined): Promise<void> {
  if (!saved) return;
  await conn.query('SET SESSION sql_mode = ?, SESSION collation_connection = ?, SESSION time_zone = ?, SESSION lock_wait_timeout = ?',
    [saved.sqlMode, saved.collation, saved.tz, Number(saved.lockWait)]);
  if (saved.db) await conn.query(`USE ${q(String(saved.db))}`);
}

const RETRYABLE_ERRNOS = new Set([1205, 1213, 2006, 2013]); // lock wait timeout, deadlock, gone away, lost connection

function swapFailure(err: unknown, ctx: { live: string; staging: string; keepAs: string; step: SwapStep; undo: Undo[]; failures: Array<{ what: string; error: string }> }): DomainError {
  const e = err as { errno?: number; code?: string; message?: string };
  const cause = `${e.message ?? String(err)}`;
  if (ctx.failures.length > 0) {
    return DomainError.nonRetryable(
      `swap of ${ctx.staging} into ${ctx.live} failed at "${ctx.step}" (${cause}) and could not be fully undone; repair by hand: ` +
        ctx.failures.map((f) => `${f.what} (${f.error})`).join('; '),
      FailureType.SchemaSwapRollbackFailed);
  }
  const message = `swap of ${ctx.staging} into ${ctx.live} failed at "${ctx.step}" (${cause}); undone (${ctx.undo.length} step(s)): ` +
    `${ctx.live} is as before, ${ctx.staging} still holds the restored tables, ${ctx.keepAs} does not exist`;
  const retryable = (e.errno !== undefined && RETRYABLE_ERRNOS.has(e.errno)) || e.code === 'PROTOCOL_CONNECTION_LOST';
  return retryable
    ? DomainError.retryable(message, FailureType.SchemaSwapFailed)
    : DomainError.nonRetryable(message, FailureType.SchemaSwapFailed);
}
