/**
 * Typed failures of the phpIPAM database backup. Every message names the database as
 * `<database>@<host>:<port>` and the user, never the password (and every message built from server
 * or dump output goes through `redact` in case a password was echoed somewhere).
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../common/failures';
import { describeSecretRef } from '../config/secrets';
import type { PhpipamConfig } from './config';

/** To be merged into FailureType (src/common/failures.ts); the non-retryable ones into NON_RETRYABLE. */
export const PhpipamFailureType = {
  /** Non-retryable: the server refused the user/password (or the user has no access to the database). */
  DatabaseAuthFailed: 'DatabaseAuthFailed',
  /** Non-retryable: the user lacks a privilege the dump or the facts need (named in the message). */
  DatabasePrivilegeMissing: 'DatabasePrivilegeMissing',
  /** Retryable: the server cannot be reached, went away, or refuses connections for now. */
  DatabaseUnavailable: 'DatabaseUnavailable',
  /** Retryable: the dump program failed or produced an incomplete dump. */
  DatabaseDumpFailed: 'DatabaseDumpFailed',
} as const;

/** `phpipam@10.0.0.5:3306`: how every message names the database. */
export function describeDatabase(cfg: Pick<PhpipamConfig, 'database' | 'host' | 'port'>): string {
  return `${cfg.database}@${cfg.host}:${cfg.port}`;
}

/** Replaces every occurrence of the secret (defence in depth: no tool should print it, but if one does). */
export function redact(text: string, secret: string | undefined): string {
  return secret ? text.split(secret).join('***') : text;
}

const AUTH_ERRNOS = new Set([1045, 1698]); // access denied (user/password), no password allowed
/** ER_DBACCESS_DENIED_ERROR: the user logged in but has no privilege on that database: a missing GRANT. */
const DATABASE_ACCESS_ERRNO = 1044;
const PRIVILEGE_ERRNOS = new Set([1142, 1143, 1227, 1370]); // table/column/specific/routine access denied
const UNKNOWN_DATABASE_ERRNO = 1049;

interface DriverError {
  code?: string;
  errno?: number;
  sqlMessage?: string;
  message?: string;
}

/** Maps a mysql2 error (connect, preflight or facts) to a typed failure. */
export function databaseFailure(err: unknown, cfg: PhpipamConfig, password?: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = (err ?? {}) as DriverError;
  const detail = redact(e.sqlMessage ?? e.message ?? String(err), password);
  const where = describeDatabase(cfg);
  if (e.errno !== undefined && AUTH_ERRNOS.has(e.errno)) return authFailure(cfg, detail);
  if (e.errno === DATABASE_ACCESS_ERRNO) return databaseGrantFailure(cfg, detail);
  if (e.errno === UNKNOWN_DATABASE_ERRNO) {
    return ApplicationFailure.nonRetryable(`phpIPAM database ${where} does not exist (check phpipam.database in the config): ${detail}`, FailureType.ConfigError);
  }
  if (e.errno !== undefined && PRIVILEGE_ERRNOS.has(e.errno)) return privilegeFailure(cfg, detail);
  return ApplicationFailure.retryable(`phpIPAM database ${where} is unavailable (${e.code ?? 'error'}): ${detail}`, PhpipamFailureType.DatabaseUnavailable);
}

export function authFailure(cfg: PhpipamConfig, detail: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `phpIPAM database ${describeDatabase(cfg)} rejected the credentials of user ${cfg.user} ` +
      `(password from ${describeSecretRef(cfg.password)}): ${detail}`,
    PhpipamFailureType.DatabaseAuthFailed);
}

function privilegeFailure(cfg: PhpipamConfig, detail: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `user ${cfg.user} lacks a privilege needed on phpIPAM database ${describeDatabase(cfg)}: ${detail}`,
    PhpipamFailureType.DatabasePrivilegeMissing);
}

/** The server knows the user but denies it a database (e.g. a restore's or drill's scratch schema): name the GRANT. */
function databaseGrantFailure(cfg: PhpipamConfig, detail: string): ApplicationFailure {
  const schema = /to database '([^']+)'/.exec(detail)?.[1] ?? cfg.database;
  const grant = schema === cfg.database ? `GRANT ALL PRIVILEGES ON \`${cfg.database}\`.*` : `GRANT ALL PRIVILEGES ON \`${cfg.database}\\_%\`.*`;
  return ApplicationFailure.nonRetryable(
    `user ${cfg.user} may not use database ${schema} on ${cfg.host}:${cfg.port} (${detail}); missing: ${grant} TO '${cfg.user}'@'<host>' ` +
      '(restores and drills create and drop schemas beside the live one: see README "phpIPAM restore credential")',
    PhpipamFailureType.DatabasePrivilegeMissing);
}

/**
 * Maps a failed dump (non-zero exit) to a typed failure from its stderr. The dump tools print
 * `mariadb-dump: Got error: 1045: "Access denied ..." when trying to connect` and the like.
 */
export function dumpFailure(cfg: PhpipamConfig, tool: string, exit: string, stderr: string, password?: string): ApplicationFailure {
  const text = redact(stderr.trim(), password);
  const lastLines = text.split('\n').slice(-5).join('\n') || '(no error output)';
  const errno = Number(/Got error: (\d+)/.exec(text)?.[1] ?? /\bERROR (\d+)/.exec(text)?.[1] ?? Number.NaN);
  if (AUTH_ERRNOS.has(errno)) return authFailure(cfg, lastLines);
  if (errno === DATABASE_ACCESS_ERRNO) return databaseGrantFailure(cfg, lastLines);
  if (PRIVILEGE_ERRNOS.has(errno) || /you need \(at least one of\) the .* privilege/i.test(text)) return privilegeFailure(cfg, lastLines);
  if (errno === UNKNOWN_DATABASE_ERRNO) return databaseFailure({ errno, sqlMessage: lastLines }, cfg);
  if (/Got error: 20(02|03|05|06|13)\b|Lost connection|gone away|Can't connect/i.test(text)) {
    return ApplicationFailure.retryable(`phpIPAM database ${describeDatabase(cfg)} became unavailable during the dump (${tool} ${exit}): ${lastLines}`, PhpipamFailureType.DatabaseUnavailable);
  }
  return ApplicationFailure.retryable(`${tool} of phpIPAM database ${describeDatabase(cfg)} failed (${exit}): ${lastLines}`, PhpipamFailureType.DatabaseDumpFailed);
}
