/**
 * The phpIPAM database backup: pure parts (dump command per flavour, dump-text parsing, option-file
 * escaping, failure mapping), then the real thing: the activity run through MockActivityEnvironment
 * against a private MariaDB (binlog on) loaded with the phpIPAM-like fixture, writing to a local
 * store and the world's S3 (moto). The dump restored into a scratch schema must reproduce every
 * recorded row count and CHECKSUM TABLE value.
 *
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { withErrorSeam } from '../src/activities/error-seam';
import {
  createPhpipamBackupActivities,
  phpipamDumpFileName,
  type DumpPhpipamInput,
  type PhpipamBackupDeps,
  type PhpipamDumpOutcome,
} from '../src/activities/phpipam-backup';
import { loadConfig } from '../src/config/load';
import type { EncryptionConfig } from '../src/config/schema';
import { createDecryptStream, createEncryptStream, readDecryptionIdentity } from '../src/crypto';
import {
  binlogOptions,
  buildDumpCommand,
  clientOptionFileText,
  databaseFailure,
  dumpFailure,
  DumpTextWatcher,
  escapeOptionValue,
  hasDumpTrailer,
  parseBinlogPosition,
  parseDumpToolVersion,
  PhpipamSchema,
  tableFacts,
  toolMismatch,
  type PhpipamConfig,
} from '../src/phpipam';
import { connectAsRoot, runMariadbClient, startMariadb, type MariadbInstance } from '../src/sandbox/mariadb';
import {
  FIXTURE_EVENT,
  FIXTURE_FUNCTION,
  FIXTURE_TRIGGER,
  loadPhpipamFixture,
  PHPIPAM_TABLES,
  type FixtureCounts,
} from '../src/sandbox/phpipam-fixture';
import { isProcessAlive } from '../src/sandbox/supervisor';
import { LocalStore, openStore, type BackupStore } from '../src/storage';

const MARIADB_DUMP = '/usr/bin/mariadb-dump';
const cfgFor = (over: Partial<PhpipamConfig> = {}): PhpipamConfig =>
  PhpipamSchema.parse({ host: '127.0.0.1', port: 3306, user: 'phpipam', password: { file: '/nonexistent' }, ...over });

// ====================================================================== pure parts

describe('phpIPAM dump command', () => {
  const mariadbTool = { path: 'mariadb-dump', flavour: 'mariadb' as const, version: '10.11.19' };
  const base = { host: '10.0.0.5', port: 3306, user: 'phpipam', database: 'phpipam', optionFile: '/work/x/client.cnf' };

  it('MariaDB with binlog on: consistent snapshot, routines/triggers/events, hex blobs, --master-data=2 --gtid', () => {
    const { binary, argv } = buildDumpCommand({ ...base, tool: mariadbTool, server: { binlog: true, gtidMode: true } });
    expect(binary).toBe('mariadb-dump');
    expect(argv[0]).toBe('--defaults-file=/work/x/client.cnf'); // must be first to be honoured
    expect(argv).toEqual(
      expect.arrayContaining([
        '--host=10.0.0.5',
        '--port=3306',
        '--protocol=TCP',
        '--user=phpipam',
        '--single-transaction',
        '--routines',
        '--triggers',
        '--events',
        '--hex-blob',
        '--master-data=2',
        '--gtid',
      ]),
    );
    expect(argv.at(-1)).toBe('phpipam');
    expect(argv).not.toContain('--databases'); // restorable into any schema
    expect(argv.some((a) => /password/i.test(a))).toBe(false);
  });

  it('MySQL: --source-data=2 from client 8.0.26, --master-data=2 before; GTIDs as a comment', () => {
    const mysql8 = (version: string) => ({ path: 'mysqldump', flavour: 'mysql' as const, version });
    expect(binlogOptions(mysql8('8.0.36'), { binlog: true, gtidMode: true })).toEqual(['--source-data=2', '--set-gtid-purged=COMMENTED']);
    expect(binlogOptions(mysql8('8.4.2'), { binlog: true, gtidMode: false })).toEqual(['--source-data=2']);
    expect(binlogOptions(mysql8('8.0.25'), { binlog: true, gtidMode: true })).toEqual(['--master-data=2', '--set-gtid-purged=COMMENTED']);
    expect(binlogOptions(mysql8('5.7.44'), { binlog: true, gtidMode: true })).toEqual(['--master-data=2', '--set-gtid-purged=OFF']);
    const { argv } = buildDumpCommand({ ...base, tool: mysql8('8.0.36'), server: { binlog: true, gtidMode: false } });
    expect(argv).toContain('--source-data=2');
    expect(argv).not.toContain('--gtid');
  });

  it('binlog off: no position options for either flavour', () => {
    expect(binlogOptions(mariadbTool, { binlog: false, gtidMode: false })).toEqual([]);
    expect(binlogOptions({ flavour: 'mysql', version: '8.0.36' }, { binlog: false, gtidMode: false })).toEqual([]);
  });

  it('reads the dump tool flavour and version from --version', () => {
    expect(parseDumpToolVersion('mariadb-dump', 'mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)')).toEqual(
      { path: 'mariadb-dump', flavour: 'mariadb', version: '10.11.19' },
    );
    expect(parseDumpToolVersion('m', 'mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)').version).toBe('11.4.2');
    expect(parseDumpToolVersion('m', 'mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)')).toEqual({
      path: 'm',
      flavour: 'mysql',
      version: '8.0.36',
    });
    expect(parseDumpToolVersion('m', 'mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)').version).toBe('5.7.44');
    expect(() => parseDumpToolVersion('m', 'something else')).toThrow(/cannot tell/);
  });

  it("refuses a dump tool of the other flavour (Debian's mysqldump is MariaDB's)", () => {
    expect(toolMismatch(mariadbTool, { flavour: 'mariadb', version: '10.11.19' })).toBeUndefined();
    expect(toolMismatch({ ...mariadbTool, path: '/usr/bin/mysqldump' }, { flavour: 'mysql', version: '8.0.36' })).toMatch(
      /server is MySQL 8\.0\.36 but \/usr\/bin\/mysqldump is MariaDB's dump program.*phpipam\.dumpBinary/,
    );
  });
});

describe('phpIPAM dump text', () => {
  const mariadbHead = [
    '/*M!999999\\- enable the sandbox mode */ ',
    '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)',
    '-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;',
    '',
    "-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=1172;",
    '',
    'INSERT INTO `t` VALUES',
    "(1,'-- CHANGE MASTER TO MASTER_LOG_FILE=\\'evil\\', MASTER_LOG_POS=1;\\n');",
  ].join('\n');
  const mariadbTail =
    "\n-- SET GLOBAL gtid_slave_pos='0-1-5';\n/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2026-11-27 15:42:27\n";

  it('finds the MariaDB position in the head and the deferred GTID in the tail', () => {
    expect(parseBinlogPosition(mariadbHead, mariadbTail)).toEqual({ file: 'mariadb-bin.000001', position: 1172, gtid: '0-1-5' });
  });

  it('finds the MySQL 8.0.26+ position and the COMMENTED GTID set', () => {
    const head = [
      '-- MySQL dump 10.13  Distrib 8.4.0, for Linux (x86_64)',
      "-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;",
      '-- GTID state at the beginning of the backup',
      "/* SET @@GLOBAL.GTID_PURGED='+3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9';*/",
    ].join('\n');
    expect(parseBinlogPosition(head)).toEqual({
      file: 'binlog.000002',
      position: 157,
      gtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4e11fa47-71ca-11e1-9e33-c80aa9429562:1-9',
    });
  });

  it('no position comment, no position (binlog off); table data never counts', () => {
    expect(parseBinlogPosition("-- MariaDB dump\nINSERT INTO t VALUES ('\\n-- CHANGE MASTER TO MASTER_LOG_FILE=x');")).toBeNull();
  });

  it('the trailer must be the last line', () => {
    expect(hasDumpTrailer(mariadbTail)).toBe(true);
    expect(hasDumpTrailer('-- Dump completed\n')).toBe(true);
    expect(hasDumpTrailer('-- Dump completed on 2026\nINSERT INTO t VALUES (1);\n')).toBe(false);
    expect(hasDumpTrailer('INSERT INTO t VALUES (1),\n(2')).toBe(false);
  });

  it('the watcher sees comments split across chunks and keeps only head and tail', async () => {
    const body = `${mariadbHead}\n${'INSERT INTO `t` VALUES (1);\n'.repeat(20_000)}${mariadbTail}`;
    const watcher = new DumpTextWatcher();
    const chunks = Buffer.from(body).reduce<Buffer[]>(
      (out, _b, i, all) => (i % 7_001 === 0 ? [...out, all.subarray(i, i + 7_001)] : out),
      [],
    );
    let passed = 0;
    await pipeline(
      Readable.from(chunks),
      watcher,
      new PassThrough().on('data', (c: Buffer) => (passed += c.length)),
    );
    expect(passed).toBe(Buffer.byteLength(body));
    expect(watcher.result()).toEqual({ binlog: { file: 'mariadb-bin.000001', position: 1172, gtid: '0-1-5' }, completed: true });
  });
});

describe('phpIPAM option file and failures', () => {
  it('escapes quotes, backslashes and control characters', () => {
    expect(escapeOptionValue('a"b\\c#d\'e f;g\tx\n')).toBe('"a\\"b\\\\c#d\'e f;g\\tx\\n"');
    expect(clientOptionFileText({ password: 'p"w' })).toBe('# written by nnoe-dr\n[client]\npassword="p\\"w"\n');
  });

  const cfg = cfgFor({ port: 3307 });
  it('maps dump errors: credentials, privileges, unavailable, anything else; never echoes the password', () => {
    const auth = dumpFailure(
      cfg,
      'mariadb-dump',
      'exit code 2',
      `mariadb-dump: Got error: 1045: "Access denied for user 'phpipam'@'10.0.0.9' (using password: YES) s3cret" when trying to connect`,
      's3cret',
    );
    expect(auth).toMatchObject({ type: 'DatabaseAuthFailed', nonRetryable: true });
    expect(auth.message).toContain('phpipam@127.0.0.1:3307 rejected the credentials of user phpipam');
    expect(auth.message).not.toContain('s3cret');
    expect(
      dumpFailure(
        cfg,
        'd',
        'exit code 2',
        "mariadb-dump: Couldn't execute 'FLUSH TABLES WITH READ LOCK': Access denied; you need (at least one of) the RELOAD privilege(s) for this operation (1227)",
      ),
    ).toMatchObject({ type: 'DatabasePrivilegeMissing', nonRetryable: true });
    expect(
      dumpFailure(
        cfg,
        'd',
        'exit code 2',
        'mariadb-dump: Error 2013: Lost connection to server during query when dumping table `ipaddresses` at row: 1234',
      ),
    ).toMatchObject({ type: 'DatabaseUnavailable', nonRetryable: false });
    expect(dumpFailure(cfg, 'd', 'killed by SIGKILL', '')).toMatchObject({ type: 'DatabaseDumpFailed', nonRetryable: false });
  });

  it('maps mysql2 errors', () => {
    expect(databaseFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3307'), { code: 'ECONNREFUSED' }), cfg)).toMatchObject({
      type: 'DatabaseUnavailable',
      nonRetryable: false,
      message: expect.stringContaining('phpipam@127.0.0.1:3307 is unavailable (ECONNREFUSED)'),
    });
    expect(databaseFailure({ errno: 1049, code: 'ER_BAD_DB_ERROR', sqlMessage: "Unknown database 'phpipam'" }, cfg)).toMatchObject({
      type: 'ConfigError',
      nonRetryable: true,
    });
  });
});

// ====================================================================== real MariaDB

const FIXTURE_ROWS = 3000;

interface Rig {
  dir: string;
  db: MariadbInstance;
  counts: FixtureCounts;
  cfg: PhpipamConfig;
  password: string;
  stores: Record<string, BackupStore>;
  setIds: string[];
  /** The test world's age encryption (recipients + identity), if its config has one. */
  encryption?: EncryptionConfig;
}

/** The activities over the rig's database, with config overrides (wrong password, a wrapper dump binary...), behind the worker's error seam. */
function activities(rig: Rig, over: Partial<PhpipamConfig> = {}, deps: Partial<PhpipamBackupDeps> = {}) {
  return withErrorSeam(
    createPhpipamBackupActivities({
      phpipam: () => ({ ...rig.cfg, ...over }),
      stores: async (targets) => targets.map((name) => rig.stores[name]!),
      workDir: join(rig.dir, 'work'),
      ...deps,
    }),
  );
}

/** Runs real activity code in a mock activity context (heartbeats, cancellation signal). */
function inActivity<A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  // The SDK logs every failed activity with its full info; the failures here are expected.
  return new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(fn, ...args) as Promise<R>;
}

function newSetId(rig: Rig): string {
  const id = `phpipam-test-${randomBytes(4).toString('hex')}`;
  rig.setIds.push(id);
  return id;
}

async function runDump(
  rig: Rig,
  over: Partial<PhpipamConfig> = {},
  targets = ['local', 's3'],
  deps: Partial<PhpipamBackupDeps> = {},
): Promise<{ input: DumpPhpipamInput; outcome: PhpipamDumpOutcome }> {
  const input = { cluster: 'nnoe-local', setId: newSetId(rig), fileName: phpipamDumpFileName(new Date()), targets };
  const outcome = await inActivity(activities(rig, over, deps).dumpPhpipamToStores, input);
  return { input, outcome };
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

async function sha256Of(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Nothing of this set in any store, and no half-written temp file in the local one. */
async function nothingStored(rig: Rig, setId: string): Promise<void> {
  for (const store of Object.values(rig.stores)) expect(await store.list(`${setId}/`)).toEqual([]);
  const local = await readdir(join(rig.dir, 'store'), { recursive: true }).catch(() => [] as string[]);
  expect(local.filter((f) => f.includes('.partial-'))).toEqual([]);
}

/** A dump program that records its own argv, environment and option-file mode, then runs mariadb-dump (optionally mangled). */
async function wrapperDump(rig: Rig, name: string, pipeTail = ''): Promise<{ path: string; captureDir: string }> {
  const captureDir = join(rig.dir, `capture-${name}`);
  await mkdir(captureDir, { recursive: true });
  const path = join(rig.dir, `${name}.sh`);
  await writeFile(
    path,
    [
      '#!/bin/sh',
      `case "$1" in --version) exec ${MARIADB_DUMP} "$@";; esac`,
      `cat /proc/$$/cmdline > '${captureDir}/cmdline'`,
      `cat /proc/$$/environ > '${captureDir}/environ'`,
      `stat -c %a "\${1#--defaults-file=}" > '${captureDir}/option-file-mode'`,
      `printf '%s' "\${1#--defaults-file=}" > '${captureDir}/option-file-path'`,
      pipeTail ? `${MARIADB_DUMP} "$@" ${pipeTail}` : `exec ${MARIADB_DUMP} "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(path, 0o755);
  return { path, captureDir };
}

/** The content of a file once it exists and is not empty (written by a wrapper script). */
async function pollFile(path: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.trim()) return text.trim();
    if (Date.now() > deadline) throw new Error(`${path} was not written within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rowsOf(conn: Connection, sql: string, values?: unknown[]): Promise<RowDataPacket[]> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, values);
  return rows;
}

describe('phpIPAM database backup on a real MariaDB', () => {
  let rig: Rig;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-phpipam-'));
    const db = await startMariadb({ dir: join(dir, 'mariadb') });
    const password = await readFile(db.phpipam.passwordFile, 'utf8');
    const conn = await mysql.createConnection({
      host: db.phpipam.host,
      port: db.port,
      user: db.phpipam.user,
      password,
      database: db.phpipam.database,
    });
    const counts = await loadPhpipamFixture(conn, { ipaddresses: FIXTURE_ROWS }).finally(() => conn.end());
    const config = loadConfig(inject('world').configPath);
    rig = {
      dir,
      db,
      counts,
      password,
      cfg: PhpipamSchema.parse({
        host: db.phpipam.host,
        port: db.port,
        database: db.phpipam.database,
        user: db.phpipam.user,
        password: { file: db.phpipam.passwordFile },
      }),
      stores: { local: new LocalStore('local', join(dir, 'store')), s3: await openStore(config.storage.find((t) => t.name === 's3')!) },
      setIds: [],
      encryption: config.encryption,
    };
  });

  afterAll(async () => {
    if (!rig) return;
    await rig.db.stop();
    // The S3 bucket is shared with the other test files: take back everything this file stored.
    for (const setId of rig.setIds) for (const key of await rig.stores.s3!.list(`${setId}/`)) await rig.stores.s3!.delete(key);
    if (!process.env.NNOE_KEEP_TEST_WORLD) await rm(rig.dir, { recursive: true, force: true });
  });

  it('the preflight activity reports the server, its binlog and the dump tool', async () => {
    const check = await inActivity(activities(rig).checkPhpipamDatabase, { cluster: 'nnoe-local' });
    expect(check).toMatchObject({
      database: `phpipam@127.0.0.1:${rig.db.port}`,
      server: { flavour: 'mariadb', binlog: true, gtidMode: true },
    });
    expect(check.dumpTool).toMatch(/^mariadb-dump 10\.\d+\.\d+$/);
  });

  it('dumps to local and S3; restored into a scratch schema it reproduces every row count and CHECKSUM TABLE', async () => {
    const root = await connectAsRoot(rig.db.layout);
    try {
      const [master] = await rowsOf(root, 'SHOW MASTER STATUS');
      const { outcome } = await runDump(rig);
      const { artefact, facts } = outcome;

      // Facts: flavour, the binlog position of the dump's snapshot (nothing was written since SHOW MASTER STATUS).
      expect(facts).toMatchObject({ flavour: 'mariadb', database: 'phpipam', tablesMatchDump: true });
      expect(facts.binlog).toEqual({ file: master!.File, position: Number(master!.Position), gtid: expect.stringMatching(/^0-1-\d+$/) });
      expect(facts.tables.map((t) => t.name)).toEqual([...PHPIPAM_TABLES].sort());
      for (const table of facts.tables) {
        expect(table.rows).toBe(rig.counts[table.name as keyof FixtureCounts]);
        expect(table).toMatchObject({ engine: 'InnoDB', checksum: expect.stringMatching(/^\d+$/) });
      }

      // The artefact: identical copies, sha256 and size of the stored and of the raw bytes.
      expect(artefact.copies.map((c) => c.target)).toEqual(['local', 's3']);
      for (const copy of artefact.copies) expect(copy).toMatchObject({ bytes: artefact.bytes, sha256: artefact.sha256 });
      expect(await sha256Of(await rig.stores.s3!.read(artefact.key))).toBe(artefact.sha256);
      const dumpFile = join(rig.dir, 'restore.sql');
      await pipeline(await rig.stores.local!.read(artefact.key), createGunzip(), createWriteStream(dumpFile));
      expect((await stat(dumpFile)).size).toBe(artefact.raw.bytes);
      expect(await sha256Of(createReadStream(dumpFile))).toBe(artefact.raw.sha256);

      // Restore into a scratch schema with the mariadb client, then compare the facts.
      await root.query('CREATE DATABASE scratch_restore');
      // --comments: the client strips `-- ...` inside routine and trigger bodies by default.
      await runMariadbClient(rig.db.layout, ['--comments', 'scratch_restore'], { stdinFile: dumpFile });
      const restored = await tableFacts(root, 'scratch_restore', 'mariadb');
      expect(restored.tables).toEqual(facts.tables);
      // ...and what is not rows: the trigger, the function (callable) and the event came along.
      const triggers = await rowsOf(
        root,
        'SELECT TRIGGER_SCHEMA AS s, TRIGGER_NAME AS n, ACTION_STATEMENT AS body FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN (?, ?) ORDER BY 1',
        ['phpipam', 'scratch_restore'],
      );
      expect(triggers.map((r) => [r.s, r.n])).toEqual([
        ['phpipam', FIXTURE_TRIGGER],
        ['scratch_restore', FIXTURE_TRIGGER],
      ]);
      expect(triggers[1]!.body).toBe(triggers[0]!.body);
      expect(
        (await rowsOf(root, 'SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?', ['scratch_restore'])).map(
          (r) => r.n,
        ),
      ).toEqual([FIXTURE_EVENT]);
      const routines = await rowsOf(
        root,
        'SELECT ROUTINE_SCHEMA AS s, ROUTINE_DEFINITION AS body FROM information_schema.ROUTINES WHERE ROUTINE_NAME = ? ORDER BY 1',
        [FIXTURE_FUNCTION],
      );
      expect(routines.map((r) => r.s)).toEqual(['phpipam', 'scratch_restore']);
      expect(routines[1]!.body).toBe(routines[0]!.body);
      // The function keeps DEFINER=phpipam (SQL SECURITY DEFINER): in another schema it runs only
      // once its definer may read that schema, as after any restore under a new name.
      await root.query('GRANT SELECT, EXECUTE ON scratch_restore.* TO ?@?', ['phpipam', '%']);
      const [usage] = await rowsOf(
        root,
        `SELECT scratch_restore.${FIXTURE_FUNCTION}(1) AS restored, phpipam.${FIXTURE_FUNCTION}(1) AS original`,
      );
      expect(usage!.restored).toBe(usage!.original);
      const [fks] = await rowsOf(
        root,
        "SELECT COUNT(*) AS n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'scratch_restore'",
      );
      expect(Number(fks!.n)).toBe(6);
    } finally {
      await root.query('DROP DATABASE IF EXISTS scratch_restore');
      await root.query('REVOKE ALL PRIVILEGES ON scratch_restore.* FROM ?@?', ['phpipam', '%']).catch(() => undefined);
      await root.end();
    }
  });

  it('with encryption, the stored artefact is age ciphertext of the gzip that decrypts to the same dump', async () => {
    const encryption = rig.encryption;
    // The suite's config always encrypts (see test/support/global-setup.ts).
    if (!encryption?.identity) throw new Error('the test config has no encryption identity');
    const {
      outcome: { artefact },
    } = await runDump(rig, {}, ['local'], {
      encryption: {
        record: { format: 'age', recipients: encryption.recipients },
        createStream: () => createEncryptStream(encryption.recipients),
      },
    });
    expect(artefact.file).toMatch(/^phpipam-\d{8}-\d{6}\.sql\.gz\.age$/);
    expect(artefact.encryption).toEqual({ format: 'age', recipients: encryption.recipients });
    const stored = await rig.stores.local!.read(artefact.key);
    const plain = new PassThrough();
    const rawSha = sha256Of(plain);
    await pipeline(stored, createDecryptStream(await readDecryptionIdentity(encryption.identity)), createGunzip(), plain);
    expect(await rawSha).toBe(artefact.raw.sha256);
  });

  it('the password is never on the dump command line nor in its environment; the 0600 option file is gone afterwards', async () => {
    const wrapper = await wrapperDump(rig, 'capturing-dump');
    const { outcome } = await runDump(rig, { dumpBinary: wrapper.path }, ['local']);
    const cmdline = await readFile(join(wrapper.captureDir, 'cmdline'), 'utf8');
    const environ = await readFile(join(wrapper.captureDir, 'environ'), 'utf8');
    expect(rig.password).toMatch(/["'\\# ;]/); // the sandbox password is deliberately awkward: escaping was exercised
    expect(cmdline).toContain('--defaults-file=');
    expect(cmdline).toContain('--user=phpipam');
    expect(cmdline).not.toContain(rig.password);
    expect(cmdline.split('\0').filter((arg) => arg.startsWith('--password') || /^-p/.test(arg))).toEqual([]);
    expect(environ).not.toContain(rig.password);
    expect(environ).not.toMatch(/MYSQL_PWD/);
    expect(outcome.facts.dumpCommand.join(' ')).not.toContain(rig.password);
    expect((await readFile(join(wrapper.captureDir, 'option-file-mode'), 'utf8')).trim()).toBe('600');
    expect(existsSync(await readFile(join(wrapper.captureDir, 'option-file-path'), 'utf8'))).toBe(false);
    expect(await readdir(join(rig.dir, 'work'))).toEqual([]);
  });

  it('a wrong password fails non-retryably, naming database, host and user but no password; nothing is stored', async () => {
    const wrongFile = join(rig.dir, 'wrong-password');
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    await writeFile(wrongFile, wrong, { mode: 0o600 });
    const setIdsBefore = rig.setIds.length;
    const failure = await failureOf(runDump(rig, { password: { file: wrongFile } }));
    expect(failure).toMatchObject({ type: 'DatabaseAuthFailed', nonRetryable: true });
    expect(failure.message).toContain(`phpIPAM database phpipam@127.0.0.1:${rig.db.port} rejected the credentials of user phpipam`);
    expect(failure.message).toContain(`password from file ${wrongFile}`);
    expect(failure.message).not.toContain(wrong);
    expect(failure.message).not.toContain(rig.password);
    await nothingStored(rig, rig.setIds[setIdsBefore]!);
  });

  it('a config that names the other flavour is a configuration error', async () => {
    const failure = await failureOf(runDump(rig, { flavour: 'mysql' }));
    expect(failure).toMatchObject({ type: 'ConfigError', nonRetryable: true });
    expect(failure.message).toMatch(/phpipam\.flavour is "mysql" but phpipam@127\.0\.0\.1:\d+ is mariadb/);
  });

  it('a dump without its "-- Dump completed" trailer is refused and every writer aborted', async () => {
    const truncating = await wrapperDump(rig, 'truncating-dump', '| head -n -1');
    const before = rig.setIds.length;
    const failure = await failureOf(runDump(rig, { dumpBinary: truncating.path }));
    expect(failure).toMatchObject({ type: 'DatabaseDumpFailed', nonRetryable: false });
    expect(failure.message).toContain('does not end with "-- Dump completed"');
    await nothingStored(rig, rig.setIds[before]!);
  });

  it('a dump program that fails is reported with its error output, and nothing is stored', async () => {
    const failing = await wrapperDump(
      rig,
      'failing-dump',
      '> /dev/null; echo "mariadb-dump: Got error: 2013: Lost connection to server during query" >&2; exit 2',
    );
    const before = rig.setIds.length;
    const failure = await failureOf(runDump(rig, { dumpBinary: failing.path }));
    expect(failure).toMatchObject({ type: 'DatabaseUnavailable', nonRetryable: false });
    expect(failure.message).toMatch(/became unavailable during the dump \(.*failing-dump\.sh exit code 2\): mariadb-dump: Got error: 2013/);
    await nothingStored(rig, rig.setIds[before]!);
  });

  it('cancelling the activity kills the dump program and stores nothing', async () => {
    // A "dump" that writes its first line, then hangs (exec: the pid we record is the one we must kill).
    const hanging = join(rig.dir, 'hanging-dump.sh');
    const pidFile = join(rig.dir, 'hanging-dump.pid');
    await writeFile(
      hanging,
      [
        '#!/bin/sh',
        `case "$1" in --version) exec ${MARIADB_DUMP} "$@";; esac`,
        `echo $$ > '${pidFile}'`,
        "printf -- '-- MariaDB dump\\n'",
        'exec sleep 600',
        '',
      ].join('\n'),
    );
    await chmod(hanging, 0o755);
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const input = { cluster: 'nnoe-local', setId: newSetId(rig), fileName: phpipamDumpFileName(new Date()), targets: ['local', 's3'] };
    const running = env.run(activities(rig, { dumpBinary: hanging }).dumpPhpipamToStores, input);
    const settled = running.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    const pid = Number(await pollFile(pidFile));
    env.cancel('CANCELLED');
    expect(await settled).toBeInstanceOf(Error);
    expect(isProcessAlive(pid)).toBe(false);
    await nothingStored(rig, input.setId);
    expect(await readdir(join(rig.dir, 'work'))).toEqual([]);
  });

  // Last: stops the server (and shows that a restart keeps data, passwords and port).
  it('with the server down: retryable DatabaseUnavailable naming the database, nothing stored; a restart recovers', async () => {
    await rig.db.stop();
    const before = rig.setIds.length;
    const failure = await failureOf(runDump(rig));
    expect(failure).toMatchObject({ type: 'DatabaseUnavailable', nonRetryable: false });
    expect(failure.message).toContain(`phpIPAM database phpipam@127.0.0.1:${rig.db.port} is unavailable (ECONNREFUSED)`);
    await nothingStored(rig, rig.setIds[before]!);

    rig.db = await startMariadb({ dir: rig.db.dir });
    const check = await inActivity(activities(rig).checkPhpipamDatabase, { cluster: 'nnoe-local' });
    expect(check.database).toBe(`phpipam@127.0.0.1:${rig.cfg.port}`);
  });
});
