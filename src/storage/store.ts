/**
 * One streaming interface over every backup target (a local directory, an S3 bucket).
 *
 * Writing is two-phase: bytes go to a hidden staging place (a temp file, an uncompleted multipart
 * upload) and become visible under their key only on `commit()`. A caller that finds the artefact
 * bad, or fails half-way, calls `abort()` and nothing is left behind.
 */
import type { Readable, Writable } from 'node:stream';

export interface StoredObject {
  target: string;
  key: string;
  bytes: number;
  /** sha256 of the bytes as stored (after compression), hex. */
  sha256: string;
  /** Where a human finds it: a path or an s3:// URL. */
  location: string;
}

export interface ArtefactWriter {
  /** Write the artefact here, then end it, then commit or abort. */
  readonly stream: Writable;
  commit(): Promise<StoredObject>;
  abort(): Promise<void>;
}

/**
 * What an interrupted writer left hidden in a store (a partial file, an open multipart upload):
 * invisible to `list`, costing space until someone removes it.
 */
export interface WriteLeftover {
  key: string;
  /** For humans: the partial file's path, or the s3:// URL and upload id. */
  location: string;
  startedAt: string;
  /** The store's own handle (a path, an upload id); only `removeLeftover` reads it. */
  handle: string;
}

/** An object as a detailed listing shows it. */
export interface ListedObject {
  key: string;
  bytes: number;
  /** ISO 8601: when it was last written (a file's mtime, S3's LastModified). */
  modifiedAt: string;
}

export interface BackupStore {
  readonly name: string;
  createWriter(key: string): Promise<ArtefactWriter>;
  read(key: string): Promise<Readable>;
  /** Keys below a prefix, in no particular order. */
  list(prefix?: string): Promise<string[]>;
  /** Keys below a prefix with their sizes and times, in no particular order; `onPage` after each page read (heartbeats). */
  listDetailed(prefix: string, options?: { onPage?: () => void }): Promise<ListedObject[]>;
  /**
   * One level below `prefix` ('' or ending in '/'), like S3's ListObjectsV2 with Delimiter '/':
   * the keys directly in it and its sub-prefixes (each ending in '/'), both sorted. The catalog
   * finds sets this way without walking `wal/`, whose segments run to the hundred thousand.
   */
  listLevel(prefix: string): Promise<ListedLevel>;
  /**
   * Keys below `prefix` in key order, from the first after `startAfter` (S3's StartAfter), a page at
   * a time; break out of the loop to stop listing. Change-capture segments sort by revision, so a
   * point-in-time restore lists only the range it replays.
   */
  listInOrder(prefix: string, startAfter?: string): AsyncIterable<string[]>;
  exists(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /**
   * Deletes many keys in as few requests as the store allows (S3: a thousand per request); keys
   * already gone are no error. Unlike `delete`, it does not remove locked versions: under S3 Object
   * Lock the objects only get delete markers (a lock never makes it fail). `onProgress` after each batch.
   */
  deleteMany(keys: string[], options?: { onProgress?: (done: number) => void }): Promise<void>;
  location(key: string): string;
  /** Fails with a clear error when the target cannot take a backup (missing bucket, no access). */
  preflight(): Promise<void>;
  /**
   * Leftovers of interrupted writers: of one key (a retry clears its earlier attempts' before it
   * writes), or of every key, started before `olderThan` (prune; a running writer is younger).
   */
  listLeftovers(scope: { key: string } | { olderThan: Date }): Promise<WriteLeftover[]>;
  /** Removes one leftover; idempotent. */
  removeLeftover(leftover: WriteLeftover): Promise<void>;
  /** S3 Object Lock retention of an object (null: none). Absent on targets that cannot lock. */
  retention?(key: string): Promise<ObjectRetention | null>;
}

export interface ListedLevel {
  keys: string[];
  /** Each ends in '/'. */
  prefixes: string[];
}

export interface ObjectRetention {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** ISO 8601: until then the object cannot be deleted or overwritten. */
  until: string;
  /** A GOVERNANCE lock the config allows this tool to bypass (objectLock.bypassGovernance). */
  bypassable: boolean;
}

/** The key of an artefact inside a backup set: `<setId>/<file>`. */
export function artefactKey(setId: string, file: string): string {
  return `${setId}/${file}`;
}

/** listLevel names a level: the store's top ('') or a prefix ending in '/'. */
export function checkLevelPrefix(store: string, prefix: string): void {
  if (prefix !== '' && !prefix.endsWith('/'))
    throw new Error(`${store}: listing a level needs '' or a prefix ending in '/', got "${prefix}"`);
}

export const MANIFEST_FILE = 'manifest.json';

export class ArtefactNotFoundError extends Error {
  override readonly name = 'ArtefactNotFoundError';
}
