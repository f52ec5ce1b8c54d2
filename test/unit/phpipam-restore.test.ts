/**
 * The phpIPAM restore core: the dump's schema guard and the client's command line (pure), then the
 * real thing against a private MariaDB (binlog on) loaded with the phpIPAM-like fixture as the app
 * user and dumped with the backup's own dump code: load into a staging schema, verify against the
 * facts, swap in; a tampered dump, a --databases dump, client errors, an undone swap, a refused swap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { DomainError } from '../../src/common/domain-errors';
import { FailureType } from '../../src/common/failures';
import {
  buildDumpCommand,
  buildLoadCommand,
  connectPhpipam,
  dropStagingSchema,
  DumpSchemaGuard,
  loadDumpIntoSchema,
  PhpipamSchema,
  preflight,
  readDumpTool,
  requireSwappableLive,
  restoreSchemaNames,
  runDump,
  swapSchemaIn,
  tableFacts,
  verifySchemaAgainstFacts,
  writeClientOptionFile,
  type DumpCommand,
  type NeutralisedStatement,
  type PhpipamConfig,
  type PhpipamDumpFacts,
  type SchemaVerification,
} from '../../src/phpipam';
import { connectAsRoot, startMariadb, type MariadbInstance } from '../../src/sandbox/mariadb';
import { FIXTURE_EVENT, FIXTURE_FUNCTION, FIXTURE_TRIGGER, loadPhpipamFixture, PHPIPAM_TABLES } from '../../src/sandbox/phpipam-fixture';
import { waitUntil } from '../../src/sandbox/ports';

const LIVE = 'phpipam';

/** Runs text through the guard in chunks of `chunk` bytes. */
async function guard(
  text: string | Buffer,
  target = 'phpipam_restore_x',
  chunk = 64 * 1024,
  requireTrailer = false,
): Promise<{ out: string; neutralised: NeutralisedStatement[] }> {
  const input = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) chunks.push(input.subarray(i, i + chunk));
  const g = new DumpSchemaGuard(target, { requireTrailer });
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    g,
    new Writable({
      write(c: Buffer, _e, done) {
        out.push(c);
        done();
      },
    }),
  );
  return { out: Buffer.concat(out).toString('utf8'), neutralised: g.neutralised };
}

/** The failure a promise rejects with (fails the test if it resolves). */
async function failureOf(promise: Promise<unknown>): Promise<DomainError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DomainError);
  return err as DomainError;
}

// ====================================================================== pure parts

describe('DumpSchemaGuard', () => {
  // What mariadb-dump --databases --add-drop-database writes, plus the rarer statements the guard handles.
  const foreignDump = [
    '/*M!999999\\- enable the sandbox mode */ ',
    '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB',
    '/*!40101 SET NAMES utf8mb4 */;',
    '/*!40000 DROP DATABASE IF EXISTS `phpipam`*/;',
    '',
    'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `phpipam` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;',
    '',
    'USE `phpipam`;',
    'CREATE TABLE `t` (',
    '  `id` int NOT NULL,',
    '  `note` text',
    ');',
    "INSERT INTO `t` VALUES (1,'USE x;'),",
    "(2,'CREATE DATABASE y;');",
    'ALTER DATABASE `phpipam` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;',
    'DELIMITER ;;',
    '/*!50003 CREATE*/ /*!50017 DEFINER=`u`@`%`*/ /*!50003 TRIGGER `phpipam`.`t_ai` AFTER INSERT ON phpipam.`t` FOR EACH ROW',
    'BEGIN',
    "  UPDATE t SET note = 'x';",
    'END */;;',
    'CREATE DEFINER=`u`@`%` PROCEDURE `make_scratch`()',
    'BEGIN',
    'CREATE DATABASE IF NOT EXISTS scratch;',
    'USE_ME: LOOP LEAVE USE_ME; END LOOP;',
    'END ;;',
    'DELIMITER ;',
    'ALTER DATABASE `phpipam` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;',
    'ALTER DATABASE CHARACTER SET utf8mb4;',
    '-- Dump completed on 2026-11-27 14:35:02',
    '',
  ].join('\n');

  it('removes USE and CREATE/DROP DATABASE, retargets ALTER DATABASE and trigger qualifiers, and leaves statement bodies alone', async () => {
    const { out, neutralised } = await guard(foreignDump, 'phpipam_restore_x');
    expect(out).not.toMatch(/^USE /m);
    expect(out).not.toMatch(/DROP DATABASE IF EXISTS `phpipam`/);
    expect(out).not.toMatch(/CREATE DATABASE \/\*!32312/);
    expect(out).toContain('ALTER DATABASE `phpipam_restore_x` CHARACTER SET latin1 COLLATE latin1_swedish_ci ;');
    expect(out).toContain('ALTER DATABASE `phpipam_restore_x` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci ;');
    expect(out).toContain('\nALTER DATABASE CHARACTER SET utf8mb4;\n'); // no name: the current schema already
    expect(out).toContain('/*!50003 TRIGGER `t_ai` AFTER INSERT ON `t` FOR EACH ROW\n');
    // Inside a statement (the procedure's body, the INSERT's rows) nothing is touched.
    expect(out).toContain('\nCREATE DATABASE IF NOT EXISTS scratch;\nUSE_ME: LOOP');
    expect(out).toContain("INSERT INTO `t` VALUES (1,'USE x;'),\n(2,'CREATE DATABASE y;');\n");
    expect(out.split('\n')).toHaveLength(foreignDump.split('\n').length); // line numbers of client errors still match the dump
    expect(neutralised.map((n) => [n.line, n.action, n.statement])).toEqual([
      [4, 'removed', 'DROP DATABASE'],
      [6, 'removed', 'CREATE DATABASE'],
      [8, 'removed', 'USE'],
      [15, 'retargeted', 'ALTER DATABASE'],
      [17, 'retargeted', 'TRIGGER qualifier'],
      [27, 'retargeted', 'ALTER DATABASE'],
    ]);
  });

  it('gives the same output whatever the chunk boundaries (lines split across chunks, multi-byte characters)', async () => {
    const text = `${foreignDump}INSERT INTO \`t\` VALUES (3,'Zürich – Büro ✓ 東京');\n`;
    const whole = await guard(text);
    for (const size of [1, 2, 3, 7, 64]) {
      const split = await guard(text, 'phpipam_restore_x', size);
      expect(split.out).toBe(whole.out);
      expect(split.neutralised).toEqual(whole.neutralised);
    }
  });

  it('fails rather than pass a schema statement it cannot neutralise whole', async () => {
    await expect(guard('SELECT 1;\nUSE\n`phpipam`;\n')).rejects.toThrow(/line 2: a USE statement spanning several lines/);
  });

  it('with requireTrailer, fails at the end of a dump whose last line is not "-- Dump completed"', async () => {
    expect((await guard(foreignDump, 'x', 5, true)).out).toContain('-- Dump completed on');
    const truncated = foreignDump.slice(0, foreignDump.indexOf("(2,'CREATE"));
    await expect(guard(truncated, 'x', 5, true)).rejects.toThrow(/ends at line 13 without its "-- Dump completed" trailer/);
    await expect(guard(`${foreignDump}INSERT INTO t VALUES (9,'-- Dump completed');\n`, 'x', 64 * 1024, true)).rejects.toThrow(/trailer/);
  });
});

describe('phpIPAM restore names and client command', () => {
  it('names the staging and keep schemas after the database and the UTC time', () => {
    expect(restoreSchemaNames('phpipam', new Date('2026-11-27T14:35:02.123Z'))).toEqual({
      staging: 'phpipam_restore_20261127_143502_123',
      keepAs: 'phpipam_pre_restore_20261127_143502_123',
    });
    // Two restores within one second get two names (a same-second clash refused the second one).
    expect(restoreSchemaNames('phpipam', new Date('2026-11-27T14:35:02.124Z')).keepAs).not.toBe('phpipam_pre_restore_20261127_143502_123');
    expect(() => restoreSchemaNames('p'.repeat(40), new Date())).toThrow(/not a usable schema name/);
  });

  it('runs the client with the option file first, the staging schema, no client commands, and never the password', () => {
    const input = { host: '10.0.0.5', port: 3306, user: 'phpipam', optionFile: '/work/x/client.cnf', schema: 'phpipam_restore_1' };
    const { binary, argv } = buildLoadCommand({ ...input, binary: 'mariadb', flavour: 'mariadb' });
    expect(binary).toBe('mariadb');
    expect(argv[0]).toBe('--defaults-file=/work/x/client.cnf');
    expect(argv).toEqual(
      expect.arrayContaining([
        '--host=10.0.0.5',
        '--port=3306',
        '--protocol=TCP',
        '--user=phpipam',
        '--binary-mode',
        '--skip-print-query-on-error',
        '--database=phpipam_restore_1',
      ]),
    );
    expect(argv.some((a) => /pass/i.test(a))).toBe(false);
    // MySQL's client has no such option (and does not echo failing statements).
    expect(buildLoadCommand({ ...input, binary: 'mysql', flavour: 'mysql' }).argv).not.toContain('--skip-print-query-on-error');
  });
});

// ====================================================================== against a real MariaDB

/** Every process whose argv contains `needle`: pid, argv and environment. */
async function processesWith(needle: string): Promise<Array<{ pid: number; argv: string[]; environ: string }>> {
  const found: Array<{ pid: number; argv: string[]; environ: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      if (!argv.some((a) => a.includes(needle))) continue;
      found.push({ pid: Number(entry), argv, environ: await readFile(`/proc/${entry}/environ`, 'utf8') });
    } catch {
      // the process ended meanwhile
    }
  }
  return found;
}

describe('phpIPAM restore on MariaDB', () => {
  let dir: string;
  let workDir: string;
  let mariadb: MariadbInstance;
  let password: string;
  let cfg: PhpipamConfig;
  let app: Connection; // phpIPAM's own session
  let conn: Connection; // the restore's session
  let dump: Buffer;
  let facts: PhpipamDumpFacts;
  let dumpCommand: DumpCommand;
  const { staging, keepAs } = restoreSchemaNames(LIVE, new Date('2026-11-27T14:35:02Z'));
  let verified: SchemaVerification;

  /** `rows/checksum` per table of a schema. */
  async function checksums(schema: string): Promise<Record<string, string>> {
    const { tables } = await tableFacts(conn, schema, 'mariadb');
    return Object.fromEntries(tables.map((t) => [t.name, `${t.rows}/${t.checksum}`]));
  }
  async function names(sql: string, params: unknown[]): Promise<string[]> {
    const [rows] = await conn.query<RowDataPacket[]>(sql, params);
    return rows.map((r) => String(Object.values(r)[0]));
  }
  const schemaExists = async (schema: string) =>
    (await names('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [schema])).length === 1;
  const triggersOf = (schema: string) =>
    names('SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1', [schema]);
  const viewsOf = (schema: string) => names('SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY 1', [schema]);
  const routinesOf = (schema: string) =>
    names("SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1", [schema]);
  const factsOf = (f: PhpipamDumpFacts) => Object.fromEntries(f.tables.map((t) => [t.name, `${t.rows}/${t.checksum}`]));

  /** Dumps the live schema with the backup's command (optionally with extra options) into plain text. */
  async function dumpLive(extra: string[] = []): Promise<Buffer> {
    const optionDir = await mkdtemp(join(workDir, 'dump-'));
    try {
      const optionFile = await writeClientOptionFile(optionDir, { password });
      const server = await preflight(app);
      const tool = await readDumpTool('mariadb-dump');
      const command = buildDumpCommand({ tool, server, host: cfg.host, port: cfg.port, user: cfg.user, database: LIVE, optionFile });
      command.argv.splice(command.argv.length - 1, 0, ...extra);
      dumpCommand = command;
      const gz: Buffer[] = [];
      const run = await runDump({
        command,
        sink: new Writable({
          write(c: Buffer, _e, done) {
            gz.push(c);
            done();
          },
        }),
      });
      expect(run.exit.code).toBe(0);
      expect(run.completed).toBe(true);
      return gunzipSync(Buffer.concat(gz));
    } finally {
      await rm(optionDir, { recursive: true, force: true });
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nnoe-phpipam-restore-'));
    workDir = join(dir, 'work');
    await mkdir(workDir);
    mariadb = await startMariadb({ dir: join(dir, 'mariadb') });
    password = await readFile(mariadb.phpipam.passwordFile, 'utf8');
    // The restore runs as phpIPAM's own user; it needs its schemas beside the live one.
    const root = await connectAsRoot(mariadb.layout);
    await root.query('GRANT ALL PRIVILEGES ON `phpipam\\_%`.* TO ?@?', [mariadb.phpipam.user, '%']);
    await root.end();
    cfg = PhpipamSchema.parse({
      host: mariadb.phpipam.host,
      port: mariadb.phpipam.port,
      database: LIVE,
      user: mariadb.phpipam.user,
      password: { file: mariadb.phpipam.passwordFile },
    });
    app = await connectPhpipam(cfg, password);
    conn = await connectPhpipam(cfg, password);
    await loadPhpipamFixture(app, { ipaddresses: 3000 });

    const server = await preflight(app);
    const snapshot = await tableFacts(app, LIVE, server.flavour);
    dump = await dumpLive();
    facts = {
      flavour: server.flavour,
      version: server.version,
      database: LIVE,
      dumpTool: 'mariadb-dump',
      dumpCommand: [dumpCommand.binary, ...dumpCommand.argv],
      binlog: null,
      tables: snapshot.tables,
      tablesMatchDump: null,
    };
  }, 300_000);

  afterAll(async () => {
    await app?.end().catch(() => undefined);
    await conn?.end().catch(() => undefined);
    await mariadb?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it('our dump names no database, so the guard passes it through byte for byte', async () => {
    const text = dump.toString('utf8');
    expect(dumpCommand.argv).not.toContain('--databases');
    expect(text).not.toMatch(/^(?:\/\*!\d+ )?(?:USE|CREATE DATABASE|DROP DATABASE|ALTER DATABASE)\b/im);
    expect(text).toMatch(/TRIGGER ipaddresses_after_insert AFTER INSERT ON ipaddresses/); // unqualified
    const { out, neutralised } = await guard(dump, staging, 4096);
    expect(neutralised).toEqual([]);
    expect(out).toBe(text);
  });

  it('loads the dump into a new staging schema with its trigger, function and event; the password is never in argv or environment', async () => {
    const liveBefore = await checksums(LIVE);
    const feed = new PassThrough();
    const loading = loadDumpIntoSchema(cfg, password, { dump: feed, schema: staging, workDir });
    loading.catch(() => undefined);
    const half = dump.indexOf('\n', dump.length >> 1) + 1;
    feed.write(dump.subarray(0, half));

    // While the client runs: its argv and environment, and the option file it reads.
    let clients: Awaited<ReturnType<typeof processesWith>> = [];
    await waitUntil(async () => (clients = await processesWith(`--database=${staging}`)).length > 0, {
      timeoutMs: 30_000,
      describeFailure: () => `no client process with --database=${staging} appeared`,
    });
    const [client] = clients;
    expect(client!.argv[0]).toMatch(/mariadb$/);
    expect(client!.argv.join(' ')).not.toContain(password);
    expect(client!.environ).not.toContain(password);
    const optionFile = client!.argv[1]!.replace('--defaults-file=', '');
    expect(client!.argv[1]).toMatch(/^--defaults-file=/);
    expect((await stat(optionFile)).mode & 0o777).toBe(0o600);
    expect(optionFile.startsWith(workDir)).toBe(true);

    feed.end(dump.subarray(half));
    const loaded = await loading;
    expect(loaded.schema).toBe(staging);
    expect(loaded.bytes).toBe(dump.length);
    expect(loaded.neutralised).toEqual([]);
    expect(loaded.tables).toEqual([...PHPIPAM_TABLES].sort());
    expect(loaded.triggers).toEqual([FIXTURE_TRIGGER]);
    expect(loaded.routines).toEqual([`FUNCTION ${FIXTURE_FUNCTION}`]);
    expect(loaded.events).toEqual([FIXTURE_EVENT]);
    expect(loaded.collation).toBe('utf8mb4_general_ci');
    expect(loaded.clientCommand.join(' ')).not.toContain(password);
    expect(loaded.clientCommand).toContain(`--database=${staging}`);

    // The trigger sits on the staging table; the live schema still has exactly its own, and its data.
    const [trigger] = await conn.query<RowDataPacket[]>(
      'SELECT TRIGGER_SCHEMA AS s, EVENT_OBJECT_SCHEMA AS t FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = ? ORDER BY 1',
      [FIXTURE_TRIGGER],
    );
    expect(trigger.map((r) => [r.s, r.t])).toEqual([
      [LIVE, LIVE],
      [staging, staging],
    ]);
    expect(await checksums(LIVE)).toEqual(liveBefore);
    // The option file went with the client.
    expect(await readdir(workDir)).toEqual([]);
    expect(await processesWith(`--database=${staging}`)).toEqual([]);
  });

  it('the staging schema matches every recorded row count and CHECKSUM TABLE', async () => {
    verified = await verifySchemaAgainstFacts(conn, staging, facts);
    expect(verified.mismatches).toEqual([]);
    expect(verified.ok).toBe(true);
    expect(verified.tables.map((t) => [t.name, t.rows, t.checksum])).toEqual(facts.tables.map((t) => [t.name, t.rows, t.checksum]));
    expect(facts.tables.find((t) => t.name === 'ipaddresses')!.rows).toBe(3000);
  });

  it('refuses to load into a schema that exists, and leaves that schema alone', async () => {
    const failure = await failureOf(loadDumpIntoSchema(cfg, password, { dump: Readable.from([dump]), schema: staging, workDir }));
    expect(failure.type).toBe(FailureType.RestoreSchemaExists);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(staging);
    expect((await verifySchemaAgainstFacts(conn, staging, facts)).ok).toBe(true);
  });

  it('a tampered dump: verification names the table, the swap refuses, the live schema is untouched', async () => {
    const schema = 'phpipam_restore_tampered';
    const original = "'host-2999.example.net'";
    expect(dump.toString('utf8')).toContain(original);
    const tampered = Buffer.from(dump.toString('utf8').replace(original, "'host-2999.example.org'"));
    await loadDumpIntoSchema(cfg, password, { dump: Readable.from([tampered]), schema, workDir });
    const liveBefore = await checksums(LIVE);

    const verification = await verifySchemaAgainstFacts(conn, schema, facts);
    expect(verification.ok).toBe(false);
    const expected = facts.tables.find((t) => t.name === 'ipaddresses')!;
    expect(verification.mismatches).toEqual([
      { table: 'ipaddresses', what: 'checksum', expected: expected.checksum, actual: expect.any(String) },
    ]);
    expect(verification.mismatches[0]!.actual).not.toBe(expected.checksum);

    const failure = await failureOf(
      swapSchemaIn(conn, { live: LIVE, staging: schema, keepAs: 'phpipam_pre_restore_tampered', verification }),
    );
    expect(failure.type).toBe(FailureType.RestoreVerificationFailed);
    expect(failure.message).toMatch(/ipaddresses: checksum expected \d+, got \d+/);
    expect(await checksums(LIVE)).toEqual(liveBefore);
    expect(await schemaExists('phpipam_pre_restore_tampered')).toBe(false);

    // A verification of another schema does not open the door either.
    const other = await failureOf(
      swapSchemaIn(conn, { live: LIVE, staging: schema, keepAs: 'phpipam_pre_restore_tampered', verification: verified }),
    );
    expect(other.type).toBe(FailureType.SchemaSwapRefused);
    expect(await checksums(LIVE)).toEqual(liveBefore);

    await expect(dropStagingSchema(conn, LIVE, LIVE)).rejects.toThrow(/it is the live schema/);
    await dropStagingSchema(conn, schema, LIVE);
    expect(await schemaExists(schema)).toBe(false);
  });

  it('a dump made with --databases --add-drop-database stays inside the staging schema', async () => {
    const foreign = await dumpLive(['--databases', '--add-drop-database']);
    const text = foreign.toString('utf8');
    expect(text).toMatch(/^\/\*!40000 DROP DATABASE IF EXISTS `phpipam`\*\/;$/m);
    expect(text).toMatch(/^USE `phpipam`;$/m);
    const liveBefore = await checksums(LIVE);
    const liveTriggers = await triggersOf(LIVE);

    const schema = 'phpipam_restore_databases';
    const loaded = await loadDumpIntoSchema(cfg, password, { dump: Readable.from([foreign]), schema, workDir });
    expect(loaded.neutralised.map((n) => `${n.action} ${n.statement}`)).toEqual([
      'removed DROP DATABASE',
      'removed CREATE DATABASE',
      'removed USE',
    ]);
    expect(loaded.triggers).toEqual([FIXTURE_TRIGGER]);
    expect((await verifySchemaAgainstFacts(conn, schema, facts)).ok).toBe(true);
    expect(await checksums(LIVE)).toEqual(liveBefore);
    expect(await triggersOf(LIVE)).toEqual(liveTriggers);
    await dropStagingSchema(conn, schema, LIVE);
  });

  it('a failing client: exit code and stderr in the message, the password redacted, the half-loaded schema dropped', async () => {
    const schema = 'phpipam_restore_broken';
    const literal = password.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
    const script = `CREATE TABLE a (id INT);\nSIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${literal}';\n-- Dump completed on 2026-11-27 14:35:02\n`;
    const failure = await failureOf(loadDumpIntoSchema(cfg, password, { dump: Readable.from([Buffer.from(script)]), schema, workDir }));
    expect(failure.type).toBe(FailureType.DumpLoadFailed);
    expect(failure.message).toMatch(
      /^mariadb could not load the dump into phpipam_restore_broken@127\.0\.0\.1:\d+ \(exit code 1\): ERROR 1644 \(45000\) at line 2: \*\*\*$/,
    );
    expect(failure.message).not.toContain(password);
    expect(failure.message).not.toContain(literal); // the client does not echo the statement (it would carry the secret escaped)
    expect(await schemaExists(schema)).toBe(false);

    // A truncated dump (no trailer) is refused too, even though every statement in it succeeded.
    const truncated = dump.subarray(0, dump.indexOf('\n', dump.length >> 1) + 1);
    const cut = await failureOf(loadDumpIntoSchema(cfg, password, { dump: Readable.from([truncated]), schema, workDir }));
    expect(cut.type).toBe(FailureType.DumpLoadFailed);
    expect(cut.message).toMatch(
      /the dump ends at line \d+ without its "-- Dump completed" trailer: it is truncated; nothing of it is kept/,
    );
    expect(await schemaExists(schema)).toBe(false);
    expect(await readdir(workDir)).toEqual([]);
  });

  it('cancellation kills the client and drops the staging schema; wrong credentials are a typed failure', async () => {
    const schema = 'phpipam_restore_cancelled';
    const feed = new PassThrough();
    const abort = new AbortController();
    const loading = loadDumpIntoSchema(cfg, password, { dump: feed, schema, workDir, signal: abort.signal });
    loading.catch(() => undefined);
    feed.write(dump.subarray(0, dump.indexOf('\n', dump.length >> 1) + 1));
    await waitUntil(async () => (await processesWith(`--database=${schema}`)).length > 0, {
      timeoutMs: 30_000,
      describeFailure: () => `no client process with --database=${schema} appeared`,
    });
    abort.abort();
    await expect(loading).rejects.toMatchObject({ name: 'AbortError' });
    expect(await processesWith(`--database=${schema}`)).toEqual([]);
    expect(await schemaExists(schema)).toBe(false);
    expect(await readdir(workDir)).toEqual([]);

    const wrong = `${password}-wrong`;
    const denied = await failureOf(loadDumpIntoSchema(cfg, wrong, { dump: Readable.from([dump]), schema, workDir }));
    expect(denied.type).toBe('DatabaseAuthFailed');
    expect(denied.message).toContain(`user ${cfg.user}`);
    expect(denied.message).not.toContain(password);
    expect(await schemaExists(schema)).toBe(false);
  });

  describe('swap', () => {
    let liveBefore: Record<string, string>;

    beforeAll(async () => {
      // phpIPAM kept working after the backup: live now differs from the backup in rows, tables and routines.
      await app.query("INSERT INTO ipaddresses (subnetId, ip_addr, hostname) VALUES (1, '167772999', 'after-backup.example.net')");
      await app.query('DELETE FROM logs WHERE id <= 5');
      await app.query('CREATE TABLE live_only (id INT PRIMARY KEY) ENGINE=InnoDB');
      await app.query('INSERT INTO live_only VALUES (1), (2)');
      await app.query('CREATE PROCEDURE live_only_proc() SELECT 1');
      // Views on both sides (error 1450 if renamed across schemas): an old one in live; in the backup one
      // with SQL SECURITY INVOKER and a view on it (created in dependency order after the swap).
      await app.query('CREATE VIEW v_subnets AS SELECT id, subnet FROM subnets');
      await conn.query(
        `CREATE SQL SECURITY INVOKER VIEW \`${staging}\`.v_subnets AS SELECT id, subnet, description FROM \`${staging}\`.subnets`,
      );
      await conn.query(`CREATE VIEW \`${staging}\`.a_subnet_ids AS SELECT id FROM \`${staging}\`.v_subnets`);
      liveBefore = await checksums(LIVE);
      expect(liveBefore).not.toEqual(factsOf(facts));
    });

    it('a failure after the RENAME is undone: live, staging and their triggers as before, no keep schema', async () => {
      const steps: string[] = [];
      const failure = await failureOf(
        swapSchemaIn(conn, {
          live: LIVE,
          staging,
          keepAs,
          verification: verified,
          onStep: (step) => {
            steps.push(step);
            if (step === 'create live triggers') throw new Error('injected failure after the rename');
          },
        }),
      );
      expect(steps).toEqual([
        'check schemas',
        'create keep schema',
        'drop staging triggers',
        'drop live triggers',
        'rename tables',
        'create live triggers',
      ]);
      expect(failure.type).toBe(FailureType.SchemaSwapFailed);
      expect(failure.message).toMatch(/failed at "create live triggers" \(injected failure after the rename\); undone/);
      expect(await checksums(LIVE)).toEqual(liveBefore);
      expect(await triggersOf(LIVE)).toEqual([FIXTURE_TRIGGER]);
      expect(await routinesOf(LIVE)).toEqual([`FUNCTION ${FIXTURE_FUNCTION}`, 'PROCEDURE live_only_proc']);
      expect(await checksums(staging)).toEqual(factsOf(facts));
      expect(await triggersOf(staging)).toEqual([FIXTURE_TRIGGER]);
      expect(await viewsOf(LIVE)).toEqual(['v_subnets']);
      expect(await viewsOf(staging)).toEqual(['a_subnet_ids', 'v_subnets']);
      expect(await schemaExists(keepAs)).toBe(false);
    });

    it('refuses an object a swap cannot move (a SEQUENCE), before changing anything', async () => {
      await app.query('CREATE SEQUENCE s_ids');
      try {
        const failure = await failureOf(swapSchemaIn(conn, { live: LIVE, staging, keepAs, verification: verified }));
        expect(failure.type).toBe(FailureType.SchemaSwapRefused);
        expect(failure.message).toContain('phpipam.s_ids is a SEQUENCE, which a swap cannot move');
        expect(failure.message).toContain('nothing was changed');
        const preflight = await failureOf(requireSwappableLive(conn, LIVE));
        expect(preflight.message).toBe('a swap into phpipam would fail: phpipam.s_ids is a SEQUENCE, which a swap cannot move');
        expect(await schemaExists(keepAs)).toBe(false);
        expect(await triggersOf(staging)).toEqual([FIXTURE_TRIGGER]);
      } finally {
        await app.query('DROP SEQUENCE s_ids');
      }
      await requireSwappableLive(conn, LIVE); // views are no reason to refuse
    });

    it('swaps the backup in: live equals the facts, the old tables and routines are kept, trigger and function work', async () => {
      const result = await swapSchemaIn(conn, { live: LIVE, staging, keepAs, verification: verified });

      expect(result.tables.swapped).toEqual(facts.tables.map((t) => ({ name: t.name, rows: t.rows })));
      expect(result.tables.keptOnly).toEqual(['live_only']);
      expect(result.tables.added).toEqual([]);
      expect(result.triggers).toEqual({ live: [FIXTURE_TRIGGER], kept: [FIXTURE_TRIGGER] });
      expect(result.routines).toEqual({
        live: [`FUNCTION ${FIXTURE_FUNCTION}`],
        kept: [`FUNCTION ${FIXTURE_FUNCTION}`, 'PROCEDURE live_only_proc'],
      });
      expect(result.events).toEqual({ live: [FIXTURE_EVENT], kept: [FIXTURE_EVENT] });
      expect(result.views).toEqual({ live: ['a_subnet_ids', 'v_subnets'], kept: ['v_subnets'] });
      // Recreated on the tables of the schema they now live in, definer and SQL SECURITY as they were.
      const [views] = await conn.query<RowDataPacket[]>(
        'SELECT TABLE_SCHEMA AS s, TABLE_NAME AS v, SECURITY_TYPE AS security, DEFINER AS definer, VIEW_DEFINITION AS def FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN (?, ?) ORDER BY 1, 2',
        [LIVE, keepAs],
      );
      expect(views.map((v) => [v.s, v.v, v.security, v.definer])).toEqual([
        [LIVE, 'a_subnet_ids', 'DEFINER', `${cfg.user}@%`],
        [LIVE, 'v_subnets', 'INVOKER', `${cfg.user}@%`],
        [keepAs, 'v_subnets', 'DEFINER', `${cfg.user}@%`],
      ]);
      for (const v of views) expect(String(v.def)).not.toContain(staging);
      const [counted] = await app.query<RowDataPacket[]>(
        'SELECT (SELECT COUNT(*) FROM a_subnet_ids) AS viewed, (SELECT COUNT(*) FROM subnets) AS base',
      );
      expect(Number(counted[0]!.viewed)).toBe(Number(counted[0]!.base));
      expect(result.stagingDropped).toBe(true);
      expect(result.warnings).toEqual([]);
      expect(result.timings.triggerWindowMs).toBeGreaterThanOrEqual(result.timings.renameMs);
      expect(result.timings.liveWindowMs).toBeGreaterThanOrEqual(result.timings.triggerWindowMs);

      // Live holds exactly the backup; the kept schema exactly what live held before.
      expect(await checksums(LIVE)).toEqual(factsOf(facts));
      expect(await checksums(keepAs)).toEqual(liveBefore);
      expect(await schemaExists(staging)).toBe(false);
      expect(await routinesOf(LIVE)).toEqual([`FUNCTION ${FIXTURE_FUNCTION}`]);
      expect(await routinesOf(keepAs)).toEqual([`FUNCTION ${FIXTURE_FUNCTION}`, 'PROCEDURE live_only_proc']);
      expect(await triggersOf(LIVE)).toEqual([FIXTURE_TRIGGER]);
      expect(await triggersOf(keepAs)).toEqual([FIXTURE_TRIGGER]);
      expect(
        await names('SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?', [keepAs, FIXTURE_EVENT]),
      ).toEqual(['DISABLED']);
      expect(await names('SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?', [LIVE])).toEqual([FIXTURE_EVENT]);
      // Foreign keys reference tables of their own schema.
      const [fks] = await conn.query<RowDataPacket[]>(
        'SELECT DISTINCT CONSTRAINT_SCHEMA AS s, UNIQUE_CONSTRAINT_SCHEMA AS r FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN (?, ?) ORDER BY 1',
        [LIVE, keepAs],
      );
      expect(fks.map((r) => [r.s, r.r])).toEqual([
        [LIVE, LIVE],
        [keepAs, keepAs],
      ]);

      // phpIPAM's session carries on: the restored trigger counts a new address, the function sees it.
      const used = async () => Number((await app.query<RowDataPacket[]>('SELECT usedCount AS n FROM subnets WHERE id = 1'))[0][0]!.n);
      const before = await used();
      await app.query("INSERT INTO ipaddresses (subnetId, ip_addr, hostname) VALUES (1, '167773000', 'after-restore.example.net')");
      expect(await used()).toBe(before + 1);
      const [percent] = await app.query<RowDataPacket[]>(`SELECT ${FIXTURE_FUNCTION}(1) AS p`);
      expect(Number(percent[0]!.p)).toBeCloseTo(Math.round((10000 * (before + 1)) / 254) / 100, 2); // a /24: 254 hosts
    });
  });
});
