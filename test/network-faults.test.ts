/**
 * Network faults through a real fault proxy (toxiproxy, built by scripts/install-toxiproxy.sh)
 * between a management worker and etcd, S3 and MariaDB (issue 13): connections reset mid-upload,
 * a blackhole mid-stream, slow bandwidth and latency. Every run ends retried to success, and the
 * stores and workDir hold nothing half-committed afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { inject } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createManagementActivities } from '../src/activities';
import type { Config } from '../src/config/schema';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import type { BackupSetResult } from '../src/workflows/backup-set';
import { freePort, waitForPortOpen } from '../src/sandbox/ports';
import { CLUSTER, fillKeys, memberClient, openHarness, pollUntil, removeFill, type Harness } from './support/harness';
import { scanForDebris } from './support/debris';
import { progressQuery } from '../src/workflows/progress';

const TASK_QUEUE = 'network-faults-test';
const TOXIPROXY = resolve(__dirname, '..', '.tools', 'toxiproxy-server');

let h: Harness;
let toxiproxy: ChildProcess | undefined;
let api: string;
let config: Config;
let connection: NativeConnection | undefined;
let worker: Worker | undefined;
let running: Promise<void> | undefined;
let debrisBefore: string[];

/** One call of toxiproxy's HTTP API. */
async function toxi(method: string, path: string, body?: unknown): Promise<void> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${await res.text()}`);
}

/** A proxy in front of `host:port`; returns the port it listens on. */
async function proxy(name: string, upstream: string): Promise<number> {
  const port = await freePort();
  await toxi('POST', '/proxies', { name, listen: `127.0.0.1:${port}`, upstream, enabled: true });
  return port;
}

const addToxic = (proxyName: string, name: string, type: string, stream: 'upstream' | 'downstream', attributes: Record<string, number>) =>
  toxi('POST', `/proxies/${proxyName}/toxics`, { name, type, stream, toxicity: 1, attributes });
const removeToxic = (proxyName: string, name: string) => toxi('DELETE', `/proxies/${proxyName}/toxics/${name}`);

beforeAll(async () => {
  h = await openHarness();
  const apiPort = await freePort();
  toxiproxy = spawn(TOXIPROXY, ['-host', '127.0.0.1', '-port', String(apiPort)], { stdio: 'ignore' });
  await waitForPortOpen(apiPort, 'toxiproxy', 30_000);
  api = `http://127.0.0.1:${apiPort}`;

  // The worker of this file reaches every member, S3 and MariaDB only through the proxy.
  config = structuredClone(h.config);
  const cluster = config.clusters.find((c) => c.name === CLUSTER)!;
  for (const member of cluster.etcd.members) {
    const url = new URL(member.clientUrl);
    member.clientUrl = `${url.protocol}//127.0.0.1:${await proxy(`etcd-${member.name}`, url.host)}`;
  }
  for (const target of config.storage) {
    if (target.type !== 's3' || target.name !== 's3') continue;
    const url = new URL(target.endpoint!);
    target.endpoint = `${url.protocol}//127.0.0.1:${await proxy('s3', url.host)}`;
  }
  if (cluster.phpipam) cluster.phpipam.port = await proxy('mariadb', `${cluster.phpipam.host}:${cluster.phpipam.port}`);

  connection = await NativeConnection.connect({ address: inject('world').temporalAddress });
  worker = await Worker.create({
    connection,
    taskQueue: TASK_QUEUE,
    workflowBundle: { codePath: inject('world').workflowBundlePath },
    activities: createManagementActivities({ config }),
  });
  running = worker.run();
  debrisBefore = await scanForDebris(h.world, h.config);
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
  if (toxiproxy && toxiproxy.exitCode === null) {
    const exited = new Promise((done) => toxiproxy!.once('exit', done));
    toxiproxy.kill('SIGTERM');
    await exited;
  }
  await h?.close();
});

let runs = 0;
function start(workflow: 'etcdBackupWorkflow' | 'backupSetWorkflow', input: Record<string, unknown>): Promise<WorkflowHandle> {
  return h.client.workflow.start(workflow, {
    taskQueue: TASK_QUEUE,
    workflowId: `network-faults-${Date.now()}-${runs++}`,
    args: [{ cluster: CLUSTER, ...input }],
  });
}

/** Waits until the run's snapshot stream (or dump) has heartbeated bytes: the fault then lands mid-stream. */
async function streaming(handle: WorkflowHandle, activity: string): Promise<void> {
  await pollUntil(
    async () =>
      ((await handle.describe()).raw.pendingActivities ?? []).some((a) => a.activityType?.name === activity && a.heartbeatDetails),
    90_000,
    `${activity} to stream`,
  );
}

async function expectNoNewDebris(): Promise<void> {
  expect((await scanForDebris(h.world, h.config)).filter((d) => !debrisBefore.includes(d))).toEqual([]);
}

async function withFill<T>(mib: number, fn: () => Promise<T>): Promise<T> {
  const etcd = await memberClient(h.config, 'etcd-1');
  try {
    await fillKeys(etcd, '/fill-net/', mib, 1024 * 1024);
  } finally {
    etcd.close();
  }
  try {
    return await fn();
  } finally {
    await removeFill(h.config, '/fill-net/');
  }
}

/** Waits until the activity's first attempt failed (its retry is scheduled) or the run ended. */
async function retried(handle: WorkflowHandle, activity: string): Promise<void> {
  await pollUntil(
    async () => {
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING') return true;
      return (description.raw.pendingActivities ?? []).some((a) => a.activityType?.name === activity && (a.attempt ?? 1) > 1);
    },
    120_000,
    `${activity} to fail once and be retried`,
  );
}

describe('network faults between the workers and etcd, S3 and MariaDB', () => {
  it('S3 resets every connection after 1 MiB (with latency), then heals: the backup is retried to success, no upload left open', async () => {
    await withFill(24, async () => {
      await addToxic('s3', 'latency', 'latency', 'upstream', { latency: 50, jitter: 20 });
      await addToxic('s3', 'reset', 'limit_data', 'upstream', { bytes: 1024 * 1024 });
      const handle = await start('etcdBackupWorkflow', { targets: ['local', 's3'] });
      await retried(handle, 'streamEtcdSnapshot'); // the SDK's own retries gave up: the attempt failed
      await removeToxic('s3', 'reset');
      await removeToxic('s3', 'latency');
      const result = (await handle.result()) as EtcdBackupResult;
      expect(result.manifest.status).toBe('complete');
      expect(result.manifest.components[0]!.artefacts[0]!.copies.map((c) => c.target).sort()).toEqual(['local', 's3']);
      expect(result.interruptedAttempts?.length).toBeGreaterThanOrEqual(1);
    });
    await expectNoNewDebris();
  });

  it('etcd over a slow link blackholes the snapshot stream mid-way, then heals: the broken stream is retried to success', async () => {
    const names = h.world.etcd.members.map((m) => `etcd-${m.name}`);
    await withFill(24, async () => {
      for (const name of names) await addToxic(name, 'slow', 'bandwidth', 'downstream', { rate: 2048 });
      try {
        const handle = await start('etcdBackupWorkflow', { targets: ['local'] });
        await streaming(handle, 'streamEtcdSnapshot');
        for (const name of names) await addToxic(name, 'blackhole', 'timeout', 'downstream', { timeout: 0 }); // nothing passes, the connection stays
        await new Promise((done) => setTimeout(done, 3000));
        for (const name of names) await removeToxic(name, 'blackhole'); // the bytes it swallowed are gone: toxiproxy closes the connection
        for (const name of names) await removeToxic(name, 'slow');
        const result = (await handle.result()) as EtcdBackupResult;
        expect(result.manifest.status).toBe('complete');
        expect(result.interruptedAttempts?.length).toBeGreaterThanOrEqual(1);
      } finally {
        for (const name of names) await removeToxic(name, 'slow').catch(() => undefined);
      }
    });
    await expectNoNewDebris();
  });

  it("MariaDB over a slow link (latency, 64 KiB/s) resets the dump's connections: the backup set is retried to success", async () => {
    await addToxic('mariadb', 'latency', 'latency', 'downstream', { latency: 50 });
    await addToxic('mariadb', 'slow', 'bandwidth', 'downstream', { rate: 64 });
    try {
      const handle = await start('backupSetWorkflow', { targets: ['local', 's3'], components: ['etcd', 'phpipam'] });
      // The dump runs in the set's child workflow `<setId>/phpipam`.
      const setId = await pollUntil(async () => (await handle.query(progressQuery)).setId, 60_000, 'the set id');
      const dump = h.client.workflow.getHandle(`${setId}/phpipam`);
      await pollUntil(
        async () =>
          ((await dump.describe().catch(() => undefined))?.raw.pendingActivities ?? []).some(
            (a) => a.activityType?.name === 'dumpPhpipamToStores',
          ),
        180_000,
        'the phpIPAM dump to start',
      );
      await addToxic('mariadb', 'reset', 'reset_peer', 'downstream', { timeout: 0 });
      await retried(dump, 'dumpPhpipamToStores');
      await removeToxic('mariadb', 'reset');
      await removeToxic('mariadb', 'slow');
      await removeToxic('mariadb', 'latency');
      const result = (await handle.result()) as BackupSetResult;
      expect(result.manifest.status).toBe('complete');
      expect(result.manifest.components.map((c) => c.component).sort()).toEqual(['etcd', 'phpipam']);
      const attempts = ((await dump.fetchHistory()).events ?? []).flatMap((e) => e.activityTaskStartedEventAttributes?.attempt ?? []);
      expect(Math.max(...attempts)).toBeGreaterThan(1); // the reset landed: an attempt failed and was retried
    } finally {
      for (const toxic of ['reset', 'slow', 'latency']) await removeToxic('mariadb', toxic).catch(() => undefined);
    }
    await expectNoNewDebris();
  });
});
