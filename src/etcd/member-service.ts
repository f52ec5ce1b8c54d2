/**
 * Repointing an etcd member's service at a restored data dir, and putting it back.
 *
 * The restore runbook starts each member on `restored-<setId>` beside its old data dir and, for
 * members joining an existing cluster, with a new `--initial-cluster`, `--initial-cluster-state`
 * and `--initial-cluster-token`. Those flags live in the service definition:
 *
 * - supervisor (sandbox, tests): the `command=` line of the member's program file (program name =
 *   member name), followed by `supervisorctl reread` + `update <program>`;
 * - systemd (production): a drop-in `<unit>.d/50-nnoe-dr-restore.conf` that resets `ExecStart`,
 *   followed by `systemctl daemon-reload`.
 *
 * Safety: the old file is kept beside the new one as `<file>.pre-restore-<tag>` (written and
 * fsynced first), the new text goes to a temp file in the same directory that is fsynced and renamed
 * over, then the directory is fsynced. Revert renames the backup back (or deletes a drop-in that
 * did not exist before) and is idempotent: it compares sha256s instead of trusting memory.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { pollUntil } from '../common/poll';
import { type ProgramState, programStates, quoteArg, supervisorctl } from '../services/supervisorctl';

const run = promisify(execFile);

// ------------------------------------------------------------------ types

export interface EtcdFlagChanges {
  /** Absolute path of the restored data dir (`restored-<setId>` beside the old one). */
  dataDir: string;
  /** Only when the member runs with its own `--wal-dir`: the restored WAL dir. */
  walDir?: string;
  initialCluster?: string;
  initialClusterState?: 'new' | 'existing';
  initialClusterToken?: string;
}

/** Same shape as the config's ServiceDriverSchema (src/config/schema.ts). */
export type EtcdServiceRef =
  | { driver: 'supervisor'; supervisorConf: string }
  | { driver: 'systemd'; unit: string };

export interface MemberServiceOptions {
  /** systemd: where drop-in directories live. Default /etc/systemd/system. */
  systemdDir?: string;
  /** systemd: runs `systemctl <args>` and resolves to its stdout. Default: execFile('systemctl'). */
  systemctl?: (args: string[]) => Promise<string>;
  /** supervisor: how long to wait for the member to settle after `update` restarted it. Default 60 s. */
  settleTimeoutMs?: number;
}

/** What repointEtcdMember changed; plain JSON, so it can travel as an activity result. */
export interface MemberConfigChange {
  driver: EtcdServiceRef['driver'];
  member: string;
  /** The program file (supervisor) or drop-in (systemd) that now holds the new argv. */
  file: string;
  /** The old content, kept beside `file`; null = `file` did not exist before (systemd drop-in). */
  backupFile: string | null;
  /** sha256 (hex) of the old content (of '' when backupFile is null). */
  before: string;
  /** sha256 (hex) of the new content. */
  after: string;
  /** supervisor: whether the member runs after `update` (which restarts it); systemd: null. */
  running: boolean | null;
}

export interface MemberRevertResult {
  /** Whether this call changed the file (false: already put back, or never rewritten). */
  restored: boolean;
  /** supervisor: whether the member runs afterwards; systemd: null. */
  running: boolean | null;
}

export const SYSTEMD_DIR = '/etc/systemd/system';
export const DROP_IN_NAME = '50-nnoe-dr-restore.conf';

// ------------------------------------------------------------------ etcd argv (pure)

const FLAG_NAMES = {
  dataDir: 'data-dir',
  walDir: 'wal-dir',
  initialCluster: 'initial-cluster',
  initialClusterState: 'initial-cluster-state',
  initialClusterToken: 'initial-cluster-token',
} as const satisfies Record<keyof EtcdFlagChanges, string>;

/** Programs that run another command: their argv is not etcd's, so flags cannot be edited there. */
const LAUNCHERS = new Set(['sh', 'bash', 'dash', 'zsh', 'env', 'sudo', 'su', 'runuser', 'nohup', 'nice', 'ionice', 'setpriv', 'chpst', 'timeout']);

interface FlagAt {
  index: number;
  /** Index of the element holding the value: `index` for `--flag=value`, `index + 1` for `--flag value`. */
  valueIndex: number;
  prefix: string;
}

/** Go's flag package (which etcd uses) accepts `-flag` and `--flag`, `=value` or the next element. */
const FLAG_RE = /^(--?)([A-Za-z0-9][A-Za-z0-9.-]*)(=[\s\S]*)?$/;

function assertEtcdExecutable(argv: readonly string[]): void {
  const exe = argv[0];
  const base = exe === undefined ? '' : path.posix.basename(exe);
  if (!exe || !(path.posix.isAbsolute(exe) || exe === 'etcd')) {
    throw new Error(`expected an etcd command line starting with the etcd executable (an absolute path, or "etcd"); got first element ${JSON.stringify(exe ?? null)}`);
  }
  if (LAUNCHERS.has(base)) {
    throw new Error(`the etcd command line starts with ${exe}: etcd's flags are not its argv here; point the service at the etcd binary directly`);
  }
}

/** Where each flag of interest sits in argv; throws if one appears twice or lacks its value. */
function findFlags(argv: readonly string[], names: readonly string[]): Map<string, FlagAt> {
  const found = new Map<string, FlagAt>();
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') break;
    const match = FLAG_RE.exec(arg);
    if (!match) continue;
    const [, prefix, name, inline] = match as unknown as [string, string, string, string | undefined];
    if (name === 'config-file') {
      throw new Error(`the etcd command line uses --config-file: etcd then ignores its other flags; change the config file instead`);
    }
    if (!names.includes(name)) continue;
    if (found.has(name)) throw new Error(`the etcd command line sets --${name} twice; refusing to guess which one etcd uses`);
    if (inline === undefined && i + 1 >= argv.length) throw new Error(`the etcd command line ends with --${name} and no value`);
    found.set(name, { index: i, valueIndex: inline === undefined ? i + 1 : i, prefix });
    if (inline === undefined) i++;
  }
  return found;
}

function checkChanges(changes: EtcdFlagChanges): void {
  if (!path.posix.isAbsolute(changes.dataDir)) throw new Error(`expected an absolute --data-dir, got ${JSON.stringify(changes.dataDir)}`);
  if (changes.walDir !== undefined && !path.posix.isAbsolute(changes.walDir)) throw new Error(`expected an absolute --wal-dir, got ${JSON.stringify(changes.walDir)}`);
  const state = changes.initialClusterState;
  if (state !== undefined && state !== 'new' && state !== 'existing') throw new Error(`expected --initial-cluster-state new or existing, got ${JSON.stringify(state)}`);
  for (const [key, value] of Object.entries(changes)) {
    if (value === '') throw new Error(`expected a value for ${key}, got an empty string`);
  }
}

/**
 * The etcd argv with the restore's flags set: existing flags are replaced in place (keeping their
 * `--flag=value` or `--flag value` form), missing ones appended as `--flag=value`. Throws if argv
 * does not start with an etcd executable (any absolute path, so stand-ins work in tests), sets a
 * flag twice, uses --config-file, or has its own --wal-dir while `changes` has no walDir.
 */
export function rewriteEtcdArgs(argv: string[], changes: EtcdFlagChanges): string[] {
  assertEtcdExecutable(argv);
  checkChanges(changes);
  const found = findFlags(argv, Object.values(FLAG_NAMES));
  if (found.has(FLAG_NAMES.walDir) && changes.walDir === undefined) {
    throw new Error('the etcd command line has its own --wal-dir: a new --data-dir alone would keep the old WAL; pass walDir too');
  }
  const result = [...argv];
  const missing: string[] = [];
  for (const key of Object.keys(FLAG_NAMES) as (keyof EtcdFlagChanges)[]) {
    const value = changes[key];
    if (value === undefined) continue;
    const name = FLAG_NAMES[key];
    const at = found.get(name);
    if (!at) missing.push(`--${name}=${value}`);
    else if (at.valueIndex === at.index) result[at.index] = `${at.prefix}${name}=${value}`;
    else result[at.valueIndex] = value;
  }
  const terminator = result.indexOf('--', 1);
  result.splice(terminator === -1 ? result.length : terminator, 0, ...missing);
  return result;
}

/** The value of --data-dir in an etcd argv (the restore needs the old one). */
export function currentDataDir(args: string[]): string {
  const at = findFlags(args, [FLAG_NAMES.dataDir]).get(FLAG_NAMES.dataDir);
  if (!at) throw new Error(`the etcd command line has no --data-dir (etcd's default, <name>.etcd in the working directory, is not supported): ${args.join(' ')}`);
  const element = args[at.valueIndex] as string;
  return at.valueIndex === at.index ? element.slice(element.indexOf('=') + 1) : element;
}

/** The runbook's restored data dir: `restored-<setId>` beside the old one. */
export function restoredDataDir(oldDataDir: string, setId: string): string {
  return path.join(path.dirname(oldDataDir), `restored-${setId}`);
}

// ------------------------------------------------------------------ supervisor command= (pure)

const SHLEX_WHITESPACE = ' \t\r\n';

/** Python's `shlex.split(s)` (posix, no comments), which supervisord applies to `command=`. */
export function shlexSplit(text: string): string[] {
  const args: string[] = [];
  let token = '';
  let inToken = false;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = null;
      else token += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) token += text[++i] as string;
      else token += c;
    } else if (SHLEX_WHITESPACE.includes(c)) {
      if (inToken) args.push(token);
      token = '';
      inToken = false;
    } else {
      inToken = true;
      if (c === "'" || c === '"') quote = c;
      else if (c !== '\\') token += c;
      else if (i + 1 < text.length) token += text[++i] as string;
      else throw new Error(`cannot split ${JSON.stringify(text)}: it ends with a lone backslash`);
    }
  }
  if (quote !== null) throw new Error(`cannot split ${JSON.stringify(text)}: no closing ${quote}`);
  if (inToken) args.push(token);
  return args;
}

/** ConfigParser (as supervisord configures it) ends a value at `;` or `#` after whitespace. */
const INLINE_COMMENT_RE = /\s[;#]/;

/** supervisord `%`-formats option values: `%%` is a literal `%`; expansions cannot be rewritten safely. */
function unescapePercent(value: string): string {
  return value.replace(/%(.|$)/g, (_whole, next: string) => {
    if (next === '%') return '%';
    if (next === '(') throw new Error(`command uses a supervisord %(...)s expansion; edit it by hand: ${value}`);
    throw new Error(`command has a lone '%' that supervisord would reject: ${value}`);
  });
}

/**
 * The argv supervisord runs for a `command=` value (or a whole `command=...` line): inline comment
 * cut, `%%` unescaped, then shlex-split. Inverse of formatSupervisorCommand.
 */
export function parseSupervisorCommand(line: string): string[] {
  let value = line.replace(/^\s*command\s*[=:]\s*/i, '');
  const comment = INLINE_COMMENT_RE.exec(value);
  if (comment) value = value.slice(0, comment.index);
  const argv = shlexSplit(unescapePercent(value.trim()));
  if (argv.length === 0) throw new Error(`empty supervisor command: ${JSON.stringify(line)}`);
  return argv;
}

/** The `command=` value for argv, quoted with the sandbox's quoteArg. */
export function formatSupervisorCommand(argv: string[]): string {
  if (argv.length === 0) throw new Error('cannot format an empty command');
  const bad = argv.find((arg) => /[\r\n]/.test(arg));
  if (bad !== undefined) throw new Error(`a supervisor command= line cannot hold an argument with a line break: ${JSON.stringify(bad)}`);
  const value = argv.map(quoteArg).join(' ');
  // A quoted ` ;` or ` #` would still be cut by ConfigParser as an inline comment.
  if (INLINE_COMMENT_RE.test(value)) throw new Error(`supervisord would cut this command at ' ;' or ' #': ${value}`);
  return value;
}

// ------------------------------------------------------------------ supervisor files

function lines(text: string): string[] {
  return text.split('\n');
}

function isSectionHeader(line: string): boolean {
  return /^\[[^\]]+\]/.test(line);
}

/** Line range [start, end) of the body of section `name` in an ini text, or undefined. */
function sectionRange(text: string, name: string): { start: number; end: number } | undefined {
  const all = lines(text);
  const header = all.findIndex((line) => line.trim() === `[${name}]`);
  if (header === -1) return undefined;
  const next = all.findIndex((line, i) => i > header && isSectionHeader(line));
  return { start: header + 1, end: next === -1 ? all.length : next };
}

/** Value of `key` in a section, with ConfigParser continuation lines joined by spaces. */
function optionValue(text: string, section: string, key: string): string | undefined {
  const range = sectionRange(text, section);
  if (!range) return undefined;
  const all = lines(text);
  const keyRe = new RegExp(`^${key}\\s*[=:]\\s*(.*)$`, 'i');
  for (let i = range.start; i < range.end; i++) {
    const match = keyRe.exec(all[i] as string);
    if (!match) continue;
    const parts = [match[1] as string];
    for (let j = i + 1; j < range.end && /^\s+\S/.test(all[j] as string); j++) parts.push((all[j] as string).trim());
    return parts.map((part) => part.split(INLINE_COMMENT_RE)[0] as string).join(' ');
  }
  return undefined;
}

/** `*` and `?` in a basename, as Python's glob (which skips dot files unless asked). */
function basenamePattern(pattern: string): RegExp {
  if (/[*?[]/.test(path.dirname(pattern))) throw new Error(`only the file name may hold wildcards in an [include] pattern: ${pattern}`);
  const body = path.basename(pattern).replace(/[.+^${}()|\\\]]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

async function globOne(pattern: string): Promise<string[]> {
  if (!/[*?[]/.test(pattern)) return (await exists(pattern)) ? [pattern] : [];
  const re = basenamePattern(pattern);
  const dir = path.dirname(pattern);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const hiddenOk = path.basename(pattern).startsWith('.');
  return names.filter((name) => re.test(name) && (hiddenOk || !name.startsWith('.'))).sort().map((name) => path.join(dir, name));
}

/** The [include] patterns of a supervisord conf, absolute, in order. */
async function includePatterns(supervisorConf: string): Promise<string[]> {
  const raw = optionValue(await fs.readFile(supervisorConf, 'utf8'), 'include', 'files');
  if (raw === undefined) return [];
  const here = path.dirname(path.resolve(supervisorConf));
  const expanded = raw
    .replace(/%\(here\)s/g, here)
    .replace(/%\(host_node_name\)s/g, os.hostname());
  return unescapePercent(expanded).split(/\s+/).filter(Boolean).map((pattern) => path.resolve(here, pattern));
}

/** The main conf followed by every file its [include] section pulls in, as supervisord reads them. */
export async function supervisorConfFiles(supervisorConf: string): Promise<string[]> {
  const files = [path.resolve(supervisorConf)];
  for (const pattern of await includePatterns(supervisorConf)) files.push(...(await globOne(pattern)));
  return files;
}

/** The file holding `[program:<program>]`: the main conf or one it includes. */
export async function locateProgramConfig(supervisorConf: string, program: string): Promise<string> {
  const holders: string[] = [];
  for (const file of await supervisorConfFiles(supervisorConf)) {
    if (sectionRange(await fs.readFile(file, 'utf8'), `program:${program}`)) holders.push(file);
  }
  if (holders.length === 0) {
    throw new Error(`no [program:${program}] section in ${supervisorConf} or the files its [include] section matches`);
  }
  if (holders.length > 1) throw new Error(`[program:${program}] is defined in several files (${holders.join(', ')}); supervisord merges them, refusing to edit one`);
  return holders[0] as string;
}

interface CommandLine {
  index: number;
  /** `command=` (or `command = `) as written. */
  key: string;
  value: string;
  /** The inline comment (with the whitespace before it), kept on rewrite. */
  comment: string;
}

function findCommandLine(text: string, program: string, file: string): CommandLine {
  const range = sectionRange(text, `program:${program}`);
  if (!range) throw new Error(`expected a [program:${program}] section in ${file}`);
  const all = lines(text);
  const hits: number[] = [];
  for (let i = range.start; i < range.end; i++) if (/^command\s*[=:]/i.test(all[i] as string)) hits.push(i);
  if (hits.length !== 1) throw new Error(`expected exactly one command= line in [program:${program}] of ${file}, found ${hits.length}`);
  const index = hits[0] as number;
  if (/^\s+\S/.test(all[index + 1] ?? '') && index + 1 < range.end) {
    throw new Error(`the command= of [program:${program}] in ${file} continues on the next line; put it on one line first`);
  }
  const line = all[index] as string;
  const key = (/^command\s*[=:]\s*/i.exec(line) as RegExpExecArray)[0];
  const rest = line.slice(key.length);
  const comment = INLINE_COMMENT_RE.exec(rest);
  return {
    index, key,
    value: comment ? rest.slice(0, comment.index) : rest,
    comment: comment ? rest.slice(comment.index) : '',
  };
}

function programArgs(text: string, program: string, file: string): string[] {
  const { value } = findCommandLine(text, program, file);
  try {
    return parseSupervisorCommand(value);
  } catch (err) {
    throw new Error(`cannot read the command= of [program:${program}] in ${file}: ${(err as Error).message}`);
  }
}

/** The program file's text with its command= replaced by argv; every other byte kept. */
export function replaceProgramCommand(text: string, program: string, argv: string[], file = 'the program file'): string {
  const line = findCommandLine(text, program, file);
  const all = lines(text);
  all[line.index] = `${line.key}${formatSupervisorCommand(argv)}${line.comment}`;
  return all.join('\n');
}

function autostarts(text: string, program: string): boolean {
  const value = optionValue(text, `program:${program}`, 'autostart');
  return value === undefined || !/^(false|no|off|0)$/i.test(value.trim());
}

// ------------------------------------------------------------------ systemd (pure)

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
  if (commands.length !== 1) throw new Error(`expected exactly one ExecStart command for ${unit}, systemctl show gave ${commands.length}: ${output.trim()}`);
  const match = /\{ path=(.*?) ; argv\[\]=(.*?) ; (?:ignore_errors=(yes|no)|flags=([^;]*)) ;/.exec(output);
  if (!match) throw new Error(`cannot read the ExecStart of ${unit} from systemctl show: ${output.trim()}`);
  const [, exePath, joined, ignore, flags] = match as unknown as [string, string, string, string | undefined, string | undefined];
  if (/["'\\]/.test(joined)) throw new Error(`the ExecStart of ${unit} holds quotes or backslashes; systemctl show does not keep argument boundaries then: ${joined}`);
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

// ------------------------------------------------------------------ files on disk

export function sha256(content: Buffer | string): string {
  return crypto.createHash('sha256').update(content).digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `file` through a fsynced temp file in the same directory, renamed over, then fsyncs the dir. */
async function writeFileDurably(file: string, content: Buffer | string, like?: { mode: number; uid: number; gid: number }): Promise<void> {
  const dir = path.dirname(file);
  // A dot name that ends in neither .conf nor .ini: no [include] glob or systemd drop-in scan picks it up.
  const temp = path.join(dir, `.${path.basename(file)}.nnoe-dr-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const handle = await fs.open(temp, 'wx', like ? like.mode & 0o7777 : 0o644);
  try {
    await handle.writeFile(content);
    if (like && process.getuid?.() === 0) await handle.chown(like.uid, like.gid);
    await handle.sync();
    await handle.close();
    await fs.rename(temp, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

function backupPathFor(file: string, backupTag: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(backupTag)) throw new Error(`expected a backup tag of letters, digits, '.', '_' or '-', got ${JSON.stringify(backupTag)}`);
  return `${file}.pre-restore-${backupTag}`;
}

/** Copies `current` (the content of `file`) to `backup`, or keeps an identical copy already there. */
async function keepBackup(file: string, current: Buffer, backup: string): Promise<void> {
  const existing = await readIfExists(backup);
  if (existing === undefined) {
    await writeFileDurably(backup, current, await fs.stat(file));
  } else if (!existing.equals(current)) {
    throw new Error(`${backup} already exists and differs from ${file}: an earlier restore with the same tag left it; compare them and remove one by hand`);
  }
}

/**
 * Writes `next` over `file`, keeping the old content as `backup`. A retry after success (file
 * already holds `next` and the backup exists) changes nothing and reports the same change.
 */
async function replaceKeepingBackup(file: string, next: string, backup: string, existedBefore: boolean): Promise<Pick<MemberConfigChange, 'backupFile' | 'before' | 'after'>> {
  const current = await readIfExists(file);
  const after = sha256(next);
  const savedBackup = await readIfExists(backup);
  if (current !== undefined && current.equals(Buffer.from(next))) {
    if (savedBackup !== undefined) return { backupFile: backup, before: sha256(savedBackup), after };
    if (!existedBefore) return { backupFile: null, before: sha256(''), after };
  }
  if (current === undefined) {
    await writeFileDurably(file, next);
    return { backupFile: null, before: sha256(''), after };
  }
  await keepBackup(file, current, backup);
  await writeFileDurably(file, next, await fs.stat(file));
  return { backupFile: backup, before: sha256(current), after };
}

/** Puts the old content back; false if there was nothing to do. Refuses files someone else changed. */
async function putBack(change: MemberConfigChange): Promise<boolean> {
  const current = await readIfExists(change.file);
  const currentHash = current === undefined ? undefined : sha256(current);
  const conflict = () => new Error(`${change.file} changed since the restore rewrote it (sha256 ${currentHash}, expected ${change.after} or the original ${change.before}); not touching it`);
  if (change.backupFile === null) {
    if (current === undefined) return false;
    if (currentHash !== change.after) throw conflict();
    await fs.unlink(change.file);
    await fsyncDir(path.dirname(change.file));
    return true;
  }
  if (currentHash === change.before) return false;
  if (currentHash !== change.after) throw conflict();
  const backup = await readIfExists(change.backupFile);
  if (backup === undefined || sha256(backup) !== change.before) {
    throw new Error(`cannot put back ${change.file}: its backup ${change.backupFile} is ${backup === undefined ? 'missing' : 'not the original content'}`);
  }
  await fs.rename(change.backupFile, change.file);
  await fsyncDir(path.dirname(change.file));
  return true;
}

// ------------------------------------------------------------------ supervisor side effects

/** Refuses a backup or temp name that the conf's [include] globs would load as a second definition. */
async function assertNotIncluded(supervisorConf: string, file: string): Promise<void> {
  for (const pattern of await includePatterns(supervisorConf)) {
    const hiddenOk = path.basename(pattern).startsWith('.');
    if (path.dirname(pattern) === path.dirname(file) && basenamePattern(pattern).test(path.basename(file)) && (hiddenOk || !path.basename(file).startsWith('.'))) {
      throw new Error(`${file} would match [include] pattern ${pattern} of ${supervisorConf}; supervisord would load the old program definition too`);
    }
  }
}

/**
 * `reread` + `update <program>`. `update` of a changed program stops it and adds it again, which
 * starts it when autostart is true (even if it was stopped before): the caller treats this step as
 * (re)starting the member. Resolves to whether the program is RUNNING once it has settled.
 */
async function applySupervisorChange(supervisorConf: string, program: string, text: string, timeoutMs: number): Promise<boolean> {
  await supervisorctl(supervisorConf, 'reread');
  const output = await supervisorctl(supervisorConf, 'update', program);
  const restarted = /(updated|added) process group/.test(output);
  let state: ProgramState | undefined;
  const settled = (s: ProgramState | undefined) => s === 'RUNNING' || s === 'FATAL' || s === 'EXITED' || (s === 'STOPPED' && !autostarts(text, program));
  if (restarted) {
    await pollUntil(async () => settled((state = (await programStates(supervisorConf))[program])), {
      timeoutMs,
      describeFailure: () => `supervisor program ${program} did not settle within ${timeoutMs} ms after update (state ${state ?? 'unknown'})`,
    });
  } else {
    state = (await programStates(supervisorConf))[program];
  }
  return state === 'RUNNING';
}

async function repointSupervisorMember(supervisorConf: string, member: string, changes: EtcdFlagChanges, backupTag: string, timeoutMs: number): Promise<MemberConfigChange> {
  const file = await locateProgramConfig(supervisorConf, member);
  const text = await fs.readFile(file, 'utf8');
  const next = replaceProgramCommand(text, member, rewriteEtcdArgs(programArgs(text, member, file), changes), file);
  const backup = backupPathFor(file, backupTag);
  await assertNotIncluded(supervisorConf, backup);
  const written = await replaceKeepingBackup(file, next, backup, true);
  const running = await applySupervisorChange(supervisorConf, member, next, timeoutMs);
  return { driver: 'supervisor', member, file, ...written, running };
}

// ------------------------------------------------------------------ systemd side effects

async function defaultSystemctl(args: string[]): Promise<string> {
  try {
    return (await run('systemctl', args, { timeout: 120_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; code?: number | string };
    throw new Error(`systemctl ${args.join(' ')} failed (${String(e.code)}): ${(e.stderr ?? '').trim().slice(0, 300)}`);
  }
}

async function systemdExecStart(unit: string, options: MemberServiceOptions): Promise<SystemdExecStart> {
  const systemctl = options.systemctl ?? defaultSystemctl;
  return parseSystemdExecStart(await systemctl(['show', unit, '-p', 'ExecStart', '--value']), unit);
}

function dropInPath(unit: string, options: MemberServiceOptions): string {
  if (!/^[A-Za-z0-9@._:\\-]+$/.test(unit)) throw new Error(`expected a systemd unit name, got ${JSON.stringify(unit)}`);
  return path.join(options.systemdDir ?? SYSTEMD_DIR, `${unit}.d`, DROP_IN_NAME);
}

async function ensureDir(dir: string): Promise<void> {
  if (await exists(dir)) return;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fsyncDir(path.dirname(dir));
}

async function repointSystemdMember(unit: string, member: string, changes: EtcdFlagChanges, backupTag: string, options: MemberServiceOptions): Promise<MemberConfigChange> {
  const exec = await systemdExecStart(unit, options);
  const next = renderSystemdDropIn({ ...exec, argv: rewriteEtcdArgs(exec.argv, changes) }, backupTag);
  const file = dropInPath(unit, options);
  await ensureDir(path.dirname(file));
  const written = await replaceKeepingBackup(file, next, backupPathFor(file, backupTag), false);
  // daemon-reload only loads the unit; the member starts when the runbook starts it.
  await (options.systemctl ?? defaultSystemctl)(['daemon-reload']);
  return { driver: 'systemd', member, file, ...written, running: null };
}

// ------------------------------------------------------------------ API

/** The etcd argv the service would start the member with now. */
export async function currentEtcdArgs(service: EtcdServiceRef, member: string, options: MemberServiceOptions = {}): Promise<string[]> {
  if (service.driver === 'systemd') return (await systemdExecStart(service.unit, options)).argv;
  const file = await locateProgramConfig(service.supervisorConf, member);
  return programArgs(await fs.readFile(file, 'utf8'), member, file);
}

/**
 * Points the member's service at the restored data dir (and new cluster flags). supervisor: the
 * `update` at the end (re)starts the member; `running` says whether it runs afterwards. systemd:
 * only daemon-reload, nothing is started. Safe to retry with the same changes and tag.
 */
export async function repointEtcdMember(opts: {
  service: EtcdServiceRef;
  member: string;
  changes: EtcdFlagChanges;
  /** Names the backup: `<file>.pre-restore-<backupTag>`; e.g. the backup set id. */
  backupTag: string;
} & MemberServiceOptions): Promise<MemberConfigChange> {
  const { service, member, changes, backupTag } = opts;
  if (service.driver === 'systemd') return repointSystemdMember(service.unit, member, changes, backupTag, opts);
  return repointSupervisorMember(service.supervisorConf, member, changes, backupTag, opts.settleTimeoutMs ?? 60_000);
}

/**
 * Puts the member's old service definition back: renames the backup over the file (or deletes a
 * drop-in that did not exist before), then reread/update (restarting the member with its old argv
 * if supervisord had loaded the new one) or daemon-reload. Idempotent: a second call, or a call
 * for a rewrite that never happened, changes no file and restarts nothing.
 */
export async function revertEtcdMember(change: MemberConfigChange, service: EtcdServiceRef, options: MemberServiceOptions = {}): Promise<MemberRevertResult> {
  if (change.driver !== service.driver) throw new Error(`cannot revert a ${change.driver} change of ${change.file} through a ${service.driver} service`);
  const restored = await putBack(change);
  if (service.driver === 'systemd') {
    await (options.systemctl ?? defaultSystemctl)(['daemon-reload']);
    return { restored, running: null };
  }
  const text = await fs.readFile(change.file, 'utf8');
  const running = await applySupervisorChange(service.supervisorConf, change.member, text, options.settleTimeoutMs ?? 60_000);
  return { restored, running };
}
