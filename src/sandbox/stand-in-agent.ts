/**
 * A stand-in for nnoe-agent, honouring the contract the runbooks rely on: it watches NNOE's
 * prefixes in etcd, keeps a cache directory rebuilt from etcd (the sled cache's role), publishes
 * `agents/health/<node>` on a 60 s lease, and serves `/health` and `/metrics` with the real
 * agent's gauge names. Run one per node under the service manager, like the real agent.
 *
 *   node stand-in-agent.js --config nnoe-dr.yaml --cluster nnoe-local --node node-1 \
 *        --cache-dir /var/nnoe/cache --port 9090 [--prefix /nnoe] [--hosts-dir DIR] [--lease-file FILE]
 *
 * Like the real agent feeding its DNS and DHCP servers, it can publish what etcd says: A records
 * of `dns/zones/*` as a hosts file `<node>.hosts` in a dnsmasq `--hostsdir`, and `dhcp/leases/*`
 * as a Kea memfile lease CSV (kea-leases4.csv format).
 */
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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
  values: Map<string, Buffer>;
}

interface ZoneRecord { name: string; type: string; value: string }

/** hosts(5) lines for the A records of every zone: `10.0.0.1 www.example.com`. */
export function hostsText(values: Map<string, Buffer>, prefix: string): string {
  const lines: string[] = [];
  for (const [key, value] of values) {
    if (!key.startsWith(`${prefix}dns/zones/`)) continue;
    try {
      const zone = JSON.parse(value.toString('utf8')) as { domain?: string; records?: ZoneRecord[] };
      for (const r of zone.records ?? []) {
        if (r.type === 'A' && zone.domain) lines.push(`${r.value} ${r.name === '@' ? zone.domain : `${r.name}.${zone.domain}`}`);
      }
    } catch {
      // not a JSON zone: nothing to publish
    }
  }
  return lines.sort().join('\n') + '\n';
}

/** Kea memfile (v4) lease CSV of `dhcp/leases/<address>` = { hwaddr, hostname, validLifetime, expire }. */
export function keaLeaseCsv(values: Map<string, Buffer>, prefix: string): string {
  const rows = ['address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context'];
  for (const [key, value] of values) {
    if (!key.startsWith(`${prefix}dhcp/leases/`)) continue;
    try {
      const lease = JSON.parse(value.toString('utf8')) as { hwaddr?: string; hostname?: string; validLifetime?: number; expire?: number };
      rows.push([key.slice(`${prefix}dhcp/leases/`.length), lease.hwaddr ?? '', '', lease.validLifetime ?? 3600, lease.expire ?? 0, 1, 0, 0, lease.hostname ?? '', 0, ''].join(','));
    } catch {
      // not a lease record
    }
  }
  return rows.join('\n') + '\n';
}

/** Writes a temp file in `tmpDir` (same filesystem), then renames: readers (dnsmasq's inotify, Kea tools) never see half a file. */
async function publishFile(file: string, text: string, tmpDir: string): Promise<void> {
  const tmp = join(tmpDir, `.${basename(file)}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

function metricsText(node: string, state: AgentState, prefix: string): string {
  const leases = [...state.values.keys()].filter((k) => k.startsWith(`${prefix}dhcp/leases/`)).length;
  return [
    '# HELP nnoe_agent_etcd_connected 1 when the agent is connected to etcd.',
    '# TYPE nnoe_agent_etcd_connected gauge',
    `nnoe_agent_etcd_connected{node="${node}"} ${state.etcdConnected ? 1 : 0}`,
    '# HELP nnoe_agent_cache_size_entries Entries in the local cache.',
    '# TYPE nnoe_agent_cache_size_entries gauge',
    `nnoe_agent_cache_size_entries{node="${node}"} ${state.values.size}`,
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
  state.values = wanted;
  return revision;
}

export async function runStandInAgent(opts: {
  configPath: string; cluster: string; node: string; cacheDir: string; port: number; prefix: string; hostsDir?: string; leaseFile?: string;
}): Promise<() => Promise<void>> {
  const cluster = findCluster(loadConfig(opts.configPath), opts.cluster);
  const etcd = await connectCluster(cluster);
  const state: AgentState = { etcdConnected: false, cacheReady: false, values: new Map() };
  const revision = await rebuildCache(etcd, opts.prefix, opts.cacheDir, state);
  // DNS and DHCP outputs follow the cache, at most every 100 ms.
  let publishTimer: NodeJS.Timeout | undefined;
  const publish = async () => {
    if (opts.hostsDir) await publishFile(join(opts.hostsDir, `${opts.node}.hosts`), hostsText(state.values, opts.prefix), dirname(opts.hostsDir));
    if (opts.leaseFile) await publishFile(opts.leaseFile, keaLeaseCsv(state.values, opts.prefix), dirname(opts.leaseFile));
  };
  const schedulePublish = () => {
    if (publishTimer) return;
    publishTimer = setTimeout(() => { publishTimer = undefined; void publish(); }, 100);
  };
  await publish();
  state.etcdConnected = true;
  state.cacheReady = true;

  const watcher: Watcher = await etcd.watch().prefix(opts.prefix).startRevision(String(BigInt(revision) + 1n)).create();
  watcher.on('connected', () => { state.etcdConnected = true; });
  watcher.on('disconnected', () => { state.etcdConnected = false; });
  watcher.on('put', (kv) => {
    const key = kv.key.toString();
    if (!WATCHED_PREFIXES.some((p) => key.startsWith(`${opts.prefix}${p}`))) return;
    state.values.set(key, kv.value);
    void writeEntry(opts.cacheDir, key, kv.value);
    schedulePublish();
  });
  watcher.on('delete', (kv) => {
    const key = kv.key.toString();
    state.values.delete(key);
    void rm(join(opts.cacheDir, 'entries', cacheFileName(key)), { force: true });
    schedulePublish();
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
        .end(JSON.stringify({ status: healthy ? 'ok' : 'degraded', node: opts.node, etcd_connected: state.etcdConnected, cache_entries: state.values.size }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(opts.port, '127.0.0.1', resolve));

  return async () => {
    if (publishTimer) clearTimeout(publishTimer);
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
      'hosts-dir': { type: 'string' }, 'lease-file': { type: 'string' },
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
    hostsDir: values['hosts-dir'], leaseFile: values['lease-file'],
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
