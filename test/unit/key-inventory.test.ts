/** Key inventory: which sets the configured recipients and held identities still cover (src/catalog/keys.ts). */
import { describe, expect, it } from 'vitest';
import { assessKeys, shortRecipient } from '../../src/catalog/keys';
import type { ArtefactRecord, BackupManifest } from '../../src/common/manifest';

const OLD = `age1${'o'.repeat(58)}`;
const NEW = `age1${'n'.repeat(58)}`;

const artefact = (file: string, recipients: string[] | null): ArtefactRecord => ({
  file,
  key: `s/${file}`,
  compression: 'gzip',
  encryption: recipients ? { format: 'age', recipients } : null,
  bytes: 1,
  sha256: 'x',
  raw: { bytes: 1, sha256: 'y' },
  copies: [],
});
const set = (setId: string, ...artefacts: ArtefactRecord[]) => ({
  setId,
  cluster: 'prod',
  createdAt: '2026-12-01T00:00:00Z',
  manifest: { components: [{ component: 'etcd', status: 'ok', artefacts }] } as unknown as BackupManifest,
});

describe('key inventory', () => {
  it('a set encrypted to a configured, held recipient is fine', () => {
    const inventory = assessKeys([set('a', artefact('etcd.db.gz.age', [NEW]))], [NEW], [NEW]);
    expect(inventory.ok).toBe(true);
    expect(inventory.sets[0]).toMatchObject({
      encrypted: 1,
      artefacts: 1,
      recipients: [NEW],
      retiredRecipients: [],
      openable: true,
      problems: [],
    });
  });

  it('warns when an artefact is encrypted only to recipients no longer configured (even while its identity is held)', () => {
    const inventory = assessKeys([set('a', artefact('etcd.db.gz.age', [OLD]), artefact('dump.sql.gz.age', [OLD, NEW]))], [NEW], [OLD, NEW]);
    expect(inventory.ok).toBe(false);
    expect(inventory.sets[0]!.retiredRecipients).toEqual([OLD]);
    expect(inventory.sets[0]!.openable).toBe(true);
    expect(inventory.sets[0]!.problems).toEqual([
      `etcd.db.gz.age is encrypted only to recipients no longer configured (${shortRecipient(OLD)}): rekey it (nnoe-dr backups rekey) while an identity for them is held`,
    ]);
  });

  it('warns when no identity held here opens an artefact', () => {
    const inventory = assessKeys([set('a', artefact('etcd.db.gz.age', [OLD, NEW]))], [OLD, NEW], [`age1${'z'.repeat(58)}`]);
    expect(inventory.sets[0]!.openable).toBe(false);
    expect(inventory.sets[0]!.problems).toEqual([
      `no identity held here opens etcd.db.gz.age (encrypted to ${shortRecipient(OLD)}, ${shortRecipient(NEW)})`,
    ]);
  });

  it('without an identity configured here it cannot tell who opens a set, and does not warn for that; clear artefacts need no key', () => {
    const inventory = assessKeys([set('a', artefact('etcd.db.gz.age', [NEW]), artefact('cache.tar.gz', null))], [NEW], null);
    expect(inventory.ok).toBe(true);
    expect(inventory.sets[0]).toMatchObject({ encrypted: 1, artefacts: 2, openable: null, problems: [] });
  });
});
