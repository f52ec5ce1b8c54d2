/**
 * `npm start`: the local sandbox, the whole product. Starts (or reuses) the world in ./.world with
 * the Temporal dev server and its UI, the real NNOE agents, Nebula files and age encryption; runs
 * two management workers and one node worker per etcd node (each serving Prometheus metrics);
 * applies the schedules, runs one full backup set and a drill of it, prints `status` and where to look; then stays
 * up until Ctrl-C, when it stops everything it started.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { dirname, join, resolve } from 'node:path';
import { loadConfig } from '../config/load';
import { connectClient, followRun, startBackupSet, startDrill, type BackupSetResult } from '../client/temporal';
import { generateIdentity, identityToRecipients } from '../crypto';
import { generateNebulaNode } from './nebula';
import { freePort } from './ports';
import { startWorld, stopWorld, type World } from './world';
import { seedSampleData } from './seed';
import { agentConfigEntries, startRealAgents } from './agents';

/** The real NNOE agent runs on these nodes of the sandbox (built by scripts/build-nnoe-agent.sh). */
const AGENT_NODES = ['node-1', 'node-2'];

/**
 * Completes the world's nnoe-dr config into the whole product (before any worker reads it): the
 * real agents, Nebula files on the agent nodes (node-1 also the CA host), age encryption at rest
 * (the identity in <world>/secrets), the critical key a restore checks, and Prometheus endpoints
 * for every worker. Returns the metrics addresses to print.
 */
async function completeSandboxConfig(world: World): Promise<{ management: string; nodes: Record<string, string> }> {
  const agents = await startRealAgents(
    {
      dir: world.dir,
      supervisorConf: world.supervisorConf,
      repoRoot,
      etcdEndpoints: world.etcd.members.map((m) => m.clientUrl),
      certs: world.certs,
    },
    AGENT_NODES,
  );
  const config = YAML.parse(readFileSync(world.configPath, 'utf8')) as Record<string, unknown> & {
    clusters: Array<Record<string, unknown>>;
  };
  const caDir = join(world.dir, 'nebula-ca');
  const nebula = [];
  for (const [index, node] of AGENT_NODES.entries()) {
    const dir = join(world.dir, 'nodes', node, 'etc', 'nebula');
    // Kept from an earlier start (like the backups): nebula-cert refuses to overwrite a host cert.
    if (!existsSync(join(dir, 'host.crt'))) await generateNebulaNode(dir, { name: node, ip: `192.168.100.${index + 1}/24`, caDir });
    nebula.push({ node, dir });
  }
  const cluster = config.clusters[0]!;
  cluster.agents = agentConfigEntries(agents, world.supervisorConf).map((a) =>
    a.node === 'node-1' ? { ...a, nebulaCaKey: join(caDir, 'ca.key') } : a,
  );
  cluster.nebula = nebula;
  cluster.restore = { criticalKeys: [{ key: '/nnoe/dns/zones/example.com' }] };

  const identityFile = join(world.dir, 'secrets', 'age-identity.txt');
  if (!existsSync(identityFile)) {
    const { identity } = await generateIdentity();
    mkdirSync(dirname(identityFile), { recursive: true, mode: 0o700 });
    writeFileSync(identityFile, identity, { mode: 0o600 });
  }
  config.encryption = { recipients: await identityToRecipients(readFileSync(identityFile, 'utf8')), identity: { file: identityFile } };

  const nodes = [...new Set(world.etcd.members.map((m) => m.node))];
  const address = async () => `127.0.0.1:${await freePort()}`;
  const metrics = {
    management: await address(),
    nodes: Object.fromEntries(await Promise.all(nodes.map(async (n) => [n, await address()] as const))),
  };
  config.metrics = {
    management: { listen: metrics.management, temporalListen: await address() },
    nodes: Object.fromEntries(Object.entries(metrics.nodes).map(([n, listen]) => [n, { listen }])),
    refreshSeconds: 15,
  };
  writeFileSync(world.configPath, YAML.stringify(config));
  console.log(
    `real NNOE agents on ${AGENT_NODES.join(', ')}; Nebula on ${AGENT_NODES.join(', ')}; age encryption on (identity ${identityFile})`,
  );
  return metrics;
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
      if (chunk.toString().includes('polling')) {
        clearTimeout(timer);
        ready(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${name} exited with ${code}; see ${world.dir}/logs/${name}.log`));
    });
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
  const metrics = await completeSandboxConfig(world);
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
    workers.push(await startWorkerProcess(world, [], 'worker-management-1'));
    // The second serves its own metrics port: the config's is taken by the first on this one host.
    workers.push(await startWorkerProcess(world, ['--metrics-listen', `127.0.0.1:${await freePort()}`], 'worker-management-2'));
    const nodes = [...new Set(config.clusters.flatMap((c) => c.etcd.members.map((m) => m.node)))];
    for (const node of nodes) workers.push(await startWorkerProcess(world, ['--node', node], `worker-${node}`));
    console.log(`workers up: 2 management + ${nodes.join(', ')}`);

    const seeded = await seedSampleData(config.clusters[0]!);
    if (seeded > 0) console.log(`wrote ${seeded} sample NNOE keys under /nnoe/ (the agents render them)`);

    const cli = `npx nnoe-dr -c ${world.configPath}`;
    const nnoeDr = (...args: string[]) =>
      spawnSync(process.execPath, [join(repoRoot, 'dist', 'client', 'cli.js'), '-c', world.configPath, ...args], { stdio: 'inherit' });
    console.log('\napplying the development schedules (backup set, drill, prune):');
    nnoeDr('schedules', 'apply', '--profile', 'development');

    const client = await connectClient(config);
    const cluster = config.clusters[0]!.name;
    const handle = await startBackupSet(client, config, { cluster });
    console.log(`\nbackup set ${handle.workflowId} (etcd, phpIPAM, agent caches, Nebula, agent configs; encrypted):`);
    const result = await followRun<BackupSetResult>(handle, (step) =>
      console.log(`  ${step.state === 'done' ? 'ok  ' : 'FAIL'} ${step.name}${step.detail ? `: ${step.detail}` : ''}`),
    );
    // A drill restores the set into scratch etcd and a scratch schema and marks it verified: without
    // one, `status` rightly reports the set as never verified.
    const drill = await startDrill(client, config, { cluster, setId: result.setId });
    console.log(`\nrestore drill ${drill.workflowId}:`);
    await followRun(drill, (step) =>
      console.log(`  ${step.state === 'done' ? 'ok  ' : 'FAIL'} ${step.name}${step.detail ? `: ${step.detail}` : ''}`),
    );
    await client.connection.close();

    console.log(`\nnnoe-dr status (exit code non-zero when something is out of its objective):`);
    nnoeDr('status', '--cluster', cluster);

    console.log(`
backup set ${result.setId} complete.

  Temporal UI     ${world.temporal!.uiUrl}/namespaces/default/workflows   (each run: summary, details, step table)
  metrics         http://${metrics.management}/metrics (management), ${Object.entries(metrics.nodes)
    .map(([n, a]) => `${n} http://${a}/metrics`)
    .join(', ')}
  etcd            ${world.etcd.release} (${world.etcd.binDir}; NNOE_ETCD_VERSION=3.4|3.5|3.6 picks another)
  config          ${world.configPath}
  logs            ${world.dir}/logs/

Backup -> verify -> restore -> status, in five commands:
  ${cli} backup set                                      # a new set, followed step by step
  ${cli} backups verify ${result.setId}         # checksums, decryption, snapshot integrity
  ${cli} drill --cluster ${cluster}                   # restore it into scratch etcd + schema; marks it verified
  ${cli} restore etcd --set ${result.setId} --dry-run   # the plan; without --dry-run it asks for approval
  ${cli} status                                          # are my sites protected right now?

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

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`sandbox failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
