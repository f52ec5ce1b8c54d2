import type { Writable } from 'node:stream';
import { fanOut } from './fan-out';
import type { ArtefactWriter, BackupStore, StoredObject } from './store';

export interface PublishedCopy {
  target: string;
  location: string;
  bytes: number;
  sha256: string;
}

/**
 * Two-phase publication of one artefact to every store. First what an earlier, interrupted attempt
 * at the same key left hidden (a partial file, an open multipart upload) is removed and reported:
 * a retry cleans up after the attempt it replaces. Then: open a writer per store, let `produce`
 * stream into all of them at once and check what it wrote (it throws when the artefact is bad),
 * and only then commit each copy. Any failure aborts every writer and deletes every copy already
 * committed, so no store keeps a partial or unverified artefact.
 */
export async function publishToStores<R>(
  stores: BackupStore[],
  key: string,
  produce: (sink: Writable) => Promise<R>,
): Promise<{ result: R; copies: PublishedCopy[]; leftoversCleared: string[] }> {
  const leftoversCleared: string[] = [];
  for (const store of stores) {
    for (const leftover of await store.listLeftovers({ key })) {
      await store.removeLeftover(leftover);
      leftoversCleared.push(leftover.location);
    }
  }
  const writers: ArtefactWriter[] = [];
  const committed: Array<{ store: BackupStore; copy: StoredObject }> = [];
  try {
    for (const store of stores) writers.push(await store.createWriter(key));
    const result = await produce(fanOut(writers.map((w) => w.stream)));
    for (const [index, writer] of writers.entries()) committed.push({ store: stores[index]!, copy: await writer.commit() });
    return {
      result,
      copies: committed.map(({ copy }) => ({ target: copy.target, location: copy.location, bytes: copy.bytes, sha256: copy.sha256 })),
      leftoversCleared,
    };
  } catch (err) {
    await Promise.allSettled(writers.map((w) => w.abort()));
    await Promise.allSettled(committed.map(({ store, copy }) => store.delete(copy.key)));
    throw err;
  }
}
