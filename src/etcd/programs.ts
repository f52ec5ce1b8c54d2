/**
 * Where nnoe-dr finds etcd's own programs: in the config's `etcdBinDir` when set (the sandbox and
 * tests point it at the etcd version they run), else on PATH (a node with Debian's or etcd's
 * release packages installed).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface EtcdPrograms {
  etcd: string;
  etcdctl: string;
  /** The offline tool of etcd 3.5+; etcd 3.4 has none. */
  etcdutl?: string;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** etcd, etcdctl and (when present) etcdutl; a configured dir must hold etcd and etcdctl. */
export function etcdPrograms(binDir?: string): EtcdPrograms {
  if (binDir === undefined) {
    // Bare names: execFile finds them on PATH and names them in its error if they are not there.
    const etcdutl = onPath('etcdutl');
    return { etcd: 'etcd', etcdctl: 'etcdctl', ...(etcdutl ? { etcdutl } : {}) };
  }
  const [etcd, etcdctl, etcdutl] = ['etcd', 'etcdctl', 'etcdutl'].map((name) => join(binDir, name)) as [string, string, string];
  for (const required of [etcd, etcdctl]) {
    if (!existsSync(required))
      throw new Error(
        `etcdBinDir ${binDir} holds no ${required.slice(binDir.length + 1)} (expected etcd, etcdctl and, from etcd 3.5, etcdutl there)`,
      );
  }
  return { etcd, etcdctl, ...(existsSync(etcdutl) ? { etcdutl } : {}) };
}
