/**
 * `npm start`: the local sandbox. Starts (or reuses) the world in ./.world with the Temporal dev
 * server and its UI, runs the management worker and one node worker per etcd node, runs one etcd
 * backup and prints where to look; then stays up until Ctrl-C, when it stops everything it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load';
import { connectClient, followRun, startEtcdBackup, type EtcdBackupResult } from '../client/temporal';
import { startWorld, stopWorld, type World } from './world';
import { seedSampleData } from './seed';
import { agentConfigEntries, startRealAgents } from './agents';

/** The real NNOE agent runs on these nodes of the sandbox (built by scripts/build-nnoe-agent.sh). */
const AGENT_NODES = ['node-1', 'node-2'];

/** Starts the real agents and adds them to the world's nnoe-dr config (before any worker reads it). */
async function addAgents(world: World): Promise<void> {
  const agents = await startRealAgents({
    dir: world.dir, supervisorConf: world.supervisorConf, repoRoot, etcdEndpoints: world.etcd.members.map((m) => m.clientUrl), certs: world.certs,
  }, AGENT_NODES);
  const config = YAML.parse(readFileSync(world.configPath, 'utf8')) as { clusters: Array<Record<string, unknown>> };
  config.clusters[0]!.agents = agentConfigEntries(agents, world.supervisorConf);
  writeFileSync(world.configPath, YAML.stringify(config));
  console.log(`real NNOE agents running on ${AGENT_NODES.join(', ')} (config ${agents.map((a) => a.agentToml).join(', ')})`);
}

const repoRoot = resolve(__dirname, '../..');

function startWorkerProcess(world: World, args: string[], name: string): Promise<ChildProcess> {
  const log = openSync(join(world.dir, 'logs', `${name}.log`), 'a');
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'worker.js'), '--config', world.configPath, ...args], {
    stdio: ['ignore', 'pipe', log],
    // Measured in bench/etcd-backup: a small young generation and two malloc arenas keep a worker
    // streaming a GiB snapshot near 160 MiB resident instead of 330.
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-semi-space-size=2`.trim(), MALLOC_ARENA_MAX: '2' },
  });
  return new Promise((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within 120 s; see ${world.dir}/logs/${name}.log`)), 120_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('polling')) { clearTimeout(timer); ready(child); }
    });
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`${name} exited with ${code}; see ${world.dir}/logs/${name}.log`)); });
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  const dir = resolve(process.env.NNOE_SANDBOX_DIR ?? join(repoRoot, '.world'));
  console.log(`starting the local world in ${dir} ...`);
  const world = await startWorld({ dir, temporal: true });
  console.log(`etcd ${world.etcd.release} (NNOE_ETCD_VERSION=${world.etcd.version}) from ${world.etcd.binDir}`);
  await addAgents(world);
  const config = loadConfig(world.configPath);
  const workers: ChildProcess[] = [];
  const shutdown = async () => {
    console.log('\nstopping workers and the local world ...');
    await Promise.all(workers.map(stopProcess));
    await stopWorld(dir);
    console.log(`stopped. Local backups stay in ${join(dir, 'backups')}; the next start begins with a fresh cluster and Temporal history.`);
  };
  try {
    // Two management workers, as production runs them: either one may die and the other carries on.
    for (const name of ['worker-management-1', 'worker-management-2']) workers.push(await startWorkerProcess(world, [], name));
    const nodes = [...new Set(config.clusters.flatMap((c) => c.etcd.members.map((m) => m.node)))];
    for (const node of nodes) workers.push(await startWorkerProcess(world, ['--node', node], `worker-${node}`));
    console.log(`workers up: 2 management + ${nodes.join(', ')}`);

    const seeded = await seedSampleData(config.clusters[0]!);
    if (seeded > 0) console.log(`wrote ${seeded} sample NNOE keys under /nnoe/ (the agents render them)`);

    const client = await connectClient(config);
    const cluster = config.clusters[0]!.name;
    const handle = await startEtcdBackup(client, config, { cluster });
    console.log(`etcd backup ${handle.workflowId}:`);
    const result = await followRun<EtcdBackupResult>(handle, (step) =>
      console.log(`  ${step.state === 'done' ? 'ok  ' : 'FAIL'} ${step.name}${step.detail ? `: ${step.detail}` : ''}`));
    await client.connection.close();

    const cli = `npx nnoe-dr -c ${world.configPath}`;
    console.log(`
backup set ${result.setId} complete.

  Temporal UI     ${world.temporal!.uiUrl}/namespaces/default/workflows
  etcd            ${world.etcd.release} (${world.etcd.binDir}; NNOE_ETCD_VERSION=3.4|3.5|3.6 picks another)
  config          ${world.configPath}
  logs            ${world.dir}/logs/

  ${cli} backup etcd                 # another backup, followed step by step
  ${cli} backups list                # the catalog (manifests in local + S3)
  ${cli} backups verify ${result.setId}
  ${cli} agents check                # are the real NNOE agents serving etcd's state?
  .tools/venv/bin/temporal workflow list --address ${world.temporal!.address} --query "NnoeRunbook='etcd-backup'"

Press Ctrl-C to stop.`);
  } catch (err) {
    await shutdown();
    throw err;
  }
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await shutdown();
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(`sandbox failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
