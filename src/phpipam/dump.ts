/**
 * Runs the dump program and streams its stdout:
 *
 *   dump stdout -> sha256/bytes (raw) -> DumpTextWatcher (binlog comments, trailer)
 *               -> compression (parallel gzip, or zstd) -> [extra stages, e.g. encryption] -> sink (fan-out to the store writers)
 *
 * Resolves only after the child has exited AND the stream has been fully written; the caller then
 * decides (exit code, trailer) whether to commit. On any failure the child is killed and awaited, so
 * nothing outlives this call and the option file can be deleted safely afterwards.
 */
import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressStream } from '../compression';
import { HashingStream } from '../storage/hashing';
import { parseDumpToolVersion, type DumpCommand } from './dump-command';
import { DumpTextWatcher } from './dump-text';
import type { BinlogPosition, DumpTool } from './types';

const STDERR_KEEP_BYTES = 64 * 1024;
const PROGRESS_INTERVAL_MS = 1000;

export interface DumpRunOptions {
  command: DumpCommand;
  sink: Writable;
  /** The compressing stage (default: parallel gzip). */
  compress?: Duplex;
  /** Applied after compression, in order (the encryption seam). */
  extraStages?: Duplex[];
  /** Called about once a second with the raw (uncompressed) bytes so far. */
  onProgress?: (rawBytes: number) => void;
  /** Aborting kills the dump (activity cancellation). */
  signal?: AbortSignal;
}

export interface DumpRun {
  raw: { bytes: number; sha256: string };
  binlog: BinlogPosition | null;
  /** The dump ended with its `-- Dump completed` trailer line. */
  completed: boolean;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  /** The last 64 KiB the program wrote to stderr (may hold the password only if the tool is broken: redact before use). */
  stderr: string;
}

/** `exit code 2` / `killed by SIGKILL`: for messages. */
export function describeExit(exit: DumpRun['exit']): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * The dump's environment: ours minus every MYSQL_ / MARIADB_ variable. MYSQL_PWD, MYSQL_HOST or
 * MYSQL_TCP_PORT inherited from the worker's shell would otherwise add to, or change, what the dump
 * connects with.
 */
export function dumpEnvironment(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(base).filter(([key]) => !/^(MYSQL|MARIADB)_/i.test(key)));
}

/** Flavour and version of a dump program, from `<binary> --version`. Throws DumpToolMissingError if it cannot run. */
export function readDumpTool(binary: string): Promise<DumpTool> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['--version'], { timeout: 15_000, env: dumpEnvironment() }, (error, stdout, stderr) => {
      if (error) {
        reject(
          new DumpToolMissingError(
            binary,
            (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : `${error.message} ${stderr}`.trim(),
          ),
        );
        return;
      }
      try {
        resolve(parseDumpToolVersion(binary, stdout));
      } catch (err) {
        reject(new DumpToolMissingError(binary, (err as Error).message));
      }
    });
  });
}

export class DumpToolMissingError extends Error {
  override readonly name = 'DumpToolMissingError';
  constructor(
    readonly binary: string,
    reason: string,
  ) {
    super(`dump program ${binary} cannot be used on this worker: ${reason}`);
  }
}

type DumpChild = ChildProcessByStdio<null, Readable, Readable>;

export async function runDump(options: DumpRunOptions): Promise<DumpRun> {
  const child: DumpChild = spawn(options.command.binary, options.command.argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: dumpEnvironment(),
  });
  const stderr = collectTail(child.stderr, STDERR_KEEP_BYTES);
  const exited = waitForExit(child);
  const hashing = new HashingStream();
  const watcher = new DumpTextWatcher();
  const progress = options.onProgress && setInterval(() => options.onProgress!(hashing.bytes), PROGRESS_INTERVAL_MS);
  const streamed = pipeline(
    [child.stdout, hashing, watcher, options.compress ?? createCompressStream('gzip'), ...(options.extraStages ?? []), options.sink],
    { signal: options.signal },
  );
  try {
    // Both must settle: a spawn failure rejects `exited` while the pipeline may still be open.
    const [, exit] = await Promise.all([streamed, exited]);
    const { binlog, completed } = watcher.result();
    return { raw: { bytes: hashing.bytes, sha256: hashing.digestHex() }, binlog, completed, exit, stderr: stderr() };
  } catch (err) {
    streamed.catch(() => undefined);
    child.stdout.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw err;
  } finally {
    if (progress) clearInterval(progress);
  }
}

/** Resolves with code/signal once the child has exited and closed its pipes; rejects if it could not start. */
function waitForExit(child: DumpChild): Promise<DumpRun['exit']> {
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new Error(`dump program ${String(child.spawnfile)} not found on this worker`) : err);
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

/** Keeps the last `limit` bytes of a stream as text (stderr can be long when a tool warns per table). */
export function collectTail(stream: Readable, limit: number): () => string {
  let kept = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    kept = Buffer.concat([kept, chunk]);
    if (kept.length > limit) kept = kept.subarray(kept.length - limit);
  });
  return () => kept.toString('utf8');
}
