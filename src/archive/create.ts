/**
 * tar archives of host files for backup artefacts. Entries are stored relative to `/`, as the
 * runbook's `tar -czf ... /var/nnoe/cache` does, so an operator can still restore one by hand with
 * `tar -xzf ... -C /`. Modes, owners and times are kept (`portable: false`).
 */
import type { Stats } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { create as createTar } from 'tar';

export interface ArchivedEntry {
  /** Absolute path on the source host. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits, e.g. 0o600. */
  mode: number;
  size: number;
}

/**
 * Streams a tar of `paths` (absolute). Only regular files, directories and symlinks are archived:
 * a FIFO would block the archive forever and a socket means nothing after a restore.
 */
export function createArchiveStream(paths: string[], onEntry: (entry: ArchivedEntry) => void): Readable {
  const tar = createTar(
    {
      cwd: '/',
      portable: false,
      strict: true,
      filter: (path, entry) => {
        const stats = entry as Stats; // while creating, node-tar passes fs.Stats
        const type = stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink' : null;
        if (type)
          onEntry({ path: `/${path.replace(/^\/+/, '')}`, type, mode: stats.mode & 0o7777, size: type === 'file' ? stats.size : 0 });
        return type !== null;
      },
    },
    paths.map((p) => p.replace(/^\/+/, '')),
  );
  // node-tar's stream is a Minipass: bridge it into a Node stream so errors reach the pipeline.
  const archive = new PassThrough();
  tar.on('error', (err: unknown) => archive.destroy(err as Error));
  tar.pipe(archive);
  return archive;
}
