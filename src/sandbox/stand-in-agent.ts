/**
 * A stand-in for nnoe-agent, honouring the contract the runbooks rely on: it watches NNOE's
 * prefixes in etcd, keeps a cache directory rebuilt from etcd (the sled cache's role), publishes
 * `agents/health/<node>` on a 60 s lease, and serves `/health` and `/metrics` with the real
 * agent's gauge names. Run one per node under the service manager, like the real agent.
 *
 *   node stand-in-agent.js --config nnoe-dr.yaml --cluster nnoe-local --node node-1 \
 *        --cache-dir /var/nnoe/cache --port 9090 [--prefix /nnoe]
 */
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Etcd3, Watcher } from 'etcd3';
import { findCluster, loadConfig } from '../config/load';
import { connectCluster } from '../etcd/connect';

/** The prefixes NNOE agents react to (below the configured root prefix). */
export const WATCHED_PREFIXES = ['dns/zones/', 'dhcp/scopes/', 'dhcp/leases/', 'policies/', 'threats/', 'role-mappings/'];

/** One cache file per key; the name is the key in base64url so any key maps to a safe file name. */
export function cacheFileName(key: string): string {
  return Buffer.from(key).toString('base64url');
}

export interface AgentState {
  etcdConnected: boolean;
  cacheReady: boolean;
  entries: Set<string>;
}

function metricsText(node: string, state: AgentState, prefix: string): string {
  const leases = [...state.entries].filter((k) => k.startsWith(`${prefix}dhcp/leases/`)).length;
  return [
    '# HELP nnoe_agent_etcd_connected 1 when the agent is connected to etcd.',
    '# TYPE nnoe_agent_etcd_connected gauge',
    `nnoe_agent_etcd_connected{node="${node}"} ${state.etcdConnected ? 1 : 0}`,
    '# HELP nnoe_agent_cache_size_entries Entries in the local cache.',
    '# TYPE nnoe_agent_cache_size_entries gauge',
    `nnoe_agent_cache_size_entries{node="${node}"} ${state.entries.size}`,
    '# HELP nnoe_dhcp_leases_active Active DHCP leases known to the agent.',
    '# TYPE nnoe_dhcp_leases_active gauge',
    `nnoe_dhcp_leases_active{node="${node}"} ${leases}`,
    '',
  ].join('\n');
}

async function writeEntry(cacheDir: string, key: string, value: Buffer): Promise<void> {
  const file = join(cacheDir, 'entries', cacheFileName(key));
  await writeFile(`${file}.tmp`, value);
  await rename(`${file}.tmp`, file);
}

/** Reads every watched key and makes the cache directory match it exactly. Returns the revision read. */
async function rebuildCache(etcd: Etcd3, prefix: string, cacheDir: string, state: AgentState): Promise<string> {
  await mkdir(join(cacheDir, 'entries'), { recursive: true });
  const wanted = new Map<string, Buffer>();
  let revision = '0';
  for (const sub of WATCHED_PREFIXES) {
    const res = await etcd.getAll().prefix(`${prefix}${sub}`).exec();
    revision = res.header.revision;
    for (const kv of res.kvs) wanted.set(kv.key.toString(), kv.value);
  }
  const wantedFiles = new Set([...wanted.keys()].map(cacheFileName));
  for (const file of await readdir(join(cacheDir, 'entries'))) {
    if (!wantedFiles.has(file)) await rm(join(cacheDir, 'entries', file), { force: true });
  }
  for (const [key, value] of wanted) await writeEntry(cacheDir, key, value);
  state.entries = new Set(wanted.keys());
  return revision;
}

export async function runStandInAgent(opts: { configPath: string; cluster: string; node: string; cacheDir: string; port: number; prefix: string }): Promise<() => Promise<void>> {
  const cluster = findCluster(loadConfig(opts.configPath), opts.cluster);
  const etcd = await connectCluster(cluster);
  const state: AgentState = { etcdConnected: false, cacheReady: false, entries: new Set() };

  const revision = await rebuildCache(etcd, opts.prefix, opts.cacheDir, state);
  state.etcdConnected = true;
  state.cacheReady = true;

  const watcher: Watcher = await etcd.watch().prefix(opts.prefix).startRevision(String(BigInt(revision) + 1n)).create();
  watcher.on('connected', () => { state.etcdConnected = true; });
  watcher.on('disconnected', () => { state.etcdConnected = false; });
  watcher.on('put', (kv) => {
    const key = kv.key.toString();
    if (!WATCHED_PREFIXES.some((p) => key.startsWith(`${opts.prefix}${p}`))) return;
    state.entries.add(key);
    void writeEntry(opts.cacheDir, key, kv.value);
  });
  watcher.on('delete', (kv) => {
    const key = kv.key.toString();
    state.entries.delete(key);
    void rm(join(opts.cacheDir, 'entries', cacheFileName(key)), { force: true });
  });

  // Ephemeral health key, as the real agent keeps: it disappears with its lease after a restore.
  const lease = etcd.lease(60, { autoKeepAlive: true });
  lease.on('lost', () => { state.etcdConnected = false; });
  await lease.put(`${opts.prefix}agents/health/${opts.node}`).value(JSON.stringify({ node: opts.node, startedAt: new Date().toISOString() }));

  const server: Server = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metricsText(opts.node, state, opts.prefix));
    } else if (req.url === '/health') {
      const healthy = state.etcdConnected && state.cacheReady;
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: healthy ? 'ok' : 'degraded', node: opts.node, etcd_connected: state.etcdConnected, cache_entries: state.entries.size }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(opts.port, '127.0.0.1', resolve));

  return async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await watcher.cancel();
    await lease.revoke().catch(() => undefined);
    etcd.close();
  };
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' }, cluster: { type: 'string' }, node: { type: 'string' },
      'cache-dir': { type: 'string' }, port: { type: 'string' }, prefix: { type: 'string', default: '/nnoe/' },
    },
  });
  const missing = ['config', 'cluster', 'node', 'cache-dir', 'port'].filter((k) => !values[k as keyof typeof values]);
  if (missing.length > 0) {
    console.error(`stand-in agent: missing --${missing.join(', --')}`);
    process.exit(2);
  }
  runStandInAgent({
    configPath: values.config!, cluster: values.cluster!, node: values.node!, cacheDir: values['cache-dir']!,
    port: Number(values.port), prefix: values.prefix!.endsWith('/') ? values.prefix! : `${values.prefix}/`,
  }).then((stop) => {
    console.log(`stand-in agent ${values.node} serving /health and /metrics on 127.0.0.1:${values.port}`);
    const shutdown = () => { void stop().then(() => process.exit(0)); };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  }, (err: unknown) => {
    console.error(`stand-in agent ${values.node} failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
