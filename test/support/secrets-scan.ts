/**
 * The "no secrets anywhere" scan: every secret the test world uses (age identity, MariaDB passwords,
 * S3 secret key, PEM private keys of etcd, the agents and Nebula) searched for in the history of
 * every workflow run in the namespace (visibility list + fetchHistory) and in the worker logs.
 * A finding names the secret and where it was seen, never the secret itself.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Config } from '../../src/config/schema';
import type { World } from '../../src/sandbox/world';
import { mariadbLayout } from '../../src/sandbox/mariadb';
import { supervisorLayout } from '../../src/sandbox/supervisor';

export interface WorldSecret {
  /** What it is and where it comes from, e.g. "MariaDB root password" or "private key certs/client.key". */
  name: string;
  /** Strings whose presence means the secret leaked: the value, its JSON-escaped form, each line of a PEM body. */
  probes: string[];
}

export interface SecretFinding {
  secret: string;
  where: string;
}

/** Shapes of secret material that is never legitimate in a history or log, known to the world or not. */
const SECRET_SHAPES: Array<{ name: string; pattern: RegExp }> = [
  { name: 'an age identity (AGE-SECRET-KEY-1...)', pattern: /AGE-SECRET-KEY-1[0-9A-Z]{50,}/ },
  { name: 'a PEM private key block', pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\s*(\\n)?[A-Za-z0-9+/=]{20,}/ },
];

const readText = (path: string) => readFileSync(path, 'utf8').replace(/\r?\n$/, '');

function secretOf(name: string, value: string): WorldSecret {
  const escaped = JSON.stringify(value).slice(1, -1);
  return { name, probes: [...new Set([value, escaped])] };
}

/** A PEM file's secret: each full base64 line of its body (a key shows up whole, escaped or re-wrapped lines still carry them). */
function pemSecretOf(name: string, text: string): WorldSecret {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
  return { name, probes: lines };
}

/** Files under `dir` (not too deep, small ones only) that hold a PEM private key. */
function privateKeyFiles(dir: string, depth = 6): string[] {
  if (!existsSync(dir) || depth < 0) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...privateKeyFiles(path, depth - 1));
    else if (entry.isFile() && statSync(path).size < 64 * 1024 && readFileSync(path, 'utf8').includes('PRIVATE KEY-----')) found.push(path);
  }
  return found;
}

/** Every secret the world's config and sandbox use. */
export function worldSecrets(world: World, config: Config): WorldSecret[] {
  const secrets: WorldSecret[] = [];
  const identityFile = config.encryption?.identity && 'file' in config.encryption.identity ? config.encryption.identity.file : undefined;
  if (identityFile) secrets.push(secretOf('age identity', readText(identityFile)));
  secrets.push(secretOf('S3 secret access key', readText(world.s3.secretKeyFile)));
  if (world.mariadb) {
    const layout = mariadbLayout(world.mariadb.dir);
    secrets.push(secretOf('MariaDB root password', readText(layout.rootPasswordFile)));
    secrets.push(secretOf('MariaDB phpipam password', readText(layout.phpipamPasswordFile)));
    secrets.push(secretOf('MariaDB phpipam_restore password', readText(layout.restorePasswordFile)));
  }
  // etcd's and the agents' TLS keys, the Nebula host and CA keys.
  for (const dir of [world.certs.dir, join(world.dir, 'nodes'), join(world.dir, 'nebula-ca')]) {
    for (const file of privateKeyFiles(dir))
      secrets.push(pemSecretOf(`private key ${file.slice(world.dir.length + 1)}`, readFileSync(file, 'utf8')));
  }
  return secrets.filter((s) => s.probes.length > 0);
}

/** The findings in one text: known secrets by value, unknown ones by their shape. */
export function findSecrets(where: string, text: string, secrets: WorldSecret[]): SecretFinding[] {
  const findings: SecretFinding[] = [];
  for (const secret of secrets) if (secret.probes.some((p) => text.includes(p))) findings.push({ secret: secret.name, where });
  for (const shape of SECRET_SHAPES) if (shape.pattern.test(text)) findings.push({ secret: shape.name, where });
  return findings;
}

/** All text in a history: every string, and every byte field (payloads: JSON) decoded as UTF-8. */
export function historyText(history: unknown): string {
  const parts: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') parts.push(value);
    else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('utf8'));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(history);
  return parts.join('\n');
}

/** Every run in the namespace (visibility list), its history fetched and scanned. */
export async function scanHistories(client: Client, secrets: WorldSecret[]): Promise<{ runs: number; findings: SecretFinding[] }> {
  const findings: SecretFinding[] = [];
  let runs = 0;
  for await (const run of client.workflow.list()) {
    runs += 1;
    const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    findings.push(...findSecrets(`history of ${run.workflowId} (${run.type})`, historyText(history), secrets));
  }
  return { runs, findings };
}

/** The worker logs: the management workers' and each node worker's (supervisord program logs; `worker.log` of worlds that ran one in-process). */
export function workerLogs(world: World): string[] {
  const logsDir = supervisorLayout(world.dir).logsDir;
  const nodeWorkers = existsSync(logsDir)
    ? readdirSync(logsDir)
        .filter((f) => f.startsWith('nnoe-dr-worker'))
        .map((f) => join(logsDir, f))
    : [];
  return [join(world.dir, 'worker.log'), ...nodeWorkers].filter((f) => existsSync(f));
}

export function scanFiles(paths: string[], secrets: WorldSecret[]): SecretFinding[] {
  return paths.flatMap((path) => findSecrets(`log ${path}`, readFileSync(path, 'utf8'), secrets));
}
