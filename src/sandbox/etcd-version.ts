/**
 * Which etcd the local world runs: NNOE_ETCD_VERSION = 3.4 | 3.5 | 3.6 (default 3.5, the series
 * NNOE deploys), installed by scripts/install-etcd.sh into a cache outside the repository:
 * ${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr/etcd/<version>/bin/{etcd,etcdctl[,etcdutl]}.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ETCD_VERSIONS = ['3.4', '3.5', '3.6'] as const;
export type EtcdVersion = (typeof ETCD_VERSIONS)[number];
export const DEFAULT_ETCD_VERSION: EtcdVersion = '3.5';
export const ETCD_VERSION_ENV = 'NNOE_ETCD_VERSION';

export interface InstalledEtcd {
  version: EtcdVersion;
  /** The exact release, e.g. 3.5.16 (from the install script's stamp). */
  release: string;
  binDir: string;
  etcd: string;
  etcdctl: string;
  /** 3.5+ only. */
  etcdutl?: string;
}

/** The version asked for in the environment, or the default; anything else is an error naming the choices. */
export function requestedEtcdVersion(env: NodeJS.ProcessEnv = process.env): EtcdVersion {
  const asked = env[ETCD_VERSION_ENV];
  if (asked === undefined || asked === '') return DEFAULT_ETCD_VERSION;
  if ((ETCD_VERSIONS as readonly string[]).includes(asked)) return asked as EtcdVersion;
  throw new Error(`${ETCD_VERSION_ENV}=${asked} is not a version the world can run: expected one of ${ETCD_VERSIONS.join(', ')}`);
}

export function etcdCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cacheHome = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(cacheHome, 'nnoe-dr', 'etcd');
}

/** The binaries of `version` in the cache, or an error naming the version, the missing binary and the install command. */
export function installedEtcd(version: EtcdVersion, env: NodeJS.ProcessEnv = process.env): InstalledEtcd {
  const dir = path.join(etcdCacheDir(env), version);
  const binDir = path.join(dir, 'bin');
  const needed = version === '3.4' ? ['etcd', 'etcdctl'] : ['etcd', 'etcdctl', 'etcdutl'];
  const stamp = path.join(dir, '.nnoe-dr-stamp');
  for (const binary of [...needed.map((name) => path.join(binDir, name)), stamp]) {
    if (!fs.existsSync(binary)) {
      throw new Error(`etcd ${version} is not installed: ${binary} is missing; run \`bash scripts/install-etcd.sh ${version}\``);
    }
  }
  const [etcd, etcdctl, etcdutl] = needed.map((name) => path.join(binDir, name)) as [string, string, string | undefined];
  return { version, release: fs.readFileSync(stamp, 'utf8').trim(), binDir, etcd, etcdctl, ...(etcdutl ? { etcdutl } : {}) };
}
