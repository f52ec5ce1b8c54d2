/**
 * The process's block compressor, shared by every compressing stream (threads bounded by the cores,
 * not by the streams): zlib on libuv's threadpool by default (no isolate per thread, see
 * ./threadpool.ts), or the worker-thread pool with NNOE_DR_COMPRESSION_THREADS=worker (same output).
 */
import { CompressionPool, type BlockCompressor } from './pool';
import { ZlibThreadpoolCompressor } from './threadpool';

export const COMPRESSION_THREADS_ENV = 'NNOE_DR_COMPRESSION_THREADS';

let shared: BlockCompressor | undefined;

export function sharedCompressor(): BlockCompressor {
  if (shared) return shared;
  const choice = process.env[COMPRESSION_THREADS_ENV] ?? 'libuv';
  if (choice !== 'libuv' && choice !== 'worker') {
    throw new Error(
      `${COMPRESSION_THREADS_ENV}=${choice}: expected libuv (zlib on libuv's threadpool, the default) or worker (worker threads)`,
    );
  }
  shared = choice === 'worker' ? new CompressionPool() : new ZlibThreadpoolCompressor();
  return shared;
}
