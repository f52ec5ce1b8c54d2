/**
 * Plain types of the phpIPAM database backup (no I/O): what the server says about itself and the
 * dump tool. The facts that go into the manifest (PhpipamDumpFacts and its parts) are the manifest's
 * own types (src/common/manifest.ts), re-exported here.
 */
import type { DatabaseFlavour, TableFact } from '../common/manifest';

export type { BinlogPosition, DatabaseFlavour, PhpipamDumpFacts, TableFact } from '../common/manifest';

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

/** Row counts and checksums read inside one consistent snapshot. */
export interface TableFactsSnapshot {
  tables: TableFact[];
  /** MariaDB: the binlog position of that snapshot (`Binlog_snapshot_*`); null when unknown. */
  snapshotPosition: { file: string; position: number } | null;
}
