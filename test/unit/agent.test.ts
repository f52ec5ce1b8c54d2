/**
 * The pure parts of working with the real NNOE agent: its agent.toml, what it renders from etcd
 * (its own rules, agent/src/services/{knot,kea}.rs) against what it wrote, the /proc socket table,
 * and the prefix range a republish walks.
 */
import { describe, expect, it } from 'vitest';
import { createServer, connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentConfigError, parseAgentToml } from '../../src/agent/agent-toml';
import { expectedRendering, parseKeaConf, parseKnotConf, parseZoneFileRecords, renderingDifferences } from '../../src/agent/rendering';
import { decodeProcAddress, establishedConnectionTo } from '../../src/agent/connections';
import { prefixRangeEnd } from '../../src/agent/republish';
import { activeKeaLeases, inIpv4Subnet } from '../../src/activities/service-checks';
import { loadableZone } from '../../src/sandbox/knot-bridge';
import { nnoeAgentBinary } from '../../src/sandbox/agents';
import { spawnSync } from 'node:child_process';

const EXAMPLE = readFileSync(join(__dirname, '../../../shared/third_party/nnoe/agent/examples/agent.toml.example'), 'utf8');

describe("the agent's command line (the real binary)", () => {
  const repoRoot = join(__dirname, '../..');
  const run = (args: string[]) => spawnSync(nnoeAgentBinary(repoRoot), args, { encoding: 'utf8', timeout: 10_000 });

  it("refuses NNOE's own unit form `run -c` (exit 2); the form of the unit we ship reads the file", () => {
    const upstream = run(['run', '-c', '/nonexistent/agent.toml']);
    expect(upstream.status).toBe(2);
    expect(upstream.stderr).toContain("unexpected argument '-c'");
    const execStart = /^ExecStart=\S+ (.+)$/m
      .exec(readFileSync(join(repoRoot, 'deploy/systemd/nnoe-agent.service'), 'utf8'))![1]!
      .split(' ');
    expect(execStart).toEqual(['-c', '/etc/nnoe/agent.toml', 'run']);
    const ours = run(['-c', '/nonexistent/agent.toml', 'run']);
    expect(ours.status).toBe(1); // past argument parsing: it fails on the missing file, not on its usage
    expect(`${ours.stdout}${ours.stderr}`).toContain('No such file or directory');
  });
});

describe('agent.toml', () => {
  it("reads NNOE's own example: cache path, prefix, Knot rendering; DHCP commented out", () => {
    const layout = parseAgentToml(EXAMPLE, '/etc/nnoe/agent.toml');
    expect(layout).toMatchObject({
      nodeName: 'nnoe-node-1',
      role: 'active',
      prefix: '/nnoe',
      cachePath: '/var/nnoe/cache',
      etcdEndpoints: ['http://127.0.0.1:2379'],
      dns: { configPath: '/etc/knot/knot.conf', zoneDir: '/var/lib/knot/zones' },
      dhcp: null,
      tls: null,
      nebulaConfig: null,
    });
  });

  it('lets our config override the paths, and a db-only node renders nothing', () => {
    const layout = parseAgentToml(EXAMPLE.replace('role = "active"', 'role = "db-only"'), 'f', {
      cacheDir: '/var/lib/nnoe/cache',
      prefix: '/other/',
    });
    expect(layout).toMatchObject({ cachePath: '/var/lib/nnoe/cache', prefix: '/other', dns: null, dhcp: null });
  });

  it.each([
    ['not TOML', 'this is = = not toml', /^\/a\.toml: not valid TOML/],
    ['no [cache]', EXAMPLE.replace('[cache]', '[cache_old]'), /^\/a\.toml: missing \[cache\]/],
    ['no cache.path', EXAMPLE.replace('path = "/var/nnoe/cache"', ''), /^\/a\.toml: missing cache\.path$/],
    ['relative cache path', EXAMPLE.replace('"/var/nnoe/cache"', '"cache"'), /cache\.path = "cache" must be an absolute path/],
    [
      'endpoints not a list',
      EXAMPLE.replace('endpoints = ["http://127.0.0.1:2379"]', 'endpoints = "x"'),
      /etcd\.endpoints must be a list of URLs/,
    ],
    ['dns without zone_dir', EXAMPLE.replace('zone_dir = "/var/lib/knot/zones"', ''), /missing services\.dns\.zone_dir/],
  ])('refuses %s, naming the file and key', (_what, text, message) => {
    expect(() => parseAgentToml(text, '/a.toml')).toThrow(AgentConfigError);
    expect(() => parseAgentToml(text, '/a.toml')).toThrow(message);
  });
});

describe('what the agent renders', () => {
  const kvs = [
    {
      key: '/nnoe/dns/zones/example.com',
      value: JSON.stringify({
        domain: 'example.com',
        ttl: 300,
        records: [
          { name: 'www', type: 'A', value: '10.0.0.1' },
          { name: '@', type: 'MX', value: '10 mx.example.com.', ttl: 60 },
        ],
      }),
    },
    { key: '/nnoe/dns/zones/broken', value: '{not json' },
    { key: '/nnoe/dns/zones/example.com/zonefile', value: 'raw' },
    { key: '/nnoe/dhcp/scopes/lab', value: JSON.stringify({ subnet: '10.10.0.0/24', pool: { start: '10.10.0.100', end: '10.10.0.200' } }) },
    { key: '/nnoe/dhcp/leases/10.10.0.5', value: '{}' },
  ];
  const expected = expectedRendering(kvs, '/nnoe');
  const zoneFile =
    '$ORIGIN example.com\n$TTL 3600\n\n@\tIN\tSOA\tns1.example.com. admin.example.com. (\n\t\t1\t; Serial\n\t\t3600\t; Refresh\n)\n\nwww\t3600\tA\t10.0.0.1\n@\t60\tMX\t10 mx.example.com.\n';
  const knotConf = JSON.stringify({
    server: { rundir: '/var/lib/knot', listen: [] },
    zone: [{ domain: 'example.com', file: '/z/example.com.zone' }],
  });
  const keaConf = JSON.stringify({ Dhcp4: { subnet4: [{ subnet: '10.10.0.0/24', pools: [{ pool: '10.10.0.100 - 10.10.0.200' }] }] } });
  const layout = { dns: true, dhcp: true, zoneDir: '/z' };

  it("derives zones and scopes by the agent's rules (records default to TTL 3600, /zonefile keys and bad JSON skipped)", () => {
    expect(expected.zones).toEqual([
      {
        zone: 'example.com',
        domain: 'example.com',
        records: [
          { name: 'www', type: 'A', value: '10.0.0.1', ttl: 3600 },
          { name: '@', type: 'MX', value: '10 mx.example.com.', ttl: 60 },
        ],
      },
    ]);
    expect(expected.scopes).toEqual([{ scope: 'lab', subnet: '10.10.0.0/24', pool: '10.10.0.100 - 10.10.0.200' }]);
    expect(expected.unrenderable).toEqual(['/nnoe/dns/zones/broken']);
  });

  it('finds nothing to say when the files match etcd', () => {
    const rendered = {
      knotZones: parseKnotConf(knotConf)!.map((z) => ({ ...z, records: parseZoneFileRecords(zoneFile) })),
      keaSubnets: parseKeaConf(keaConf),
    };
    expect(renderingDifferences(expected, rendered, layout)).toEqual([]);
  });

  it('names each way a restarted, stale or deaf agent differs', () => {
    const empty = { knotZones: [], keaSubnets: [] };
    expect(renderingDifferences(expected, empty, layout)).toEqual([
      'zones in etcd not served: example.com',
      'DHCP scopes in etcd not served: 10.10.0.0/24',
    ]);
    const stale = {
      knotZones: [
        { domain: 'example.com', file: '/z/example.com.zone', records: parseZoneFileRecords(zoneFile.replace('10.0.0.1', '10.0.0.9')) },
        { domain: 'gone.test', file: '/z/gone.test.zone', records: [] },
      ],
      keaSubnets: [{ subnet: '10.10.0.0/24', pools: ['10.10.0.1 - 10.10.0.2'] }],
    };
    expect(renderingDifferences(expected, stale, layout)).toEqual([
      'zones served that etcd does not have: gone.test',
      'zone records differ from etcd: example.com',
      'DHCP pools differ from etcd: 10.10.0.0/24',
    ]);
    expect(renderingDifferences(expected, { knotZones: null, keaSubnets: null }, layout)).toEqual([
      "knot.conf is missing or not the agent's JSON",
      "kea-dhcp4.conf is missing or not the agent's JSON",
    ]);
  });

  it("makes the agent's zone file loadable by knotd without changing its records", () => {
    const fixed = loadableZone(zoneFile, 7);
    expect(fixed).toMatch(/^\$ORIGIN example\.com\.$/m);
    expect(fixed).toMatch(/^\t\t7\t; Serial$/m);
    expect(parseZoneFileRecords(fixed)).toEqual(parseZoneFileRecords(zoneFile));
  });
});

describe("the process's TCP connections", () => {
  it('decodes /proc/net/tcp addresses', () => {
    expect(decodeProcAddress('0100007F:0CEB')).toBe('127.0.0.1:3307');
    expect(decodeProcAddress('0000000000000000FFFF00000100007F:094F')).toBe('127.0.0.1:2383');
    expect(decodeProcAddress('00000000000000000000000001000000:0035')).toBe('[::1]:53');
  });

  it("finds this process's established connection to a server, and none after it closes", async () => {
    const server = createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    const port = (server.address() as { port: number }).port;
    const url = `https://127.0.0.1:${port}`;
    const socket = connect(port, '127.0.0.1');
    await new Promise((ready) => socket.once('connect', ready));
    try {
      expect(await establishedConnectionTo(process.pid, [url])).toBe(`127.0.0.1:${port}`);
      expect(await establishedConnectionTo(process.pid, ['https://127.0.0.1:1'])).toBeNull();
    } finally {
      socket.destroy();
      await new Promise((done) => server.close(done));
    }
    expect(await establishedConnectionTo(process.pid, [url])).toBeNull();
  });
});

describe('republish range', () => {
  it('ends a prefix range just after every key that starts with it', () => {
    expect(prefixRangeEnd(Buffer.from('/nnoe/dns/zones'))).toEqual(Buffer.from('/nnoe/dns/zonet'));
    expect(prefixRangeEnd(Buffer.from([0x61, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixRangeEnd(Buffer.from([0xff]))).toEqual(Buffer.from([0]));
  });
});

describe('DHCP check: leases in the subnets Kea serves', () => {
  const csv = [
    'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id',
    '10.10.0.10,aa,,3600,2000,1,0,0,a,0,,0',
    '10.10.0.11,bb,,3600,2000,1,0,0,b,0,,0',
    '10.10.0.12,cc,,3600,500,1,0,0,expired,0,,0',
    '10.20.0.5,dd,,3600,2000,2,0,0,other-subnet,0,,0',
    '10.10.0.13,ee,,3600,2000,1,0,0,declined,1,,0',
  ].join('\n');
  it('counts active leases, and only those inside a served subnet when asked', () => {
    expect(activeKeaLeases(csv, 1000)).toBe(3);
    expect(activeKeaLeases(csv, 1000, (a) => inIpv4Subnet(a, '10.10.0.0/24'))).toBe(2);
    expect(activeKeaLeases(csv, 1000, () => false)).toBe(0);
  });
  it('tells IPv4 subnet membership', () => {
    expect(inIpv4Subnet('10.10.0.255', '10.10.0.0/24')).toBe(true);
    expect(inIpv4Subnet('10.10.1.0', '10.10.0.0/24')).toBe(false);
    expect(inIpv4Subnet('192.168.7.9', '192.168.0.0/16')).toBe(true);
    expect(inIpv4Subnet('not-an-ip', '10.0.0.0/8')).toBe(false);
  });
});
