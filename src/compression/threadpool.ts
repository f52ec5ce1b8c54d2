/**
 * Blocks compressed by zlib's asynchronous API, which runs them on libuv's threadpool: real
 * parallel threads, like the worker-thread pool, without a V8 isolate per thread. Measured here
 * (Node 24): two worker threads keep ~17-21 MiB of RSS after their first block, this ~0.3 MiB;
 * with the management worker idling at ~178 MiB against a 200 MB goal, that decides the default.
 *
 * libuv's threadpool (4 threads unless UV_THREADPOOL_SIZE says otherwise) also serves file system
 * calls, so at most `size` blocks (the cores, at most 3) run at once and the rest wait here: the
 * stores' and staging file's writes always find a free thread.
 */
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';
import type { BlockCompressor, CompressJob, CompressResult } from './pool';

/** Node 24's zstd (@types/node 20 does not declare it). */
interface ZstdZlib {
  zstdCompress?: (
    input: Buffer,
    options: { chunkSize: number; params: Record<number, number> },
    done: (err: Error | null, output: Buffer) => void,
  ) => void;
  constants: { ZSTD_c_compressionLevel?: number; ZSTD_c_checksumFlag?: number };
}

export class ZlibThreadpoolCompressor implements BlockCompressor {
  readonly size: number;
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(options: { size?: number } = {}) {
    this.size = Math.max(1, options.size ?? Math.min(availableParallelism(), 3));
  }

  async compress(job: CompressJob): Promise<CompressResult> {
    if (this.running >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running += 1;
    try {
      return { output: await compressBlock(job), block: job.block };
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
    }
  }
}

function compressBlock(job: CompressJob): Promise<Buffer> {
  const input = Buffer.from(job.block, 0, job.length);
  // One output buffer that fits the whole member: nothing to concatenate afterwards.
  const chunkSize = Math.max(64 * 1024, job.length + (job.length >> 7) + 1024);
  return new Promise<Buffer>((resolve, reject) => {
    const done = (err: Error | null, output: Buffer) => {
      if (err) reject(new Error(`${job.format} compression failed: ${err.message}`));
      else resolve(output);
    };
    try {
      if (job.format === 'gzip') {
        zlib.gzip(input, { level: job.level, chunkSize }, done);
        return;
      }
      const z = zlib as unknown as ZstdZlib;
      if (!z.zstdCompress || z.constants.ZSTD_c_compressionLevel === undefined)
        throw new Error(`Node ${process.version} has no zstd (expected Node >= 22.15)`);
      z.zstdCompress(
        input,
        { chunkSize, params: { [z.constants.ZSTD_c_compressionLevel]: job.level, [z.constants.ZSTD_c_checksumFlag!]: 1 } },
        done,
      );
    } catch (err) {
      done(err as Error, Buffer.alloc(0)); // options zlib refuses up front (a level out of range)
    }
  });
}
