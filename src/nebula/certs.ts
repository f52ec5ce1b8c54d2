/**
 * Nebula certificate checks for the "Nebula Certificate Restore" runbook, with the `nebula-cert`
 * and `nebula` CLIs (Debian package `nebula`; execFile, no shell):
 *   - verifyHostCert: host.crt is signed by ca.crt and valid now;
 *   - checkNebulaConfig: `nebula -test` loads the config, which also proves host.key pairs with host.crt;
 *   - enforceNebulaModes: keys and config.yml 0600, certificates 0644;
 *   - describeNebulaCert(s): name, groups, issuer, validity, CA or not.
 */
import { execFile } from 'node:child_process';
import { chmod, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/** What a Nebula node must hold; the backup archives and the restore puts back exactly these. */
export const NEBULA_FILES = ['ca.crt', 'host.crt', 'host.key', 'config.yml'] as const;

const execFileAsync = promisify(execFile);

/** A certificate check failed, or the tool could not run; names the files involved. */
export class NebulaCertError extends DomainError {
  override name = 'NebulaCertError';
  constructor(
    readonly files: string[],
    message: string,
  ) {
    super(message, FailureType.NebulaCertInvalid, true);
  }
}

export interface NebulaTools {
  /** Default `nebula-cert` from PATH. */
  nebulaCert?: string;
  /** Default `nebula` from PATH. */
  nebula?: string;
}

export interface NebulaCertInfo {
  name: string;
  groups: string[];
  ips: string[];
  subnets: string[];
  isCA: boolean;
  /** Fingerprint of the signing CA; empty for a self-signed CA. */
  issuer: string;
  fingerprint: string;
  /** ISO 8601, as nebula-cert prints them. */
  notBefore: string;
  notAfter: string;
}

export interface NebulaModeChange {
  file: string;
  from: number;
  to: number;
}

/** Runs a Nebula CLI; failures become NebulaCertError with the tool's own message. */
async function run(binary: string, args: string[], files: string[], what: string): Promise<string> {
  try {
    return (await execFileAsync(binary, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (err.code === 'ENOENT') throw new NebulaCertError(files, `${binary} not found on this worker (Debian package nebula)`);
    const detail = lastErrorLine(`${err.stderr ?? ''}\n${err.stdout ?? ''}`) || err.message;
    throw new NebulaCertError(files, `${what}: ${detail}`);
  }
}

/** nebula-cert prints `Error: ...`; nebula logs `level=error msg=... error="..."`. */
function lastErrorLine(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const error = lines.filter((l) => /^Error:|level=(error|fatal)/.test(l)).pop() ?? lines.pop() ?? '';
  const logged = /msg="((?:[^"\\]|\\.)*)"(?:.* error="((?:[^"\\]|\\.)*)")?/.exec(error);
  if (logged) return logged[2] ? `${logged[1]}: ${logged[2]}` : logged[1]!;
  return error.replace(/^Error:\s*/, '');
}

/** `nebula-cert verify`: the host certificate chains to the CA (bundle) and is valid now. */
export async function verifyHostCert(input: { caCrt: string; hostCrt: string }, tools: NebulaTools = {}): Promise<{ ok: true }> {
  const { caCrt, hostCrt } = input;
  await run(
    tools.nebulaCert ?? 'nebula-cert',
    ['verify', '-ca', caCrt, '-crt', hostCrt],
    [caCrt, hostCrt],
    `host certificate ${hostCrt} does not verify against CA ${caCrt}`,
  );
  return { ok: true };
}

/**
 * `nebula -test -config`: loads the config and its pki files without starting the tunnel. This is
 * the check that host.key is the private key of host.crt (nebula-cert verify does not read keys).
 */
export async function checkNebulaConfig(config: string, tools: NebulaTools = {}): Promise<{ ok: true }> {
  await run(tools.nebula ?? 'nebula', ['-test', '-config', config], [config], `nebula config ${config} does not load`);
  return { ok: true };
}

/** Every certificate in a file (a CA bundle may hold several during a rotation). */
export async function describeNebulaCerts(path: string, tools: NebulaTools = {}): Promise<NebulaCertInfo[]> {
  const stdout = await run(
    tools.nebulaCert ?? 'nebula-cert',
    ['print', '-json', '-path', path],
    [path],
    `cannot read Nebula certificate ${path}`,
  );
  // One JSON document per certificate, one per line.
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const { details, fingerprint } = JSON.parse(line) as {
        fingerprint: string;
        details: {
          name: string;
          groups: string[] | null;
          ips: string[] | null;
          subnets: string[] | null;
          isCa: boolean;
          issuer: string;
          notBefore: string;
          notAfter: string;
        };
      };
      return {
        name: details.name,
        groups: details.groups ?? [],
        ips: details.ips ?? [],
        subnets: details.subnets ?? [],
        isCA: details.isCa,
        issuer: details.issuer,
        fingerprint,
        notBefore: details.notBefore,
        notAfter: details.notAfter,
      };
    });
}

/** The one certificate in `path` (host.crt, or a single-CA ca.crt). */
export async function describeNebulaCert(path: string, tools: NebulaTools = {}): Promise<NebulaCertInfo> {
  const certs = await describeNebulaCerts(path, tools);
  if (certs.length !== 1)
    throw new NebulaCertError(
      [path],
      `${path} holds ${certs.length} certificates; expected exactly one (use describeNebulaCerts for a bundle)`,
    );
  return certs[0]!;
}

/**
 * Modes the runbook requires, for the regular files directly in `dir` (symlinks are not followed):
 *   *.key            0600  private keys;
 *   config.yml/yaml  0600  Nebula configs may carry secrets inline (pki.key as a PEM blob,
 *                          sshd host keys), so they get a key's mode, not a certificate's;
 *   *.crt            0644  certificates are public.
 * Returns only what it changed.
 */
export async function enforceNebulaModes(dir: string): Promise<NebulaModeChange[]> {
  const changes: NebulaModeChange[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const wanted = requiredMode(name);
    if (wanted === undefined) continue;
    const file = join(dir, name);
    const st = await lstat(file);
    if (!st.isFile()) continue;
    const from = st.mode & 0o7777;
    if (from === wanted) continue;
    await chmod(file, wanted);
    changes.push({ file, from, to: wanted });
  }
  return changes;
}

function requiredMode(name: string): number | undefined {
  if (name.endsWith('.key') || name === 'config.yml' || name === 'config.yaml') return 0o600;
  if (name.endsWith('.crt')) return 0o644;
  return undefined;
}
