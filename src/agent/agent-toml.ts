/**
 * The NNOE agent's own config file (`agent.toml`), read the way the agent reads it: where its sled
 * cache lives, which etcd prefix it watches, and where it renders Knot's and Kea's config. nnoe-dr
 * never assumes these paths (NNOE's own files disagree: `/var/nnoe/cache` in the example,
 * `/var/lib/nnoe/cache` in its unit and manifests); explicit overrides in our config win.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml } from 'smol-toml';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/** agent.toml is missing, not TOML, or lacks a key the agent itself requires. */
export class AgentConfigError extends DomainError {
  override readonly name = 'AgentConfigError';
  constructor(message: string) {
    super(message, FailureType.ConfigError, true);
  }
}

export interface AgentLayout {
  /** The agent.toml this layout was read from. */
  file: string;
  nodeName: string;
  /** `management`, `db-only` (renders nothing) or `active`. */
  role: string;
  etcdEndpoints: string[];
  /** Root prefix of NNOE's keys, e.g. `/nnoe` (no trailing slash, as the agent joins `${prefix}/dns/zones`). */
  prefix: string;
  cachePath: string;
  /** Knot rendering (`[services.dns]` enabled and the node not db-only), else null. */
  dns: { configPath: string; zoneDir: string } | null;
  /** Kea rendering (`[services.dhcp]` enabled and the node not db-only), else null. */
  dhcp: { configPath: string } | null;
  /** `[etcd.tls]` paths: the node's etcd client TLS material. */
  tls: { caCert: string; cert: string; key: string } | null;
  /** `[nebula]` config path when Nebula is enabled (it runs as the agent's child). */
  nebulaConfig: string | null;
}

/** Paths in our config that win over agent.toml (for agents whose files moved). */
export interface AgentLayoutOverrides {
  cacheDir?: string;
  prefix?: string;
  dnsConfigPath?: string;
  zoneDir?: string;
  dhcpConfigPath?: string;
}

/** The five prefixes the agent watches, below its root prefix; the order is the agent's own. */
export const AGENT_WATCHED_PREFIXES = ['dns/zones', 'dhcp/scopes', 'policies', 'threats', 'role-mappings'] as const;

/** `/nnoe` + `dns/zones` -> `/nnoe/dns/zones`: exactly the agent's watch range (no trailing slash). */
export function watchedPrefix(rootPrefix: string, sub: string): string {
  return `${rootPrefix}/${sub}`;
}

type Table = Record<string, unknown>;

function table(parent: Table, key: string, file: string, where: string): Table | undefined {
  const value = parent[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AgentConfigError(`${file}: ${where}${key} must be a table ([${where}${key}])`);
  }
  return value as Table;
}

function requireTable(parent: Table, key: string, file: string, where = ''): Table {
  const found = table(parent, key, file, where);
  if (!found) throw new AgentConfigError(`${file}: missing [${where}${key}] (the agent refuses to start without it)`);
  return found;
}

function str(parent: Table, key: string, file: string, where: string, required: true): string;
function str(parent: Table, key: string, file: string, where: string, required: false): string | undefined;
function str(parent: Table, key: string, file: string, where: string, required: boolean): string | undefined {
  const value = parent[key];
  if (value === undefined) {
    if (required) throw new AgentConfigError(`${file}: missing ${where}.${key}`);
    return undefined;
  }
  if (typeof value !== 'string' || value.length === 0) throw new AgentConfigError(`${file}: ${where}.${key} must be a non-empty string`);
  return value;
}

function absolute(path: string, file: string, key: string): string {
  if (!path.startsWith('/')) throw new AgentConfigError(`${file}: ${key} = "${path}" must be an absolute path`);
  return path;
}

/** Parses agent.toml text (pure; `file` only names it in errors). */
export function parseAgentToml(text: string, file: string, overrides: AgentLayoutOverrides = {}): AgentLayout {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    throw new AgentConfigError(`${file}: not valid TOML: ${(err as Error).message.split('\n')[0]}`);
  }
  const node = requireTable(doc, 'node', file);
  const etcd = requireTable(doc, 'etcd', file);
  const cache = requireTable(doc, 'cache', file);
  const endpoints = etcd.endpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0 || !endpoints.every((e) => typeof e === 'string')) {
    throw new AgentConfigError(`${file}: etcd.endpoints must be a list of URLs like ["https://10.0.0.1:2379"]`);
  }
  const tlsTable = table(etcd, 'tls', file, 'etcd.');
  const services = table(doc, 'services', file, '') ?? {};
  const role = str(node, 'role', file, 'node', true);
  const renders = role !== 'db-only'; // the agent registers no DNS/DHCP plugin on db-only nodes
  const dnsTable = table(services, 'dns', file, 'services.');
  const dhcpTable = table(services, 'dhcp', file, 'services.');
  const nebula = table(doc, 'nebula', file, '');
  const prefix = (overrides.prefix ?? str(etcd, 'prefix', file, 'etcd', true)).replace(/\/+$/, '');

  return {
    file,
    nodeName: str(node, 'name', file, 'node', true),
    role,
    etcdEndpoints: endpoints as string[],
    prefix,
    cachePath: absolute(overrides.cacheDir ?? str(cache, 'path', file, 'cache', true), file, 'cache.path'),
    dns:
      renders && dnsTable?.enabled === true
        ? {
            configPath: absolute(
              overrides.dnsConfigPath ?? str(dnsTable, 'config_path', file, 'services.dns', true),
              file,
              'services.dns.config_path',
            ),
            zoneDir: absolute(overrides.zoneDir ?? str(dnsTable, 'zone_dir', file, 'services.dns', true), file, 'services.dns.zone_dir'),
          }
        : null,
    dhcp:
      renders && dhcpTable?.enabled === true
        ? {
            configPath: absolute(
              overrides.dhcpConfigPath ?? str(dhcpTable, 'config_path', file, 'services.dhcp', true),
              file,
              'services.dhcp.config_path',
            ),
          }
        : null,
    tls: tlsTable
      ? {
          caCert: str(tlsTable, 'ca_cert', file, 'etcd.tls', true),
          cert: str(tlsTable, 'cert', file, 'etcd.tls', true),
          key: str(tlsTable, 'key', file, 'etcd.tls', true),
        }
      : null,
    nebulaConfig: nebula?.enabled === true ? (str(nebula, 'config_path', file, 'nebula', false) ?? null) : null,
  };
}

/** Reads and parses the agent.toml on this host. */
export async function readAgentToml(file: string, overrides: AgentLayoutOverrides = {}): Promise<AgentLayout> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentConfigError(
      `agent config ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); ` +
        'expected the agent.toml the agent runs with (clusters[].agents[].agentToml)',
    );
  }
  return parseAgentToml(text, file, overrides);
}
