/** The one rule every restore and the drill use to choose a backup set (src/catalog/choose-set.ts). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseRestoreSet } from '../../src/catalog/choose-set';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { MANIFEST_FORMAT_VERSION, type BackupManifest, type ComponentRecord, type EtcdComponentRecord } from '../../src/common/manifest';
import { openStore } from '../../src/storage';
import { writeObject } from '../support/objects';

let dir: string;
let config: Config;

const artefact = (file: string) => ({
  file,
  key: file,
  compression: 'gzip',
  encryption: null,
  bytes: 1,
  sha256: 'a'.repeat(64),
  raw: { bytes: 1, sha256: 'b'.repeat(64) },
  copies: [],
});
const component = (kind: 'etcd' | 'agent-cache') => ({
  component: kind,
  ...(kind === 'agent-cache' ? { node: 'n1' } : {}),
  status: 'ok',
  artefacts: [artefact(`${kind}.gz`)],
});

async function writeSet(
  setId: string,
  cluster: string,
  createdAt: string,
  status: 'complete' | 'partial',
  kinds: Array<'etcd' | 'agent-cache'>,
  targets = ['a'],
) {
  const manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    tool: 'nnoe-dr',
    setId,
    cluster,
    status,
    createdAt,
    completedAt: createdAt,
    workflow: { workflowId: 'w', runId: 'r' },
    components: kinds.map(component),
    failures: status === 'partial' ? [{ component: 'phpipam', error: 'x' }] : [],
  };
  for (const target of config.storage.filter((t) => targets.includes(t.name)))
    await writeObject(await openStore(target), `${setId}/manifest.json`, JSON.stringify(manifest));
}

const etcdOf = (m: BackupManifest) => m.components.find((c: ComponentRecord): c is EtcdComponentRecord => c.component === 'etcd');
const choose = (setId?: string, cfg = config) => chooseRestoreSet(cfg, { cluster: 'prod', setId, pick: etcdOf, what: 'an etcd snapshot' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nnoe-choose-set-'));
  // A target that cannot be read: its one manifest is not JSON.
  await mkdir(join(dir, 'down', 'broken'), { recursive: true });
  await writeFile(join(dir, 'down', 'broken', 'manifest.json'), 'not json');
  config = parseConfig({
    workDir: join(dir, 'work'),
    clusters: [
      {
        name: 'prod',
        etcd: { members: [{ name: 'e1', node: 'n1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
      },
    ],
    storage: [
      { name: 'a', type: 'local', path: join(dir, 'a') },
      { name: 'b', type: 'local', path: join(dir, 'b') },
    ],
  });
  await writeSet('prod-1', 'prod', '2026-12-01T00:00:00Z', 'complete', ['etcd'], ['a', 'b']);
  await writeSet('prod-2', 'prod', '2026-12-02T00:00:00Z', 'complete', ['agent-cache']);
  await writeSet('prod-3', 'prod', '2026-12-03T00:00:00Z', 'partial', ['etcd']);
  await writeSet('other-4', 'other', '2026-12-04T00:00:00Z', 'complete', ['etcd']);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('choosing the set to restore', () => {
  it('takes the newest complete set of the cluster that holds what is restored', async () => {
    const choice = await choose();
    expect(choice.entry.setId).toBe('prod-1'); // not prod-2 (no snapshot), prod-3 (partial), other-4 (other cluster)
    expect(choice.component.component).toBe('etcd');
    expect(choice.unreachableTargets).toEqual([]);
  });

  it("takes a set asked for by id, partial ones too, and refuses another cluster's or one without the component", async () => {
    expect((await choose('prod-3')).entry.setId).toBe('prod-3');
    await expect(choose('other-4')).rejects.toMatchObject({
      type: 'RestoreRefused',
      nonRetryable: true,
      message: "backup set other-4 belongs to cluster other, not prod: refusing to restore another cluster's data",
    });
    await expect(choose('prod-2')).rejects.toMatchObject({
      type: 'RestoreRefused',
      message: 'backup set prod-2 does not hold an etcd snapshot',
    });
    await expect(choose('prod-9')).rejects.toMatchObject({
      type: 'BackupSetNotFound',
      nonRetryable: true,
      message: 'backup set prod-9 was not found in any reachable target',
    });
  });

  it('skips an unreadable target and names it; fails retryably when none can be read', async () => {
    const oneDown = { ...config, storage: [config.storage[0]!, { name: 'down', type: 'local' as const, path: join(dir, 'down') }] };
    const choice = await choose(undefined, oneDown);
    expect(choice.entry.setId).toBe('prod-1');
    expect(choice.unreachableTargets).toEqual([expect.stringMatching(/^down \(/)]);
    await expect(choose('prod-9', oneDown)).rejects.toMatchObject({
      message: expect.stringMatching(/^backup set prod-9 was not found in any reachable target \(unreachable: down \(/),
    });
    const allDown = { ...config, storage: [{ name: 'down', type: 'local' as const, path: join(dir, 'down') }] };
    await expect(choose(undefined, allDown)).rejects.toMatchObject({
      type: 'StorageUnavailable',
      nonRetryable: false,
      message: expect.stringMatching(/^no storage target could be listed: down \(/),
    });
  });

  it('says when the cluster has no complete set with the component', async () => {
    await expect(
      chooseRestoreSet(config, {
        cluster: 'other',
        pick: (m) => m.components.find((c) => c.component === 'agent-cache'),
        what: 'an agent cache',
      }),
    ).rejects.toMatchObject({ type: 'BackupSetNotFound', message: 'no complete backup set with an agent cache for cluster other' });
  });
});
