/**
 * The restore drill's pure parts: which etcd and phpIPAM comparisons pass, fail or are skipped, the
 * Prometheus textfile (one file for every cluster), the scratch schema name, the manifest
 * fingerprint that guards the marking, the daily schedule and the `drills` config section.
 */
import { describe, expect, it } from 'vitest';
import { problemsOf } from './config-problems';
import { drillSchemaName, etcdChecks, manifestFingerprint, phpipamChecks, type EtcdObservation } from '../../src/drill/checks';
import { renderDrillMetrics } from '../../src/drill/metrics';
import type { BackupManifest, EtcdSnapshotFacts } from '../../src/common/manifest';
import { drillScheduleOptions, DRILL_CRON } from '../../src/client/schedules';
import { parseConfig } from '../../src/config/load';

const facts: EtcdSnapshotFacts = {
  member: 'etcd-1',
  memberId: '1',
  clusterId: '2',
  etcdVersion: '3.4.23',
  revision: 120,
  hash: 777,
  totalKey: 300,
  totalSize: 1 << 20,
  trailerVerified: true,
  hashKV: { revision: 120, hash: 4242, compactRevision: 0 },
};

const seen = (over: Partial<EtcdObservation> = {}): EtcdObservation => ({
  status: { revision: 120, hash: 777, totalKey: 300, totalSize: 1 << 20, tool: 'etcdctl 3.4.23', totalKeyCounts: 'bucket-entries' },
  revisions: { keyRevision: 120, compactRevision: 0, revision: 120 },
  scratchRevision: 120,
  hashKV: { hash: 4242, compactRevision: '0', revision: '120' },
  keys: { counted: 57, scanned: 57 },
  criticalKeys: [{ key: '/nnoe/dns/zones/example.com', found: true, valueMatches: true }],
  ...over,
});

const failed = (checks: ReturnType<typeof etcdChecks>) => checks.filter((c) => !c.ok && !c.skipped).map((c) => c.name);
const skipped = (checks: ReturnType<typeof etcdChecks>) => checks.filter((c) => c.skipped).map((c) => c.name);

describe('etcd drill checks', () => {
  it('pass when the restore reproduces every recorded fact', () => {
    const checks = etcdChecks(facts, seen());
    expect(failed(checks)).toEqual([]);
    expect(skipped(checks)).toEqual([]);
    expect(checks.map((c) => c.name)).toEqual([
      'snapshot revision',
      'snapshot status hash',
      'snapshot status totalKey',
      'scratch member revision',
      'hashKV at the snapshot revision',
      'live keys at the snapshot revision (count vs full scan)',
      'critical key /nnoe/dns/zones/example.com',
    ]);
  });

  it('fail on another hashKV, revision or totalKey, naming expected and actual', () => {
    const checks = etcdChecks(facts, seen({ hashKV: { hash: 1, compactRevision: '0', revision: '120' }, scratchRevision: 119 }));
    expect(failed(checks)).toEqual(['scratch member revision', 'hashKV at the snapshot revision']);
    expect(checks.find((c) => c.name === 'hashKV at the snapshot revision')).toMatchObject({ expected: 4242, actual: 1 });
    expect(failed(etcdChecks({ ...facts, totalKey: 9 }, seen()))).toEqual(['snapshot status totalKey']);
  });

  it("compare the live keys the backup counted with the scratch member's scan", () => {
    const counted = { ...facts, liveKeys: seen().keys.scanned };
    expect(failed(etcdChecks(counted, seen()))).toEqual([]);
    expect(etcdChecks(counted, seen()).map((c) => c.name)).toContain("live keys at the snapshot revision equal the backup's count");
    expect(failed(etcdChecks({ ...counted, liveKeys: counted.liveKeys + 1 }, seen()))).toEqual([
      "live keys at the snapshot revision equal the backup's count",
    ]);
  });

  it('compare totalKey only between readings that count the same thing', () => {
    const read36 = (totalKey: number) =>
      seen({ status: { ...seen().status, totalKey, tool: 'etcdutl 3.6.17', totalKeyCounts: 'live-keys', storageVersion: '3.6.0' } });
    // A 3.4/3.5 reading in the manifest (or none recorded: older manifests) against a 3.6 reading: not comparable.
    const mixed = etcdChecks(facts, read36(57));
    expect(failed(mixed)).toEqual([]);
    expect(mixed.find((c) => c.name === 'snapshot status totalKey')).toMatchObject({
      skipped: true,
      detail: expect.stringMatching(/recorded by etcdctl 3.4 as bbolt entries.*read by etcdutl 3.6.17 as live keys/),
    });
    const both36 = { ...facts, totalKey: 57, snapshotTool: 'etcdutl 3.6.17', totalKeyCounts: 'live-keys' as const };
    expect(failed(etcdChecks(both36, read36(57)))).toEqual([]);
    expect(skipped(etcdChecks(both36, read36(57)))).toEqual([]);
    expect(failed(etcdChecks(both36, read36(56)))).toEqual(['snapshot status totalKey']);
    // A 3.5 reading (etcdutl 3.5.x) against a 3.4 one: both count bucket entries.
    expect(failed(etcdChecks({ ...facts, snapshotTool: 'etcdutl 3.5.16', totalKeyCounts: 'bucket-entries' }, seen()))).toEqual([]);
  });

  it('skip hashKV when the backup recorded none, or at another compaction point; never pass it silently', () => {
    const { hashKV: _none, ...older } = facts;
    expect(skipped(etcdChecks(older, seen()))).toEqual(['hashKV at the snapshot revision']);
    const compacted = etcdChecks(facts, seen({ hashKV: { hash: 1, compactRevision: '100', revision: '120' } }));
    expect(failed(compacted)).toEqual([]);
    expect(compacted.find((c) => c.skipped)?.detail).toMatch(/compacted at revision 100 in the scratch member, 0 when recorded/);
    expect(failed(etcdChecks(facts, seen({ hashKV: null })))).toEqual(['hashKV at the snapshot revision']);
  });

  it('pass on a snapshot taken after a compaction at the head: the restored revision is the compaction point, not the newest key', () => {
    const compactedAtHead = { revision: 161, keyRevision: 10, compactRevision: 161 };
    const seenCompacted = seen({
      status: { revision: 10, hash: 777, totalKey: 300, totalSize: 1 << 20, tool: 'etcdctl 3.4.23', totalKeyCounts: 'bucket-entries' },
      revisions: { keyRevision: 10, compactRevision: 161, revision: 161 },
      scratchRevision: 161,
      hashKV: { hash: 4242, compactRevision: '161', revision: '161' },
    });
    expect(
      failed(etcdChecks({ ...facts, ...compactedAtHead, hashKV: { revision: 161, hash: 4242, compactRevision: 161 } }, seenCompacted)),
    ).toEqual([]);
    // A set recorded before the compaction point was (manifest revision = the newest key's) is still the same snapshot.
    const { hashKV: _none, ...older } = facts;
    expect(failed(etcdChecks({ ...older, revision: 10 }, seenCompacted))).toEqual([]);
    expect(failed(etcdChecks({ ...older, revision: 11 }, seenCompacted))).toEqual(['snapshot revision']);
  });

  it('fail on a missing critical key or one with another value, and on an incomplete scan', () => {
    const checks = etcdChecks(
      facts,
      seen({
        keys: { counted: 57, scanned: 50 },
        criticalKeys: [
          { key: '/a', found: false, valueMatches: false },
          { key: '/b', expectedValue: 'x', found: true, valueMatches: false },
        ],
      }),
    );
    expect(failed(checks)).toEqual(['live keys at the snapshot revision (count vs full scan)', 'critical key /a', 'critical key /b']);
  });
});

describe('phpIPAM drill checks', () => {
  it('one passing check for equal tables, one failing check per mismatch', () => {
    const tables = [{ name: 'ipaddresses', engine: 'InnoDB', rows: 2000, checksum: '1' }];
    expect(phpipamChecks(tables, [], 'phpipam_drill_x')).toEqual([
      {
        component: 'phpipam',
        name: 'row counts and CHECKSUM TABLE',
        ok: true,
        detail: '1 tables of phpipam_drill_x equal to the manifest',
      },
    ]);
    expect(
      phpipamChecks(
        tables,
        [
          { table: 'ipaddresses', what: 'checksum', expected: '2', actual: '1' },
          { table: 'logs', what: 'missing table', expected: 'present', actual: 'absent' },
        ],
        's',
      ),
    ).toEqual([
      { component: 'phpipam', name: 'table ipaddresses: checksum', ok: false, expected: '2', actual: '1' },
      { component: 'phpipam', name: 'table logs: missing table', ok: false, expected: 'present', actual: 'absent' },
    ]);
  });
});

describe('drill metrics textfile', () => {
  it('writes success, RTO per component and the run time in the textfile format', () => {
    const { text, metrics } = renderDrillMetrics(null, {
      cluster: 'prod',
      success: true,
      rtoSeconds: { etcd: 3.25, phpipam: 1.5 },
      runAt: 1_800_000_000,
    });
    expect(text).toBe(
      [
        '# HELP nnoe_dr_drill_success 1 if the last restore drill of the cluster passed and marked its set verified, else 0.',
        '# TYPE nnoe_dr_drill_success gauge',
        'nnoe_dr_drill_success{cluster="prod"} 1',
        '# HELP nnoe_dr_drill_rto_seconds Restore time measured by the last drill, per component (fetch, decrypt, decompress, restore, ready).',
        '# TYPE nnoe_dr_drill_rto_seconds gauge',
        'nnoe_dr_drill_rto_seconds{cluster="prod",component="etcd"} 3.25',
        'nnoe_dr_drill_rto_seconds{cluster="prod",component="phpipam"} 1.5',
        '# HELP nnoe_dr_drill_last_run_timestamp_seconds When the last restore drill of the cluster finished, in Unix seconds.',
        '# TYPE nnoe_dr_drill_last_run_timestamp_seconds gauge',
        'nnoe_dr_drill_last_run_timestamp_seconds{cluster="prod"} 1800000000',
        '# HELP nnoe_dr_drill_last_success_timestamp_seconds When a restore drill of the cluster last passed, in Unix seconds.',
        '# TYPE nnoe_dr_drill_last_success_timestamp_seconds gauge',
        'nnoe_dr_drill_last_success_timestamp_seconds{cluster="prod"} 1800000000',
        '',
      ].join('\n'),
    );
    expect(metrics).toEqual({
      success: 1,
      rtoSeconds: { etcd: 3.25, phpipam: 1.5 },
      lastRunTimestampSeconds: 1_800_000_000,
      lastSuccessTimestampSeconds: 1_800_000_000,
    });
  });

  it("replaces one cluster's series, keeps the others', and keeps the last success through a failure", () => {
    const first = renderDrillMetrics(null, { cluster: 'prod', success: true, rtoSeconds: { etcd: 3 }, runAt: 100 }).text;
    const both = renderDrillMetrics(first, { cluster: 'lab', success: true, rtoSeconds: { etcd: 1 }, runAt: 200 }).text;
    const { text, metrics } = renderDrillMetrics(both, { cluster: 'prod', success: false, rtoSeconds: {}, runAt: 300 });
    const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(samples).toEqual([
      'nnoe_dr_drill_success{cluster="lab"} 1',
      'nnoe_dr_drill_success{cluster="prod"} 0',
      'nnoe_dr_drill_rto_seconds{cluster="lab",component="etcd"} 1',
      'nnoe_dr_drill_last_run_timestamp_seconds{cluster="lab"} 200',
      'nnoe_dr_drill_last_run_timestamp_seconds{cluster="prod"} 300',
      'nnoe_dr_drill_last_success_timestamp_seconds{cluster="lab"} 200',
      'nnoe_dr_drill_last_success_timestamp_seconds{cluster="prod"} 100',
    ]);
    expect(metrics).toEqual({ success: 0, rtoSeconds: {}, lastRunTimestampSeconds: 300, lastSuccessTimestampSeconds: 100 });
    // Lines of other tools in the file are not ours to keep; a never-passing cluster has no last-success series.
    const foreign = renderDrillMetrics('node_load1 3\n', { cluster: 'x', success: false, rtoSeconds: {}, runAt: 1 });
    expect(foreign.text).not.toContain('node_load1');
    expect(foreign.metrics.lastSuccessTimestampSeconds).toBeNull();
  });
});

describe('drill names and guards', () => {
  it('names the scratch schema after the database and the drill time, refusing names MariaDB cannot take', () => {
    expect(drillSchemaName('phpipam', new Date('2026-11-27T05:00:02.123Z'))).toBe('phpipam_drill_20261127_050002');
    expect(() => drillSchemaName('x'.repeat(60), new Date())).toThrow(/not a usable schema name/);
  });

  it('fingerprints a manifest without its verification', () => {
    const manifest = { formatVersion: 1, tool: 'nnoe-dr', setId: 's', components: [] } as unknown as BackupManifest;
    const verified = {
      ...manifest,
      verification: { verifiedAt: 'now', drillWorkflowId: 'w', drillRunId: 'r', rto: { etcdMs: 1, phpipamMs: null }, checks: [] },
    };
    expect(manifestFingerprint(verified)).toBe(manifestFingerprint(manifest));
    expect(manifestFingerprint({ ...manifest, setId: 't' })).not.toBe(manifestFingerprint(manifest));
  });
});

const baseConfig = {
  workDir: '/var/lib/nnoe-dr/work',
  clusters: [
    {
      name: 'prod',
      etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
    },
  ],
  storage: [{ name: 'local', type: 'local', path: '/backup/nnoe' }],
};

describe('drills config and schedule', () => {
  it('is optional, takes a URL or a secret reference, and wants a .prom textfile', () => {
    expect(parseConfig(baseConfig).drills).toBeUndefined();
    expect(
      parseConfig({
        ...baseConfig,
        drills: { alertWebhook: 'https://hooks.example/x', metricsFile: '/var/lib/node_exporter/nnoe_dr.prom' },
      }).drills,
    ).toEqual({ alertWebhook: 'https://hooks.example/x', alertTimeoutSeconds: 10, metricsFile: '/var/lib/node_exporter/nnoe_dr.prom' });
    expect(parseConfig({ ...baseConfig, drills: { alertWebhook: { env: 'NNOE_DRILL_WEBHOOK' } } }).drills?.alertWebhook).toEqual({
      env: 'NNOE_DRILL_WEBHOOK',
    });
    expect(problemsOf({ ...baseConfig, drills: { alertWebhook: 'hooks.example/x', metricsFile: '/tmp/drill.txt' } }).join('\n')).toMatch(
      /drills\.alertWebhook.*expected a webhook URL[\s\S]*drills\.metricsFile.*\.prom/,
    );
  });

  it('schedules a daily drill of the newest complete set per cluster, overlap SKIP', () => {
    const options = drillScheduleOptions(parseConfig(baseConfig), 'prod', 'production');
    expect(options.scheduleId).toBe('nnoe-dr-drill-prod');
    expect(options.spec.cronExpressions).toEqual([DRILL_CRON]);
    expect(options.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'restoreDrillWorkflow',
      workflowId: 'drill-prod',
      taskQueue: 'nnoe-dr',
      args: [{ cluster: 'prod' }],
    });
    expect(options.policies?.overlap).toBe('SKIP');
  });
});
