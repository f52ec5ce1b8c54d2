/**
 * Which dump program to run and with which options: pure functions, unit-tested for both flavours.
 *
 *   MariaDB: mariadb-dump ... --master-data=2 --gtid        (binlog on)
 *   MySQL:   mysqldump    ... --source-data=2               (client 8.0.26+; --master-data=2 before)
 *                             --set-gtid-purged=COMMENTED  (gtid_mode ON; 8.0.17+, else OFF)
 *
 * `=2` writes the position as a comment, so restoring the dump never runs CHANGE MASTER/SOURCE or
 * overwrites the GTID state of the server it is restored into (COMMENTED does the same for MySQL's
 * GTID_PURGED; the default AUTO would write an executable SET that fails on any server with GTIDs).
 * The binlog options are options of the *client* program, so they follow the dump tool's version.
 */
import type { DatabaseFlavour, DumpTool, ServerInfo } from './types';

export const DEFAULT_DUMP_BINARY: Record<DatabaseFlavour, string> = { mariadb: 'mariadb-dump', mysql: 'mysqldump' };
export const DUMP_PACKAGE: Record<DatabaseFlavour, string> = { mariadb: 'mariadb-client', mysql: "MySQL's mysql-client (Oracle)" };

/** `8.0.26` >= `8.0.4`, numerically per component. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const b = minimum.split('.').map((part) => Number.parseInt(part, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff > 0;
  }
  return true;
}

/**
 * Flavour and version of a dump program from its `--version` output:
 *   mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
 *   mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)
 *   mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)
 *   mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)
 */
export function parseDumpToolVersion(path: string, output: string): DumpTool {
  const mariadb = /(\d+\.\d+\.\d+)-MariaDB/i.exec(output);
  if (mariadb) return { path, flavour: 'mariadb', version: mariadb[1]! };
  const mysql = /Distrib (\d+\.\d+\.\d+)/.exec(output) ?? /Ver (\d+\.\d+\.\d+)/.exec(output);
  if (mysql) return { path, flavour: 'mysql', version: mysql[1]! };
  throw new Error(`cannot tell the flavour and version of ${path} from its --version output: ${output.trim().slice(0, 200)}`);
}

/** Why this tool must not dump this server, or undefined if it may. */
export function toolMismatch(tool: DumpTool, server: Pick<ServerInfo, 'flavour' | 'version'>): string | undefined {
  if (tool.flavour === server.flavour) return undefined;
  const name = (f: DatabaseFlavour) => (f === 'mariadb' ? 'MariaDB' : 'MySQL');
  return (
    `the server is ${name(server.flavour)} ${server.version} but ${tool.path} is ${name(tool.flavour)}'s dump program ` +
    `(${tool.version}); install ${DUMP_PACKAGE[server.flavour]} on the worker or point phpipam.dumpBinary at a matching dump program`
  );
}

/** Options that make the dump record its binlog (and GTID) position as comments. */
export function binlogOptions(tool: Pick<DumpTool, 'flavour' | 'version'>, server: Pick<ServerInfo, 'binlog' | 'gtidMode'>): string[] {
  if (!server.binlog) return [];
  if (tool.flavour === 'mariadb') return ['--master-data=2', '--gtid'];
  const position = versionAtLeast(tool.version, '8.0.26') ? '--source-data=2' : '--master-data=2';
  if (!server.gtidMode) return [position];
  return [position, versionAtLeast(tool.version, '8.0.17') ? '--set-gtid-purged=COMMENTED' : '--set-gtid-purged=OFF'];
}

export interface DumpCommandInput {
  tool: DumpTool;
  server: Pick<ServerInfo, 'binlog' | 'gtidMode'>;
  host: string;
  port: number;
  user: string;
  database: string;
  /** 0600 file holding the password; see option-file.ts. */
  optionFile: string;
}

export interface DumpCommand {
  binary: string;
  argv: string[];
}

/**
 * The dump's command line. Host, port, user and database are on it on purpose (an operator looking at
 * `ps` sees what is being dumped); the password never is.
 */
export function buildDumpCommand(input: DumpCommandInput): DumpCommand {
  return {
    binary: input.tool.path,
    argv: [
      // Must come first (the clients only honour --defaults-file as the first option).
      `--defaults-file=${input.optionFile}`,
      `--host=${input.host}`,
      `--port=${input.port}`,
      '--protocol=TCP', // "localhost" would otherwise mean the local socket, unlike mysql2
      `--user=${input.user}`,
      '--default-character-set=utf8mb4',
      '--single-transaction', // consistent InnoDB snapshot, no table locks
      '--quick', // row by row, never a whole table in the tool's memory
      '--routines',
      '--triggers',
      '--events',
      '--hex-blob',
      '--no-tablespaces', // else MySQL 8.0.21+ needs the PROCESS privilege; tablespaces are not ours to restore
      ...binlogOptions(input.tool, input.server),
      // One database without --databases: no CREATE DATABASE/USE in the dump, so it restores into any schema.
      input.database,
    ],
  };
}
