/**
 * (Over 500 lines: the swap's statements and the MariaDB facts they rest on read best in one file.)
 * Step 3 of the phpIPAM restore (src/phpipam/restore.ts): the staging tables become the live ones.
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
import { performance } from 'node:perf_hooks';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { createViews, dropViews, readViewDefinitions, SWAPPABLE_TABLE_TYPES, type ViewDefinition } from './views';
import { preflight } from './server';
import { listSchemaObjects, q, qq, requireSchemaName, schemaCharset, type SchemaObjects } from './restore-schemas';
import { describeMismatches, type SchemaVerification } from './restore-verify';

const DEFAULT_LOCK_WAIT_TIMEOUT_S = 30;

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

async function readDefinitions(
  conn: Connection,
  schema: string,
  objects: SchemaObjects,
): Promise<{ triggers: Definition[]; routines: Definition[]; events: Definition[] }> {
  const show = async (kind: Definition['kind'], name: string, column: string): Promise<Definition> => {
    const [rows] = await conn.query<RowDataPacket[]>(`SHOW CREATE ${kind} ${qq(schema, name)}`);
    const row = rows[0];
    const create = row?.[column];
    if (!row || create === null || create === undefined) {
      throw new SwapRefusal(
        `cannot read the definition of ${kind} ${schema}.${name} (its definer is another user and this user may not see it)`,
      );
    }
    return {
      kind,
      name,
      create: String(create),
      sqlMode: String(row.sql_mode ?? ''),
      collationConnection: String(row.collation_connection),
      ...(row.time_zone !== undefined ? { timeZone: String(row.time_zone) } : {}),
    };
  };
  const triggers: Definition[] = [];
  for (const t of objects.triggers) triggers.push({ ...(await show('TRIGGER', t.name, 'SQL Original Statement')), table: t.table });
  const routines: Definition[] = [];
  for (const r of objects.routines) {
    if (r.kind !== 'FUNCTION' && r.kind !== 'PROCEDURE')
      throw new SwapRefusal(`${schema} has a ${r.kind} (${r.name}); only functions and procedures are handled`);
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
  const step = async (name: SwapStep) => {
    await options.onStep?.(name);
  };

  // ---------------------------------------------------------------- checks: nothing changes yet
  await step('check schemas');
  for (const name of [live, staging, keepAs]) requireSchemaName(name);
  const refuse = (why: string) =>
    DomainError.nonRetryable(`swap of ${staging} into ${live} refused: ${why}; nothing was changed`, FailureType.SchemaSwapRefused);
  if (new Set([live, staging, keepAs]).size !== 3) throw refuse('live, staging and keep schema must be three different schemas');
  if (verification.schema !== staging) throw refuse(`the verification given is of ${verification.schema}, not of ${staging}`);
  if (!verification.ok || verification.mismatches.length > 0) {
    throw DomainError.nonRetryable(
      `swap of ${staging} into ${live} refused: the staging schema does not match the backup's facts (${describeMismatches(verification.mismatches)}); nothing was changed`,
      FailureType.RestoreVerificationFailed,
    );
  }
  const [liveObjects, stagingObjects, keepObjects] = [
    await listSchemaObjects(conn, live),
    await listSchemaObjects(conn, staging),
    await listSchemaObjects(conn, keepAs),
  ];
  if (!liveObjects.exists) throw refuse(`live schema ${live} does not exist (load the dump into it directly instead)`);
  if (!stagingObjects.exists) throw refuse(`staging schema ${staging} does not exist`);
  if (keepObjects.exists)
    throw DomainError.nonRetryable(
      `swap of ${staging} into ${live} refused: keep schema ${keepAs} already exists; nothing was changed`,
      FailureType.RestoreSchemaExists,
    );
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
    'SELECT DATABASE() AS db, @@session.sql_mode AS sqlMode, @@session.collation_connection AS collation, @@session.time_zone AS tz, @@session.lock_wait_timeout AS lockWait',
  );
  try {
    server = await preflight(conn);
    liveDefs = await readDefinitions(conn, live, liveObjects);
    stagingDefs = await readDefinitions(conn, staging, stagingObjects);
    liveViews = await readViewDefinitions(conn, live, viewNames(liveObjects)).catch((err: Error) => {
      throw new SwapRefusal(err.message);
    });
    stagingViews = await readViewDefinitions(conn, staging, viewNames(stagingObjects)).catch((err: Error) => {
      throw new SwapRefusal(err.message);
    });
  } catch (err) {
    if (err instanceof SwapRefusal) throw refuse(err.message);
    throw err;
  }
  const orReplace = server.flavour === 'mariadb'; // MySQL has no CREATE OR REPLACE for routines/events

  const undo: Undo[] = [];
  const timings = { renameMs: 0, triggerWindowMs: 0, liveWindowMs: 0 };
  const warnings: string[] = [];
  let current: SwapStep = 'check schemas';
  const enter = async (name: SwapStep) => {
    current = name;
    await step(name);
  };
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
    await dropViews(
      conn,
      staging,
      stagingViews.map((v) => v.name),
    );
    if (stagingViews.length > 0)
      undo.push({ what: `recreate views in ${staging}`, run: () => createViews(conn, stagingViews, staging, staging) });

    // ---------------------------------------------------------------- live window
    await enter('drop live triggers');
    const windowStart = performance.now();
    for (const def of liveDefs.triggers) {
      await dropDefinition(conn, live, def);
      undo.push({ what: `recreate trigger ${live}.${def.name}`, run: () => createDefinition(conn, live, def) });
    }
    await dropViews(
      conn,
      live,
      liveViews.map((v) => v.name),
    );
    if (liveViews.length > 0) undo.push({ what: `recreate views in ${live}`, run: () => createViews(conn, liveViews, live, live) });

    await enter('rename tables');
    const forward = [
      ...liveTables.map((t) => `${qq(live, t)} TO ${qq(keepAs, t)}`),
      ...stagingTables.map((t) => `${qq(staging, t)} TO ${qq(live, t)}`),
    ];
    const backward = [
      ...stagingTables.map((t) => `${qq(live, t)} TO ${qq(staging, t)}`),
      ...liveTables.map((t) => `${qq(keepAs, t)} TO ${qq(live, t)}`),
    ];
    const renameStart = performance.now();
    await conn.query(`RENAME TABLE ${forward.join(', ')}`);
    timings.renameMs = Math.round(performance.now() - renameStart);
    undo.push({
      what: `rename the tables back (${live} -> ${staging}, ${keepAs} -> ${live})`,
      run: async () => {
        await conn.query(`RENAME TABLE ${backward.join(', ')}`);
      },
    });

    await enter('create live triggers');
    for (const def of stagingDefs.triggers) {
      await createDefinition(conn, live, def);
      undo.push({ what: `drop restored trigger ${live}.${def.name}`, run: () => dropDefinition(conn, live, def) });
    }
    if (stagingViews.length > 0) {
      undo.push({
        what: `drop restored views from ${live}`,
        run: () =>
          dropViews(
            conn,
            live,
            stagingViews.map((v) => v.name),
          ),
      });
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
      undo.push(
        old
          ? {
              what: `put back ${key(old)} in ${live}`,
              run: async () => {
                if (!orReplace) await dropDefinition(conn, live, def);
                await createDefinition(conn, live, old, orReplace);
              },
            }
          : { what: `drop restored ${key(def)} from ${live}`, run: () => dropDefinition(conn, live, def) },
      );
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
      await createDefinition(conn, keepAs, def).catch((err: unknown) => {
        warnings.push(`trigger ${def.name} not recreated on ${keepAs}.${def.table}: ${(err as Error).message}`);
      });
    }
    if (liveViews.length > 0)
      await createViews(conn, liveViews, live, keepAs).catch((err: unknown) => {
        warnings.push((err as Error).message);
      });
    await enter('drop staging schema');
    stagingDropped = await dropIfNoTables(conn, staging).then(
      () => true,
      (err: unknown) => {
        warnings.push(`staging schema ${staging} not dropped: ${(err as Error).message}`);
        return false;
      },
    );
  } catch (err) {
    warnings.push(`after the swap, step "${current}" failed: ${(err as Error).message}`);
  } finally {
    await restoreSession(conn, session[0]).catch((err: unknown) => {
      warnings.push(`session settings not restored: ${(err as Error).message}`);
    });
  }

  return {
    live,
    staging,
    keepAs,
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
    ...objects.tables
      .filter((t) => !SWAPPABLE_TABLE_TYPES.includes(t.type))
      .map((t) => `${schema}.${t.name} is a ${t.type}, which a swap cannot move`),
    ...objects.routines
      .filter((r) => r.kind !== 'FUNCTION' && r.kind !== 'PROCEDURE')
      .map((r) => `${schema} has a ${r.kind} (${r.name}); only functions and procedures are handled`),
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
    await readViewDefinitions(
      conn,
      live,
      objects.tables.filter((t) => t.type === 'VIEW').map((t) => t.name),
    );
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
  await conn.query('SET SESSION sql_mode = ?, SESSION collation_connection = ?, SESSION time_zone = ?, SESSION lock_wait_timeout = ?', [
    saved.sqlMode,
    saved.collation,
    saved.tz,
    Number(saved.lockWait),
  ]);
  if (saved.db) await conn.query(`USE ${q(String(saved.db))}`);
}

const RETRYABLE_ERRNOS = new Set([1205, 1213, 2006, 2013]); // lock wait timeout, deadlock, gone away, lost connection

function swapFailure(
  err: unknown,
  ctx: { live: string; staging: string; keepAs: string; step: SwapStep; undo: Undo[]; failures: Array<{ what: string; error: string }> },
): DomainError {
  const e = err as { errno?: number; code?: string; message?: string };
  const cause = `${e.message ?? String(err)}`;
  if (ctx.failures.length > 0) {
    return DomainError.nonRetryable(
      `swap of ${ctx.staging} into ${ctx.live} failed at "${ctx.step}" (${cause}) and could not be fully undone; repair by hand: ` +
        ctx.failures.map((f) => `${f.what} (${f.error})`).join('; '),
      FailureType.SchemaSwapRollbackFailed,
    );
  }
  const message =
    `swap of ${ctx.staging} into ${ctx.live} failed at "${ctx.step}" (${cause}); undone (${ctx.undo.length} step(s)): ` +
    `${ctx.live} is as before, ${ctx.staging} still holds the restored tables, ${ctx.keepAs} does not exist`;
  const retryable = (e.errno !== undefined && RETRYABLE_ERRNOS.has(e.errno)) || e.code === 'PROTOCOL_CONNECTION_LOST';
  return retryable
    ? DomainError.retryable(message, FailureType.SchemaSwapFailed)
    : DomainError.nonRetryable(message, FailureType.SchemaSwapFailed);
}
