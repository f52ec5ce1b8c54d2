/**
 * The I/O half of pruning, for the prune activity: delete an expired set from one target, delete
 * change-capture segments no kept set needs (what interrupted writers left, partial files and open
 * multipart uploads, each store lists itself: BackupStore.listLeftovers). Which sets expire is decided by planRetention (./policy.ts), which segments by
 * planSegmentRetention (./segments.ts); every deleting function here has a dry run that only reports.
 */
import { rmdir, stat } from 'node:fs/promises';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { StorageTargetConfig } from '../config/schema';
import { clusterSegmentsPrefix } from '../capture/segments';
import { artefactKey, LocalStore, MANIFEST_FILE, openStore, s3ClientFor, type BackupStore } from '../storage';

export interface DeletedSet {
  target: string;
  setId: string;
  /** Keys deleted (or, in a dry run, that would be), manifest first. */
  keys: string[];
  dryRun: boolean;
}

const SET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The keys of a set in one target, its manifest first (when it has one), the rest sorted. */
export async function listBackupSetKeys(store: BackupStore, setId: string): Promise<string[]> {
  // A bad id could widen the prefix to other sets or the whole store: refuse it outright.
  if (!SET_ID.test(setId)) throw new Error(`"${setId}" is not a backup set id (expected <cluster>-<YYYYMMDD-HHMMSS>, no "/")`);
  const manifest = artefactKey(setId, MANIFEST_FILE);
  const keys = await store.list(`${setId}/`);
  const rest = keys.filter((key) => key !== manifest).sort();
  return keys.includes(manifest) ? [manifest, ...rest] : rest;
}

/**
 * Deletes a set from one target: its manifest first, so a set interrupted half-way through
 * deletion is no longer listed by the catalog (which finds sets by their manifests), then every
 * other key under `<setId>/`. Running it again finishes an interrupted deletion.
 */
export async function deleteBackupSet(store: BackupStore, setId: string, options: { dryRun?: boolean } = {}): Promise<DeletedSet> {
  const keys = await listBackupSetKeys(store, setId);
  const result = { target: store.name, setId, keys, dryRun: options.dryRun === true };
  if (result.dryRun) return result;
  for (const key of keys) await store.delete(key); // one by one: the manifest must be gone first
  if (store instanceof LocalStore) await removeEmptyDirectory(store.location(setId));
  return result;
}

/** A local set leaves its directory behind; remove it if empty (a writer's leftover temp file keeps it). */
async function removeEmptyDirectory(path: string): Promise<void> {
  await rmdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY') throw err;
  });
}

/** A change-capture object (segment or gap marker) in one target. */
export interface SegmentObject {
  key: string;
  /** From the S3 listing; a local target's size is read when the object is deleted. */
  bytes?: number;
}

/** The objects under `wal/<cluster>/` of one target; `onPage` is called per S3 page (for heartbeats). */
export async function listSegmentObjects(target: StorageTargetConfig, cluster: string, onPage: () => void = () => undefined): Promise<SegmentObject[]> {
  const prefix = clusterSegmentsPrefix(cluster);
  if (target.type !== 's3') return (await (await openStore(target)).list(prefix)).map((key) => ({ key }));
  // Listed here rather than through the store: the listing gives every size for free.
  const s3 = await s3ClientFor(target);
  const objects: SegmentObject[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: `${target.prefix}${prefix}`, ContinuationToken: token }));
    for (const item of page.Contents ?? []) {
      if (item.Key) objects.push({ key: item.Key.slice(target.prefix.length), ...(item.Size !== undefined ? { bytes: item.Size } : {}) });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
    onPage();
  } while (token);
  return objects;
}

/** S3's limit of keys per DeleteObjects request. */
const DELETE_BATCH = 1000;

/**
 * Deletes (or with dryRun only measures) change-capture objects from one target; returns how many
 * and their bytes. Idempotent: deleting what is already gone is no error, so a retry just lists
 * again. `onProgress` is called as batches go (for heartbeats).
 */
export async function deleteSegmentObjects(
  target: StorageTargetConfig, objects: SegmentObject[], options: { dryRun?: boolean; onProgress?: (done: number) => void } = {},
): Promise<{ objects: number; bytes: number }> {
  const progress = options.onProgress ?? (() => undefined);
  if (target.type !== 's3') {
    const store = await openStore(target) as LocalStore;
    let count = 0;
    let bytes = 0;
    for (const object of objects) {
      const size = await stat(store.location(object.key)).then((s) => s.size, (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (size === null) continue;
      if (!options.dryRun) await store.delete(object.key); // also removes a chain directory left empty
      count += 1;
      bytes += size;
      if (count % 100 === 0) progress(count);
    }
    return { objects: count, bytes };
  }
  const bytes = objects.reduce((sum, o) => sum + (o.bytes ?? 0), 0);
  if (options.dryRun) return { objects: objects.length, bytes };
  const s3 = await s3ClientFor(target);
  for (let i = 0; i < objects.length; i += DELETE_BATCH) {
    const batch = objects.slice(i, i + DELETE_BATCH);
    // One request per thousand keys: a busy cluster writes segments by the hundred thousand a day.
    const out = await s3.send(new DeleteObjectsCommand({
      Bucket: target.bucket, Delete: { Objects: batch.map((o) => ({ Key: `${target.prefix}${o.key}` })), Quiet: true },
    }));
    const failed = out.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new Error(`${target.name}: could not delete ${failed.length} change-capture objects, first ${first.Key ?? '?'}: ${first.Code ?? 'error'} ${first.Message ?? ''}`.trim());
    }
    progress(i + batch.length);
  }
  return { objects: objects.length, bytes };
}
