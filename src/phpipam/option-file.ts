/**
 * The dump program gets the password from an option file (`--defaults-file`), never from its argv
 * (visible to every user in `ps` and /proc/<pid>/cmdline) nor its environment (MYSQL_PWD is
 * deprecated and readable by the same user in /proc/<pid>/environ).
 *
 * Why `--defaults-file` and not `--defaults-extra-file`: with -extra-file the client still reads
 * /etc/mysql/*.cnf and then ~/.my.cnf AFTER our file, so a stale `password=` in the worker user's
 * ~/.my.cnf would silently win (we checked: the dump is then rejected). With --defaults-file only
 * our file is read and nothing on the host can change what the dump connects with.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A value for a MySQL/MariaDB option file: double-quoted, with the escapes the option-file parser
 * understands (`\\`, `\"`, `\n`, `\r`, `\t`), so `#`, `;`, quotes and spaces survive intact.
 */
export function escapeOptionValue(value: string): string {
  const escaped = value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

/** The text of a `[client]` option file (read by mariadb-dump, mysqldump and the mariadb/mysql clients). */
export function clientOptionFileText(options: Record<string, string>): string {
  const lines = Object.entries(options).map(([key, value]) => `${key}=${escapeOptionValue(value)}`);
  return ['# written by nnoe-dr', '[client]', ...lines, ''].join('\n');
}

/**
 * Writes `<dir>/client.cnf` with mode 0600 from the first byte (created exclusively with that mode,
 * so there is no moment where another user could read it). The caller deletes it (with `dir`).
 */
export async function writeClientOptionFile(dir: string, options: { password: string }): Promise<string> {
  const path = join(dir, 'client.cnf');
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(clientOptionFileText({ password: options.password }));
  } finally {
    await handle.close();
  }
  return path;
}
