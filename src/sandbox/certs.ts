/**
 * Test PKI for the local world, made with the openssl CLI:
 *   - a CA that etcd trusts (ca.crt/ca.key);
 *   - one etcd server cert (server.crt/key), used for client TLS and for peer
 *     TLS, where each member is both server and client — hence both EKUs;
 *   - the nnoe-dr client cert (client.crt/key, CN=nnoe-dr, clientAuth);
 *   - a rogue CA and a client cert it signed, which etcd must reject.
 * EC P-256 keys: quick to generate and accepted by etcd 3.4 (Go 1.19) and grpc-js.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface CertificatePaths {
  dir: string;
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCa: string;
  rogueCaKey: string;
  rogueClientCert: string;
  rogueClientKey: string;
}

const VALIDITY_DAYS = '3650';
export const CLIENT_COMMON_NAME = 'nnoe-dr';

export function certificatePaths(dir: string): CertificatePaths {
  const at = (file: string) => path.join(dir, file);
  return {
    dir,
    ca: at('ca.crt'),
    caKey: at('ca.key'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    rogueCa: at('rogue-ca.crt'),
    rogueCaKey: at('rogue-ca.key'),
    rogueClientCert: at('rogue-client.crt'),
    rogueClientKey: at('rogue-client.key'),
  };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr.trim() || String(error)}`);
  }
}

async function generateKey(keyPath: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
  fs.chmodSync(keyPath, 0o600);
}

async function createCa(certPath: string, keyPath: string, commonName: string): Promise<void> {
  await generateKey(keyPath);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    keyPath,
    '-out',
    certPath,
    '-days',
    VALIDITY_DAYS,
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/** A leaf cert signed by the given CA; `extensions` are openssl x509v3 config lines. */
async function createSignedCert(options: {
  certPath: string;
  keyPath: string;
  commonName: string;
  caCert: string;
  caKey: string;
  extensions: string[];
}): Promise<void> {
  await generateKey(options.keyPath);
  const csrPath = `${options.certPath}.csr`;
  const extPath = `${options.certPath}.ext`;
  fs.writeFileSync(extPath, ['[leaf]', ...options.extensions, ''].join('\n'));
  try {
    await openssl(['req', '-new', '-key', options.keyPath, '-out', csrPath, '-subj', `/CN=${options.commonName}`]);
    await openssl([
      'x509',
      '-req',
      '-in',
      csrPath,
      '-CA',
      options.caCert,
      '-CAkey',
      options.caKey,
      // A random serial instead of -CAcreateserial: no ca.srl file to keep around.
      '-set_serial',
      `0x${crypto.randomBytes(16).toString('hex')}`,
      '-days',
      VALIDITY_DAYS,
      '-out',
      options.certPath,
      '-extfile',
      extPath,
      '-extensions',
      'leaf',
    ]);
  } finally {
    fs.rmSync(csrPath, { force: true });
    fs.rmSync(extPath, { force: true });
  }
}

const LEAF_BASE = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'];

function allCertificatesExist(paths: CertificatePaths): boolean {
  return Object.entries(paths).every(([key, file]) => key === 'dir' || fs.existsSync(file));
}

/**
 * Creates the test PKI in `dir`. Idempotent: if every file is already there it
 * does nothing; if only some are (an interrupted run), it regenerates all of
 * them so the set stays consistent.
 */
export async function createCertificates(dir: string): Promise<CertificatePaths> {
  const paths = certificatePaths(path.resolve(dir));
  if (allCertificatesExist(paths)) return paths;
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });

  await createCa(paths.ca, paths.caKey, 'nnoe-dr local test CA');
  await createSignedCert({
    certPath: paths.serverCert,
    keyPath: paths.serverKey,
    commonName: 'etcd-local',
    caCert: paths.ca,
    caKey: paths.caKey,
    extensions: [...LEAF_BASE, 'extendedKeyUsage=serverAuth,clientAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
  });
  await createSignedCert({
    certPath: paths.clientCert,
    keyPath: paths.clientKey,
    commonName: CLIENT_COMMON_NAME,
    caCert: paths.ca,
    caKey: paths.caKey,
    extensions: [...LEAF_BASE, 'extendedKeyUsage=clientAuth'],
  });

  await createCa(paths.rogueCa, paths.rogueCaKey, 'rogue CA (must not be trusted)');
  await createSignedCert({
    certPath: paths.rogueClientCert,
    keyPath: paths.rogueClientKey,
    commonName: CLIENT_COMMON_NAME, // same name as the real client: only the issuer differs
    caCert: paths.rogueCa,
    caKey: paths.rogueCaKey,
    extensions: [...LEAF_BASE, 'extendedKeyUsage=clientAuth'],
  });
  return paths;
}
