/**
 * A small pool of worker threads that compress blocks (each into one gzip member or one zstd frame),
 * so compression uses every core instead of zlib's one thread per stream. Not the default (see
 * ./shared.ts): each thread is a V8 isolate of its own, ~9-10 MiB of RSS.
 *
 * Memory stays flat: the input block travels to the worker and back (transferred, not copied), so
 * the caller reuses it; the output is allocated once in the worker and transferred. Workers start on
 * the first job and stop after `idleMs` without work, so an idle process carries no extra isolates.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CompressionFormat } from './format';

/**
 * The worker's code, evaluated (`eval: true`) so the same pool runs from tsc's output, tsx and vitest
 * alike without a separate file to ship. Plain JS on purpose.
 * The output chunk is sized so one zlib call fills one buffer (nothing to concatenate, no garbage
 * left in the worker's heap, which collects rarely: it allocates almost no JS objects).
 */
export const COMPRESS_WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const zlib = require('node:zlib');
parentPort.on('message', (job) => {
  const input = new Uint8Array(job.block, 0, job.length);
  let output;
  try {
    const chunkSize = Math.max(64 * 1024, job.length + (job.length >> 7) + 1024);
    if (job.format === 'gzip') {
      output = zlib.gzipSync(input, { level: job.level, chunkSize });
    } else if (job.format === 'zstd') {
      const params = { [zlib.constants.ZSTD_c_compressionLevel]: job.level, [zlib.constants.ZSTD_c_checksumFlag]: 1 };
      output = zlib.zstdCompressSync(input, { params, chunkSize });
    } else {
      throw new Error('unknown compression format ' + job.format);
    }
  } catch (err) {
    parentPort.postMessage({ id: job.id, block: job.block, error: String(err && err.message || err) }, [job.block]);
    return;
  }
  const whole = output.byteOffset === 0 ? output : new Uint8Array(output);
  parentPort.postMessage({ id: job.id, block: job.block, output: whole.buffer, length: whole.byteLength }, [job.block, whole.buffer]);
});
`;

export interface CompressJob {
  format: CompressionFormat;
  level: number;
  /** The block's own ArrayBuffer (not a pooled one): it is transferred to the worker and back. */
  block: ArrayBuffer;
  /** Bytes of the block in use. */
  length: number;
}

export interface CompressResult {
  output: Buffer;
  /** The input block, usable again. */
  block: ArrayBuffer;
}

/** What ParallelCompress hands its blocks to: this worker-thread pool or zlib on libuv's threadpool (./threadpool.ts). */
export interface BlockCompressor {
  /** Blocks compressed at once. */
  readonly size: number;
  compress(job: CompressJob): Promise<CompressResult>;
}

interface QueuedJob extends CompressJob {
  id: number;
  resolve: (result: CompressResult) => void;
  reject: (err: Error) => void;
}

interface PoolWorker {
  thread: Worker;
  job: QueuedJob | null;
}

export interface CompressionPoolOptions {
  /** Worker threads at most (default: the machine's cores, at most 8). */
  size?: number;
  /** Workers stop after this long without a job (default 10 s). */
  idleMs?: number;
  /** The worker's code (tests give a broken one). */
  workerSource?: string;
}

export class CompressionPool implements BlockCompressor {
  readonly size: number;
  private readonly idleMs: number;
  private readonly workerSource: string;
  private readonly workers: PoolWorker[] = [];
  private readonly queue: QueuedJob[] = [];
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(options: CompressionPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? Math.min(availableParallelism(), 8));
    this.idleMs = options.idleMs ?? 10_000;
    this.workerSource = options.workerSource ?? COMPRESS_WORKER_SOURCE;
  }

  /** Compresses one block; rejects when the worker reports an error or dies. */
  compress(job: CompressJob): Promise<CompressResult> {
    return new Promise<CompressResult>((resolve, reject) => {
      this.queue.push({ ...job, id: this.nextId++, resolve, reject });
      this.dispatch();
    });
  }

  /** Threads running now (started lazily, stopped when idle). */
  get threads(): number {
    return this.workers.length;
  }

  /** Stops every worker; queued and running jobs fail. */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    for (const job of this.queue.splice(0)) job.reject(new Error('compression pool closed'));
    const workers = this.workers.splice(0);
    for (const worker of workers) worker.job?.reject(new Error('compression pool closed'));
    await Promise.all(workers.map((w) => w.thread.terminate()));
  }

  private dispatch(): void {
    clearTimeout(this.idleTimer);
    while (this.queue.length > 0) {
      const worker = this.workers.find((w) => w.job === null) ?? (this.workers.length < this.size ? this.startWorker() : undefined);
      if (!worker) return;
      const job = this.queue.shift()!;
      worker.job = job;
      worker.thread.postMessage({ id: job.id, format: job.format, level: job.level, block: job.block, length: job.length }, [job.block]);
    }
    if (this.workers.every((w) => w.job === null)) {
      this.idleTimer = setTimeout(() => {
        void this.stopIdleWorkers();
      }, this.idleMs);
      this.idleTimer.unref();
    }
  }

  private startWorker(): PoolWorker {
    // Small heap limits: the worker holds no JS data of its own (blocks and outputs are off-heap).
    // No execArgv: the code is plain JS, and a loader the process runs with (tsx) would cost each thread tens of MiB.
    const thread = new Worker(this.workerSource, {
      eval: true,
      execArgv: [],
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
    });
    thread.unref(); // never what keeps a process (CLI, tests) alive
    const worker: PoolWorker = { thread, job: null };
    thread.on('message', (message: { id: number; block: ArrayBuffer; output?: ArrayBuffer; length?: number; error?: string }) => {
      const job = worker.job;
      if (!job || job.id !== message.id) return;
      worker.job = null;
      if (message.error !== undefined) job.reject(new Error(`${job.format} compression failed in a worker thread: ${message.error}`));
      else job.resolve({ output: Buffer.from(message.output!, 0, message.length), block: message.block });
      this.dispatch();
    });
    const fail = (reason: string) => {
      const index = this.workers.indexOf(worker);
      if (index < 0) return;
      this.workers.splice(index, 1);
      const job = worker.job;
      worker.job = null;
      job?.reject(new Error(`compression worker thread failed: ${reason}`));
      void thread.terminate();
      this.dispatch(); // queued jobs get a fresh worker
    };
    thread.on('error', (err) => fail(err.message));
    thread.on('exit', (code) => fail(`exited with code ${code}`));
    this.workers.push(worker);
    return worker;
  }

  private async stopIdleWorkers(): Promise<void> {
    const idle = this.workers.filter((w) => w.job === null);
    for (const worker of idle) this.workers.splice(this.workers.indexOf(worker), 1);
    await Promise.all(idle.map((w) => w.thread.terminate()));
  }
}
