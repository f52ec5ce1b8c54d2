import { describe, expect, it } from 'vitest';
import { keyspaceDigestDifference } from '../../src/etcd/keyspace-digest';
import { describeRevisionBump, restoredContentRevision } from '../../src/workflows/etcd-restore';

describe('restored content', () => {
  it("sits at the snapshot revision unbumped, at the newest key revision plus the bump when bumped (etcdutl bumps the key bucket's latest)", () => {
    const snapshot = { revision: 170, keyRevision: 161 }; // compacted at 170, past the newest key
    expect(restoredContentRevision(snapshot, undefined)).toBe(170);
    expect(restoredContentRevision(snapshot, { used: false, by: 0, detail: 'etcdctl 3.4.23 has no --bump-revision' })).toBe(170);
    expect(restoredContentRevision(snapshot, { used: true, by: 1000, detail: '' })).toBe(1161);
    expect(restoredContentRevision({ revision: 42 }, { used: true, by: 1000, detail: '' })).toBe(1042); // older sets: no keyRevision
  });

  it('digests compare by hash and count, and a difference names both', () => {
    const a = { sha256: 'ab'.repeat(32), keys: 3 };
    expect(keyspaceDigestDifference(a, { ...a })).toBeUndefined();
    expect(keyspaceDigestDifference(a, { sha256: 'cd'.repeat(32), keys: 3 })).toBe(
      `content differs from the snapshot's: 3 keys (sha256 ${'cd'.repeat(6)}) where the backup read 3 (sha256 ${'ab'.repeat(6)})`,
    );
  });

  it('reports say whether the revision was bumped and where the content sits', () => {
    const base = { setId: 's', snapshotRevision: 161 };
    expect(describeRevisionBump({ ...base, revisionBump: { used: true, by: 1000, detail: '' }, restoredRevision: 1161 })).toBe(
      "revision bumped by 1000: restored content at revision 1161 (snapshot's 161), all before compacted",
    );
    expect(
      describeRevisionBump({
        ...base,
        revisionBump: { used: false, by: 0, detail: 'etcdctl 3.4.23 has no --bump-revision' },
        restoredRevision: 161,
      }),
    ).toBe('no revision bump (etcdctl 3.4.23 has no --bump-revision): restored content at revision 161');
  });
});
