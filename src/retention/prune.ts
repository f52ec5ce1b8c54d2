/**
 * Deleting what retention decided, through the store interface only (no storage client, no key
 * layout of its own): an expired set from one target (manifest first), and change-capture segments
 * no kept set needs. Which sets expire is decided by planRetention (./policy.ts), which segments by
 * planSegmentRetention (./segments.ts); what interrupted writers left (partial files, open multipart
 * uploads) each store lists itself (BackupStore.listLeftovers). Every deleting function here has a
 * dry run that only reports.
 */
import { clusterSegmentsPrefix } from '../capture/segments';
import { artefactKey, MANIFEST_FILE, type BackupStore } from '../storage/store';

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
 * other key under `<setId>/` (a local store removes the set's directory with its last file).
 * Running it again finishes an interrupted deletion.
 */
export async function deleteBackupSet(store: BackupStore, setId: string, options: { dryRun?: boolean } = {}): Promise<DeletedSet> {
  const keys = await listBackupSetKeys(store, setId);
  const result = { target: store.name, setId, keys, dryRun: options.dryRun === true };
  if (result.dryRun) return result;
  for (const key of keys) await store.delete(key); // one by one: the manifest must be gone first
  return result;
}

/** A change-capture object (segment or gap marker) in one target. */
export interface SegmentObject {
  key: string;
  bytes: number;
}

/** The objects under `wal/<cluster>/` of one target; `onPage` is called per page listed (for heartbeats). */
export async function listSegmentObjects(
  store: BackupStore,
  cluster: string,
  onPage: () => void = () => undefined,
): Promise<SegmentObject[]> {
  const listed = await store.listDetailed(clusterSegmentsPrefix(cluster), { onPage });
  return listed.map(({ key, bytes }) => ({ key, bytes }));
}

/**
 * Deletes (or with dryRun only measures) change-capture objects, as listed, from one target;
 * returns how many and their bytes. Idempotent: deleting what is already gone is no error, so a
 * retry just lists again. `onProgress` is called as batches go (for heartbeats).
 */
export async function deleteSegmentObjects(
  store: BackupStore,
  objects: SegmentObject[],
  options: { dryRun?: boolean; onProgress?: (done: number) => void } = {},
): Promise<{ objects: number; bytes: number }> {
  const measured = { objects: objects.length, bytes: objects.reduce((sum, o) => sum + o.bytes, 0) };
  // One request per thousand keys on S3: a busy cluster writes segments by the hundred thousand a day.
  if (!options.dryRun)
    await store.deleteMany(
      objects.map((o) => o.key),
      { onProgress: options.onProgress },
    );
  return measured;
}
