/**
 * Parallel compression (src/compression): what the worker threads write is read by the real `gunzip`
 * and `zstd -d`, whatever the input's size and chunking; a failing or dying worker fails the stream
 * (no hang); a slow consumer holds the memory to a few blocks; and verify/fetch read zstd artefacts
 * and old manifests (no compression field: gzip).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  artefactCompression,
  compressedFileName,
  COMPRESSION_THREADS_ENV,
  createDecompressStages,
  CompressionPool,
  ParallelCompress,
  sharedCompressor,
  ZlibThreadpoolCompressor,
  type BlockCompressor,
  type CompressionFormat,
} from '../../src/compression';
import { ConfigError, parseConfig } from '../../src/config/load';
import { verifyBackupSet } from '../../src/catalog/catalog';
import type { ArtefactRecord, BackupManifest, ComponentRecord } from '../../src/common/manifest';
import { fetchArtefact } from '../../src/restore/fetch';

let dir: string;
const pool = new CompressionPool({ size: 2, idleMs: 200 });
const compressors: Array<[string, BlockCompressor]> = [
  ['libuv threadpool', new ZlibThreadpoolCompressor({ size: 2 })],
  ['worker threads', pool],
];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parallel-compression-'));
});
afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Half random, half text: compression is real work but not everything. */
function sample(bytes: number): Buffer {
  const text = Buffer.from(
    '{"zone":"example.com","records":[{"name":"www","type":"A","value":"10.0.0.1"}]}\n'.repeat(Math.ceil(bytes / 160)),
  );
  return Buffer.concat([randomBytes(Math.floor(bytes / 2)), text]).subarray(0, bytes);
}

/** `pieces` chunks of the input, of uneven sizes (the etcd stream's are 32 KiB, a dump's whatever the pipe gives). */
function chunked(input: Buffer, sizes = [1, 7000, 65536, 3 * 1024 * 1024 + 5]): Readable {
  return Readable.from(
    (function* () {
      let offset = 0;
      for (let i = 0; offset < input.length; i += 1) {
        const size = sizes[i % sizes.length]!;
        yield input.subarray(offset, offset + size);
        offset += size;
      }
    })(),
  );
}

async function compress(
  input: Buffer,
  format: CompressionFormat,
  options: { blockBytes?: number; pool?: BlockCompressor } = {},
): Promise<{ stored: Buffer; chunks: number }> {
  const parts: Buffer[] = [];
  await pipeline(
    chunked(input),
    new ParallelCompress({ format, pool, ...options }),
    new Writable({
      write: (c: Buffer, _e, done) => {
        parts.push(c);
        done();
      },
    }),
  );
  return { stored: Buffer.concat(parts), chunks: parts.length };
}

/** Runs a CLI with `input` on stdin; resolves with stdout, rejects with stderr on a non-zero exit. */
function cli(command: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command} exit ${code}: ${Buffer.concat(err).toString()}`)),
    );
    child.stdin.end(input);
  });
}

const readers: Record<CompressionFormat, [string, string[]]> = { gzip: ['gunzip', ['-c']], zstd: ['zstd', ['-d', '-c']] };

describe.each(
  (['gzip', 'zstd'] as const).flatMap((format) => compressors.map(([name, compressor]) => [format, name, compressor] as const)),
)('ParallelCompress %s on %s', (format, _name, compressor) => {
  const [command, args] = readers[format];

  it.each([
    ['empty input', 0],
    ['1-byte input', 1],
    ['one block less a byte', 1024 * 1024 - 1],
    ['many blocks in uneven chunks', 5 * 1024 * 1024 + 123],
  ])('%s: read back by the %s CLI and by Node', async (_name, size) => {
    const input = sample(size);
    const { stored } = await compress(input, format, { pool: compressor });
    expect(stored.length).toBeGreaterThan(0); // even an empty input is one valid member/frame
    expect(sha(await cli(command, args, stored))).toBe(sha(input));
    const back: Buffer[] = [];
    await pipeline([
      Readable.from([stored]),
      ...createDecompressStages(format),
      new Writable({
        write: (c: Buffer, _e, done) => {
          back.push(c);
          done();
        },
      }),
    ]);
    expect(sha(Buffer.concat(back))).toBe(sha(input));
  });

  it('emits one member/frame per block, in input order', async () => {
    const input = sample(2 * 1024 * 1024 + 10);
    const { stored, chunks } = await compress(input, format, { blockBytes: 64 * 1024, pool: compressor });
    expect(chunks).toBe(Math.ceil(input.length / (64 * 1024)));
    expect(sha(await cli(command, args, stored))).toBe(sha(input));
  });
});

describe('failures', () => {
  const source = () => chunked(sample(4 * 1024 * 1024));
  const discard = () => new Writable({ write: (_c, _e, done) => done() });

  it.each(compressors)('a block zlib refuses fails the stream, and the %s still work afterwards', async (_name, compressor) => {
    const broken = new ParallelCompress({ format: 'gzip', level: 42, pool: compressor }); // zlib refuses level 42 (in the worker thread / libuv job)
    await expect(pipeline(source(), broken, discard())).rejects.toThrow(/gzip compression failed.*level/);
    expect(sha(await cli('gunzip', ['-c'], (await compress(Buffer.from('after'), 'gzip', { pool: compressor })).stored))).toBe(
      sha(Buffer.from('after')),
    );
  });

  it('a worker thread that dies fails the stream instead of hanging it', async () => {
    const dying = new CompressionPool({
      size: 2,
      workerSource: "require('node:worker_threads').parentPort.on('message', () => { throw new Error('boom in the worker'); });",
    });
    try {
      await expect(pipeline(source(), new ParallelCompress({ pool: dying }), discard())).rejects.toThrow(
        /compression worker thread failed: boom in the worker/,
      );
    } finally {
      await dying.close();
    }
  });

  it('a failing source fails the stream with its own error', async () => {
    const failing = Readable.from(
      (async function* () {
        yield sample(3 * 1024 * 1024);
        throw new Error('etcd stream reset');
      })(),
    );
    await expect(pipeline(failing, new ParallelCompress({ pool }), discard())).rejects.toThrow('etcd stream reset');
  });
});

describe('backpressure', () => {
  it.each(compressors)('a slow consumer holds the stream to a few blocks, not the whole input (%s)', async (_name, compressor) => {
    const blockBytes = 256 * 1024;
    const total = 24 * 1024 * 1024;
    let produced = 0;
    let consumedRaw = 0;
    let maxAhead = 0;
    const chunk = sample(64 * 1024);
    const source = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (produced >= total) {
          this.push(null);
          return;
        }
        produced += chunk.length;
        this.push(chunk);
      },
    });
    const compress = new ParallelCompress({ pool: compressor, blockBytes });
    const slow = new Writable({
      highWaterMark: 1,
      write(_c: Buffer, _e, done) {
        consumedRaw += blockBytes; // one member per block
        maxAhead = Math.max(maxAhead, produced - consumedRaw);
        setTimeout(done, 2);
      },
    });
    await pipeline(source, compress, slow);
    expect(produced).toBe(total);
    // In flight (pool size + 2), the readable buffer (2 x block of compressed bytes), the writable
    // buffer and the source's: a dozen blocks at most, against the 96 of the input.
    expect(maxAhead).toBeLessThanOrEqual(12 * blockBytes);
  });

  it('the libuv compressor runs at most its size at once (file system calls share its threadpool)', async () => {
    const two = new ZlibThreadpoolCompressor({ size: 2 });
    const state = two as unknown as { running: number; waiting: unknown[] };
    const jobs = Array.from({ length: 6 }, () => {
      const block = new ArrayBuffer(512 * 1024);
      return two.compress({ format: 'gzip', level: 6, block, length: block.byteLength });
    });
    await Promise.resolve();
    expect([state.running, state.waiting.length]).toEqual([2, 4]);
    await Promise.all(jobs);
    expect([state.running, state.waiting.length]).toEqual([0, 0]);
  });

  it("the process-wide compressor is zlib on libuv's threadpool unless NNOE_DR_COMPRESSION_THREADS=worker", () => {
    expect(process.env[COMPRESSION_THREADS_ENV]).toBeUndefined();
    expect(sharedCompressor()).toBeInstanceOf(ZlibThreadpoolCompressor);
  });

  it('workers stop when idle and start again on demand', async () => {
    await compress(sample(3 * 1024 * 1024), 'gzip');
    expect(pool.threads).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(pool.threads).toBe(0);
    const input = sample(1000);
    expect(sha(await cli('gunzip', ['-c'], (await compress(input, 'gzip')).stored))).toBe(sha(input));
  });
});

describe('config and names', () => {
  const base = {
    workDir: '/tmp/work',
    clusters: [
      {
        name: 'prod',
        etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
      },
    ],
    storage: [{ name: 'local', type: 'local', path: '/tmp/backups' }],
  };

  it('defaults to gzip; a cluster may choose zstd; anything else is refused naming the path', () => {
    expect(artefactCompression(parseConfig(base), 'prod').format).toBe('gzip');
    const zstd = parseConfig({ ...base, clusters: [{ ...base.clusters[0]!, compression: 'zstd' }] });
    expect(artefactCompression(zstd, 'prod').format).toBe('zstd');
    expect(artefactCompression(parseConfig({ ...base, compression: 'zstd' }), 'prod').fileName('etcd-snapshot-20261204-120000.db.gz')).toBe(
      'etcd-snapshot-20261204-120000.db.zst',
    );
    expect(() => parseConfig({ ...base, compression: 'lz4' })).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, compression: 'lz4' })).toThrow(/compression: expected a compression format: gzip or zstd/);
    expect(compressedFileName('phpipam-20261204-120000.sql.gz', 'gzip')).toBe('phpipam-20261204-120000.sql.gz');
  });
});

describe('reading artefacts back', () => {
  async function storeArtefact(root: string, setId: string, file: string, raw: Buffer, format: CompressionFormat): Promise<ArtefactRecord> {
    const { stored } = await compress(raw, format);
    await mkdir(join(root, setId), { recursive: true });
    await writeFile(join(root, setId, file), stored);
    return {
      file,
      key: `${setId}/${file}`,
      compression: format,
      encryption: null,
      bytes: stored.length,
      sha256: sha(stored),
      raw: { bytes: raw.length, sha256: sha(raw) },
      copies: [{ target: 'local', location: join(root, setId, file), bytes: stored.length, sha256: sha(stored) }],
    };
  }

  it('backups verify and a restore fetch read zstd and multi-member gzip; a manifest without the field means gzip', async () => {
    const root = join(dir, 'local');
    const setId = 'prod-20261204-120000';
    const config = parseConfig({
      workDir: join(dir, 'work'),
      clusters: [
        {
          name: 'prod',
          etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
        },
      ],
      storage: [{ name: 'local', type: 'local', path: root }],
    });
    const body = sample(3 * 1024 * 1024); // several blocks: several members/frames
    const snapshot = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const dump = Buffer.from(
      `-- MariaDB dump\n${'INSERT INTO `ipaddresses` VALUES (1);\n'.repeat(50_000)}-- Dump completed on 2026-12-04 12:00:00\n`,
    );
    const etcd = await storeArtefact(root, setId, 'etcd-snapshot.db.zst', snapshot, 'zstd');
    const phpipam = await storeArtefact(root, setId, 'phpipam.sql.gz', dump, 'gzip');
    const { compression: _recorded, ...oldStyle } = phpipam; // written before the field existed
    const record = (component: string, artefacts: unknown[]) =>
      ({ component, status: 'ok', artefacts, facts: {}, startedAt: '', finishedAt: '' }) as unknown as ComponentRecord;
    const manifest = {
      formatVersion: 1,
      tool: 'nnoe-dr',
      setId,
      cluster: 'prod',
      status: 'complete',
      createdAt: '2026-12-04T12:00:00Z',
      completedAt: '',
      workflow: { workflowId: 'w', runId: 'r' },
      components: [record('etcd', [etcd]), record('phpipam', [oldStyle])],
      failures: [],
    } as unknown as BackupManifest;
    await writeFile(join(root, setId, 'manifest.json'), JSON.stringify(manifest));

    const report = await verifyBackupSet(config, setId);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);

    const fetched = await fetchArtefact(config, etcd, join(dir, 'restore', 'snapshot.db'));
    expect(fetched.refused).toEqual([]);
    expect(sha(await readFile(fetched.path))).toBe(sha(snapshot));
    const fetchedDump = await fetchArtefact(config, oldStyle as ArtefactRecord, join(dir, 'restore', 'dump.sql'));
    expect(sha(await readFile(fetchedDump.path))).toBe(sha(dump));

    // A zstd artefact recorded as gzip is refused as unusable, not misread.
    await expect(fetchArtefact(config, { ...etcd, compression: 'gzip' }, join(dir, 'restore', 'wrong.db'))).rejects.toThrow(
      /no good copy of etcd-snapshot.db.zst/,
    );
  });
});
