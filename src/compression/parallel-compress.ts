/**
 * A Transform that compresses like pigz: the input is cut into blocks, each block becomes one
 * complete gzip member (or zstd frame) on another thread (zlib on libuv's threadpool, or a worker
 * thread: ./shared.ts), and the members are emitted in input
 * order. Concatenated members are one valid file for `gunzip`, zlib.createGunzip and `zstd -d`; the
 * ratio is a little worse than one stream's, since no block sees the one before it.
 *
 * Backpressure: at most `maxInFlight` blocks are out at a time (their buffers are reused), and the
 * writable side waits while they are; the readable side is a normal Transform buffer, so a slow
 * consumer stops the writes. Memory: about maxInFlight x (block + compressed block).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { DEFAULT_LEVEL, type CompressionFormat } from './format';
import type { BlockCompressor, CompressResult } from './pool';
import { sharedCompressor } from './shared';

export interface ParallelCompressOptions {
  format?: CompressionFormat;
  /** gzip 1-9 (default 6, as `gzip`), zstd 1-19 (default 3, as `zstd`). */
  level?: number;
  /** Bytes per member/frame (default 1 MiB). */
  blockBytes?: number;
  /** Blocks out at once for this stream (default: the compressor's threads + 2, so none waits for work). */
  maxInFlight?: number;
  /** Default: the process's shared compressor (./shared.ts). */
  pool?: BlockCompressor;
}

export class ParallelCompress extends Transform {
  readonly format: CompressionFormat;
  private readonly level: number;
  private readonly blockBytes: number;
  private readonly maxInFlight: number;
  private readonly pool: BlockCompressor;
  /** Blocks not in a worker, ready to be filled. */
  private readonly spare: ArrayBuffer[] = [];
  private current: Uint8Array | null = null;
  private filled = 0;
  /** Blocks out, in input order; each is pushed as soon as it and all before it are done. */
  private readonly inFlight: InFlightBlock[] = [];
  private emittedAny = false;

  constructor(options: ParallelCompressOptions = {}) {
    // The readable side holds up to two compressed blocks before it pushes back.
    const blockBytes = options.blockBytes ?? 1024 * 1024;
    super({ readableHighWaterMark: 2 * blockBytes });
    this.format = options.format ?? 'gzip';
    this.level = options.level ?? DEFAULT_LEVEL[this.format];
    this.blockBytes = blockBytes;
    this.pool = options.pool ?? sharedCompressor();
    this.maxInFlight = Math.max(1, options.maxInFlight ?? this.pool.size + 2);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.fill(chunk).then(
      () => done(),
      (err: Error) => done(err),
    );
  }

  override _flush(done: TransformCallback): void {
    // An empty input still becomes one valid (empty) member: `gunzip` refuses a zero-byte file.
    const finish = async () => {
      if (this.filled > 0 || (!this.emittedAny && this.inFlight.length === 0)) await this.submit();
      await this.waitUntilAtMost(0);
    };
    finish().then(
      () => done(),
      (err: Error) => done(err),
    );
  }

  override _destroy(err: Error | null, done: (error: Error | null) => void): void {
    this.inFlight.splice(0); // results still on their way are dropped
    done(err);
  }

  private async fill(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      this.current ??= new Uint8Array(this.spare.pop() ?? new ArrayBuffer(this.blockBytes));
      const take = Math.min(chunk.length - offset, this.blockBytes - this.filled);
      this.current.set(chunk.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.blockBytes) await this.submit();
    }
  }

  /** Sends the current block to the pool; waits while the stream has maxInFlight blocks out. */
  private async submit(): Promise<void> {
    const block = (this.current?.buffer as ArrayBuffer | undefined) ?? new ArrayBuffer(0);
    const length = this.filled;
    this.current = null;
    this.filled = 0;
    const entry: InFlightBlock = { settled: Promise.resolve() };
    entry.settled = this.pool
      .compress({ format: this.format, level: this.level, block, length })
      .then(
        (result) => {
          entry.result = result;
        },
        (err: Error) => {
          entry.error = err;
        },
      )
      .then(() => this.pushReady());
    this.inFlight.push(entry);
    await this.waitUntilAtMost(this.maxInFlight - 1);
  }

  /**
   * Pushes every finished block at the head, in order, as soon as it is done: a compressed block
   * that waited here would outlive the young generation and stay in memory until a full collection.
   */
  private pushReady(): void {
    while (this.inFlight.length > 0 && !this.destroyed) {
      const head = this.inFlight[0]!;
      if (head.error) {
        this.destroy(head.error);
        return;
      }
      if (!head.result) return;
      this.inFlight.shift();
      if (head.result.block.byteLength === this.blockBytes) this.spare.push(head.result.block);
      this.emittedAny = true;
      this.push(head.result.output);
    }
  }

  private async waitUntilAtMost(blocks: number): Promise<void> {
    while (this.inFlight.length > blocks) {
      const head = this.inFlight[0]!;
      await head.settled;
      if (head.error) throw head.error;
      if (this.destroyed) throw new Error('compression stream destroyed');
    }
  }
}

interface InFlightBlock {
  /** Resolves (never rejects) once the block is compressed or failed, after pushReady ran. */
  settled: Promise<void>;
  result?: CompressResult;
  error?: Error;
}
