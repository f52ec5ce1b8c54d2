/**
 * The disaster recovery's last step: does the stack serve again? DNS names answer as expected,
 * Kea lease files hold active leases, metrics endpoints expose their series. Each check returns
 * its verdict (the report shows every one); none throws for a failed check.
 */
import { readFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { errorMessage } from '../common/domain-errors';
import { agentLayout } from '../agent/node-agent';
import { parseKeaConf } from '../agent/rendering';

export interface ServiceCheck {
  kind: 'dns' | 'dhcp' | 'metrics';
  target: string;
  ok: boolean;
  detail: string;
}

/** Active leases of a Kea memfile CSV (state 0, not expired), optionally only those inside `inSubnet`. */
export function activeKeaLeases(csv: string, nowSeconds: number, inSubnet: (address: string) => boolean = () => true): number {
  const [header, ...rows] = csv.split('\n').filter((line) => line.trim().length > 0);
  const columns = (header ?? '').split(',');
  const expire = columns.indexOf('expire');
  const state = columns.indexOf('state');
  const address = columns.indexOf('address');
  if (expire < 0 || state < 0 || address < 0) throw new Error('not a Kea lease file (no address/expire/state columns)');
  return rows.map((r) => r.split(',')).filter((f) => Number(f[state]) === 0 && Number(f[expire]) > nowSeconds && inSubnet(f[address] ?? ''))
    .length;
}

const ipv4 = (address: string) => address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);

/** `10.10.0.0/24` contains `10.10.0.7`? (IPv4, as Kea's subnet4) */
export function inIpv4Subnet(address: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  if (!base || !/^\d+\.\d+\.\d+\.\d+$/.test(address)) return false;
  const size = 2 ** (32 - Number(bits ?? 32));
  return Math.floor(ipv4(address) / size) === Math.floor(ipv4(base) / size);
}

export function createServiceCheckActivities(deps: { config: Config }) {
  async function checkDns(input: { cluster: string }): Promise<ServiceCheck[]> {
    return Promise.all(
      findCluster(deps.config, input.cluster).checks.dns.map(async ({ server, name, expect }) => {
        const resolver = new Resolver({ timeout: 2000, tries: 2 });
        resolver.setServers([server]);
        try {
          const answers = (await resolver.resolve4(name)).sort();
          const ok = JSON.stringify(answers) === JSON.stringify([...expect].sort());
          return {
            kind: 'dns' as const,
            target: `${name} @${server}`,
            ok,
            detail: `answered ${answers.join(', ')}${ok ? '' : `; expected ${expect.join(', ')}`}`,
          };
        } catch (err) {
          return { kind: 'dns' as const, target: `${name} @${server}`, ok: false, detail: `no answer: ${errorMessage(err)}` };
        }
      }),
    );
  }

  async function checkMetrics(input: { cluster: string }): Promise<ServiceCheck[]> {
    return Promise.all(
      findCluster(deps.config, input.cluster).checks.metrics.map(async ({ url, series }) => {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
          const text = await res.text();
          const present = new Set(
            text
              .split('\n')
              .filter((l) => l && !l.startsWith('#'))
              .map((l) => l.split(/[{\s]/)[0]),
          );
          const missing = series.filter((s) => !present.has(s));
          return {
            kind: 'metrics' as const,
            target: withoutQuery(url),
            ok: res.ok && missing.length === 0,
            detail: res.ok ? (missing.length ? `missing ${missing.join(', ')}` : `${series.length} series present`) : `HTTP ${res.status}`,
          };
        } catch (err) {
          return { kind: 'metrics' as const, target: withoutQuery(url), ok: false, detail: `no answer: ${errorMessage(err)}` };
        }
      }),
    );
  }
  return { checkDns: checkDns, checkMetrics: checkMetrics };
}

/** A URL for the report: a query string may hold a token, and the report lands in the run's history. */
function withoutQuery(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

/**
 * On the node that holds the lease file. Where an agent runs on the node, only leases inside a
 * subnet its rendered kea-dhcp4.conf serves count: a lease of a subnet Kea no longer has is not served.
 */
export function createDhcpCheckActivities(deps: { config: Config; node: string }) {
  async function servedSubnets(clusterName: string): Promise<{ file: string; subnets: string[] } | null> {
    const agent = findCluster(deps.config, clusterName).agents.find((a) => a.node === deps.node);
    const dhcp = agent ? (await agentLayout(agent)).dhcp : null;
    if (!dhcp) return null;
    const text = await readFile(dhcp.configPath, 'utf8').catch(() => '');
    return { file: dhcp.configPath, subnets: (parseKeaConf(text) ?? []).map((s) => s.subnet) };
  }

  async function checkDhcpLeases(input: { cluster: string }): Promise<ServiceCheck[]> {
    const checks = findCluster(deps.config, input.cluster).checks.dhcp.filter((c) => c.node === deps.node);
    return Promise.all(
      checks.map(async ({ leaseFile, minActive }) => {
        try {
          const served = await servedSubnets(input.cluster);
          const inServed = served ? (a: string) => served.subnets.some((s) => inIpv4Subnet(a, s)) : undefined;
          const active = activeKeaLeases(await readFile(leaseFile, 'utf8'), Date.now() / 1000, inServed);
          const where = served ? ` in the subnets ${served.file} serves (${served.subnets.join(', ') || 'none'})` : '';
          return {
            kind: 'dhcp' as const,
            target: `${deps.node}:${leaseFile}`,
            ok: active >= minActive,
            detail: `${active} active leases${where} (at least ${minActive} expected)`,
          };
        } catch (err) {
          return { kind: 'dhcp' as const, target: `${deps.node}:${leaseFile}`, ok: false, detail: errorMessage(err) };
        }
      }),
    );
  }
  return { checkDhcpLeases: checkDhcpLeases };
}
