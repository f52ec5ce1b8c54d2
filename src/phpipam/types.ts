/**
 * Plain types of the phpIPAM database backup (no I/O): what the server says about itself, what the
 * dump recorded, and the facts that go into the manifest. Candidates for src/common/manifest.ts.
 */

export type DatabaseFlavour = 'mariadb' | 'mysql';

/** What the preflight learned from the server. */
export interface ServerInfo {
  flavour: DatabaseFlavour;
  /** `10.11.19`, `8.0.36`: numbers only, vendor suffixes stripped. */
  version: string;
  /** The full VERSION() string, e.g. `10.11.19-MariaDB-0+deb12u1-log`. */
  versionString: string;
  /** Binary logging is on (`@@log_bin`): the dump then records its binlog position. */
  binlog: boolean;
  /** MySQL: `@@gtid_mode` is ON. MariaDB: GTIDs exist whenever the binlog is on. */
  gtidMode: boolean;
  /** Current GTID position (MariaDB `@@gtid_binlog_pos`, MySQL `@@gtid_executed`), if any. */
  gtid?: string;
}

/** The dump program as it reports itself (`--version`). */
export interface DumpTool {
  path: string;
  flavour: DatabaseFlavour;
  version: string;
}

/** Where the dump's snapshot sits in the binary log: the point-in-time-recovery start. */
export interface BinlogPosition {
  file: string;
  position: number;
  /** MariaDB `gtid_slave_pos` / MySQL `GTID_PURGED` as printed by the dump, if any. */
  gtid?: string;
}

export interface TableFact {
  name: string;
  engine: string;
  /** Exact `COUNT(*)`. */
  rows: number;
  /** `CHECKSUM TABLE` value as a decimal string (null if the server could not compute one). */
  checksum: string | null;
}

/** Row counts and checksums read inside one consistent snapshot. */
export interface TableFactsSnapshot {
  tables: TableFact[];
  /** MariaDB: the binlog position of that snapshot (`Binlog_snapshot_*`); null when unknown. */
  snapshotPosition: { file: string; position: number } | null;
}

export interface PhpipamDumpFacts {
  flavour: DatabaseFlavour;
  version: string;
  database: string;
  /** `mariadb-dump 10.11.19`: the program that wrote the artefact. */
  dumpTool: string;
  /** The dump's argv (no secrets: the password is in a 0600 option file, named here only by path). */
  dumpCommand: string[];
  binlog: BinlogPosition | null;
  tables: TableFact[];
  /**
   * true: the table facts were read at exactly the dump's binlog position, so a restore of this dump
   * must reproduce them. false: writes happened between the two snapshots. null: cannot tell
   * (binlog off, or a MySQL server, which does not report a snapshot's position).
   */
  tablesMatchDump: boolean | null;
}
