/**
 * Scratch schemas beside the live phpIPAM database (a restore's staging and kept-old schemas, a
 * drill's schema) need CREATE on `<db>_%`: checked up front and said plainly, not left to fail
 * as an access error half-way.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { Connection } from 'mysql2/promise';
import type { PhpipamConfig } from '../config/schema';
import { FailureType } from '../common/failures';

/** A backquoted MariaDB/MySQL identifier. */
export const quoteIdentifier = (name: string) => `\`${name.replace(/`/g, '``')}\``;

/** Creates and drops `schema`; a missing privilege fails non-retryably with the GRANT that `purpose` (e.g. "a drill") needs. */
export async function requireCreateSchema(conn: Connection, cfg: PhpipamConfig, schema: string, purpose: string): Promise<void> {
  try {
    await conn.query(`CREATE DATABASE ${quoteIdentifier(schema)}`);
    await conn.query(`DROP DATABASE ${quoteIdentifier(schema)}`);
  } catch (err) {
    const e = err as { errno?: number; sqlMessage?: string };
    if (e.errno === 1044 || e.errno === 1227) {
      throw ApplicationFailure.nonRetryable(
        `user ${cfg.user} may not create schema ${schema} on ${cfg.host}:${cfg.port} (${e.sqlMessage}); ${purpose} needs all privileges on ${cfg.database}_% (GRANT ALL ON \`${cfg.database}\\_%\`.* TO ...)`,
        FailureType.DatabasePrivilegeMissing);
    }
    throw err;
  }
}
