/**
 * Facts about an etcd snapshot file: its sha256 trailer and `snapshot status`.
 *
 * A snapshot streamed from Maintenance.Snapshot is the bbolt database followed by 32 bytes: the
 * sha256 of the database. `etcdctl snapshot restore` checks it, `etcdctl snapshot status` does not,
 * so we check it ourselves while the bytes stream past.
 */
import { createHash, type Hash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import type { TotalKeyMeaning } from '../common/manifest';
import { etcdPrograms } from './programs';

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
  /** etcd 3.6+: the storage version written in the snapshot ("3.6.0"); absent from older tools and snapshots. */
  storageVersion?: string;
}

/** `snapshot status` plus which program read it, as `etcdutl 3.6.17`. */
export interface SnapshotStatusReading extends SnapshotStatus {
  tool: string;
  totalKeyCounts: TotalKeyMeaning;
}

export interface SnapshotTool {
  command: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The offline snapshot tool: etcdutl where it exists (3.5+; 3.6's etcdctl has no `snapshot status`
 * or `restore`), else etcdctl 3.4 with ETCDCTL_API=3. From `binDir` (the config's etcdBinDir) when
 * given, else from PATH.
 */
export function snapshotTool(binDir?: string): SnapshotTool {
  const programs = etcdPrograms(binDir);
  if (programs.etcdutl) return { command: programs.etcdutl, env: process.env };
  return { command: programs.etcdctl, env: { ...process.env, ETCDCTL_API: '3' } };
}

const toolVersions = new Map<string, Promise<string>>();

/** `etcdutl 3.6.17` / `etcdctl 3.4.23`, asked once per program and process. */
export function snapshotToolVersion(tool: SnapshotTool): Promise<string> {
  let version = toolVersions.get(tool.command);
  if (!version) {
    version = execFileAsync(tool.command, ['version'], { env: tool.env, timeout: 30_000 }).then(({ stdout }) => {
      const match = /^(etcdutl|etcdctl) version: (\d+\.\d+\.\d+\S*)/m.exec(stdout);
      if (!match) throw new Error(`${tool.command} version gave no "etcdutl|etcdctl version: X.Y.Z" line: ${stdout.slice(0, 200)}`);
      return `${match[1]} ${match[2]}`;
    });
    version.catch(() => toolVersions.delete(tool.command)); // a failed probe is asked again next time
    toolVersions.set(tool.command, version);
  }
  return version;
}

/** What totalKey means for a reading by `toolVersion` (`etcdutl 3.6.17`). */
export function totalKeyMeaningOf(toolVersion: string): TotalKeyMeaning {
  const match = /(\d+)\.(\d+)\.\d+/.exec(toolVersion);
  if (!match) throw new Error(`expected a tool version like "etcdutl 3.6.17", got "${toolVersion}"`);
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 3 || (major === 3 && minor >= 6) ? 'live-keys' : 'bucket-entries';
}

/**
 * Whether `snapshot restore` takes `--bump-revision N --mark-compacted`: etcdutl from 3.5.10 on;
 * etcdctl 3.4 and older etcdutl do not.
 */
export function supportsRevisionBump(toolVersion: string): boolean {
  const match = /^etcdutl (\d+)\.(\d+)\.(\d+)/.exec(toolVersion);
  if (!match) return false;
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3])];
  return major > 3 || (major === 3 && (minor > 5 || (minor === 5 && patch >= 10)));
}

export async function readSnapshotStatus(file: string, binDir?: string): Promise<SnapshotStatusReading> {
  const tool = snapshotTool(binDir);
  const [{ stdout }, version] = await Promise.all([
    execFileAsync(tool.command, ['snapshot', 'status', file, '-w', 'json'], { env: tool.env, timeout: 120_000 }),
    snapshotToolVersion(tool),
  ]);
  const parsed = JSON.parse(stdout) as Partial<SnapshotStatus> & { version?: unknown };
  for (const field of ['hash', 'revision', 'totalKey', 'totalSize'] as const) {
    if (typeof parsed[field] !== 'number') {
      throw new Error(`${tool.command} snapshot status gave no numeric "${field}" for ${file}: ${stdout.slice(0, 200)}`);
    }
  }
  const { hash, revision, totalKey, totalSize } = parsed as SnapshotStatus;
  return {
    hash,
    revision,
    totalKey,
    totalSize,
    ...(typeof parsed.version === 'string' && parsed.version !== '' ? { storageVersion: parsed.version } : {}),
    tool: version,
    totalKeyCounts: totalKeyMeaningOf(version),
  };
}
