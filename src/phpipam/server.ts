/**
 * mysql2 side of the phpIPAM backup: connect, ask the server what it is (preflight), and read the
 * per-table facts (exact row counts, CHECKSUM TABLE) that go into the manifest and that a restore
 * must reproduce.
 */
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import type { PhpipamConfig } from './config';
import { databaseFailure } from './failures';
import type { DatabaseFlavour, ServerInfo, TableFact, TableFactsSnapshot } from './types';

const CONNECT_TIMEOUT_MS = 10_000;

/** Connects over TCP as the configured user; any failure becomes a typed failure naming the database. */
export async function connectPhpipam(cfg: PhpipamConfig, password: string): Promise<Connection> {
  try {
    return await mysql.createConnection({
      host: cfg.host,
      port: cfg.port,
      user: cfg.user,
      password,
      database: cfg.database,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Counts and checksums can exceed 2^53 in principle: read them as strings, never rounded.
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
  } catch (err) {
    throw databaseFailure(err, cfg, password);
  }
}

/** `10.11.19` from `10.11.19-MariaDB-0+deb12u1-log` (or from `5.5.5-10.11.19-MariaDB`, MariaDB's old replication prefix). */
export function numericVersion(versionString: string): string {
  const match = /^(?:5\.5\.5-)?(\d+\.\d+\.\d+)/.exec(versionString);
  return match ? match[1]! : versionString;
}

export function flavourOf(versionString: string, versionComment: string): DatabaseFlavour {
  return /mariadb/i.test(`${versionString} ${versionComment}`) ? 'mariadb' : 'mysql';
}

/** The first row of a query (an empty object if there is none). */
async function one(conn: Connection, sql: string, values?: unknown[]): Promise<Record<string, unknown>> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, values);
  return rows[0] ?? {};
}

/** Server flavour and version, whether binary logging (and GTIDs) are on. */
export async function preflight(conn: Connection): Promise<ServerInfo> {
  const basics = await one(conn, 'SELECT VERSION() AS versionString, @@version_comment AS comment, @@log_bin AS logBin');
  const versionString = String(basics.versionString);
  const flavour = flavourOf(versionString, String(basics.comment ?? ''));
  const binlog = Number(basics.logBin) === 1;
  const info: ServerInfo = { flavour, version: numericVersion(versionString), versionString, binlog, gtidMode: false };
  if (flavour === 'mariadb') {
    // MariaDB always assigns GTIDs when the binlog is on; there is no gtid_mode switch.
    const gtid = String((await one(conn, 'SELECT @@global.gtid_binlog_pos AS gtid')).gtid ?? '');
    info.gtidMode = binlog;
    if (gtid) info.gtid = gtid;
  } else {
    const row = await one(conn, 'SELECT @@global.gtid_mode AS mode, @@global.gtid_executed AS gtid');
    info.gtidMode = String(row.mode).toUpperCase() === 'ON';
    const gtid = String(row.gtid ?? '').replace(/\s+/g, '');
    if (info.gtidMode && gtid) info.gtid = gtid;
  }
  return info;
}

/**
 * Exact row count and CHECKSUM TABLE of every base table of `database`, read inside ONE consistent
 * snapshot (REPEATABLE READ + WITH CONSISTENT SNAPSHOT; InnoDB's CHECKSUM TABLE honours the
 * snapshot too, checked on MariaDB 10.11). On MariaDB the snapshot's binlog position is read as
 * well, so the caller can prove the facts describe exactly the state the dump captured.
 * Non-InnoDB tables (MyISAM, Aria) are counted but are not part of any snapshot.
 */
export async function tableFacts(
  conn: Connection,
  database: string,
  flavour: DatabaseFlavour,
  onTable?: (table: string) => void,
): Promise<TableFactsSnapshot> {
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
  try {
    const snapshotPosition = flavour === 'mariadb' ? await binlogSnapshotPosition(conn) : null;
    const [listed] = await conn.query<RowDataPacket[]>(
      "SELECT TABLE_NAME AS name, ENGINE AS engine FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
      [database],
    );
    const tables: TableFact[] = [];
    for (const { name, engine } of listed) {
      onTable?.(String(name));
      const count = await one(conn, 'SELECT COUNT(*) AS n FROM ??.??', [database, name]);
      const checksum = await one(conn, 'CHECKSUM TABLE ??.??', [database, name]);
      tables.push({
        name: String(name),
        engine: String(engine ?? ''),
        rows: Number(count.n),
        checksum: checksum.Checksum === null || checksum.Checksum === undefined ? null : String(checksum.Checksum),
      });
    }
    return { tables, snapshotPosition };
  } finally {
    await conn.query('COMMIT');
  }
}

/** MariaDB's `Binlog_snapshot_file/position`: where the current consistent snapshot sits in the binlog. */
async function binlogSnapshotPosition(conn: Connection): Promise<{ file: string; position: number } | null> {
  const [rows] = await conn.query<RowDataPacket[]>("SHOW STATUS LIKE 'binlog_snapshot_%'");
  const value = (name: string) => rows.find((r) => String(r.Variable_name).toLowerCase() === name)?.Value as string | undefined;
  const file = value('binlog_snapshot_file');
  const position = Number(value('binlog_snapshot_position'));
  return file && Number.isFinite(position) ? { file, position } : null;
}
