/**
 * Replacing a service file durably while keeping its old content beside it, and putting it back:
 * the old file is kept as `<file>.pre-restore-<tag>` (written and fsynced first), the new text goes
 * to a temp file in the same directory that is fsynced and renamed over, then the directory is
 * fsynced. Putting back compares sha256s instead of trusting memory, so it is idempotent.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** A file replaced by replaceKeepingBackup: where it is, where its old content is kept, both hashes. */
export interface KeptFileChange {
  file: string;
  /** The old content, kept beside `file`; null = `file` did not exist before. */
  backupFile: string | null;
  /** sha256 (hex) of the old content (of '' when backupFile is null). */
  before: string;
  /** sha256 (hex) of the new content. */
  after: string;
}

export function sha256(content: Buffer | string): string {
  return crypto.createHash('sha256').update(content).digest('hex');
}

export async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
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

export function backupPathFor(file: string, backupTag: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(backupTag))
    throw new Error(`expected a backup tag of letters, digits, '.', '_' or '-', got ${JSON.stringify(backupTag)}`);
  return `${file}.pre-restore-${backupTag}`;
}

/** Copies `current` (the content of `file`) to `backup`, or keeps an identical copy already there. */
async function keepBackup(file: string, current: Buffer, backup: string): Promise<void> {
  const existing = await readIfExists(backup);
  if (existing === undefined) {
    await writeFileDurably(backup, current, await fs.stat(file));
  } else if (!existing.equals(current)) {
    throw new Error(
      `${backup} already exists and differs from ${file}: an earlier restore with the same tag left it; compare them and remove one by hand`,
    );
  }
}

/**
 * Writes `next` over `file`, keeping the old content as `backup`. A retry after success (file
 * already holds `next` and the backup exists) changes nothing and reports the same change.
 */
export async function replaceKeepingBackup(
  file: string,
  next: string,
  backup: string,
  existedBefore: boolean,
): Promise<Pick<KeptFileChange, 'backupFile' | 'before' | 'after'>> {
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
export async function putBack(change: KeptFileChange): Promise<boolean> {
  const current = await readIfExists(change.file);
  const currentHash = current === undefined ? undefined : sha256(current);
  const conflict = () =>
    new Error(
      `${change.file} changed since the restore rewrote it (sha256 ${currentHash}, expected ${change.after} or the original ${change.before}); not touching it`,
    );
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
    throw new Error(
      `cannot put back ${change.file}: its backup ${change.backupFile} is ${backup === undefined ? 'missing' : 'not the original content'}`,
    );
  }
  await fs.rename(change.backupFile, change.file);
  await fsyncDir(path.dirname(change.file));
  return true;
}
