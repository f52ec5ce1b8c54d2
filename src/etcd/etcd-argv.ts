/**
 * The etcd command line of a member: finding and setting the flags a restore changes
 * (--data-dir, --wal-dir, --initial-cluster*). Pure; the service files that hold the command line
 * are read and written by member-service.ts.
 */
import * as path from 'node:path';

export interface EtcdFlagChanges {
  /** Absolute path of the restored data dir (`restored-<tag>` beside the old one: restoredDataDir). */
  dataDir: string;
  /** Only when the member runs with its own `--wal-dir`: the restored WAL dir. */
  walDir?: string;
  initialCluster?: string;
  initialClusterState?: 'new' | 'existing';
  initialClusterToken?: string;
}

const FLAG_NAMES = {
  dataDir: 'data-dir',
  walDir: 'wal-dir',
  initialCluster: 'initial-cluster',
  initialClusterState: 'initial-cluster-state',
  initialClusterToken: 'initial-cluster-token',
} as const satisfies Record<keyof EtcdFlagChanges, string>;

/** Programs that run another command: their argv is not etcd's, so flags cannot be edited there. */
const LAUNCHERS = new Set([
  'sh',
  'bash',
  'dash',
  'zsh',
  'env',
  'sudo',
  'su',
  'runuser',
  'nohup',
  'nice',
  'ionice',
  'setpriv',
  'chpst',
  'timeout',
]);

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
    throw new Error(
      `expected an etcd command line starting with the etcd executable (an absolute path, or "etcd"); got first element ${JSON.stringify(exe ?? null)}`,
    );
  }
  if (LAUNCHERS.has(base)) {
    throw new Error(
      `the etcd command line starts with ${exe}: etcd's flags are not its argv here; point the service at the etcd binary directly`,
    );
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
  if (changes.walDir !== undefined && !path.posix.isAbsolute(changes.walDir))
    throw new Error(`expected an absolute --wal-dir, got ${JSON.stringify(changes.walDir)}`);
  const state = changes.initialClusterState;
  if (state !== undefined && state !== 'new' && state !== 'existing')
    throw new Error(`expected --initial-cluster-state new or existing, got ${JSON.stringify(state)}`);
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
  if (!at)
    throw new Error(
      `the etcd command line has no --data-dir (etcd's default, <name>.etcd in the working directory, is not supported): ${args.join(' ')}`,
    );
  const element = args[at.valueIndex] as string;
  return at.valueIndex === at.index ? element.slice(element.indexOf('=') + 1) : element;
}

/**
 * The restored data dir: `restored-<tag>` beside the old one, the tag being the restore's
 * (`<setId>-<end of run id>`, workflows/etcd-restore.ts restoreTag): one set restored twice never collides.
 */
export function restoredDataDir(oldDataDir: string, restoreTag: string): string {
  return path.join(path.dirname(oldDataDir), `restored-${restoreTag}`);
}
