/**
 * The catalog: the manifests found in the stores. No database; a set exists in a target when its
 * manifest.json does. Sets sit at a store's top level (`<setId>/manifest.json`, set ids carry no
 * '/'), so the catalog lists that one level (a delimiter listing) and reads each set's manifest:
 * it never walks `wal/`, where change capture keeps its segments by the hundred thousand.
 */
import { pipeline } from 'node:stream/promises';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import type { Readable } from 'node:stream';
import type { Config } from '../config/schema';
import { findTargets } from '../config/load';
import { ArtefactNotFoundError, artefactKey, MANIFEST_FILE, openStore, type BackupStore } from '../storage';
import { SEGMENT_PREFIX } from '../capture/segments';
import { HashingStream } from '../storage/hashing';
import { SnapshotTrailerCheck } from '../etcd/snapshot-file';
import { isBackupManifest, type ArtefactRecord, type BackupManifest, type ComponentRecord } from '../common/manifest';
import { hasDumpTrailer } from '../phpipam/dump-text';
import { createDecryptStream, readDecryptionIdentity } from '../crypto';
import { createDecompressStages } from '../compression';

export interface CatalogEntry {
  setId: string;
  cluster: string;
  status: BackupManifest['status'];
  createdAt: string;
  components: string[];
  /** Targets holding this set's manifest. */
  targets: string[];
  bytes: number;
  manifest: BackupManifest;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function readManifest(store: BackupStore, setId: string): Promise<BackupManifest> {
  const body = await readAll(await store.read(artefactKey(setId, MANIFEST_FILE)));
  const parsed: unknown = JSON.parse(body.toString('utf8'));
  if (!isBackupManifest(parsed)) throw new Error(`${store.location(artefactKey(setId, MANIFEST_FILE))} is not an nnoe-dr manifest`);
  return parsed;
}

/** Manifests in flight while the catalog reads a store: enough to hide S3 latency, few enough to be polite. */
const MANIFEST_READS_IN_FLIGHT = 16;

/** Every set of one store with its manifest, by set id (a set directory without a manifest yet, or any more, is none). */
export async function readStoreManifests(store: BackupStore): Promise<Array<{ setId: string; manifest: BackupManifest }>> {
  const setIds = (await store.listLevel('')).prefixes.map((p) => p.slice(0, -1)).filter((id) => id !== SEGMENT_PREFIX);
  const manifests = await mapLimited(setIds, MANIFEST_READS_IN_FLIGHT, (setId) =>
    readManifest(store, setId).catch((err: unknown) => {
      if (err instanceof ArtefactNotFoundError) return null; // a backup still writing, a deletion half done
      throw err;
    }),
  );
  return setIds.flatMap((setId, index) => (manifests[index] ? [{ setId, manifest: manifests[index] }] : []));
}

/** Every set in the chosen targets (all by default), newest first, merged across targets. */
export async function listBackupSets(
  config: Config,
  options: {
    cluster?: string;
    targets?: string[];
    /** When given, a target that cannot be read is reported here and skipped (a restore uses the others); else its error is thrown. */
    onUnreadableTarget?: (target: string, err: unknown) => void;
  } = {},
): Promise<CatalogEntry[]> {
  const bySet = new Map<string, CatalogEntry>();
  for (const target of findTargets(config, options.targets)) {
    let found: Array<{ setId: string; manifest: BackupManifest }>;
    try {
      found = await readStoreManifests(await openStore(target));
    } catch (err) {
      if (!options.onUnreadableTarget) throw err;
      options.onUnreadableTarget(target.name, err);
      continue;
    }
    for (const { setId, manifest } of found) {
      if (options.cluster && manifest.cluster !== options.cluster) continue;
      const entry = bySet.get(setId);
      if (entry) {
        entry.targets.push(target.name);
        continue;
      }
      bySet.set(setId, {
        setId,
        cluster: manifest.cluster,
        status: manifest.status,
        createdAt: manifest.createdAt,
        components: manifest.components.map((c) => c.component),
        targets: [target.name],
        bytes: manifest.components.flatMap((c) => c.artefacts).reduce((sum, a) => sum + a.bytes, 0),
        manifest,
      });
    }
  }
  return [...bySet.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** Maps with at most `limit` calls in flight. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export interface ArtefactCheck {
  target: string;
  file: string;
  ok: boolean;
  problems: string[];
}

export interface VerifyReport {
  setId: string;
  ok: boolean;
  checks: ArtefactCheck[];
}

/**
 * Reads every artefact of a set back from every chosen target and checks it against the manifest:
 * stored sha256 and size, then (decompressed) the raw sha256 and size and the snapshot's own trailer.
 */
export async function verifyBackupSet(config: Config, setId: string, options: { targets?: string[] } = {}): Promise<VerifyReport> {
  const checks: ArtefactCheck[] = [];
  let foundAnywhere = false;
  for (const target of findTargets(config, options.targets)) {
    const store = await openStore(target);
    if (!(await store.exists(artefactKey(setId, MANIFEST_FILE)))) {
      if (options.targets)
        checks.push({ target: target.name, file: MANIFEST_FILE, ok: false, problems: ['no manifest for this set in this target'] });
      continue;
    }
    foundAnywhere = true;
    const manifest = await readManifest(store, setId);
    for (const component of manifest.components) {
      for (const artefact of component.artefacts) {
        checks.push({
          target: target.name,
          file: artefact.file,
          ...(await checkArtefact(store, artefact, component.component, () => decryptionIdentity(config))),
        });
      }
    }
  }
  if (!foundAnywhere)
    throw new BackupSetNotFoundError(
      `backup set ${setId} has no manifest in ${findTargets(config, options.targets)
        .map((t) => t.name)
        .join(', ')}`,
    );
  return { setId, ok: checks.every((c) => c.ok), checks };
}

export class BackupSetNotFoundError extends Error {
  override readonly name = 'BackupSetNotFoundError';
}

/** The identity from `encryption.identity`; verifying an encrypted set without one cannot check its contents. */
async function decryptionIdentity(config: Config): Promise<string> {
  if (!config.encryption?.identity) {
    throw new Error('the artefact is encrypted and the config names no decryption identity (encryption.identity)');
  }
  return readDecryptionIdentity(config.encryption.identity);
}

/**
 * Checks every artefact has (stored and raw size and sha256), and what its kind has of its own: an
 * etcd snapshot's sha256 trailer, a phpIPAM dump's `-- Dump completed` line. Archives (agent
 * caches, Nebula, agent configs) have no trailer: their sha256s are the check.
 */
export async function checkArtefact(
  store: BackupStore,
  artefact: ArtefactRecord,
  kind: ComponentRecord['component'],
  identity: () => Promise<string>,
): Promise<{ ok: boolean; problems: string[] }> {
  const problems: string[] = [];
  const stored = new HashingStream();
  const snapshot = kind === 'etcd' ? new SnapshotTrailerCheck() : null;
  const dump = kind === 'phpipam' ? new TailKeeper(4096) : null;
  const raw = snapshot ?? new HashingStream();
  const discard = new Writable({ write: (_chunk, _enc, done) => done() });
  try {
    const stages = [
      stored,
      ...(artefact.encryption ? [createDecryptStream(await identity())] : []),
      ...createDecompressStages(artefact.compression),
      raw,
      ...(dump ? [dump] : []),
    ];
    await pipeline([await store.read(artefact.key), ...stages, discard]);
  } catch (err) {
    return { ok: false, problems: [`cannot read ${store.location(artefact.key)}: ${(err as Error).message}`] };
  }
  const storedSha = stored.digestHex();
  if (stored.bytes !== artefact.bytes) problems.push(`stored size ${stored.bytes} bytes, manifest says ${artefact.bytes}`);
  if (storedSha !== artefact.sha256) problems.push(`stored sha256 ${storedSha}, manifest says ${artefact.sha256}`);
  const rawSha = raw.digestHex();
  const what = kind === 'etcd' ? 'snapshot' : kind === 'phpipam' ? 'dump' : 'archive';
  if (raw.bytes !== artefact.raw.bytes) problems.push(`${what} size ${raw.bytes} bytes, manifest says ${artefact.raw.bytes}`);
  if (rawSha !== artefact.raw.sha256) problems.push(`${what} sha256 ${rawSha}, manifest says ${artefact.raw.sha256}`);
  if (snapshot) {
    const trailer = snapshot.result();
    if (!trailer.trailerValid)
      problems.push(trailer.hasTrailer ? 'snapshot sha256 trailer does not match its data' : 'snapshot has no sha256 trailer');
  }
  if (dump && !hasDumpTrailer(dump.tail().toString('utf8'))) problems.push('dump does not end with "-- Dump completed": it was cut short');
  return { ok: problems.length === 0, problems };
}

/** Pass-through that keeps the last `size` bytes seen (a dump's completion line). */
class TailKeeper extends Transform {
  private kept: Buffer = Buffer.alloc(0);

  constructor(private readonly size: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.kept = Buffer.concat([this.kept, chunk]);
    if (this.kept.length > this.size) this.kept = this.kept.subarray(this.kept.length - this.size);
    done(null, chunk);
  }

  tail(): Buffer {
    return this.kept;
  }
}
