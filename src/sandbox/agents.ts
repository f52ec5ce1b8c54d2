/**
 * Real NNOE agents in the local world: the `nnoe-agent` binary built from the NNOE source by
 * scripts/build-nnoe-agent.sh, one per node under the world's supervisord, each with its own
 * agent.toml (mTLS to the world's etcd, its sled cache, Knot and Kea rendering into the node's
 * dirs). A node's files sit below `<world>/nodes/<node>/` at the paths a real node has them
 * (etc/nnoe/agent.toml, etc/nnoe/certs, var/lib/nnoe/cache, etc/knot, var/lib/knot, etc/kea,
 * var/lib/kea), so backups and restores of host state are exercised on real paths.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { programLogPath, supervisorctl, supervisorLayout, writeProgramConfig } from './supervisor';
import { waitUntil } from '../common/poll';
import { establishedConnectionTo } from '../agent/connections';
import { serviceDriver } from '../services/driver';

export interface WorldAgent {
  node: string;
  program: string;
  /** The node's root: real paths below it. */
  root: string;
  agentToml: string;
  cacheDir: string;
  knotConf: string;
  zoneDir: string;
  keaConf: string;
  keaLeaseFile: string;
  tlsDir: string;
  configDir: string;
  dnssecKeyDir: string;
}

/** The binary scripts/build-nnoe-agent.sh links into .tools/nnoe (or NNOE_AGENT_BIN). */
export function nnoeAgentBinary(repoRoot: string): string {
  const binary = process.env.NNOE_AGENT_BIN ?? path.join(repoRoot, '.tools', 'nnoe', 'nnoe-agent');
  if (!fs.existsSync(binary)) {
    throw new Error(
      `${binary} is missing: the real NNOE agent is built from NNOE_SRC (default ../shared/third_party/nnoe) by scripts/build-nnoe-agent.sh (run scripts/install-deps.sh)`,
    );
  }
  return binary;
}

const toml = (value: string) => JSON.stringify(value); // a TOML basic string is a JSON string for paths

/** agent.toml as NNOE documents it (agent/examples/agent.toml.example), pointed at the world. */
export function renderAgentToml(agent: WorldAgent, etcdEndpoints: string[]): string {
  return [
    '[node]',
    `name = ${toml(agent.node)}`,
    'role = "active"',
    '',
    '[etcd]',
    `endpoints = [${etcdEndpoints.map(toml).join(', ')}]`,
    'prefix = "/nnoe"',
    'timeout_secs = 5',
    '',
    '[etcd.tls]',
    `ca_cert = ${toml(path.join(agent.tlsDir, 'ca.crt'))}`,
    `cert = ${toml(path.join(agent.tlsDir, 'client.crt'))}`,
    `key = ${toml(path.join(agent.tlsDir, 'client.key'))}`,
    '',
    '[cache]',
    `path = ${toml(agent.cacheDir)}`,
    'default_ttl_secs = 300',
    'max_size_mb = 100',
    '',
    '[nebula]',
    'enabled = false',
    '',
    '[services.dns]',
    'enabled = true',
    'engine = "knot"',
    `config_path = ${toml(agent.knotConf)}`,
    `zone_dir = ${toml(agent.zoneDir)}`,
    'listen_address = "127.0.0.1"',
    'listen_port = 53',
    '',
    '[services.dhcp]',
    'enabled = true',
    'engine = "kea"',
    `config_path = ${toml(agent.keaConf)}`,
    'interface = "lo"',
    '',
    '[logging]',
    'level = "info"',
    'json = false',
    '',
  ].join('\n');
}

/** A Kea memfile lease file as Kea writes it: the host state a DHCP node keeps beside the agent. */
function keaLeases(node: string): string {
  const expire = Math.floor(Date.now() / 1000) + 30 * 24 * 3600;
  return [
    'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id',
    `10.10.0.10,52:54:00:00:00:0${node.slice(-1)},,3600,${expire},1,0,0,host-a.example.com,0,,0`,
    `10.10.0.11,52:54:00:00:01:0${node.slice(-1)},,3600,${expire},1,0,0,host-b.example.com,0,,0`,
    '',
  ].join('\n');
}

function layoutOf(worldDir: string, node: string): WorldAgent {
  const root = path.join(worldDir, 'nodes', node);
  return {
    node,
    program: `nnoe-agent-${node}`,
    root,
    agentToml: path.join(root, 'etc/nnoe/agent.toml'),
    cacheDir: path.join(root, 'var/lib/nnoe/cache'),
    knotConf: path.join(root, 'etc/knot/knot.conf'),
    zoneDir: path.join(root, 'var/lib/knot/zones'),
    keaConf: path.join(root, 'etc/kea/kea-dhcp4.conf'),
    keaLeaseFile: path.join(root, 'var/lib/kea/kea-leases4.csv'),
    tlsDir: path.join(root, 'etc/nnoe/certs'),
    configDir: path.join(root, 'etc/nnoe/agent.d'),
    dnssecKeyDir: path.join(root, 'var/lib/knot/keys'),
  };
}

/** Writes a node's files (kept across world restarts: they are the node's state) and its program. */
function prepareNode(
  agent: WorldAgent,
  opts: { etcdEndpoints: string[]; certs: { ca: string; clientCert: string; clientKey: string } },
): void {
  for (const dir of [
    path.dirname(agent.agentToml),
    agent.tlsDir,
    agent.cacheDir,
    path.dirname(agent.knotConf),
    agent.zoneDir,
    path.dirname(agent.keaConf),
    path.dirname(agent.keaLeaseFile),
    agent.dnssecKeyDir,
  ]) {
    fs.mkdirSync(dir, { recursive: true });
  }
  fs.copyFileSync(opts.certs.ca, path.join(agent.tlsDir, 'ca.crt'));
  fs.copyFileSync(opts.certs.clientCert, path.join(agent.tlsDir, 'client.crt'));
  fs.copyFileSync(opts.certs.clientKey, path.join(agent.tlsDir, 'client.key'));
  fs.chmodSync(path.join(agent.tlsDir, 'client.key'), 0o600);
  fs.writeFileSync(agent.agentToml, renderAgentToml(agent, opts.etcdEndpoints), { mode: 0o640 });
  if (!fs.existsSync(agent.keaLeaseFile)) fs.writeFileSync(agent.keaLeaseFile, keaLeases(agent.node), { mode: 0o644 });
  // Knot's DNSSEC keys as keymgr leaves them (the agent itself writes placeholders to the hard-coded /var/lib/knot/keys).
  const ksk = path.join(agent.dnssecKeyDir, 'example.com.ksk.key');
  if (!fs.existsSync(ksk)) fs.writeFileSync(ksk, `; KSK of example.com on ${agent.node}\n`, { mode: 0o600 });
}

/**
 * Starts a real agent on each node (after etcd is up: an agent started while etcd is down is deaf
 * from the start) and waits until each holds its etcd connection.
 */
export async function startRealAgents(
  world: {
    dir: string;
    supervisorConf: string;
    repoRoot: string;
    etcdEndpoints: string[];
    certs: { ca: string; clientCert: string; clientKey: string };
  },
  nodes: string[],
): Promise<WorldAgent[]> {
  const binary = nnoeAgentBinary(world.repoRoot);
  const layout = supervisorLayout(world.dir);
  const agents = nodes.map((node) => layoutOf(world.dir, node));
  for (const agent of agents) {
    prepareNode(agent, { etcdEndpoints: world.etcdEndpoints, certs: world.certs });
    writeProgramConfig(layout, {
      name: agent.program,
      // `-c` before the subcommand: NNOE's shipped unit says `run -c`, which exits 2.
      command: [binary, '-c', agent.agentToml, 'run'],
      directory: agent.root,
      stopSignal: 'INT',
    });
  }
  await supervisorctl(world.supervisorConf, 'reread');
  await supervisorctl(world.supervisorConf, 'update');
  for (const agent of agents) {
    const service = serviceDriver({ driver: 'supervisor', supervisorConf: world.supervisorConf, program: agent.program });
    await waitUntil(
      async () => {
        const pid = await service.pid();
        return pid !== null && (await establishedConnectionTo(pid, world.etcdEndpoints)) !== null;
      },
      {
        timeoutMs: 60_000,
        describeFailure: () => `agent ${agent.program} did not connect to etcd within 60 s; see ${programLogPath(layout, agent.program)}`,
      },
    );
  }
  return agents;
}

/** The `clusters[].agents` entries of the nnoe-dr config for these world agents. */
export function agentConfigEntries(agents: WorldAgent[], supervisorConf: string): Array<Record<string, unknown>> {
  return agents.map((a) => ({
    node: a.node,
    agentToml: a.agentToml,
    service: { driver: 'supervisor', supervisorConf, program: a.program },
    configDir: a.configDir,
    tlsDir: a.tlsDir,
    dnssecKeyDir: a.dnssecKeyDir,
    keaLeaseFile: a.keaLeaseFile,
  }));
}
