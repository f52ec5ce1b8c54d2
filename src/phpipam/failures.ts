/**
 * Typed failures of the phpIPAM database backup. Every message names the database as
 * `<database>@<host>:<port>` and the user, never the password (and every message built from server
 * or dump output goes through `redact` in case a password was echoed somewhere).
 */
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { describeSecretRef } from '../config/secrets';
import type { PhpipamConfig } from './config';

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
export function databaseFailure(err: unknown, cfg: PhpipamConfig, password?: string): DomainError {
  if (err instanceof DomainError) return err;
  const e = (err ?? {}) as DriverError;
  const detail = redact(e.sqlMessage ?? e.message ?? String(err), password);
  const where = describeDatabase(cfg);
  if (e.errno !== undefined && AUTH_ERRNOS.has(e.errno)) return authFailure(cfg, detail);
  if (e.errno === DATABASE_ACCESS_ERRNO) return databaseGrantFailure(cfg, detail);
  if (e.errno === UNKNOWN_DATABASE_ERRNO) {
    return DomainError.nonRetryable(
      `phpIPAM database ${where} does not exist (check phpipam.database in the config): ${detail}`,
      FailureType.ConfigError,
    );
  }
  if (e.errno !== undefined && PRIVILEGE_ERRNOS.has(e.errno)) return privilegeFailure(cfg, detail);
  return DomainError.retryable(
    `phpIPAM database ${where} is unavailable (${e.code ?? 'error'}): ${detail}`,
    FailureType.DatabaseUnavailable,
  );
}

export function authFailure(cfg: PhpipamConfig, detail: string): DomainError {
  return DomainError.nonRetryable(
    `phpIPAM database ${describeDatabase(cfg)} rejected the credentials of user ${cfg.user} ` +
      `(password from ${describeSecretRef(cfg.password)}): ${detail}`,
    FailureType.DatabaseAuthFailed,
  );
}

function privilegeFailure(cfg: PhpipamConfig, detail: string): DomainError {
  return DomainError.nonRetryable(
    `user ${cfg.user} lacks a privilege needed on phpIPAM database ${describeDatabase(cfg)}: ${detail}`,
    FailureType.DatabasePrivilegeMissing,
  );
}

/** The server knows the user but denies it a database (e.g. a restore's or drill's scratch schema): name the GRANT. */
function databaseGrantFailure(cfg: PhpipamConfig, detail: string): DomainError {
  const schema = /to database '([^']+)'/.exec(detail)?.[1] ?? cfg.database;
  const grant =
    schema === cfg.database ? `GRANT ALL PRIVILEGES ON \`${cfg.database}\`.*` : `GRANT ALL PRIVILEGES ON \`${cfg.database}\\_%\`.*`;
  return DomainError.nonRetryable(
    `user ${cfg.user} may not use database ${schema} on ${cfg.host}:${cfg.port} (${detail}); missing: ${grant} TO '${cfg.user}'@'<host>' ` +
      '(restores and drills create and drop schemas beside the live one: see README "phpIPAM restore credential")',
    FailureType.DatabasePrivilegeMissing,
  );
}

/**
 * Maps a failed dump (non-zero exit) to a typed failure from its stderr. The dump tools print
 * `mariadb-dump: Got error: 1045: "Access denied ..." when trying to connect` and the like.
 */
export function dumpFailure(cfg: PhpipamConfig, tool: string, exit: string, stderr: string, password?: string): DomainError {
  const text = redact(stderr.trim(), password);
  const lastLines = text.split('\n').slice(-5).join('\n') || '(no error output)';
  const errno = Number(/Got error: (\d+)/.exec(text)?.[1] ?? /\bERROR (\d+)/.exec(text)?.[1] ?? Number.NaN);
  if (AUTH_ERRNOS.has(errno)) return authFailure(cfg, lastLines);
  if (errno === DATABASE_ACCESS_ERRNO) return databaseGrantFailure(cfg, lastLines);
  if (PRIVILEGE_ERRNOS.has(errno) || /you need \(at least one of\) the .* privilege/i.test(text)) return privilegeFailure(cfg, lastLines);
  if (errno === UNKNOWN_DATABASE_ERRNO) return databaseFailure({ errno, sqlMessage: lastLines }, cfg);
  if (/Got error: 20(02|03|05|06|13)\b|Lost connection|gone away|Can't connect/i.test(text)) {
    return DomainError.retryable(
      `phpIPAM database ${describeDatabase(cfg)} became unavailable during the dump (${tool} ${exit}): ${lastLines}`,
      FailureType.DatabaseUnavailable,
    );
  }
  return DomainError.retryable(
    `${tool} of phpIPAM database ${describeDatabase(cfg)} failed (${exit}): ${lastLines}`,
    FailureType.DatabaseDumpFailed,
  );
}
