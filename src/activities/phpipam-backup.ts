/**
 * Activities of the phpIPAM database backup (management worker: they reach the database and the
 * stores over the network). The dump streams through here into every target and never enters a
 * Temporal payload; the activity returns the artefact reference and the database facts.
 *
 * Runbook step "phpIPAM database backup":
 *   1. connect with mysql2 (wrong password: DatabaseAuthFailed, non-retryable; server down:
 *      DatabaseUnavailable, retryable), learn flavour/version/binlog (preflight);
 *   2. read every table's exact row count and CHECKSUM TABLE inside one consistent snapshot;
 *   3. run mariadb-dump/mysqldump --single-transaction (password in a 0600 option file that lives
 *      only while the dump runs) and stream it: sha256 -> gzip -> [age encryption] -> every target;
 *   4. commit the targets only if the dump exited 0 and ends with "-- Dump completed"; otherwise
 *      abort every writer (nothing is left in any store).
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Context } from '@temporalio/activity';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { ArtefactRecord } from '../common/manifest';
import { artefactCompression, type ArtefactCompression } from '../compression';
import { readSecret } from '../config/secrets';
import { artefactKey, publishToStores, type BackupStore } from '../storage';
import {
  buildDumpCommand,
  connectPhpipam,
  databaseFailure,
  DEFAULT_DUMP_BINARY,
  describeDatabase,
  describeExit,
  dumpFailure,
  DumpToolMissingError,
  preflight,
  readDumpTool,
  runDump,
  tableFacts,
  toolMismatch,
  writeClientOptionFile,
  type DumpRun,
  type DumpTool,
  type PhpipamConfig,
  type PhpipamDumpFacts,
  type ServerInfo,
  type TableFactsSnapshot,
} from '../phpipam';

export interface PhpipamBackupDeps {
  /** The phpipam section of a cluster's config; throws ConfigError when the cluster has none. */
  phpipam: (cluster: string) => PhpipamConfig;
  /** Opened stores for target names; throws ConfigError for an unknown name. */
  stores: (targets: string[]) => Promise<BackupStore[]>;
  /** Staging area of the management worker: the dump's 0600 option file lives here while it runs. */
  workDir: string;
  /**
   * Encryption at rest: a fresh stream per dump, applied after gzip (ciphertext does not compress),
   * and what the manifest records about it. The file name gets `.<format>` appended, as for etcd.
   */
  encryption?: { record: NonNullable<ArtefactRecord['encryption']>; createStream: () => Duplex };
  /** The cluster's compression (default gzip): the stream, the file name (`.sql.zst` for zstd) and what the manifest records. */
  compression?: (cluster: string) => ArtefactCompression;
}

export interface DumpPhpipamInput {
  cluster: string;
  setId: string;
  fileName: string;
  targets: string[];
}

export interface PhpipamDumpOutcome {
  artefact: ArtefactRecord;
  facts: PhpipamDumpFacts;
}

export interface PhpipamCheck {
  database: string;
  server: ServerInfo;
  /** `mariadb-dump 10.11.19`. */
  dumpTool: string;
}

export { phpipamDumpFileName } from '../common/manifest';

export function createPhpipamBackupActivities(deps: PhpipamBackupDeps) {
  /**
   * Connects, runs the preflight and, given `onTable`, reads the table facts (calling it before each
   * table: a heartbeat). The connection is always closed.
   */
  async function inspectDatabase(cfg: PhpipamConfig, password: string): Promise<{ server: ServerInfo }>;
  async function inspectDatabase(
    cfg: PhpipamConfig,
    password: string,
    onTable: (table: string) => void,
  ): Promise<{ server: ServerInfo; facts: TableFactsSnapshot }>;
  async function inspectDatabase(
    cfg: PhpipamConfig,
    password: string,
    onTable?: (table: string) => void,
  ): Promise<{ server: ServerInfo; facts?: TableFactsSnapshot }> {
    const conn = await connectPhpipam(cfg, password);
    try {
      const server = await preflight(conn);
      if (cfg.flavour !== 'auto' && cfg.flavour !== server.flavour) {
        throw DomainError.nonRetryable(
          `phpipam.flavour is "${cfg.flavour}" but ${describeDatabase(cfg)} is ${server.flavour} ${server.versionString}; fix the config`,
          FailureType.ConfigError,
        );
      }
      return { server, facts: onTable ? await tableFacts(conn, cfg.database, server.flavour, onTable) : undefined };
    } catch (err) {
      throw databaseFailure(err, cfg, password);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  /** The dump program for this server: configured or the flavour's default, and of the same flavour. */
  async function resolveDumpTool(cfg: PhpipamConfig, server: ServerInfo): Promise<DumpTool> {
    const binary = cfg.dumpBinary ?? DEFAULT_DUMP_BINARY[server.flavour];
    let tool: DumpTool;
    try {
      tool = await readDumpTool(binary);
    } catch (err) {
      if (!(err instanceof DumpToolMissingError)) throw err;
      throw DomainError.nonRetryable(
        `${err.message} (needed for ${describeDatabase(cfg)}; set phpipam.dumpBinary or install the client package)`,
        FailureType.ConfigError,
      );
    }
    const mismatch = toolMismatch(tool, server);
    if (mismatch) throw DomainError.nonRetryable(`cannot dump ${describeDatabase(cfg)}: ${mismatch}`, FailureType.ConfigError);
    return tool;
  }

  /** Preflight for the workflow's "check plan" step: credentials, server, dump tool. Writes nothing. */
  async function checkPhpipamDatabase(input: { cluster: string }): Promise<PhpipamCheck> {
    const cfg = deps.phpipam(input.cluster);
    const { server } = await inspectDatabase(cfg, await readSecret(cfg.password));
    const tool = await resolveDumpTool(cfg, server);
    return { database: describeDatabase(cfg), server, dumpTool: `${tool.path} ${tool.version}` };
  }

  /** Dumps the phpIPAM database into every target; see the runbook at the top of this file. */
  async function dumpPhpipamToStores(input: DumpPhpipamInput): Promise<PhpipamDumpOutcome> {
    const ctx = Context.current();
    const cfg = deps.phpipam(input.cluster);
    const password = await readSecret(cfg.password);
    const stores = await deps.stores(input.targets);
    const encryption = deps.encryption?.record ?? null;
    const compression = deps.compression?.(input.cluster) ?? artefactCompression();
    const compressedName = compression.fileName(input.fileName);
    const fileName = encryption ? `${compressedName}.${encryption.format}` : compressedName;
    const key = artefactKey(input.setId, fileName);

    const { server, facts } = await inspectDatabase(cfg, password, (table) => ctx.heartbeat({ phase: 'table facts', table }));
    const tool = await resolveDumpTool(cfg, server);

    return withOptionFile(deps.workDir, input.setId, password, async (optionFile) => {
      const command = buildDumpCommand({
        tool,
        server,
        host: cfg.host,
        port: cfg.port,
        user: cfg.user,
        database: cfg.database,
        optionFile,
      });
      const { result: run, copies } = await publishToStores(stores, key, async (sink) => {
        const done = await runDump({
          command,
          sink,
          compress: compression.createStream(),
          extraStages: deps.encryption ? [deps.encryption.createStream()] : [],
          onProgress: (bytes) => ctx.heartbeat({ phase: 'dump', bytes }),
          signal: ctx.cancellationSignal,
        });
        checkDumpRun(cfg, tool, server, done, password);
        return done;
      });
      const first = copies[0]!;
      return {
        artefact: {
          file: fileName,
          key,
          compression: compression.format,
          encryption,
          bytes: first.bytes,
          sha256: first.sha256,
          raw: run.raw,
          copies,
        },
        facts: {
          flavour: server.flavour,
          version: server.version,
          database: cfg.database,
          dumpTool: `${tool.path} ${tool.version}`,
          dumpCommand: [command.binary, ...command.argv],
          binlog: run.binlog,
          tables: facts.tables,
          tablesMatchDump: sameSnapshot(facts, run),
        },
      };
    });
  }

  return {
    checkPhpipamDatabase: checkPhpipamDatabase,
    dumpPhpipamToStores: dumpPhpipamToStores,
  };
}

/**
 * Runs `fn` with a 0600 option file holding the password, in a fresh 0700 directory under the work
 * dir, and deletes both afterwards whatever happens (runDump has awaited the child by then).
 */
async function withOptionFile<T>(workDir: string, setId: string, password: string, fn: (optionFile: string) => Promise<T>): Promise<T> {
  await mkdir(workDir, { recursive: true });
  // A killed attempt left its option file (the password) behind: gone before this attempt writes its own.
  const earlier = (await readdir(workDir)).filter((name) => name.startsWith(`phpipam-${setId}-`));
  for (const name of earlier) await rm(join(workDir, name), { recursive: true, force: true });
  const dir = await mkdtemp(join(workDir, `phpipam-${setId}-`)); // mode 0700
  try {
    return await fn(await writeClientOptionFile(dir, { password }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A dump is good only if the program exited 0, wrote its trailer, and recorded the binlog position when there is one. */
function checkDumpRun(cfg: PhpipamConfig, tool: DumpTool, server: ServerInfo, run: DumpRun, password: string): void {
  const what = `${tool.path} of ${describeDatabase(cfg)}`;
  if (run.exit.code !== 0) throw dumpFailure(cfg, tool.path, describeExit(run.exit), run.stderr, password);
  if (!run.completed) {
    throw DomainError.retryable(
      `${what} exited 0 but its output (${run.raw.bytes} bytes) does not end with "-- Dump completed": the dump is incomplete`,
      FailureType.DatabaseDumpFailed,
    );
  }
  if (server.binlog && !run.binlog) {
    throw DomainError.retryable(
      `${what}: binary logging is on but the dump recorded no binlog position (no "-- CHANGE MASTER/REPLICATION SOURCE TO" comment)`,
      FailureType.DatabaseDumpFailed,
    );
  }
}

/** Were the table facts read at the dump's binlog position? null when either side does not know. */
function sameSnapshot(facts: TableFactsSnapshot, run: DumpRun): boolean | null {
  const a = facts.snapshotPosition;
  const b = run.binlog;
  if (!a || !b) return null;
  return a.file === b.file && a.position === b.position;
}
