/**
 * Step 2 of the phpIPAM restore (src/phpipam/restore.ts): exact row counts and CHECKSUM TABLE of
 * the staging schema against the manifest's facts (tableFacts(), the code that recorded them), and
 * the schema checks around it (creating and dropping a staging schema).
 */
import { performance } from 'node:perf_hooks';
import type { Connection } from 'mysql2/promise';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { PhpipamConfig } from './config';
import { tableFacts } from './server';
import type { PhpipamDumpFacts, TableFact } from './types';
import { q, requireSchemaName } from './restore-schemas';

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
  conn: Connection,
  schema: string,
  facts: Pick<PhpipamDumpFacts, 'tables' | 'flavour'>,
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
        FailureType.DatabasePrivilegeMissing,
      );
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
