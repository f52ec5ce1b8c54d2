import { afterEach, describe, expect, it } from 'vitest';
import { problemsOf } from './config-problems';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig } from '../../src/config/load';
import { readSecret } from '../../src/config/secrets';

/** Temp dirs made by a test, removed after it. */
const scratchDirs: string[] = [];
async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(scratchDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const valid = {
  workDir: '/var/lib/nnoe-dr/work',
  clusters: [
    {
      name: 'prod',
      etcd: {
        members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }],
        tls: { caFile: '/etc/nnoe/certs/ca.crt', certFile: '/etc/nnoe/certs/client.crt', keyFile: { file: '/etc/nnoe/certs/client.key' } },
      },
    },
  ],
  storage: [{ name: 'local', type: 'local', path: '/backup/nnoe' }],
};

describe('config', () => {
  it('accepts a valid file and fills defaults', () => {
    const config = parseConfig(valid);
    expect(config.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'nnoe-dr' });
    expect(config.clusters[0]!.etcd.members[0]!.name).toBe('etcd-1');
    expect(config.clusters[0]!.restore.revisionBump).toBe(1_000_000_000); // on unless turned off
    expect(config.etcdBinDir).toBeUndefined(); // etcd's programs from PATH
  });

  it('takes the revision bump as a whole number of revisions, 0 turning it off, and etcdBinDir as an absolute path', () => {
    const bump = (revisionBump: unknown) => ({ ...valid, clusters: [{ ...valid.clusters[0]!, restore: { revisionBump } }] });
    expect(parseConfig(bump(0)).clusters[0]!.restore.revisionBump).toBe(0);
    expect(problemsOf(bump(-1))).toEqual(['clusters[0].restore.revisionBump: expected 0 (off) or more']);
    expect(problemsOf(bump(1.5))).toEqual(['clusters[0].restore.revisionBump: expected a whole number of revisions']);
    expect(problemsOf({ ...valid, etcdBinDir: 'opt/etcd' })).toEqual(['etcdBinDir: expected an absolute directory path']);
  });

  it('names the path of a bad value and what was expected', () => {
    const bad = structuredClone(valid);
    bad.clusters[0]!.etcd.members[0]!.clientUrl = 'etcd-1:2379';
    expect(problemsOf(bad)).toEqual([
      'clusters[0].etcd.members[0].clientUrl: expected a client URL like https://10.0.0.1:2379 (scheme, host and port, no path)',
    ]);
  });

  it('refuses Nebula backups without encryption recipients (the archives hold private keys)', () => {
    const bad = { ...valid, clusters: [{ ...valid.clusters[0], nebula: [{ node: 'node-1' }] }] };
    expect(problemsOf(bad)).toEqual([
      'clusters[0].nebula: Nebula backups hold private keys and are always encrypted: expected encryption.recipients (age1...) in the config',
    ]);
  });

  it('takes S3 server-side encryption as a second layer, and names a misplaced KMS key', () => {
    const s3 = { name: 's3', type: 's3', bucket: 'nnoe-backups', serverSideEncryption: { algorithm: 'aws:kms', kmsKeyId: 'alias/nnoe' } };
    expect(parseConfig({ ...valid, storage: [s3] }).storage[0]).toMatchObject({
      serverSideEncryption: { algorithm: 'aws:kms', kmsKeyId: 'alias/nnoe' },
    });
    expect(problemsOf({ ...valid, storage: [{ ...s3, serverSideEncryption: { algorithm: 'AES256', kmsKeyId: 'k' } }] })).toEqual([
      'storage[0].serverSideEncryption: kmsKeyId is only used with algorithm aws:kms',
    ]);
  });

  it('names unknown keys, so a typo is found', () => {
    const bad = { ...valid, storage: [{ ...valid.storage[0], pth: '/x' }] };
    expect(problemsOf(bad)).toContain('storage[0]: unknown key(s) "pth"');
  });

  it('rejects a secret given inline instead of by reference', () => {
    const bad = structuredClone(valid) as any;
    bad.clusters[0].etcd.tls.keyFile = '-----BEGIN PRIVATE KEY-----';
    const problems = problemsOf(bad);
    expect(problems.join('\n')).toContain('clusters[0].etcd.tls.keyFile: expected a secret reference');
    expect(problems.join('\n')).not.toContain('BEGIN PRIVATE KEY');
  });

  it('wants recovery checks a resolver and the history can take: DNS servers by address, metrics URLs without credentials', () => {
    const withChecks = (checks: object) => {
      const c = structuredClone(valid) as any;
      c.clusters[0].checks = checks;
      return c;
    };
    const good = {
      dns: [
        { server: '10.0.0.1:53', name: 'a', expect: ['10.0.0.2'] },
        { server: '[fd00::1]:53', name: 'a', expect: ['10.0.0.2'] },
      ],
      metrics: [{ url: 'http://10.0.0.1:9090/metrics', series: ['up'] }],
    };
    expect(parseConfig(withChecks(good)).clusters[0]!.checks.dns).toHaveLength(2);
    const problems = problemsOf(
      withChecks({
        dns: [{ server: 'dns.local:53', name: 'a', expect: ['10.0.0.2'] }],
        metrics: [{ url: 'http://scraper:s3cr3t@10.0.0.1:9090/metrics', series: ['up'] }],
      }),
    );
    expect(problems).toEqual([
      'clusters[0].checks.dns[0].server: expected the IP address and port of a DNS server, e.g. 10.0.0.1:53 or [fd00::1]:53 (not a host name)',
      "clusters[0].checks.metrics[0].url: a metrics URL must not carry credentials (user:password@): it is recorded in the run's history",
    ]);
  });

  it('checks age recipients, and never echoes a secret key pasted in their place', () => {
    const pasted = 'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ';
    const problems = problemsOf({ ...valid, encryption: { recipients: [pasted, 'age1notarecipient'] } });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^encryption\.recipients\[0\]: /);
    expect(problems[1]).toMatch(/^encryption\.recipients\[1\]: /);
    expect(problems.join('\n')).not.toContain(pasted);
    expect(problemsOf({ ...valid, encryption: { recipients: [] } })).toEqual([
      'encryption.recipients: expected at least one age recipient (age1...)',
    ]);
  });

  it('rejects duplicate names and empty lists', () => {
    const dup = { ...valid, storage: [valid.storage[0], valid.storage[0]] };
    expect(problemsOf(dup)).toContain('storage[1].name: duplicate name "local"');
    expect(problemsOf({ ...valid, clusters: [] })).toContain('clusters: expected at least one cluster');
  });

  it('reports unreadable files and bad YAML with the file name', async () => {
    const dir = await scratchDir('nnoe-dr-config-');
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'clusters: [\n');
    expect(() => loadConfig(file)).toThrow(new RegExp(`invalid configuration ${file}:\\n  - not valid YAML`));
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read the file/);
  });

  it('reads secrets from files and the environment, never echoing them in errors', async () => {
    const dir = await scratchDir('nnoe-dr-secret-');
    await writeFile(join(dir, 'pw'), 's3cr3t\n', { mode: 0o600 });
    expect(await readSecret({ file: join(dir, 'pw') })).toBe('s3cr3t');
    process.env.NNOE_TEST_SECRET = 'from-env';
    expect(await readSecret({ env: 'NNOE_TEST_SECRET' })).toBe('from-env');
    await expect(readSecret({ env: 'NNOE_TEST_UNSET_SECRET' })).rejects.toThrow(
      'secret environment variable NNOE_TEST_UNSET_SECRET is not set on this worker',
    );
    await expect(readSecret({ file: join(dir, 'nope') })).rejects.toThrow(/cannot be read \(ENOENT\)/);
  });
});
