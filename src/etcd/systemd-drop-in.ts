/**
 * systemd's side of a member's command line: reading `ExecStart` from `systemctl show`, and the
 * drop-in that resets it to the restored argv. Pure.
 */
import * as path from 'node:path';

export const DROP_IN_NAME = '50-nnoe-dr-restore.conf';

export interface SystemdExecStart {
  argv: string[];
  /** `ExecStart=-...`: failures ignored. */
  ignoreErrors: boolean;
}

/**
 * The command of `systemctl show <unit> -p ExecStart --value`:
 * `{ path=/usr/bin/etcd ; argv[]=/usr/bin/etcd --name=a ... ; ignore_errors=no ; ... }`.
 * systemd joins argv with spaces without quoting, so arguments holding spaces cannot be told
 * apart; quotes or backslashes make the split ambiguous and are refused.
 */
export function parseSystemdExecStart(output: string, unit = 'the unit'): SystemdExecStart {
  const commands = output.match(/\{ path=/g) ?? [];
  if (commands.length !== 1)
    throw new Error(`expected exactly one ExecStart command for ${unit}, systemctl show gave ${commands.length}: ${output.trim()}`);
  const match = /\{ path=(.*?) ; argv\[\]=(.*?) ; (?:ignore_errors=(yes|no)|flags=([^;]*)) ;/.exec(output);
  if (!match) throw new Error(`cannot read the ExecStart of ${unit} from systemctl show: ${output.trim()}`);
  const [, exePath, joined, ignore, flags] = match as unknown as [string, string, string, string | undefined, string | undefined];
  if (/["'\\]/.test(joined))
    throw new Error(
      `the ExecStart of ${unit} holds quotes or backslashes; systemctl show does not keep argument boundaries then: ${joined}`,
    );
  const argv = joined.split(/\s+/).filter(Boolean);
  if (argv.length === 0) throw new Error(`the ExecStart of ${unit} has an empty argv: ${output.trim()}`);
  if (!path.posix.isAbsolute(argv[0] as string) && path.posix.isAbsolute(exePath)) argv[0] = exePath;
  return { argv, ignoreErrors: ignore === 'yes' || /\bignore-failure\b/.test(flags ?? '') };
}

/** One argument in systemd's ExecStart syntax: `%` specifiers and `$` expansion escaped, quoted if needed. */
export function quoteSystemdArg(arg: string): string {
  if (arg === ';') throw new Error('an ExecStart argument cannot be a lone ";" (systemd reads it as a command separator)');
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, () => '$$');
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(escaped)) return escaped;
  const inner = escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r');
  return `"${inner}"`;
}

export function renderSystemdDropIn(exec: SystemdExecStart, backupTag: string): string {
  return [
    `# Written by nnoe-dr (restore ${backupTag}): starts this etcd member on its restored data dir.`,
    `# A previous drop-in, if any, is kept as ${DROP_IN_NAME}.pre-restore-${backupTag}; nnoe-dr reverts by restoring`,
    '# it (or deleting this file) and running systemctl daemon-reload.',
    '[Service]',
    'ExecStart=',
    `ExecStart=${exec.ignoreErrors ? '-' : ''}${exec.argv.map(quoteSystemdArg).join(' ')}`,
    '',
  ].join('\n');
}
