/**
 * Nebula files for the local world's nodes and for tests, made with the real `nebula-cert`:
 * a CA (once per caDir), then per node ca.crt, host.crt, host.key and a config.yml that
 * `nebula -test` accepts (tun disabled, so it never needs root or a network device).
 */
import { execFile } from 'node:child_process';
import { access, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { enforceNebulaModes } from '../nebula/certs';

const execFileAsync = promisify(execFile);

export interface NebulaCaPaths {
  caCrt: string;
  caKey: string;
}

export interface NebulaNodeFiles extends NebulaCaPaths {
  dir: string;
  hostCrt: string;
  hostKey: string;
  config: string;
}

export const NEBULA_CA_NAME = 'nnoe-local nebula ca';

async function nebulaCert(args: string[]): Promise<void> {
  try {
    await execFileAsync('nebula-cert', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`nebula-cert ${args.join(' ')} failed: ${stderr.trim() || String(error)}`);
  }
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The CA in `caDir` (ca.crt, ca.key), created if it is not there yet. */
export async function ensureNebulaCa(caDir: string, name = NEBULA_CA_NAME): Promise<NebulaCaPaths> {
  const caCrt = join(caDir, 'ca.crt');
  const caKey = join(caDir, 'ca.key');
  if (!(await exists(caCrt))) {
    await mkdir(caDir, { recursive: true });
    await nebulaCert(['ca', '-name', name, '-out-crt', caCrt, '-out-key', caKey]);
  }
  return { caCrt, caKey };
}

/**
 * A node's Nebula dir in `dir` (which must not hold host.crt/host.key yet). With `caDir` the node
 * is signed by the CA there (created on first use, shared by every node) and `dir` gets only a copy
 * of ca.crt, as on a real node; without it `dir` also holds its own ca.key.
 * `ip` is the overlay address in CIDR form, e.g. `10.42.0.1/24`.
 */
export async function generateNebulaNode(
  dir: string,
  opts: { name: string; ip: string; caDir?: string; groups?: string[] },
): Promise<NebulaNodeFiles> {
  await mkdir(dir, { recursive: true });
  const ca = await ensureNebulaCa(opts.caDir ?? dir);
  const caCrt = join(dir, 'ca.crt');
  if (opts.caDir) await copyFile(ca.caCrt, caCrt);
  const hostCrt = join(dir, 'host.crt');
  const hostKey = join(dir, 'host.key');
  await nebulaCert([
    'sign',
    '-ca-crt',
    ca.caCrt,
    '-ca-key',
    ca.caKey,
    '-name',
    opts.name,
    '-ip',
    opts.ip,
    ...(opts.groups?.length ? ['-groups', opts.groups.join(',')] : []),
    '-out-crt',
    hostCrt,
    '-out-key',
    hostKey,
  ]);
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    stringify({
      pki: { ca: caCrt, cert: hostCrt, key: hostKey },
      static_host_map: {},
      lighthouse: { am_lighthouse: false, hosts: [] },
      listen: { host: '127.0.0.1', port: 0 },
      tun: { disabled: true, dev: `nebula-${opts.name}`.slice(0, 15) },
      firewall: {
        outbound: [{ port: 'any', proto: 'any', host: 'any' }],
        inbound: [{ port: 'any', proto: 'icmp', host: 'any' }],
      },
    }),
  );
  await enforceNebulaModes(dir);
  return { dir, caCrt, caKey: ca.caKey, hostCrt, hostKey, config };
}
