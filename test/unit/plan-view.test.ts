/**
 * `restore plan <id>` prints every plan shape the `plan` query returns (issue 12 item 20: it
 * crashed reading `snapshot.revision` on phpIPAM-restore and DR runs).
 */
import { describe, expect, it } from 'vitest';
import { describeEtcdDryRun, describePlanView } from '../../src/common/plan-view';

const bytes = (n: number) => `${n} B`;

describe('restore plan views', () => {
  it("prints an etcd restore plan with each member's dirs", () => {
    const lines = describePlanView(
      'etcd-restore-x',
      {
        state: 'awaiting-approval',
        strategy: 'all-members',
        plan: {
          cluster: 'prod',
          setId: 'prod-1',
          setCreatedAt: '2026-12-04T06:00:00Z',
          snapshot: { revision: 42, totalKey: 27, totalKeyCounts: 'bucket-entries', liveKeys: 13 },
        },
        staged: [{ member: 'etcd-1', dataDir: '/d/old', restoredDataDir: '/d/new', freeBytes: 10 }],
      },
      bytes,
    );
    expect(lines).toEqual([
      'restore plan (all-members) for cluster prod: set prod-1 taken 2026-12-04T06:00:00Z, revision 42, 13 live keys',
      '  etcd-1: /d/old -> /d/new (snapshot checked; 10 B free before the new dir)',
    ]);
  });

  it('says whether the restored dirs were revision-bumped, and to which revision', () => {
    const view = (revisionBump: object) => ({
      state: 'awaiting-approval',
      strategy: 'all-members',
      staged: [],
      plan: {
        cluster: 'prod',
        setId: 'prod-1',
        setCreatedAt: 't',
        snapshot: { revision: 42, totalKey: 27, totalKeyCounts: 'bucket-entries', liveKeys: 13 },
      },
      restored: [{ member: 'etcd-1', dataDir: '/d/new', tool: 'etcdutl', revisionBump }],
    });
    expect(
      describePlanView(
        'x',
        view({ used: true, by: 1000, detail: '+1000 and compacted (etcdutl 3.5.16 --bump-revision --mark-compacted)' }),
        bytes,
      )[1],
    ).toBe(
      '  revision bump: the restored content sits at revision 1042, +1000 and compacted (etcdutl 3.5.16 --bump-revision --mark-compacted)',
    );
    // Compacted at the head: etcdutl bumps from the newest key's revision, not the compaction point.
    const compacted = view({ used: true, by: 1000, detail: '+1000' });
    (compacted.plan.snapshot as Record<string, unknown>).keyRevision = 30;
    expect(describePlanView('x', compacted, bytes)[1]).toBe('  revision bump: the restored content sits at revision 1030, +1000');
    expect(
      describePlanView('x', view({ used: false, by: 0, detail: 'etcdctl 3.4.23 has no --bump-revision (etcdutl 3.5.10+ has)' }), bytes)[1],
    ).toBe('  revision bump: etcdctl 3.4.23 has no --bump-revision (etcdutl 3.5.10+ has)');
  });

  it('prints a phpIPAM restore plan (no snapshot in it)', () => {
    const lines = describePlanView(
      'phpipam-restore-x',
      {
        state: 'awaiting-approval',
        plan: {
          cluster: 'prod',
          setId: 'prod-1',
          setCreatedAt: 't',
          database: 'phpipam',
          staging: 'phpipam_restore_1',
          live: 'phpipam',
          keepAs: 'phpipam_pre_restore_1',
          facts: { tables: [{}, {}] },
        },
      },
      bytes,
    );
    expect(lines[0]).toBe(
      'phpIPAM restore plan for cluster prod: set prod-1 taken t into phpipam: load into phpipam_restore_1, swap with phpipam (old tables kept as phpipam_pre_restore_1), 2 tables',
    );
  });

  it('prints a disaster recovery plan, and any other plan by its set', () => {
    expect(
      describePlanView(
        'dr-x',
        {
          state: 'awaiting-approval',
          plan: {
            cluster: 'prod',
            setId: 'prod-1',
            setCreatedAt: 't',
            phpipam: true,
            agentNodes: ['node-1'],
            checks: { dns: 1, dhcp: 2, metrics: 0 },
          },
        },
        bytes,
      ),
    ).toEqual([
      'disaster recovery plan for cluster prod: set prod-1 taken t; etcd, phpIPAM, agents node-1, checks: 1 DNS, 2 DHCP, 0 metrics',
    ]);
    expect(describePlanView('other', { state: 'x', plan: { setId: 's' } }, bytes)).toEqual(['other: set s']);
    expect(
      describePlanView(
        'member-x',
        {
          state: 'awaiting-approval',
          plan: { cluster: 'prod', member: 'etcd-2', node: 'node-2', healthyOthers: ['etcd-1', 'etcd-3'], memberIsHealthy: true },
        },
        bytes,
      ),
    ).toEqual([
      'replacement plan for cluster prod: etcd-2 on node-2 (HEALTHY, forced) is removed and re-added empty; it syncs from etcd-1, etcd-3',
    ]);
    expect(describePlanView('early', { state: 'planning', plan: null }, bytes)).toEqual(['early: planning']);
  });

  it('names what a key count counts (issue 12 item 25: 27 bbolt entries were shown as keys)', async () => {
    const { describeKeyCount } = await import('../../src/common/manifest');
    expect(describeKeyCount({ totalKey: 27, totalKeyCounts: 'bucket-entries', liveKeys: 13 })).toBe('13 live keys');
    expect(describeKeyCount({ totalKey: 27, totalKeyCounts: 'bucket-entries' })).toBe('27 bbolt entries (not live keys)');
    expect(describeKeyCount({ totalKey: 13, totalKeyCounts: 'live-keys' })).toBe('13 live keys');
  });
});

describe('restore etcd --dry-run (issue 14 item 5: it printed only "nothing changed")', () => {
  const result = {
    setId: 'prod-1',
    strategy: 'all-members' as const,
    dryRun: true,
    approvedBy: null,
    snapshotRevision: 42,
    check: null,
    revisionBump: null,
    dataDirs: [
      { member: 'etcd-1', old: '/d1/old', restored: '/d1/restored-x' },
      { member: 'etcd-2', old: '/d2/old', restored: '/d2/restored-x' },
    ],
    agentRepublishPlan: [
      {
        node: 'node-1',
        prefix: '/nnoe',
        republish: {
          dryRun: true,
          notAfterRevision: 42,
          revision: 42,
          prefixes: [{ prefix: '/nnoe/dns/', keys: 3, put: 0, skippedNewer: 0, skippedChanged: 0 }],
        },
      },
    ],
  };
  const nodeOf = (m: string) => (({ 'etcd-1': 'node-1', 'etcd-2': 'node-2' }) as Record<string, string>)[m];

  it('prints the plan: members with old and new data dirs, stop order, agents to republish, what would change', () => {
    const lines = describeEtcdDryRun('prod', result, { nodeOf, revisionBump: 1000 });
    expect(lines[0]).toBe(
      'dry run of prod-1 for cluster prod (snapshot revision 42, all-members): nothing was stopped or written; a restore would',
    );
    expect(lines).toContain('       etcd-1 on node-1: /d1/old -> /d1/restored-x');
    expect(lines).toContain('       etcd-2 on node-2: /d2/old -> /d2/restored-x');
    expect(lines).toContain('  3. stop etcd-1, etcd-2: the followers at once, the leader last');
    expect(lines).toContain('       node-1: /nnoe/dns/ 3 keys');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}- the keyspace goes back to revision 42/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}- revisions jump by 1000 and are marked compacted/));
  });

  it('first-node-then-add: one member restored, the others added on empty dirs; no bump when off', () => {
    const lines = describeEtcdDryRun(
      'prod',
      { ...result, strategy: 'first-node-then-add', agentRepublishPlan: undefined },
      { nodeOf, revisionBump: 0 },
    );
    expect(lines).toContainEqual(expect.stringContaining('only etcd-1 now, the others join empty'));
    expect(lines).toContainEqual(expect.stringContaining('`member add` etcd-2 one at a time on empty data dirs'));
    expect(lines).toContain('       (no agents configured, or restartAgents: false)');
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}- no revision bump/));
  });
});
