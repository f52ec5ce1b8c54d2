/**
 * A rekey that crashes (failpoints) before the manifests or before the old objects go leaves the set
 * readable, and running it again finishes: src/activities/rekey.ts against two local targets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRekeyActivities } from '../../src/activities/rekey';
import { verifyBackupSet } from '../../src/catalog/catalog';
import { parseConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { createEncryptStream, generateIdentity } from '../../src/crypto';
import { MANIFEST_FORMAT_VERSION } from '../../src/common/manifest';
import { openStore } from '../../src/storage';
import { writeObject } from '../support/objects';

const SET = 'prod-20261204-120000';
let dir: string;
let keys: { old: { identity: string; recipient: string }; next: { identity: string; recipient: string } };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nnoe-rekey-'));
  keys = { old: await generateIdentity(), next: await generateIdentity() };
});
afterAll(async () => {
  delete process.env.NNOE_DR_FAILPOINTS;
  await rm(dir, { recursive: true, force: true });
});

async function configWith(name: string, recipients: string[], identities: string[]): Promise<Config> {
  const identityFile = join(dir, `${name}-identity.txt`);
  await writeFile(identityFile, `${identities.join('\n')}\n`, { mode: 0o600 });
  return parseConfig({
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
    encryption: { recipients, identity: { file: identityFile } },
  });
}

/** A set of one agent-cache archive encrypted to the old recipient, the same bytes in both targets. */
async function writeSet(config: Config): Promise<void> {
  const raw = Buffer.from('cache bytes '.repeat(1000));
  const gz = gzipSync(raw);
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.from([gz]).pipe(createEncryptStream([keys.old.recipient]))) chunks.push(chunk as Buffer);
  const stored = Buffer.concat(chunks);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const artefact = {
    file: 'cache.tar.gz.age',
    key: `${SET}/cache.tar.gz.age`,
    compression: 'gzip',
    encryption: { format: 'age', recipients: [keys.old.recipient] },
    bytes: stored.length,
    sha256: sha(stored),
    raw: { bytes: raw.length, sha256: sha(raw) },
    copies: [],
  };
  const manifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    tool: 'nnoe-dr',
    setId: SET,
    cluster: 'prod',
    status: 'complete',
    createdAt: '2026-12-04T12:00:00Z',
    completedAt: '2026-12-04T12:00:00Z',
    workflow: { workflowId: 'w', runId: 'r' },
    components: [{ component: 'agent-cache', node: 'n1', status: 'ok', artefacts: [artefact] }],
    failures: [],
  };
  for (const target of config.storage) {
    const store = await openStore(target);
    await writeObject(store, artefact.key, stored);
    await writeObject(store, `${SET}/manifest.json`, JSON.stringify(manifest));
  }
}

const arm = async (point: string | null) => {
  const file = join(dir, 'failpoints.json');
  await writeFile(file, JSON.stringify(point ? { [point]: 'error' } : {}));
  process.env.NNOE_DR_FAILPOINTS = file;
};
const rekey = (config: Config) =>
  new MockActivityEnvironment().run(createRekeyActivities({ config }).rekeySet, { setId: SET, targets: ['a', 'b'] });
const verifies = async (config: Config) =>
  (await verifyBackupSet(config, SET)).checks.map((c) => `${c.target} ${c.ok ? 'ok' : c.problems.join('; ')}`);

describe('rekey after a crash', () => {
  it('every point of a crash leaves the set readable; running again finishes with the old identity no longer needed', async () => {
    const rotating = await configWith('both', [keys.next.recipient], [keys.old.identity, keys.next.identity]);
    const oldOnly = await configWith('old', [keys.old.recipient], [keys.old.identity]);
    const newOnly = await configWith('new', [keys.next.recipient], [keys.next.identity]);
    await writeSet(rotating);
    expect(await verifies(oldOnly)).toEqual(['a ok', 'b ok']);

    // Crash after the new copies, before any manifest: the manifests still point at the old objects.
    await arm(`rekey-before-manifests:${SET}`);
    await expect(rekey(rotating)).rejects.toThrow(/injected fault at failpoint rekey-before-manifests/);
    expect(await verifies(oldOnly)).toEqual(['a ok', 'b ok']);

    // Crash after the manifests, before the old objects go: the new copies are what the manifests name.
    await arm(`rekey-before-removal:${SET}`);
    await expect(rekey(rotating)).rejects.toThrow(/injected fault at failpoint rekey-before-removal/);
    expect(await verifies(newOnly)).toEqual(['a ok', 'b ok']);

    // Again, no fault: nothing left to rekey, the old objects are removed from both targets.
    await arm(null);
    expect(await rekey(rotating)).toEqual({ setId: SET, rekeyed: [], removed: 2 });
    expect(await verifies(newOnly)).toEqual(['a ok', 'b ok']);
    for (const target of rotating.storage) {
      expect((await (await openStore(target)).list(`${SET}/`)).sort()).toEqual([
        `${SET}/manifest.json`,
        expect.stringMatching(new RegExp(`^${SET}/rekey-[0-9a-f]{12}/cache\\.tar\\.gz\\.age$`)),
      ]);
    }
  });
});
