import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, constants, mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, relative, sep } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import {
  ArtefactNotFoundError,
  checkLevelPrefix,
  type ArtefactWriter,
  type BackupStore,
  type ListedLevel,
  type ListedObject,
  type StoredObject,
  type WriteLeftover,
} from './store';
import { HashingStream } from './hashing';

const PARTIAL_MARK = '.partial-';
/** listInOrder's page: S3's own page size, so callers see the same rhythm from every store. */
const LIST_PAGE = 1000;

/** A directory on this host. Commit = fsync the temp file, rename it into place, fsync the directory. */
export class LocalStore implements BackupStore {
  constructor(
    readonly name: string,
    readonly root: string,
  ) {}

  location(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  async preflight(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await access(this.root, constants.W_OK);
  }

  async createWriter(key: string): Promise<ArtefactWriter> {
    const finalPath = this.location(key);
    await mkdir(dirname(finalPath), { recursive: true });
    const tempPath = `${dirname(finalPath)}/${partialPrefix(key)}${randomBytes(4).toString('hex')}`;
    const hashing = new HashingStream();
    const file = fileWriteStream(tempPath, { flags: 'wx' });
    // pipeline, not .pipe(): a failing file (disk full) destroys the stream the producer writes into, so it fails instead of waiting.
    const written = pipeline(hashing, file);
    written.catch(() => undefined); // observed in commit/abort
    let settled = false;

    return {
      stream: hashing,
      commit: async (): Promise<StoredObject> => {
        await finished(hashing);
        await written;
        const handle = await open(tempPath, 'r');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tempPath, finalPath);
        await syncDirectory(dirname(finalPath));
        settled = true;
        return { target: this.name, key, bytes: hashing.bytes, sha256: hashing.digestHex(), location: finalPath };
      },
      abort: async () => {
        if (settled) return;
        settled = true;
        hashing.destroy();
        file.destroy();
        await rm(tempPath, { force: true });
        await removeIfEmpty(dirname(finalPath)); // a set directory this writer created must not linger
      },
    };
  }

  async read(key: string) {
    const path = this.location(key);
    if (!(await this.exists(key))) throw new ArtefactNotFoundError(`${this.name}: no artefact at ${path}`);
    return createReadStream(path);
  }

  async exists(key: string): Promise<boolean> {
    return stat(this.location(key)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  async list(prefix = ''): Promise<string[]> {
    return this.committedKeys(prefix);
  }

  async listDetailed(prefix: string, options: { onPage?: () => void } = {}): Promise<ListedObject[]> {
    const objects: ListedObject[] = [];
    for (const key of await this.committedKeys(prefix)) {
      const info = await stat(this.location(key)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined; // deleted meanwhile
        throw err;
      });
      if (info) objects.push({ key, bytes: info.size, modifiedAt: info.mtime.toISOString() });
    }
    options.onPage?.();
    return objects;
  }

  /** The committed keys below a prefix (a writer's partial files are not artefacts yet). */
  private async committedKeys(prefix: string): Promise<string[]> {
    // Walk only the directory the prefix names (e.g. `wal/<cluster>/`), not the whole store.
    const dirKey = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    if (relative(this.root, this.location(dirKey)).startsWith('..')) return []; // a prefix naming no place inside the store
    return (await this.keysUnder(dirKey)).filter((key) => key.startsWith(prefix));
  }

  /** Every committed key below the directory `dirKey` ('' or ending in '/'); keys built by concatenation (a segment directory holds 100 000). */
  private async keysUnder(dirKey: string, keys: string[] = []): Promise<string[]> {
    const entries = await readdir(dirKey ? this.location(dirKey.slice(0, -1)) : this.root, { withFileTypes: true }).catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
        throw err;
      },
    );
    for (const entry of entries) {
      if (entry.isFile() && !entry.name.includes(PARTIAL_MARK)) keys.push(`${dirKey}${entry.name}`);
      else if (entry.isDirectory()) await this.keysUnder(`${dirKey}${entry.name}/`, keys);
    }
    return keys;
  }

  async listLevel(prefix: string): Promise<ListedLevel> {
    checkLevelPrefix(this.name, prefix);
    const dir = prefix ? this.location(prefix.slice(0, -1)) : this.root;
    if (relative(this.root, dir).startsWith('..')) return { keys: [], prefixes: [] };
    // One readdir of the one directory: the sets' directories, not what is inside them.
    const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
      throw err;
    });
    return {
      keys: entries
        .filter((e) => e.isFile() && !e.name.includes(PARTIAL_MARK))
        .map((e) => `${prefix}${e.name}`)
        .sort(),
      prefixes: entries
        .filter((e) => e.isDirectory())
        .map((e) => `${prefix}${e.name}/`)
        .sort(),
    };
  }

  async *listInOrder(prefix: string, startAfter = ''): AsyncIterable<string[]> {
    // A directory is read whole anyway; sorting it is what S3 does on its side.
    const keys = (await this.list(prefix)).filter((key) => key > startAfter).sort();
    for (let i = 0; i < keys.length; i += LIST_PAGE) yield keys.slice(i, i + LIST_PAGE);
  }

  async listLeftovers(scope: { key: string } | { olderThan: Date }): Promise<WriteLeftover[]> {
    const candidates =
      'key' in scope
        ? (await readdir(dirname(this.location(scope.key))).catch(() => [] as string[]))
            .filter((name) => name.startsWith(partialPrefix(scope.key)))
            .map((name) => join(dirname(this.location(scope.key)), name))
        : (await readdir(this.root, { recursive: true, withFileTypes: true }).catch(() => []))
            .filter((f) => f.isFile() && f.name.includes(PARTIAL_MARK))
            .map((f) => join(f.parentPath, f.name));
    const leftovers: WriteLeftover[] = [];
    for (const path of candidates) {
      const info = await stat(path).catch(() => undefined); // gone meanwhile: a writer committed or aborted it
      if (!info || ('olderThan' in scope && info.mtime.getTime() >= scope.olderThan.getTime())) continue;
      const dir = relative(this.root, dirname(path)).split(sep).join('/');
      const file = basename(path).slice(1, basename(path).indexOf(PARTIAL_MARK));
      leftovers.push({ key: dir ? `${dir}/${file}` : file, location: path, startedAt: info.mtime.toISOString(), handle: path });
    }
    return leftovers;
  }

  async removeLeftover(leftover: WriteLeftover): Promise<void> {
    if (!basename(leftover.handle).includes(PARTIAL_MARK) || relative(this.root, leftover.handle).startsWith('..')) {
      throw new Error(`${this.name}: ${leftover.handle} is not a partial file of this store`); // never remove a committed artefact
    }
    await rm(leftover.handle, { force: true });
  }

  async delete(key: string): Promise<void> {
    await rm(this.location(key), { force: true });
    // The set's (or segment chain's) directories go with their last file, up to the store's root.
    for (
      let dir = dirname(this.location(key));
      relative(this.root, dir) !== '' && !relative(this.root, dir).startsWith('..');
      dir = dirname(dir)
    ) {
      if (!(await removeIfEmpty(dir))) break;
    }
  }

  async deleteMany(keys: string[], options: { onProgress?: (done: number) => void } = {}): Promise<void> {
    for (const [i, key] of keys.entries()) {
      await this.delete(key);
      if ((i + 1) % 100 === 0 || i + 1 === keys.length) options.onProgress?.(i + 1);
    }
  }
}

/**
 * A file write stream whose errors name the file: Node's write errors (ENOSPC above all) carry no
 * path, and "no space left on device" alone does not say which disk to free.
 */
export function fileWriteStream(path: string, options?: { flags?: string }): WriteStream {
  const stream = createWriteStream(path, options);
  stream.on('error', (err: NodeJS.ErrnoException) => {
    err.path ??= path;
  });
  return stream;
}

/** A writer's temp file is `.<file>.partial-<random>` beside where the artefact lands. */
function partialPrefix(key: string): string {
  return `.${key.split('/').pop()}${PARTIAL_MARK}`;
}

/** Removes `dir` when empty; true when it is gone now, false when it holds something. */
async function removeIfEmpty(dir: string): Promise<boolean> {
  return rmdir(dir).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return true;
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      return false;
    },
  );
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
