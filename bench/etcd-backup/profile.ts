/**
 * Where the time of an etcd backup goes: runs the pieces of the `streamEtcdSnapshot` activity one
 * by one, in this process, against a world kept by `run.ts --keep-world`, and prints wall and CPU
 * time of each (CPU of this process only; etcd's share shows up as wall - CPU).
 *
 *   npx tsx bench/etcd-backup/run.ts --size-mib 256 --rounds 1 --world-dir /tmp/nnoe-bench --keep-world
 *   npx tsx bench/etcd-backup/profile.ts --world-dir /tmp/nnoe-bench [--only stream,gzip-file] [--repeat 2]
 *
 * Not a benchmark with a baseline: a diagnostic for when run.ts reports a ratio above 1.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PassThrough, Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip, gzip as gzipBlock, type ZlibOptions } from 'node:zlib';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { loadConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { connectMember, hashKV, openSnapshotStream } from '../../src/etcd/connect';
import { readSecret } from '../../src/config/secrets';
import { readSnapshotStatus, SnapshotTrailerCheck } from '../../src/etcd/snapshot-file';
import { fanOut } from '../../src/storage/fan-out';
import { LocalStore } from '../../src/storage/local';
import { etcdCpuSeconds, MiB } from '../support/processes';

interface Context {
  config: Config;
  scratch: string;
  /** A raw snapshot on disk (written by the first experiment that needs it). */
  rawFile: string;
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done(), highWaterMark: 64 * 1024 });
}

/** Like connectMember, with a larger HTTP/2 receive window (grpc-js channel option). */
async function connectWithWindow(config: Config, memberIndex: number, windowBytes: number): Promise<Etcd3> {
  const cluster = config.clusters[0]!;
  const tls = cluster.etcd.tls!;
  return new Etcd3({
    hosts: [cluster.etcd.members[memberIndex]!.clientUrl],
    faultHandling: { host: () => noop, global: noop },
    credentials: {
      rootCertificate: readFileSync(tls.caFile),
      certChain: readFileSync(tls.certFile),
      privateKey: Buffer.from(await readSecret(tls.keyFile)),
    },
    grpcOptions: { 'grpc-node.flow_control_window': windowBytes },
  });
}

async function leaderStream(
  config: Config,
  run: (source: Readable) => Promise<void>,
  windowBytes?: number,
): Promise<{ revision?: string }> {
  const cluster = config.clusters[0]!;
  for (const [index, member] of cluster.etcd.members.entries()) {
    const client = windowBytes ? await connectWithWindow(config, index, windowBytes) : await connectMember(cluster, member);
    try {
      const status = await client.maintenance.status();
      if (status.leader !== status.header.member_id) continue;
      await run(await openSnapshotStream(client));
      return { revision: status.header.revision };
    } finally {
      client.close();
    }
  }
  throw new Error('no leader');
}

/**
 * pigz-style gzip: input cut into blocks compressed as separate gzip members, `parallel` at a time
 * on the libuv pool, emitted in order. Concatenated members are one valid gzip file (gunzip and
 * zlib.createGunzip read them all); the ratio is a little worse since no block sees the previous one.
 */
class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight: Array<Promise<Buffer>> = [];

  constructor(
    private readonly blockBytes = 1024 * 1024,
    private readonly parallel = 2,
    private readonly level = 6,
  ) {
    super();
  }

  private startBlock(): void {
    const block = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight.push(
      new Promise((resolve, reject) => gzipBlock(block, { level: this.level }, (err, out) => (err ? reject(err) : resolve(out)))),
    );
  }

  private async drainTo(limit: number): Promise<void> {
    while (this.inFlight.length > limit) this.push(await this.inFlight.shift()!);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.blockBytes) return done();
    this.startBlock();
    this.drainTo(this.parallel - 1).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    if (this.pendingBytes > 0) this.startBlock();
    this.drainTo(0).then(() => done(), done);
  }
}

/** Collects small chunks into chunks of about `bytes` (fewer trips through every later stage). */
class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly bytes: number) {
    super({ readableHighWaterMark: bytes, writableHighWaterMark: bytes });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    if (this.size >= this.bytes) {
      this.push(Buffer.concat(this.parts, this.size));
      this.parts = [];
      this.size = 0;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.size > 0) this.push(Buffer.concat(this.parts, this.size));
    done();
  }
}

const gzipVariants: Record<string, ZlibOptions> = {
  'gzip-default': {},
  'gzip-chunk64k': { chunkSize: 64 * 1024 },
  'gzip-level1': { level: 1 },
};

async function tunedPipeline(
  { config, scratch, rawFile }: Context,
  tuning: { windowBytes?: number; coalesceBytes?: number; zlibChunk?: number },
): Promise<number> {
  const store = new LocalStore('local', join(scratch, 'store'));
  const writer = await store.createWriter(`profile-${Date.now()}/snapshot.db.gz`);
  const check = new SnapshotTrailerCheck();
  const gzip = createGzip(tuning.zlibChunk ? { chunkSize: tuning.zlibChunk } : {});
  await leaderStream(
    config,
    (source) =>
      Promise.all([
        tuning.coalesceBytes
          ? pipeline(source, new Coalesce(tuning.coalesceBytes), check, fanOut([createWriteStream(rawFile), gzip]))
          : pipeline(source, check, fanOut([createWriteStream(rawFile), gzip])),
        pipeline(gzip, fanOut([writer.stream])),
      ]).then(() => undefined),
    tuning.windowBytes,
  );
  await writer.commit();
  return check.bytes;
}

/** Each experiment returns the bytes it moved. */
const experiments: Record<string, (ctx: Context) => Promise<number>> = {
  'stream->null': async ({ config }) => {
    let bytes = 0;
    await leaderStream(config, (source) =>
      pipeline(
        source,
        new Writable({
          write: (c: Buffer, _e, done) => {
            bytes += c.length;
            done();
          },
        }),
      ),
    );
    return bytes;
  },
  'stream->check->null': async ({ config }) => {
    const check = new SnapshotTrailerCheck();
    await leaderStream(config, (source) => pipeline(source, check, discard()));
    return check.bytes;
  },
  'stream->check->raw file': async ({ config, rawFile }) => {
    const check = new SnapshotTrailerCheck();
    await leaderStream(config, (source) => pipeline(source, check, createWriteStream(rawFile)));
    return check.bytes;
  },
  'stream->gzip->null': async ({ config }) => {
    let bytes = 0;
    await leaderStream(config, (source) =>
      pipeline(
        source,
        new PassThrough({
          transform: (c: Buffer, _e, done) => {
            bytes += c.length;
            done(null, c);
          },
        }),
        createGzip(),
        discard(),
      ),
    );
    return bytes;
  },
  'stream(window 4MiB)->null': async ({ config }) => {
    let bytes = 0;
    await leaderStream(
      config,
      (source) =>
        pipeline(
          source,
          new Writable({
            write: (c: Buffer, _e, done) => {
              bytes += c.length;
              done();
            },
          }),
        ),
      4 * MiB,
    );
    return bytes;
  },
  'stream->gzip(hwm 8MiB)->null': async ({ config }) => {
    let bytes = 0;
    await leaderStream(config, (source) =>
      pipeline(
        source,
        new PassThrough({
          transform: (c: Buffer, _e, done) => {
            bytes += c.length;
            done(null, c);
          },
        }),
        createGzip({ writableHighWaterMark: 8 * MiB } as ZlibOptions),
        discard(),
      ),
    );
    return bytes;
  },
  'stream(window 4MiB)->gzip(hwm 8MiB)->null': async ({ config }) => {
    let bytes = 0;
    await leaderStream(
      config,
      (source) =>
        pipeline(
          source,
          new PassThrough({
            transform: (c: Buffer, _e, done) => {
              bytes += c.length;
              done(null, c);
            },
          }),
          createGzip({ writableHighWaterMark: 8 * MiB } as ZlibOptions),
          discard(),
        ),
      4 * MiB,
    );
    return bytes;
  },
  /** What the activity does, minus Temporal: check, raw copy + gzip into a local store, commit (fsync). */
  'activity pipeline': async ({ config, scratch, rawFile }) => {
    const store = new LocalStore('local', join(scratch, 'store'));
    const writer = await store.createWriter(`profile-${Date.now()}/snapshot.db.gz`);
    const check = new SnapshotTrailerCheck();
    const gzip = createGzip();
    await leaderStream(config, (source) =>
      Promise.all([pipeline(source, check, fanOut([createWriteStream(rawFile), gzip])), pipeline(gzip, fanOut([writer.stream]))]).then(
        () => undefined,
      ),
    );
    const commitStarted = performance.now();
    const copy = await writer.commit();
    console.log(
      `    (commit incl. fsync ${((performance.now() - commitStarted) / 1000).toFixed(2)} s; gz ${(copy.bytes / MiB).toFixed(1)} MiB)`,
    );
    return check.bytes;
  },
  /**
   * The activity's pipeline with the changes suggested in the README: a 4 MiB HTTP/2 receive
   * window, 32 KiB gRPC messages coalesced into 1 MiB chunks before the other stages, and
   * larger zlib output chunks. The variants apply one change each.
   */
  'tuned activity pipeline': (ctx) => tunedPipeline(ctx, { windowBytes: 4 * MiB, coalesceBytes: MiB, zlibChunk: 256 * 1024 }),
  'window only': (ctx) => tunedPipeline(ctx, { windowBytes: 4 * MiB }),
  'coalesce only': (ctx) => tunedPipeline(ctx, { coalesceBytes: MiB }),
  'zlib chunk only': (ctx) => tunedPipeline(ctx, { zlibChunk: 256 * 1024 }),
  /** The same, but gzip reads the staged raw file instead of sharing the stream (stream is not held back by gzip). */
  'stream->raw file, then file->gzip->store': async ({ config, scratch, rawFile }) => {
    const check = new SnapshotTrailerCheck();
    await leaderStream(config, (source) => pipeline(source, check, createWriteStream(rawFile)));
    const store = new LocalStore('local', join(scratch, 'store'));
    const writer = await store.createWriter(`profile-${Date.now()}/snapshot.db.gz`);
    await pipeline(createReadStream(rawFile, { highWaterMark: 1024 * 1024 }), createGzip(), writer.stream);
    await writer.commit();
    return check.bytes;
  },
  'snapshot status': async ({ rawFile }) => {
    const status = await readSnapshotStatus(rawFile);
    console.log(`    (revision ${status.revision}, ${status.totalKey} keys)`);
    return statSync(rawFile).size;
  },
  hashKV: async ({ config }) => {
    const cluster = config.clusters[0]!;
    const client = await connectMember(cluster, cluster.etcd.members[0]!, 120_000);
    try {
      const status = await client.maintenance.status();
      await hashKV(client, status.header.revision);
      return Number(status.dbSize);
    } finally {
      client.close();
    }
  },
  'fsync raw file': async ({ rawFile }) => {
    const handle = await open(rawFile, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    return statSync(rawFile).size;
  },
  'gzip CLI (file->file)': async ({ rawFile, scratch }) => {
    const out = join(scratch, 'cli.gz');
    const result = spawnSync('sh', ['-c', `gzip -c '${rawFile}' > '${out}'`]);
    if (result.status !== 0) throw new Error(`gzip failed: ${result.stderr.toString()}`);
    return statSync(rawFile).size;
  },
  ...Object.fromEntries(
    Object.entries(gzipVariants).map(([name, zlibOptions]) => [
      `${name} (file->null)`,
      async ({ rawFile }: Context) => {
        await pipeline(createReadStream(rawFile, { highWaterMark: 1024 * 1024 }), createGzip(zlibOptions), discard());
        return statSync(rawFile).size;
      },
    ]),
  ),
  'pgzip 2x1MiB (file->null)': async ({ rawFile }) => {
    let out = 0;
    await pipeline(
      createReadStream(rawFile, { highWaterMark: 1024 * 1024 }),
      new ParallelGzip(),
      new Writable({
        write: (c: Buffer, _e, done) => {
          out += c.length;
          done();
        },
      }),
    );
    console.log(`    (gz ${(out / MiB).toFixed(1)} MiB)`);
    return statSync(rawFile).size;
  },
  'stream->pgzip 2x1MiB->null': async ({ config }) => {
    let bytes = 0;
    await leaderStream(config, (source) =>
      pipeline(
        source,
        new PassThrough({
          transform: (c: Buffer, _e, done) => {
            bytes += c.length;
            done(null, c);
          },
        }),
        new ParallelGzip(),
        discard(),
      ),
    );
    return bytes;
  },
  'sha256 x2 (file, check only)': async ({ rawFile }) => {
    const check = new SnapshotTrailerCheck();
    await pipeline(createReadStream(rawFile, { highWaterMark: 32 * 1024 }), check, discard());
    return check.bytes;
  },
};

/** CPU seconds all cores of the machine spent busy so far (/proc/stat, USER_HZ 100). */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / 100;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'world-dir': { type: 'string' },
      only: { type: 'string' },
      repeat: { type: 'string', default: '1' },
    },
  });
  if (!values['world-dir']) throw new Error('--world-dir DIR is required (a world kept by run.ts --keep-world)');
  const worldDir = resolve(values['world-dir']);
  const config = loadConfig(join(worldDir, 'nnoe-dr.bench.yaml'));
  const scratch = join(worldDir, 'work', 'profile');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const ctx: Context = { config, scratch, rawFile: join(scratch, 'snapshot.db') };
  const wanted = values.only ? values.only.split(',') : Object.keys(experiments);
  // Several experiments read a raw snapshot file: stream one first.
  await experiments['stream->check->raw file']!(ctx);
  try {
    for (const name of wanted) {
      const experiment = Object.entries(experiments).find(([key]) => key === name || key.startsWith(name))?.[1];
      if (!experiment) throw new Error(`unknown experiment "${name}" (known: ${Object.keys(experiments).join(', ')})`);
      for (let i = 0; i < Number(values.repeat); i++) {
        spawnSync('sync');
        const rssBefore = process.memoryUsage().rss;
        let rssPeak = rssBefore;
        const sampler = setInterval(() => {
          rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
        }, 50);
        const machineBefore = machineBusySeconds();
        const etcdBefore = etcdCpuSeconds(worldDir);
        const cpuBefore = process.cpuUsage();
        const started = performance.now();
        const bytes = await experiment(ctx);
        const wall = (performance.now() - started) / 1000;
        const cpu = process.cpuUsage(cpuBefore);
        const machine = machineBusySeconds() - machineBefore;
        clearInterval(sampler);
        console.log(
          `${name.padEnd(46)} ${wall.toFixed(2).padStart(6)} s wall  ${((cpu.user + cpu.system) / 1e6).toFixed(2).padStart(6)} s CPU  ` +
            `etcd ${(etcdCpuSeconds(worldDir) - etcdBefore).toFixed(2).padStart(5)} s CPU  machine ${(machine / wall).toFixed(2)} cores busy  ` +
            `${(bytes / MiB / wall).toFixed(1).padStart(6)} MiB/s  RSS ${(rssBefore / MiB).toFixed(0)} -> peak ${(rssPeak / MiB).toFixed(0)} MiB`,
        );
        rmSync(join(scratch, 'store'), { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
