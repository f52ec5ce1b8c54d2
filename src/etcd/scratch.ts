/**
 * A throw-away one-member etcd restored from a snapshot file, on loopback ports: what
 * `etcdctl snapshot restore` + `etcd` give an operator who checks a backup by hand. Used by the
 * tests today and by restore drills.
 */
import { spawn, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { etcdPrograms } from './programs';
import { snapshotTool } from './snapshot-file';

const execFileAsync = promisify(execFile);

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface ScratchEtcd {
  clientUrl: string;
  dataDir: string;
  client(): Etcd3;
  stop(): Promise<void>;
}

/**
 * Restores `snapshotFile` into `<dir>/data` and starts a single plain-HTTP member on free ports.
 * A snapshot of a cluster with auth on restores with auth on: `auth` is then a user of the
 * snapshot (etcd 3.6 answers even Status only to one).
 */
export async function startScratchEtcd(
  snapshotFile: string,
  dir: string,
  options: { binDir?: string; timeoutMs?: number; auth?: { username: string; password: string } } = {},
): Promise<ScratchEtcd> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  await mkdir(dir, { recursive: true });
  const [clientPort, peerPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const dataDir = join(dir, 'data');
  const tool = snapshotTool(options.binDir);
  await execFileAsync(
    tool.command,
    [
      'snapshot',
      'restore',
      snapshotFile,
      '--data-dir',
      dataDir,
      '--name',
      'scratch',
      '--initial-cluster',
      `scratch=${peerUrl}`,
      '--initial-advertise-peer-urls',
      peerUrl,
    ],
    { env: tool.env, timeout: timeoutMs },
  );

  const log = createWriteStream(join(dir, 'etcd.log'));
  const child = spawn(
    etcdPrograms(options.binDir).etcd,
    [
      '--name',
      'scratch',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `scratch=${peerUrl}`,
      '--logger',
      'zap',
      '--log-outputs',
      'stderr',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.pipe(log);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));

  const clients: Etcd3[] = [];
  const scratch: ScratchEtcd = {
    clientUrl,
    dataDir,
    client: () => {
      const c = new Etcd3({ hosts: clientUrl, ...(options.auth ? { auth: options.auth } : {}) });
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const c of clients) c.close();
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      log.end();
    },
  };

  const deadline = Date.now() + timeoutMs;
  const probe = new Etcd3({ hosts: clientUrl, dialTimeout: 1000, ...(options.auth ? { auth: options.auth } : {}) });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`scratch etcd exited with ${child.exitCode}; see ${join(dir, 'etcd.log')}`);
      try {
        await probe.maintenance.status();
        return scratch;
      } catch (err) {
        if (Date.now() > deadline) {
          await scratch.stop();
          throw new Error(`scratch etcd at ${clientUrl} not healthy after ${timeoutMs} ms: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    probe.close();
  }
}

/** Every key and value at a revision (or the latest), as a map of strings. */
export async function readKeyspace(client: Etcd3, revision?: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let from = Buffer.from([0]);
  for (;;) {
    const page = await client.kv.range({
      key: from,
      range_end: Buffer.from([0]),
      revision: revision ? String(revision) : undefined,
      limit: '1000',
    });
    for (const kv of page.kvs) out.set(kv.key.toString(), kv.value.toString());
    if (!page.more || page.kvs.length === 0) return out;
    from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}
