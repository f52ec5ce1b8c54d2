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
 * Files: restore-schemas.ts (names, quoting), dump-schema-guard.ts and restore-load.ts (1),
 * restore-verify.ts (2), restore-swap.ts (3, with what MariaDB does and the swap's order).
 */
export { restoreSchemaNames } from './restore-schemas';
export { DumpNotRestorableError, DumpSchemaGuard, type NeutralisedStatement } from './dump-schema-guard';
export {
  buildLoadCommand,
  DEFAULT_CLIENT_BINARY,
  loadDumpIntoSchema,
  type DumpLoadResult,
  type LoadCommandInput,
  type LoadDumpOptions,
} from './restore-load';
export {
  describeMismatches,
  dropStagingSchema,
  requireCreateSchema,
  verifySchemaAgainstFacts,
  type SchemaMismatch,
  type SchemaVerification,
} from './restore-verify';
export { requireSwappableLive, swapSchemaIn, SWAP_STEPS, type SchemaSwapResult, type SwapOptions, type SwapStep } from './restore-swap';
