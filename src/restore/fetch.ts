/**
 * Fetching an artefact back for a restore: from the first copy that proves good, checked on the
 * way (stored sha256 and size, then after age and gunzip/zstd the raw sha256 and size). A copy that
 * fails its checks is skipped for the next one; the file appears at `destination` only once
 * every check passed (temp file, fsync unless asked not to, rename), so a restore never reads
 * unverified bytes.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Transform } from 'node:stream';
import type { Config } from '../config/schema';
import type { ArtefactRecord } from '../common/manifest';
import { openStore } from '../storage';
import { createDecompressStages } from '../compression';
import { HashingStream } from '../storage/hashing';
import { createDecryptStream, readDecryptionIdentity } from '../crypto';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/**
 * No copy of the artefact can be used. `integrity`: every copy was read and found bad
 * (ChecksumMismatch, retrying cannot help); otherwise some copy could not be read
 * (StorageUnavailable, retryable).
 */
export class ArtefactUnusableError extends DomainError {
  override readonly name = 'ArtefactUnusableError';
  constructor(
    message: string,
    readonly integrity = true,
  ) {
    super(message, integrity ? FailureType.ChecksumMismatch : FailureType.StorageUnavailable, integrity);
  }
}

class IntegrityProblem extends Error {}

export interface FetchedArtefact {
  path: string;
  /** The target whose copy was used. */
  target: string;
  bytes: number;
  sha256: string;
  /** Copies tried before, with why they were refused. */
  refused: Array<{ target: string; problem: string; integrity: boolean }>;
}

/** Identity text for an encrypted artefact; restores without `encryption.identity` cannot read it. */
export async function restoreIdentity(config: Config, artefact: ArtefactRecord): Promise<string | null> {
  if (!artefact.encryption) return null;
  if (!config.encryption?.identity) {
    throw new ArtefactUnusableError(
      `${artefact.file} is age-encrypted and the config names no decryption identity (expected encryption.identity: { file } or { env })`,
    );
  }
  return readDecryptionIdentity(config.encryption.identity);
}

/**
 * A check of the raw bytes that also hashes them (e.g. the etcd snapshot trailer check, which
 * needs the sha256 anyway): it replaces the plain raw hasher, so each raw byte is hashed once.
 */
export type RawCheck = Transform & { readonly bytes: number; digestHex(): string; problem(): string | null };

/**
 * Writes the raw (decrypted, decompressed) artefact to `destination`. `check` sees the raw bytes
 * on the way and its `problem()` is asked at the end. `durable: false` skips the fsync for a
 * scratch copy that is read right away and removed (a crash leaves it to be fetched again; the
 * reader must still check it, as `snapshot restore` checks the trailer).
 */
export async function fetchArtefact(
  config: Config,
  artefact: ArtefactRecord,
  destination: string,
  opts: {
    check?: () => RawCheck;
    onProgress?: (bytes: number) => void;
    durable?: boolean;
  } = {},
): Promise<FetchedArtefact> {
  const identity = await restoreIdentity(config, artefact);
  const refused: FetchedArtefact['refused'] = [];
  await mkdir(dirname(destination), { recursive: true });
  const partial = `${destination}.partial`;
  for (const copy of orderCopies(config, artefact)) {
    const target = config.storage.find((t) => t.name === copy.target);
    if (!target) {
      refused.push({ target: copy.target, problem: 'target no longer in the config', integrity: true });
      continue;
    }
    const stored = new HashingStream();
    const check = opts.check?.();
    const raw = check ?? new HashingStream();
    const progress = setInterval(() => opts.onProgress?.(stored.bytes), 2000);
    try {
      const store = await openStore(target);
      await pipeline([
        await store.read(artefact.key),
        stored,
        ...(identity ? [createDecryptStream(identity)] : []),
        ...createDecompressStages(artefact.compression),
        raw,
        createWriteStream(partial),
      ]);
      const problems = [
        stored.bytes !== artefact.bytes && `stored size ${stored.bytes} bytes, manifest says ${artefact.bytes}`,
        stored.digestHex() !== artefact.sha256 && 'stored sha256 differs from the manifest',
        raw.bytes !== artefact.raw.bytes && `raw size ${raw.bytes} bytes, manifest says ${artefact.raw.bytes}`,
        raw.digestHex() !== artefact.raw.sha256 && 'raw sha256 differs from the manifest',
        check?.problem() ?? false,
      ].filter((p): p is string => typeof p === 'string');
      if (problems.length > 0) throw new IntegrityProblem(problems.join('; '));
      if (opts.durable !== false) {
        const file = await open(partial, 'r');
        await file.sync().finally(() => file.close());
      }
      await rename(partial, destination);
      return { path: destination, target: copy.target, bytes: raw.bytes, sha256: artefact.raw.sha256, refused };
    } catch (err) {
      const verdict = err instanceof IntegrityProblem ? err : await classifyReadFailure(target, artefact, err as Error);
      refused.push({ target: copy.target, problem: verdict.message, integrity: verdict instanceof IntegrityProblem });
      await rm(partial, { force: true });
    } finally {
      clearInterval(progress);
    }
  }
  throw new ArtefactUnusableError(
    `no good copy of ${artefact.file}: ${refused.map((r) => `${r.target}: ${r.problem}`).join('; ') || 'the manifest lists no copy'}`,
    refused.every((r) => r.integrity),
  );
}

/**
 * A copy that broke the pipeline (age refusing altered ciphertext, gunzip choking) is read once
 * more, hashing only: if its stored bytes differ from the manifest it is damaged (no retry helps);
 * otherwise the failure was in reading, and stays retryable.
 */
async function classifyReadFailure(target: Config['storage'][number], artefact: ArtefactRecord, err: Error): Promise<Error> {
  try {
    const stored = new HashingStream();
    await pipeline(await (await openStore(target)).read(artefact.key), stored, new Writable({ write: (_c, _e, done) => done() }));
    if (stored.digestHex() !== artefact.sha256) {
      return new IntegrityProblem(`stored sha256 differs from the manifest (the copy is damaged or altered; ${err.message})`);
    }
  } catch {
    // unreadable again: report the first failure
  }
  return err;
}

/** Local copies first (no transfer), then the others in manifest order. */
function orderCopies(config: Config, artefact: ArtefactRecord): ArtefactRecord['copies'] {
  const isLocal = (name: string) => config.storage.find((t) => t.name === name)?.type === 'local';
  return [...artefact.copies.filter((c) => isLocal(c.target)), ...artefact.copies.filter((c) => !isLocal(c.target))];
}
