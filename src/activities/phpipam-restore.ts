/**
 * Activities of the runbook "phpIPAM Database Restore" (management worker: the database is reached
 * over the network). The restore core is src/phpipam/restore.ts; these wrap it step by step so the
 * workflow can show, approve and undo each one:
 *
 *   plan     the set (newest complete one with a phpipam dump, or the one asked for) and its facts;
 *   stage    the dump fetched into the workDir and verified (sha256s, trailer); the server reachable,
 *            of the dump's flavour, the client present, the staging and keep schemas creatable;
 *   load     the dump into a NEW staging schema with the mariadb/mysql client;
 *   verify   exact row counts and CHECKSUM TABLE of the staging schema against the manifest's facts;
 *   swap     one RENAME TABLE, the old tables kept in `<db>_pre_restore_<ts>`;
 *   app      the phpIPAM application (optional `phpipam.appService`) stopped and started around it.
 * The live schema is only written by the swap, which refuses anything but a passing verification.
 */
import { execFile } from 'node:child_process';
import { lstat, open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { Config, PhpipamConfig } from '../config/schema';
import { removeRestoreStaging, restoreStagingDir } from '../restore/staging';
import { findCluster } from '../config/load';
import { readSecret } from '../config/secrets';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { ArtefactRecord, PhpipamComponentRecord } from '../common/manifest';
import { fetchArtefact } from '../restore/fetch';
import {
  connectPhpipam,
  databaseFailure,
  DEFAULT_CLIENT_BINARY,
  describeDatabase,
  describeMismatches,
  dropStagingSchema,
  hasDumpTrailer,
  loadDumpIntoSchema,
  preflight,
  requireCreateSchema,
  requireSwappableLive,
  restoreConnectionOf,
  restoreSchemaNames,
  swapSchemaIn,
  verifySchemaAgainstFacts,
  type DatabaseFlavour,
  type SchemaVerification,
  type TableFact,
} from '../phpipam';
import { serviceDriver } from '../services/driver';
import { withHeartbeat } from './heartbeat';
import { chooseRestoreSet } from '../catalog/choose-set';

const execFileAsync = promisify(execFile);

export interface PhpipamRestorePlan {
  cluster: string;
  setId: string;
  setCreatedAt: string;
  setStatus: 'complete' | 'partial';
  artefact: ArtefactRecord;
  /** `phpipam@127.0.0.1:3306` */
  database: string;
  live: string;
  staging: string;
  keepAs: string;
  /** What the restored schema must reproduce, from the manifest. */
  facts: { flavour: DatabaseFlavour; version: string; dumpTool: string; tables: TableFact[] };
  /** The app service stopped for the swap, or null when none is configured. */
  appService: string | null;
  unreachableTargets: string[];
  /** The cluster's `approvers` from the config (absent: any name may approve): the approve Update's validator holds approvals to it. */
  approvers?: string[];
}

export interface StagedDump {
  path: string;
  bytes: number;
  target: string;
  server: { flavour: DatabaseFlavour; version: string };
  client: string;
  liveTables: number;
  /** E.g. another server version than the dump's: CHECKSUM TABLE may then differ for equal data. */
  warnings: string[];
}

export interface LoadedDump {
  schema: string;
  bytes: number;
  tables: string[];
  triggers: string[];
  routines: string[];
  events: string[];
  neutralised: number;
  ms: number;
}

export interface PhpipamSwapSummary {
  live: string;
  keepAs: string;
  tables: Array<{ name: string; rows: number | null }>;
  keptOnly: string[];
  triggers: string[];
  routines: string[];
  events: string[];
  /** Views recreated in live / on the kept tables (absent in summaries of runs before views were handled). */
  views?: { live: string[]; kept: string[] };
  stagingDropped: boolean;
  warnings: string[];
  renameMs: number;
  /** The swap had committed in an earlier attempt of this activity (found done, checked, not repeated). */
  resumed: boolean;
}

async function schemaExists(conn: Connection, schema: string): Promise<boolean> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [schema]);
  return rows.length > 0;
}

async function tableCount(conn: Connection, schema: string): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [schema]);
  return Number(rows[0]?.n ?? 0);
}

export function createPhpipamRestoreActivities(deps: { config: Config }) {
  const { config } = deps;

  function phpipamOf(clusterName: string): PhpipamConfig {
    const cluster = findCluster(config, clusterName);
    if (!cluster.phpipam)
      throw DomainError.nonRetryable(`cluster ${clusterName} has no phpipam section in the config`, FailureType.ConfigError);
    return restoreConnectionOf(cluster.phpipam);
  }

  const stagedPath = (setId: string) => join(restoreStagingDir(config.workDir, setId, 'phpipam'), 'dump.sql');

  async function withDatabase<T>(cfg: PhpipamConfig, fn: (conn: Connection, password: string) => Promise<T>): Promise<T> {
    const password = await readSecret(cfg.password);
    const conn = await connectPhpipam(cfg, password);
    try {
      return await fn(conn, password);
    } catch (err) {
      throw databaseFailure(err, cfg, password);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  /** Fetches the dump (every check of fetchArtefact) and insists on the dump tool's trailer. */
  async function fetchDump(artefact: ArtefactRecord, path: string): Promise<{ bytes: number; target: string }> {
    const ctx = Context.current();
    const fetched = await fetchArtefact(config, artefact, path, {
      onProgress: (bytes) => ctx.heartbeat({ phase: 'fetch', bytes, total: artefact.bytes }),
    });
    const file = await open(path, 'r');
    try {
      const tail = Buffer.alloc(Math.min(512, fetched.bytes));
      await file.read(tail, 0, tail.length, fetched.bytes - tail.length);
      if (!hasDumpTrailer(tail.toString('utf8'))) {
        throw DomainError.nonRetryable(
          `dump ${artefact.file} does not end with "-- Dump completed": it is truncated`,
          FailureType.ChecksumMismatch,
        );
      }
    } finally {
      await file.close();
    }
    return { bytes: fetched.bytes, target: fetched.target };
  }

  async function planPhpipamRestore(input: { cluster: string; setId?: string; at: string }): Promise<PhpipamRestorePlan> {
    const cfg = phpipamOf(input.cluster);
    const { entry, component, unreachableTargets } = await chooseRestoreSet(config, {
      cluster: input.cluster,
      setId: input.setId,
      what: 'a phpIPAM dump',
      pick: (m) => m.components.find((c): c is PhpipamComponentRecord => c.component === 'phpipam'),
    });
    const artefact = component.artefacts[0];
    if (!artefact) throw DomainError.nonRetryable(`backup set ${entry.setId} records no phpIPAM dump artefact`, FailureType.RestoreRefused);
    if (component.facts.tablesMatchDump === false) {
      throw DomainError.nonRetryable(
        `the table facts of set ${entry.setId} were read at another point than its dump (writes in between), so a restore of it cannot be verified; choose another set`,
        FailureType.RestoreRefused,
      );
    }
    const { staging, keepAs } = restoreSchemaNames(cfg.database, new Date(input.at));
    const { flavour, version, dumpTool, tables } = component.facts;
    return {
      cluster: input.cluster,
      setId: entry.setId,
      setCreatedAt: entry.createdAt,
      setStatus: entry.status,
      artefact,
      database: describeDatabase(cfg),
      live: cfg.database,
      staging,
      keepAs,
      facts: { flavour, version, dumpTool, tables },
      appService: cfg.appService ? serviceDriver(cfg.appService).describe : null,
      unreachableTargets,
      approvers: findCluster(config, input.cluster).approvers,
    };
  }

  /**
   * Preflight: the dump fetched and verified into the workDir; the server reachable and of the dump's
   * flavour; its client program present; the live schema there; the staging and keep schemas new and
   * creatable by this user (created and dropped again, empty). Changes nothing else.
   */
  async function stagePhpipamDump(input: {
    cluster: string;
    setId: string;
    artefact: ArtefactRecord;
    facts: { flavour: DatabaseFlavour; version: string };
    staging: string;
    keepAs: string;
  }): Promise<StagedDump> {
    const cfg = phpipamOf(input.cluster);
    const path = stagedPath(input.setId);
    const fetched = await fetchDump(input.artefact, path);
    return withDatabase(cfg, async (conn) => {
      const server = await preflight(conn);
      const where = describeDatabase(cfg);
      if (server.flavour !== input.facts.flavour) {
        throw DomainError.nonRetryable(
          `${where} is ${server.flavour} ${server.version} but the dump was taken from ${input.facts.flavour} ${input.facts.version}`,
          FailureType.RestoreRefused,
        );
      }
      const warnings =
        server.version !== input.facts.version
          ? [
              `server is ${server.flavour} ${server.version}, the dump's was ${input.facts.version}: CHECKSUM TABLE may differ for equal rows`,
            ]
          : [];
      const client = DEFAULT_CLIENT_BINARY[server.flavour];
      const clientVersion = await execFileAsync(client, ['--version']).then(
        (r) => r.stdout.trim(),
        () => null,
      );
      if (!clientVersion)
        throw DomainError.nonRetryable(
          `database client ${client} not found on this worker (Debian package mariadb-client)`,
          FailureType.ConfigError,
        );
      for (const schema of [input.staging, input.keepAs]) {
        if (await schemaExists(conn, schema)) {
          throw DomainError.nonRetryable(
            `schema ${schema} already exists on ${cfg.host}:${cfg.port}; a restore only creates new schemas`,
            FailureType.RestoreSchemaExists,
          );
        }
      }
      // The user must be able to create both (e.g. GRANT ALL ON `phpipam\_%`.*): found out now, not after the app is stopped.
      for (const schema of [input.staging, input.keepAs]) await requireCreateSchema(conn, cfg, schema, 'a restore');
      // Objects a swap cannot handle are refused now, before the app is stopped (views are recreated, not refused).
      await requireSwappableLive(conn, cfg.database);
      return {
        path,
        bytes: fetched.bytes,
        target: fetched.target,
        server: { flavour: server.flavour, version: server.version },
        client: clientVersion,
        liveTables: await tableCount(conn, cfg.database),
        warnings,
      };
    });
  }

  /** The staged dump into the new staging schema. A retry first drops what an earlier attempt of it left. */
  async function loadPhpipamDump(input: {
    cluster: string;
    setId: string;
    artefact: ArtefactRecord;
    staging: string;
  }): Promise<LoadedDump> {
    const cfg = phpipamOf(input.cluster);
    const ctx = Context.current();
    const path = stagedPath(input.setId);
    // Another management worker may run this step: it fetches (and verifies) the dump itself.
    if (
      !(await lstat(path).then(
        (s) => s.isFile(),
        () => false,
      ))
    )
      await fetchDump(input.artefact, path);
    if (ctx.info.attempt > 1) await withDatabase(cfg, (conn) => dropStagingSchema(conn, input.staging, cfg.database));
    const password = await readSecret(cfg.password);
    const loaded = await loadDumpIntoSchema(cfg, password, {
      dump: createReadStream(path),
      schema: input.staging,
      workDir: config.workDir,
      signal: ctx.cancellationSignal,
      onProgress: (bytes) => ctx.heartbeat({ phase: 'load', bytes }),
    });
    return {
      schema: loaded.schema,
      bytes: loaded.bytes,
      tables: loaded.tables,
      triggers: loaded.triggers,
      routines: loaded.routines,
      events: loaded.events,
      neutralised: loaded.neutralised.length,
      ms: loaded.ms,
    };
  }

  /** Row counts and CHECKSUM TABLE of the staging schema against the facts; any mismatch fails (non-retryable). */
  async function verifyPhpipamStaging(input: {
    cluster: string;
    staging: string;
    facts: { flavour: DatabaseFlavour; tables: TableFact[] };
  }): Promise<SchemaVerification> {
    const cfg = phpipamOf(input.cluster);
    const verification = await withDatabase(cfg, (conn) =>
      withHeartbeat({ phase: 'verify', schema: input.staging }, () => verifySchemaAgainstFacts(conn, input.staging, input.facts)),
    );
    if (!verification.ok) {
      throw DomainError.nonRetryable(
        `restored schema ${input.staging} does not match the backup's facts: ${describeMismatches(verification.mismatches)}`,
        FailureType.RestoreVerificationFailed,
      );
    }
    return verification;
  }

  /** The verified staging tables become the live ones; the old ones are kept in `keepAs`. */
  async function swapPhpipamSchema(input: {
    cluster: string;
    staging: string;
    keepAs: string;
    verification: SchemaVerification;
  }): Promise<PhpipamSwapSummary> {
    const cfg = phpipamOf(input.cluster);
    const ctx = Context.current();
    return withDatabase(cfg, async (conn) => {
      // An earlier attempt may have committed and died before reporting: then the keep schema holds
      // the old tables, staging is empty, and live must match the facts: done, not repeated.
      if (ctx.info.attempt > 1 && (await schemaExists(conn, input.keepAs)) && (await tableCount(conn, input.staging)) === 0) {
        const live = await verifySchemaAgainstFacts(conn, cfg.database, {
          flavour: (await preflight(conn)).flavour,
          tables: input.verification.tables,
        });
        if (!live.ok) {
          throw DomainError.nonRetryable(
            `an earlier attempt of the swap left ${input.keepAs} and an empty ${input.staging}, but ${cfg.database} does not match the verified tables (${describeMismatches(live.mismatches)}); inspect by hand`,
            FailureType.SchemaSwapRollbackFailed,
          );
        }
        return {
          live: cfg.database,
          keepAs: input.keepAs,
          tables: live.tables.map((t) => ({ name: t.name, rows: t.rows })),
          keptOnly: [],
          triggers: [],
          routines: [],
          events: [],
          stagingDropped: !(await schemaExists(conn, input.staging)),
          warnings: ['the swap had committed in an earlier attempt; found done and checked'],
          renameMs: 0,
          resumed: true,
        };
      }
      const result = await swapSchemaIn(conn, {
        live: cfg.database,
        staging: input.staging,
        keepAs: input.keepAs,
        verification: input.verification,
        onStep: (step) => ctx.heartbeat({ phase: 'swap', step }),
      });
      return {
        live: result.live,
        keepAs: result.keepAs,
        tables: result.tables.swapped,
        keptOnly: result.tables.keptOnly,
        triggers: result.triggers.live,
        routines: result.routines.live,
        events: result.events.live,
        views: result.views,
        stagingDropped: result.stagingDropped,
        warnings: result.warnings,
        renameMs: result.timings.renameMs,
        resumed: false,
      };
    });
  }

  /** After a failed load or verification: the staging schema goes (the live schema was never touched). */
  async function dropPhpipamStaging(input: { cluster: string; staging: string }): Promise<{ dropped: string }> {
    const cfg = phpipamOf(input.cluster);
    await withDatabase(cfg, (conn) => dropStagingSchema(conn, input.staging, cfg.database));
    return { dropped: input.staging };
  }

  async function discardStagedDump(input: { setId: string }): Promise<void> {
    await removeRestoreStaging(config.workDir, input.setId, 'phpipam');
  }

  async function stopPhpipamApp(input: { cluster: string }): Promise<{ service: string | null; wasRunning: boolean }> {
    const ref = phpipamOf(input.cluster).appService;
    if (!ref) return { service: null, wasRunning: false };
    const service = serviceDriver(ref);
    const wasRunning = await service.isRunning();
    await service.stop();
    return { service: service.describe, wasRunning };
  }

  /** Idempotent; fails (retryably) until the app runs. */
  async function startPhpipamApp(input: { cluster: string }): Promise<{ service: string | null; running: boolean }> {
    const ref = phpipamOf(input.cluster).appService;
    if (!ref) return { service: null, running: false };
    const service = serviceDriver(ref);
    await service.start();
    if (!(await service.isRunning()))
      throw DomainError.retryable(`${service.describe} is not running after its start`, FailureType.RestoreFailed);
    return { service: service.describe, running: true };
  }

  return {
    planPhpipamRestore: planPhpipamRestore,
    stagePhpipamDump: stagePhpipamDump,
    loadPhpipamDump: loadPhpipamDump,
    verifyPhpipamStaging: verifyPhpipamStaging,
    swapPhpipamSchema: swapPhpipamSchema,
    dropPhpipamStaging: dropPhpipamStaging,
    discardStagedDump: discardStagedDump,
    stopPhpipamApp: stopPhpipamApp,
    startPhpipamApp: startPhpipamApp,
  };
}
