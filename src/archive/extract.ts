/**
 * Safe extraction of the tar artefacts we restore (agent caches, Nebula dirs), with node-tar.
 *
 * node-tar already strips leading `/` and skips `..` entries, but silently: a restore must not
 * "succeed" with half the archive quietly dropped, so every entry is checked first and one bad
 * entry refuses the whole archive (UnsafeArchiveError names it). The order is:
 *
 *   1. spool the (decompressed) tar to a private temp file;
 *   2. read it once and validate every entry; nothing is written to the target yet;
 *   3. extract it with node-tar's own protections on, then set every mode exactly as archived
 *      (the process umask does not leak into a restored key or cache file). Owners: node-tar's
 *      default, i.e. kept from the archive when the worker runs as root (as `tar -x` does).
 *
 * Two passes over a spool because some checks need the whole archive (a later symlink can change
 * where an earlier link's target lands). For the runbook's "extract beside, then swap":
 * `extractIntoFreshDir` (a new `<final>.restoring-*` dir, removed on any failure) and
 * `swapDirectory` (old dir kept as `<final>.pre-restore-<stamp>`).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix, win32 } from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, extract as tarExtract, type ReadEntry } from 'tar';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/** The entry kinds a restore may create. Devices, FIFOs and vendor types are never allowed. */
export type ArchiveEntryType = 'File' | 'Directory' | 'SymbolicLink' | 'Link';
const SAFE_TYPES: readonly ArchiveEntryType[] = ['File', 'Directory', 'SymbolicLink', 'Link'];

export interface ArchiveEntry {
  /** Relative to the extraction root (after `stripPrefix`); `.` is the root itself. */
  path: string;
  type: ArchiveEntryType;
  /** Permission bits as archived (and as set on disk by extraction). */
  mode: number;
  size: number;
  /** Symlink target (as archived) or hard link target (relative to the root). */
  linkpath?: string;
}

export interface ArchiveReadOptions {
  /** The stream is gzip (`.tar.gz`), already decrypted. */
  gzip?: boolean;
  /**
   * Archive path that maps to the extraction root, e.g. `var/nnoe/cache` for an archive made
   * with paths relative to `/`. Every entry must be this directory or under it.
   */
  stripPrefix?: string;
  /** Narrows the allowed entry types (default: files, directories, symlinks, hard links). */
  allowedTypes?: readonly ArchiveEntryType[];
}

export interface ExtractOptions extends ArchiveReadOptions {
  /** Extraction root: must be missing or empty. */
  cwd: string;
  /** Where the spool file goes (default: the OS temp dir). Needs room for the whole tar. */
  spoolDir?: string;
}

/** An archive entry that would write outside the root or create something a restore must not. */
export class UnsafeArchiveError extends DomainError {
  override name = 'UnsafeArchiveError';
  constructor(
    readonly entryPath: string,
    problem: string,
    expected: string,
  ) {
    super(`unsafe archive entry ${JSON.stringify(entryPath)}: ${problem}; expected ${expected}`, FailureType.UnsafeArchive, true);
  }
}

/** Validates every entry without extracting; throws UnsafeArchiveError like extraction would. */
export async function listArchive(source: Readable, opts: ArchiveReadOptions = {}): Promise<{ entries: ArchiveEntry[] }> {
  const plan = await scanArchive(source, opts);
  return { entries: plan.map(({ entry }) => entry) };
}

/** Extracts into `opts.cwd` (missing or empty) after validating the whole archive. */
export async function extractArchive(source: Readable, opts: ExtractOptions): Promise<{ entries: ArchiveEntry[] }> {
  await assertEmptyOrMissing(opts.cwd);
  const spool = await mkdtemp(join(opts.spoolDir ?? tmpdir(), '.nnoe-dr-spool-'));
  try {
    const file = join(spool, 'archive.tar');
    await pipeline([source, ...gunzipIf(opts.gzip), createWriteStream(file, { mode: 0o600 })]);
    const plan = await scanArchive(createReadStream(file), { ...opts, gzip: false });

    await mkdir(opts.cwd, { recursive: true });
    const byRawPath = new Map(plan.map((p) => [p.rawPath, p]));
    const unplanned: string[] = [];
    await tarExtract({
      file,
      cwd: opts.cwd,
      strict: true,
      preservePaths: false,
      unlink: false,
      keep: false,
      // Rewrite each entry to the validated path under the root (this is also how stripPrefix maps).
      filter: (path, entry) => {
        const planned = byRawPath.get(path);
        if (!planned) {
          unplanned.push(path);
          return false;
        }
        const readEntry = entry as ReadEntry;
        readEntry.path = planned.entry.path;
        if (planned.entry.type === 'Link') readEntry.linkpath = planned.entry.linkpath;
        return true;
      },
    });
    // The spool is ours and was read twice: different entries would mean a bug, not an attack.
    if (unplanned.length > 0) throw new Error(`archive changed between validation and extraction: ${unplanned.join(', ')}`);
    await applyModes(
      opts.cwd,
      plan.map(({ entry }) => entry),
    );
    return { entries: plan.map(({ entry }) => entry) };
  } finally {
    await rm(spool, { recursive: true, force: true });
  }
}

/**
 * Extracts into a new `<finalDir>.restoring-XXXXXX` beside `finalDir` (same filesystem, so the
 * swap is a rename) and returns it. On any failure that dir is removed and `finalDir` untouched.
 * The new root gets the archived root's mode, else the current `finalDir`'s, else 0755.
 */
export async function extractIntoFreshDir(
  source: Readable,
  finalDir: string,
  opts: ArchiveReadOptions = {},
): Promise<{ dir: string; entries: ArchiveEntry[] }> {
  const dir = await mkdtemp(`${finalDir}.restoring-`);
  try {
    const { entries } = await extractArchive(source, { ...opts, cwd: dir, spoolDir: dirname(finalDir) });
    if (!entries.some((e) => e.path === '.')) {
      const current = await stat(finalDir).then(
        (s) => s.mode & 0o7777,
        () => 0o755,
      );
      await chmod(dir, current);
    }
    return { dir, entries };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Puts `newDir` in place of `finalDir`, keeping the old one beside it as
 * `<finalDir>.pre-restore-<UTC stamp>`. If the second rename fails the old dir is put back.
 */
export async function swapDirectory(newDir: string, finalDir: string): Promise<{ finalDir: string; previousDir: string | null }> {
  const exists = await lstat(finalDir).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await rename(newDir, finalDir);
    return { finalDir, previousDir: null };
  }
  const previousDir = `${finalDir}.pre-restore-${new Date().toISOString().replace(/[-:.]/g, '')}`;
  if (
    await lstat(previousDir).then(
      () => true,
      () => false,
    )
  )
    throw new Error(`${previousDir} already exists; not overwriting it`);
  await rename(finalDir, previousDir);
  try {
    await rename(newDir, finalDir);
  } catch (err) {
    await rename(previousDir, finalDir);
    throw err;
  }
  return { finalDir, previousDir };
}

// ---------------------------------------------------------------------------------------------

interface PlannedEntry {
  /** The path as node-tar reports it, the key between the two passes. */
  rawPath: string;
  entry: ArchiveEntry;
  /** Every root-relative path a symlink's target walks through, in order (see resolveInside). */
  walk?: string[];
}

function gunzipIf(gzip: boolean | undefined): Transform[] {
  return gzip ? [createGunzip()] : [];
}

async function assertEmptyOrMissing(dir: string): Promise<void> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (names.length > 0) throw new Error(`extraction dir ${dir} is not empty; extract into a fresh dir (extractIntoFreshDir) and swap`);
}

/** Reads the whole archive and returns its validated plan; throws the first unsafe entry. */
async function scanArchive(source: Readable, opts: ArchiveReadOptions): Promise<PlannedEntry[]> {
  const validator = new ArchiveValidator(opts);
  // The first refused entry stops the parse; it is the error the caller sees, not node-tar's abort.
  let refused: unknown;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry) => {
      entry.resume();
      if (refused) return;
      try {
        validator.add(entry);
      } catch (err) {
        refused = err;
        parser.abort(err as Error);
      }
    },
  });
  try {
    await pipeline([source, ...gunzipIf(opts.gzip), parser as unknown as NodeJS.WritableStream]);
  } catch (err) {
    throw refused ?? err;
  }
  if (refused) throw refused;
  return validator.finish();
}

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const SETID_BITS = 0o6000;

/** Path components, treating `\` as a separator too (node-tar does when it looks for `..`). */
function components(path: string): string[] {
  return path.split(/[\\/]/).filter((c) => c !== '' && c !== '.');
}

function isAbsolute(path: string): boolean {
  // win32.parse also catches `C:x`, `\x` and `//host/share`, which node-tar would strip.
  return posix.isAbsolute(path) || win32.parse(path).root !== '';
}

class ArchiveValidator {
  private readonly prefix: string[];
  private readonly allowed: readonly ArchiveEntryType[];
  private readonly plan: PlannedEntry[] = [];
  private readonly byPath = new Map<string, PlannedEntry>();

  constructor(private readonly opts: ArchiveReadOptions) {
    const prefix = opts.stripPrefix ?? '';
    if (prefix.split(/[\\/]/).includes('..')) throw new Error(`stripPrefix ${prefix} must not contain '..'`);
    this.prefix = components(prefix);
    this.allowed = (opts.allowedTypes ?? SAFE_TYPES).filter((t) => SAFE_TYPES.includes(t));
  }

  add(entry: ReadEntry): void {
    const raw = entry.path;
    const refuse = (problem: string, expected: string) => new UnsafeArchiveError(raw, problem, expected);
    const inside = 'a relative path inside the extraction root';

    if (isAbsolute(raw)) throw refuse('absolute path', inside);
    if (raw.split(/[\\/]/).includes('..')) throw refuse("path has a '..' component", inside);
    const rel = this.strip(components(raw));
    if (!rel) throw refuse(`outside the prefix ${JSON.stringify(this.opts.stripPrefix)}`, 'every entry under that prefix');

    const type: string = FILE_TYPES.has(entry.type) ? 'File' : entry.type;
    if (!(this.allowed as readonly string[]).includes(type)) {
      throw refuse(`${entry.type} entry`, `one of ${this.allowed.join(', ')}`);
    }
    const path = rel.length === 0 ? '.' : rel.join('/');
    const mode = (entry.mode ?? 0) & 0o7777;
    if (path === '.' && type !== 'Directory') throw refuse(`the extraction root itself as a ${type}`, 'a directory');
    if (type !== 'Directory' && (mode & SETID_BITS) !== 0) {
      throw refuse(`setuid/setgid mode ${mode.toString(8)}`, 'no setuid or setgid bits on restored files');
    }
    const previous = this.byPath.get(path);
    if (previous && !(previous.entry.type === 'Directory' && type === 'Directory')) {
      throw refuse(`appears twice (${previous.entry.type}, then ${type})`, 'each path once');
    }

    const planned: PlannedEntry = { rawPath: raw, entry: { path, type: type as ArchiveEntryType, mode, size: entry.size } };
    const link = entry.linkpath ?? '';
    if (type === 'SymbolicLink') {
      if (isAbsolute(link)) throw refuse(`symlink to absolute path ${link}`, 'a relative link target inside the extraction root');
      const walk = resolveInside(rel.slice(0, -1), link);
      if (!walk) throw refuse(`symlink to ${link} resolves outside the extraction root`, 'a link target inside the extraction root');
      planned.entry.linkpath = link;
      planned.walk = walk;
    } else if (type === 'Link') {
      const expected = 'a hard link to a regular file earlier in the archive';
      if (isAbsolute(link) || link.split(/[\\/]/).includes('..'))
        throw refuse(`hard link to ${link} outside the extraction root`, expected);
      const target = this.strip(components(link));
      const targetEntry = target && this.byPath.get(target.join('/'));
      if (!targetEntry || targetEntry.entry.type !== 'File') throw refuse(`hard link to ${link}`, expected);
      planned.entry.linkpath = targetEntry.entry.path;
    }
    this.plan.push(planned);
    this.byPath.set(path, planned);
  }

  /** Checks that need every entry: nothing is written through, or links through, a symlink. */
  finish(): PlannedEntry[] {
    for (const { rawPath, entry, walk } of this.plan) {
      const parts = entry.path === '.' ? [] : entry.path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const ancestor = this.byPath.get(parts.slice(0, i).join('/'));
        if (ancestor && ancestor.entry.type !== 'Directory') {
          throw new UnsafeArchiveError(
            rawPath,
            `inside ${ancestor.entry.path}, which is a ${ancestor.entry.type}`,
            'parent paths that are directories',
          );
        }
      }
      for (const step of walk ?? []) {
        const hop = this.byPath.get(step);
        if (hop?.entry.type === 'SymbolicLink') {
          throw new UnsafeArchiveError(
            rawPath,
            `symlink target ${entry.linkpath} goes through another symlink, ${hop.entry.path}`,
            'a link target that is not itself a symlink',
          );
        }
      }
    }
    return this.plan;
  }

  /** Components relative to the root, or undefined when outside the prefix. */
  private strip(parts: string[]): string[] | undefined {
    if (parts.length < this.prefix.length) return undefined;
    if (this.prefix.some((p, i) => parts[i] !== p)) return undefined;
    return parts.slice(this.prefix.length);
  }
}

/**
 * Lexical resolution of a relative link target from `dir` (root-relative components): the paths
 * it walks through, or undefined when it climbs above the root. Lexical is only right if no step
 * is itself a symlink (`d -> .` makes `d/..` the root's parent), so finish() refuses those.
 */
function resolveInside(dir: string[], link: string): string[] | undefined {
  const stack = [...dir];
  const walk: string[] = [];
  for (const part of link.split(/[\\/]/)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return undefined;
      stack.pop();
    } else {
      stack.push(part);
      walk.push(stack.join('/'));
    }
  }
  return walk;
}

/**
 * Sets every file and directory to its archived mode, deepest first (a parent without write
 * permission is set after its children). node-tar's modes go through the process umask and it
 * adds u+rwx to directories; a restore must reproduce the archive, not the worker's umask.
 */
async function applyModes(root: string, entries: ArchiveEntry[]): Promise<void> {
  const depth = (e: ArchiveEntry) => (e.path === '.' ? 0 : e.path.split('/').length);
  const targets = entries.filter((e) => e.type === 'File' || e.type === 'Directory').sort((a, b) => depth(b) - depth(a));
  for (const entry of targets) {
    const path = entry.path === '.' ? root : join(root, entry.path);
    const st = await lstat(path);
    // Never chmod through a symlink (validation already refuses this; belt and braces).
    if (st.isSymbolicLink()) throw new Error(`${path} became a symlink during extraction`);
    if ((st.mode & 0o7777) !== entry.mode) await chmod(path, entry.mode);
  }
}
