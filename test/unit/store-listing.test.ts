/**
 * What retention asks of a store (BackupStore.listDetailed, deleteMany, delete's empty directories):
 * LocalStore on a temp dir, S3Store against a fake client that records its requests (the keys carry
 * the target's prefix there and back; deletes go a thousand per request). Moto runs the real thing
 * in the world's prune test.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalStore, S3Store } from '../../src/storage';
import { writeObject } from '../support/objects';

describe('LocalStore', () => {
  let root: string;
  let store: LocalStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'nnoe-dr-store-'));
    store = new LocalStore('local', root);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('lists committed objects below a prefix with their sizes and times, never a partial file', async () => {
    const before = Date.now() - 1000;
    await writeObject(store, 'wal/prod/a/1.seg', Buffer.alloc(10));
    await writeObject(store, 'wal/prod/b/2.seg', Buffer.alloc(20));
    await writeObject(store, 'wal/prod2/a/3.seg', Buffer.alloc(30)); // wal/prod2/ is not below wal/prod/
    await writeFile(join(root, 'wal', 'prod', 'a', '.4.seg.partial-0000'), 'half');
    let pages = 0;
    const listed = await store.listDetailed('wal/prod/', {
      onPage: () => {
        pages += 1;
      },
    });
    expect(listed.map(({ key, bytes }) => ({ key, bytes })).sort((x, y) => x.key.localeCompare(y.key))).toEqual([
      { key: 'wal/prod/a/1.seg', bytes: 10 },
      { key: 'wal/prod/b/2.seg', bytes: 20 },
    ]);
    for (const object of listed) expect(Date.parse(object.modifiedAt)).toBeGreaterThan(before);
    expect(pages).toBeGreaterThan(0);
    expect(await store.listDetailed('nothing/here/')).toEqual([]);
  });

  it('deletes many keys, missing ones included, and the directories they leave empty up to the root', async () => {
    for (const key of ['set-1/manifest.json', 'set-1/agents/node-1.tar', 'set-2/manifest.json']) await writeObject(store, key, 'x');
    const done: number[] = [];
    await store.deleteMany(['set-1/manifest.json', 'set-1/agents/node-1.tar', 'set-1/gone-already'], { onProgress: (n) => done.push(n) });
    expect(await readdir(root)).toEqual(['set-2']);
    expect(done.at(-1)).toBe(3);
    await store.deleteMany(['set-1/manifest.json']); // again: no error
  });

  it("keeps a directory that still holds a writer's partial file", async () => {
    await writeObject(store, 'set-1/etcd.db', 'x');
    await writeFile(join(root, 'set-1', '.other.partial-0000'), 'half');
    await store.delete('set-1/etcd.db');
    expect(await readdir(join(root, 'set-1'))).toEqual(['.other.partial-0000']);
  });
});

describe('S3Store', () => {
  type Sent = { name: string; input: Record<string, any> };
  /** A fake S3 client: answers listings from `objects` (full object keys), records every request. */
  function fakeS3(objects: string[], opts: { pageSize?: number; failKey?: string } = {}) {
    const sent: Sent[] = [];
    const client = {
      send: async (command: { constructor: { name: string }; input: Record<string, any> }) => {
        sent.push({ name: command.constructor.name, input: command.input });
        if (command.constructor.name === 'ListObjectsV2Command') {
          const matching = objects.filter((key) => key.startsWith(command.input.Prefix as string));
          const start = Number(command.input.ContinuationToken ?? 0);
          const size = opts.pageSize ?? 1000;
          const page = matching.slice(start, start + size);
          return {
            Contents: page.map((Key, i) => ({ Key, Size: i + 1, LastModified: new Date('2026-12-01T00:00:00Z') })),
            IsTruncated: start + size < matching.length,
            NextContinuationToken: String(start + size),
          };
        }
        if (command.constructor.name === 'DeleteObjectsCommand') {
          const keys = (command.input.Delete.Objects as { Key: string }[]).map((o) => o.Key);
          return { Errors: keys.includes(opts.failKey ?? '') ? [{ Key: opts.failKey, Code: 'AccessDenied', Message: 'no' }] : [] };
        }
        throw new Error(`unexpected ${command.constructor.name}`);
      },
    };
    const store = new S3Store(client as unknown as S3Client, { name: 's3', bucket: 'b', prefix: 'team/', partSizeBytes: 5 * 1024 * 1024 });
    return { store, sent };
  }

  it("lists below the target's prefix page by page and hands back keys without it", async () => {
    const { store, sent } = fakeS3(['team/wal/prod/1', 'team/wal/prod/2', 'team/wal/prod/3', 'team/wal/prod2/1', 'other/wal/prod/9'], {
      pageSize: 2,
    });
    let pages = 0;
    const listed = await store.listDetailed('wal/prod/', {
      onPage: () => {
        pages += 1;
      },
    });
    expect(listed).toEqual([
      { key: 'wal/prod/1', bytes: 1, modifiedAt: '2026-12-01T00:00:00.000Z' },
      { key: 'wal/prod/2', bytes: 2, modifiedAt: '2026-12-01T00:00:00.000Z' },
      { key: 'wal/prod/3', bytes: 1, modifiedAt: '2026-12-01T00:00:00.000Z' },
    ]);
    expect(pages).toBe(2);
    expect(sent.map((s) => s.input.Prefix)).toEqual(['team/wal/prod/', 'team/wal/prod/']);
    expect(await store.list('wal/prod/')).toEqual(['wal/prod/1', 'wal/prod/2', 'wal/prod/3']);
  });

  it('deletes a thousand keys per request, prefixed, and names what S3 refused', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `wal/prod/${i}`);
    const { store, sent } = fakeS3([]);
    const done: number[] = [];
    await store.deleteMany(keys, { onProgress: (n) => done.push(n) });
    expect(sent.map((s) => s.input.Delete.Objects.length)).toEqual([1000, 1000, 500]);
    expect(sent[0]!.input.Delete.Objects[0]).toEqual({ Key: 'team/wal/prod/0' });
    expect(done).toEqual([1000, 2000, 2500]);

    const refusing = fakeS3([], { failKey: 'team/wal/prod/7' }).store;
    await expect(refusing.deleteMany(['wal/prod/7'])).rejects.toThrow(
      /s3: could not delete 1 of 1 objects, first team\/wal\/prod\/7: AccessDenied/,
    );
  });
});
