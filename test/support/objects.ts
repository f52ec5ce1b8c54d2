/**
 * Writing objects into a backup store, as the code under test would find them. Plain store calls,
 * no harness (and no vitest `inject`), so unit tests can use it too.
 */
import type { BackupStore } from '../../src/storage';

/** Writes `body` to `key` and commits it (a local file renamed into place, an S3 object put). */
export async function writeObject(store: BackupStore, key: string, body: Buffer | string): Promise<void> {
  const writer = await store.createWriter(key);
  writer.stream.end(body);
  await writer.commit();
}
