/**
 * The phpIPAM restore's schemas: their names (staging and keep, beside the live one), the checks
 and quoting every statement uses on them, and what a schema holds (character set, objects).
 */
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

const SCHEMA_NAME = /^[A-Za-z0-9_$]{1,64}$/;

/**
 * `phpipam_restore_20261127_143502_123` and `phpipam_pre_restore_20261127_143502_123` for a restore
 * started at `date` (milliseconds too: two restores within one second must not ask for one name).
 */
export function restoreSchemaNames(database: string, date: Date): { staging: string; keepAs: string } {
  const iso = date.toISOString();
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}_${iso.slice(20, 23)}`;
  const names = { staging: `${database}_restore_${stamp}`, keepAs: `${database}_pre_restore_${stamp}` };
  requireSchemaName(names.staging);
  requireSchemaName(names.keepAs);
  return names;
}

export function requireSchemaName(name: string): void {
  if (!SCHEMA_NAME.test(name)) {
    throw DomainError.nonRetryable(`"${name}" is not a usable schema name (1-64 letters, digits, "_" or "$")`, FailureType.InvalidInput);
  }
}

export const q = (name: string) => mysql.escapeId(name);
export const qq = (schema: string, name: string) => `${q(schema)}.${q(name)}`;

/** The schema's default character set and collation, or undefined when it does not exist. */
export async function schemaCharset(conn: Connection, schema: string): Promise<{ characterSet: string; collation: string } | undefined> {
  const [rows] = await conn.query<RowDataPacket[]>(
    'SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
    [schema],
  );
  const row = rows[0];
  // Names of the server's own charsets/collations: letters, digits and "_" only, safe to inline.
  if (!row || !/^\w+$/.test(String(row.cs)) || !/^\w+$/.test(String(row.co))) return undefined;
  return { characterSet: String(row.cs), collation: String(row.co) };
}

/** What a schema holds, as the load reports it and the swap moves it. */
export interface SchemaObjects {
  exists: boolean;
  tables: Array<{ name: string; type: string }>;
  triggers: Array<{ name: string; table: string }>;
  routines: Array<{ name: string; kind: string }>;
  events: Array<{ name: string; status: string }>;
}

export const routineLabel = (r: { name: string; kind: string }) => `${r.kind} ${r.name}`;

export async function listSchemaObjects(conn: Connection, schema: string): Promise<SchemaObjects> {
  const [schemata] = await conn.query<RowDataPacket[]>('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [schema]);
  const [tables] = await conn.query<RowDataPacket[]>(
    'SELECT TABLE_NAME AS name, TABLE_TYPE AS type FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
    [schema],
  );
  // Creation order per table and timing, so re-creating them keeps their firing order.
  const [triggers] = await conn.query<RowDataPacket[]>(
    'SELECT TRIGGER_NAME AS name, EVENT_OBJECT_TABLE AS tbl FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ' +
      'ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER',
    [schema],
  );
  const [routines] = await conn.query<RowDataPacket[]>(
    'SELECT ROUTINE_NAME AS name, ROUTINE_TYPE AS kind FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME',
    [schema],
  );
  const [events] = await conn.query<RowDataPacket[]>(
    'SELECT EVENT_NAME AS name, STATUS AS status FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME',
    [schema],
  );
  return {
    exists: schemata.length > 0,
    tables: tables.map((r) => ({ name: String(r.name), type: String(r.type) })),
    triggers: triggers.map((r) => ({ name: String(r.name), table: String(r.tbl) })),
    routines: routines.map((r) => ({ name: String(r.name), kind: String(r.kind) })),
    events: events.map((r) => ({ name: String(r.name), status: String(r.status) })),
  };
}

/** SHOW CREATE ... of every trigger, routine and event of a schema, with the session settings they need. */
