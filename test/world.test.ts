/**
 * The local world for real: a 3-member etcd cluster with mTLS, moto as S3,
 * all under supervisord, started in a fresh temp dir and torn down at the end.
 */
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { Etcd3 } from 'etcd3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';

import { createCertificates } from '../src/sandbox/certs';
import { freePorts, isPortFree } from '../src/sandbox/ports';
import { programLogPath, programStates, supervisorctl, supervisordPid, supervisorLayout } from '../src/sandbox/supervisor';
import { etcdctl, loadWorld, renderWorldConfig, startWorld, stopWorld, World, worldPorts } from '../src/sandbox/world';

const START_TIMEOUT_MS = 240_000;

/** Pids of live processes whose command line mentions `dir`. */
function processesMentioning(dir: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmdline.includes(dir) && state !== 'Z') found.push(`${entry}: ${cmdline}`);
    } catch {
      // process exited while we looked
    }
  }
  return found;
}

function etcdClient(world: World): Etcd3 {
  return new Etcd3({
    hosts: world.etcd.members.map((member) => member.clientUrl),
    credentials: {
      rootCertificate: fs.readFileSync(world.certs.ca),
      certChain: fs.readFileSync(world.certs.clientCert),
      privateKey: fs.readFileSync(world.certs.clientKey),
    },
    dialTimeout: 3_000,
  });
}

describe('ports', () => {
  it('freePorts returns distinct, bindable ports', async () => {
    const ports = await freePorts(20);
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) expect(await isPortFree(port)).toBe(true);
  });
});

describe('certs', () => {
  it('creates the PKI once, with private keys readable only by the owner', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nnoe-certs-'));
    try {
      const paths = await createCertificates(dir);
      const firstCa = fs.readFileSync(paths.ca, 'utf8');
      for (const key of [paths.caKey, paths.serverKey, paths.clientKey, paths.rogueClientKey]) {
        expect(fs.statSync(key).mode & 0o777).toBe(0o600);
      }
      await createCertificates(dir);
      expect(fs.readFileSync(paths.ca, 'utf8')).toBe(firstCa); // not regenerated
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Generous: the machine has 2 cores, and etcd elections and supervisorctl calls add up.
describe('local world', { timeout: 120_000 }, () => {
  let dir: string;
  let world: World;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nnoe-world-'));
    world = await startWorld({ dir });
  }, START_TIMEOUT_MS);

  afterAll(async () => {
    if (dir) {
      await stopWorld(dir);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('describes itself in world.json and in the nnoe-dr config', () => {
    expect(world.dir).toBe(path.resolve(dir));
    expect(loadWorld(dir)).toEqual(world);
    expect(world.etcd.members.map((member) => member.name)).toEqual(['etcd-1', 'etcd-2', 'etcd-3']);
    expect(world.etcd.members.map((member) => member.node)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(new Set(worldPorts(world)).size).toBe(worldPorts(world).length);

    const config = YAML.parse(fs.readFileSync(world.configPath, 'utf8')) as Record<string, unknown>;
    expect(config).toEqual(renderWorldConfig(world));
    expect(config).toMatchObject({
      temporal: { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'nnoe-dr' },
      workDir: world.workDir,
      clusters: [{ name: 'nnoe-local', service: { driver: 'supervisor', supervisorConf: world.supervisorConf } }],
      storage: [
        { name: 'local', type: 'local' },
        { name: 's3', type: 's3', bucket: 'nnoe-backups', forcePathStyle: true },
      ],
    });
    expect(fs.readFileSync(world.etcd.members[0]!.programConf, 'utf8')).toContain(`--data-dir=${world.etcd.members[0]!.dataDir}`);
  });

  it('has 3 healthy members over mTLS', async () => {
    const health = await etcdctl(world, ['endpoint', 'health']);
    expect(health.exitCode, health.stderr).toBe(0);
    expect((health.stdout + health.stderr).match(/is healthy/g)).toHaveLength(3);

    const members = await etcdctl(world, ['member', 'list']);
    expect(members.exitCode, members.stderr).toBe(0);
    const lines = members.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const member of world.etcd.members) {
      const line = lines.find((candidate) => candidate.includes(`, ${member.name}, `));
      expect(line, `member list should show ${member.name}`).toBeDefined();
      expect(line).toContain('started');
      expect(line).toContain(member.peerUrl);
      expect(line).toContain(member.clientUrl);
    }
  });

  it('stores and reads a key with etcdctl and with the etcd3 client', async () => {
    const put = await etcdctl(world, ['put', '/nnoe-test/greeting', 'hello']);
    expect(put.exitCode, put.stderr).toBe(0);
    const get = await etcdctl(world, ['get', '/nnoe-test/greeting', '--print-value-only']);
    expect(get.stdout.trim()).toBe('hello');

    const client = etcdClient(world);
    try {
      expect(await client.get('/nnoe-test/greeting').string()).toBe('hello');
    } finally {
      client.close();
    }
  });

  it('rejects a client cert from another CA', async () => {
    const member = world.etcd.members[0]!;
    const rogue = await etcdctl(world, ['--command-timeout=3s', 'get', '/nnoe-test/greeting'], {
      endpoints: [member.clientUrl],
      identity: 'rogue',
    });
    expect(rogue.exitCode).not.toBe(0);
    expect(rogue.stdout).not.toContain('hello');
    // etcdctl only sees its dial time out; the member's log says why.
    expect(rogue.stderr).toMatch(/deadline exceeded/i);
    const memberLog = fs.readFileSync(programLogPath(supervisorLayout(world.dir), member.program), 'utf8');
    expect(memberLog).toContain('certificate signed by unknown authority');

    // The real client cert on the same endpoint still works: the rejection is about the issuer.
    const trusted = await etcdctl(world, ['get', '/nnoe-test/greeting', '--print-value-only'], {
      endpoints: [world.etcd.members[0]!.clientUrl],
    });
    expect(trusted.stdout.trim()).toBe('hello');
  });

  it('serves S3 with the backup bucket', async () => {
    const s3 = new S3Client({
      endpoint: world.s3.endpoint,
      region: world.s3.region,
      forcePathStyle: true,
      credentials: {
        accessKeyId: fs.readFileSync(world.s3.accessKeyFile, 'utf8'),
        secretAccessKey: fs.readFileSync(world.s3.secretKeyFile, 'utf8'),
      },
    });
    try {
      const buckets = await s3.send(new ListBucketsCommand({}));
      expect(buckets.Buckets?.map((bucket) => bucket.Name)).toContain('nnoe-backups');
    } finally {
      s3.destroy();
    }
  });

  it(
    'reuses the running world when started again',
    async () => {
      const supervisord = supervisordPid(world.supervisorConf);
      const startedAt = Date.now();
      const again = await startWorld({ dir });
      const elapsedMs = Date.now() - startedAt;

      expect(again).toEqual(world); // same ports, token and paths
      expect(supervisordPid(world.supervisorConf)).toBe(supervisord);
      expect(elapsedMs).toBeLessThan(30_000);
    },
    START_TIMEOUT_MS,
  );

  it('keeps a member down once stopped (autorestart=false)', async () => {
    await supervisorctl(world.supervisorConf, 'stop', 'etcd-2');
    const states = await programStates(world.supervisorConf);
    expect(states).toMatchObject({ 'etcd-1': 'RUNNING', 'etcd-2': 'STOPPED', 'etcd-3': 'RUNNING', moto: 'RUNNING' });
    expect(await supervisorctl(world.supervisorConf, 'status', 'etcd-2')).toMatch(/etcd-2\s+STOPPED/);
  });

  it('stops every process and frees every port', async () => {
    expect(processesMentioning(world.dir).length).toBeGreaterThan(0);
    await stopWorld(dir);

    expect(processesMentioning(world.dir)).toEqual([]);
    expect(supervisordPid(world.supervisorConf)).toBeUndefined();
    for (const port of worldPorts(world)) expect(await isPortFree(port), `port ${port}`).toBe(true);
    await stopWorld(dir); // a second stop is a no-op
  });
});
