/**
 * Views in a schema swap. A view cannot be renamed into another schema (MariaDB error 1450) and its
 * definition names the tables of its schema, so the swap drops the views and recreates them from
 * their own `SHOW CREATE VIEW` (ALGORITHM, DEFINER and SQL SECURITY kept) with the schema qualifier
 * pointed at the schema they now live in. Views on views are created in dependency order.
 */
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';

export interface ViewDefinition {
  name: string;
  /** `CREATE ALGORITHM=... DEFINER=... SQL SECURITY ... VIEW ... AS ...` as the server shows it. */
  create: string;
  collationConnection: string;
}

const q = (name: string) => mysql.escapeId(name);

/** The views' definitions; a view this user may not see the definition of is named in the error. */
export async function readViewDefinitions(conn: Connection, schema: string, names: string[]): Promise<ViewDefinition[]> {
  const views: ViewDefinition[] = [];
  for (const name of names) {
    const [rows] = await conn.query<RowDataPacket[]>(`SHOW CREATE VIEW ${q(schema)}.${q(name)}`);
    const create = rows[0]?.['Create View'];
    if (typeof create !== 'string' || create === '')
      throw new Error(`cannot read the definition of view ${schema}.${name} (SHOW VIEW privilege)`);
    views.push({ name, create, collationConnection: String(rows[0]?.collation_connection ?? 'utf8mb4_general_ci') });
  }
  return views;
}

/** The statement that creates `view` in `to`, every `from` qualifier (and the view's own) pointed at `to`. */
export function viewStatementIn(view: ViewDefinition, from: string, to: string): string {
  return view.create.split(`${q(from)}.`).join(`${q(to)}.`);
}

/**
 * Creates the views in `to` (the default schema is switched to it: unqualified names resolve there).
 * A view whose base view does not exist yet is retried after the others; what cannot be created at
 * all is thrown with the server's message.
 */
export async function createViews(conn: Connection, views: ViewDefinition[], from: string, to: string): Promise<void> {
  await conn.query(`USE ${q(to)}`);
  let pending = views;
  while (pending.length > 0) {
    const failed: Array<{ view: ViewDefinition; error: Error }> = [];
    for (const view of pending) {
      await conn.query('SET SESSION collation_connection = ?', [view.collationConnection]);
      await conn.query(viewStatementIn(view, from, to)).catch((error: Error) => {
        failed.push({ view, error });
      });
    }
    if (failed.length === pending.length) {
      throw new Error(`views not created in ${to}: ${failed.map((f) => `${f.view.name}: ${f.error.message}`).join('; ')}`);
    }
    pending = failed.map((f) => f.view);
  }
}

export async function dropViews(conn: Connection, schema: string, names: string[]): Promise<void> {
  for (const name of names) await conn.query(`DROP VIEW IF EXISTS ${q(schema)}.${q(name)}`);
}

/** Table types a swap handles: base tables move, views are recreated. Anything else (SEQUENCE, ...) is refused. */
export const SWAPPABLE_TABLE_TYPES = ['BASE TABLE', 'VIEW'];
