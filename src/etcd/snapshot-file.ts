/**
 * Facts about an etcd snapshot file: its sha256 trailer and `snapshot status`.
 *
 * A snapshot streamed from Maintenance.Snapshot is the bbolt database followed by 32 bytes: the
 * sha256 of the database. `etcdctl snapshot restore` checks it, `etcdctl snapshot status` does not,
 * so we check it ourselves while the bytes stream past.
 */
import { createHash, type Hash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const TRAILER_BYTES = 32;
/** bbolt pages are multiples of 512 bytes, so only a snapshot with a trailer has this remainder. */
const PAGE_ALIGN = 512;

export interface SnapshotTrailerResult {
  bytes: number;
  /** sha256 of the whole file including the trailer, hex. */
  sha256: string;
  hasTrailer: boolean;
  trailerValid: boolean;
}

/**
 * Pass-through that computes the whole-file sha256 and checks the trailer without buffering the
 * file, hashing each byte once: the body is hashed, and the whole-file digest is a copy of that
 * state plus the held-back tail.
 */
export class SnapshotTrailerCheck extends Transform {
  private readonly body: Hash = createHash('sha256');
  private tail: Buffer = Buffer.alloc(0);
  private outcome: SnapshotTrailerResult | undefined;
  bytes = 0;

  constructor(private readonly onProgress?: (bytes: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    // Hold back the last 32 bytes seen: they may be the trailer, which is not part of the hashed body.
    if (chunk.length >= TRAILER_BYTES) {
      this.body.update(this.tail);
      this.body.update(chunk.subarray(0, chunk.length - TRAILER_BYTES));
      this.tail = Buffer.from(chunk.subarray(chunk.length - TRAILER_BYTES));
    } else {
      const joined = Buffer.concat([this.tail, chunk]);
      const spill = Math.max(0, joined.length - TRAILER_BYTES);
      this.body.update(joined.subarray(0, spill));
      this.tail = joined.subarray(spill);
    }
    this.onProgress?.(this.bytes);
    done(null, chunk);
  }

  /** After the stream has ended; repeated calls return the same facts. */
  result(): SnapshotTrailerResult {
    if (!this.outcome) {
      const whole = this.body.copy().update(this.tail).digest('hex');
      const hasTrailer = this.bytes % PAGE_ALIGN === TRAILER_BYTES;
      const trailerValid = hasTrailer && this.body.digest().equals(this.tail);
      this.outcome = { bytes: this.bytes, sha256: whole, hasTrailer, trailerValid };
    }
    return this.outcome;
  }

  /** The whole file's sha256 (the same as `result().sha256`): lets the check stand in for a HashingStream. */
  digestHex(): string {
    return this.result().sha256;
  }
}

export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** etcd 3.5+ ships the offline tool as etcdutl; 3.4 only has etcdctl (ETCDCTL_API=3). */
export function snapshotTool(): { command: string; env: NodeJS.ProcessEnv } {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    if (dir && existsSync(`${dir}/etcdutl`)) return { command: `${dir}/etcdutl`, env: process.env };
  }
  return { command: 'etcdctl', env: { ...process.env, ETCDCTL_API: '3' } };
}

export async function readSnapshotStatus(file: string): Promise<SnapshotStatus> {
  const tool = snapshotTool();
  const { stdout } = await execFileAsync(tool.command, ['snapshot', 'status', file, '-w', 'json'], { env: tool.env, timeout: 120_000 });
  const parsed = JSON.parse(stdout) as Partial<SnapshotStatus>;
  for (const field of ['hash', 'revision', 'totalKey', 'totalSize'] as const) {
    if (typeof parsed[field] !== 'number') {
      throw new Error(`${tool.command} snapshot status gave no numeric "${field}" for ${file}: ${stdout.slice(0, 200)}`);
    }
  }
  return parsed as SnapshotStatus;
}
