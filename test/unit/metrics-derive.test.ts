/** Our Prometheus series from the catalog and visibility (src/metrics/derive.ts), and the endpoint serving them. */
import { describe, expect, it } from 'vitest';
import type { BackupManifest, ComponentRecord } from '../../src/common/manifest';
import { catalogSamples, runbookSamples } from '../../src/metrics/derive';
import { metricsEndpointFor, startMetricsServer } from '../../src/metrics/server';
import { ConfigSchema } from '../../src/config/schema';

const artefact = (bytes: number) => ({
  file: 'f',
  key: 'k',
  compression: 'gzip',
  encryption: null,
  bytes,
  sha256: 'x',
  raw: { bytes, sha256: 'x' },
  copies: [],
});
const record = (component: string, startedAt: string, finishedAt: string, bytes: number, node?: string) =>
  ({
    component,
    status: 'ok',
    artefacts: [artefact(bytes)],
    facts: {},
    startedAt,
    finishedAt,
    ...(node ? { node } : {}),
  }) as unknown as ComponentRecord;

function manifest(
  setId: string,
  createdAt: string,
  status: 'complete' | 'partial',
  components: ComponentRecord[],
  verifiedAt?: string,
): BackupManifest {
  return {
    formatVersion: 1,
    tool: 'nnoe-dr',
    setId,
    cluster: 'prod',
    status,
    createdAt,
    completedAt: createdAt,
    workflow: { workflowId: 'w', runId: 'r' },
    components,
    failures: [],
    ...(verifiedAt
      ? { verification: { verifiedAt, drillWorkflowId: 'd', drillRunId: 'r', rto: { etcdMs: 1, phpipamMs: null }, checks: [] } }
      : {}),
  };
}

const value = (samples: ReturnType<typeof catalogSamples>, name: string, component: string) =>
  samples.find((s) => s.name === name && s.labels.component === component)?.value;

describe('metrics from the catalog', () => {
  const sets = [
    manifest('new-partial', '2026-12-04T12:00:00Z', 'partial', [record('etcd', '2026-12-04T12:00:00Z', '2026-12-04T12:00:05Z', 1)]),
    manifest('new', '2026-12-04T06:00:00Z', 'complete', [
      record('etcd', '2026-12-04T06:00:00Z', '2026-12-04T06:00:30Z', 1000),
      record('agent-cache', '2026-12-04T06:00:30Z', '2026-12-04T06:00:40Z', 10, 'node-1'),
      record('agent-cache', '2026-12-04T06:00:40Z', '2026-12-04T06:01:00Z', 20, 'node-2'),
    ]),
    manifest(
      'old',
      '2026-12-03T06:00:00Z',
      'complete',
      [
        record('etcd', '2026-12-03T06:00:00Z', '2026-12-03T06:00:10Z', 900),
        record('phpipam', '2026-12-03T06:00:10Z', '2026-12-03T06:00:20Z', 50),
      ],
      '2026-12-03T07:00:00Z',
    ),
  ];
  const samples = catalogSamples('prod', ['etcd', 'agent-cache', 'phpipam', 'nebula'], sets);

  it('per component: the newest complete set holding it (partial sets do not count), its bytes and duration', () => {
    expect(value(samples, 'nnoe_dr_backup_last_success_timestamp_seconds', 'etcd')).toBe(Date.parse('2026-12-04T06:00:00Z') / 1000);
    expect(value(samples, 'nnoe_dr_backup_last_bytes', 'etcd')).toBe(1000);
    expect(value(samples, 'nnoe_dr_backup_last_duration_seconds', 'etcd')).toBe(30);
    // Per-node parts add up: bytes summed, duration from the first start to the last finish.
    expect(value(samples, 'nnoe_dr_backup_last_bytes', 'agent-cache')).toBe(30);
    expect(value(samples, 'nnoe_dr_backup_last_duration_seconds', 'agent-cache')).toBe(30);
    // phpIPAM's newest complete set is the older one.
    expect(value(samples, 'nnoe_dr_backup_last_success_timestamp_seconds', 'phpipam')).toBe(Date.parse('2026-12-03T06:00:00Z') / 1000);
  });

  it('the newest verification per component; a component never backed up has no series', () => {
    expect(value(samples, 'nnoe_dr_backup_last_verified_timestamp_seconds', 'etcd')).toBe(Date.parse('2026-12-03T07:00:00Z') / 1000);
    expect(value(samples, 'nnoe_dr_backup_last_verified_timestamp_seconds', 'agent-cache')).toBeUndefined();
    expect(samples.filter((s) => s.labels.component === 'nebula')).toEqual([]);
  });
});

describe('metrics from visibility', () => {
  it('the newest finished run of each runbook: outcome, duration, end', () => {
    const samples = runbookSamples('prod', [
      { runbook: 'drill', status: 'completed', startedAt: '2026-12-04T05:00:00Z', closedAt: '2026-12-04T05:02:00Z' },
      { runbook: 'drill', status: 'failed', startedAt: '2026-12-04T06:00:00Z', closedAt: '2026-12-04T06:00:30Z' },
      { runbook: 'etcd-restore', status: 'completed', startedAt: '2026-12-04T07:00:00Z', closedAt: '2026-12-04T07:01:40Z' },
    ]);
    const get = (runbook: string, name: string) => samples.find((s) => s.labels.runbook === runbook && s.name === name)?.value;
    expect(get('drill', 'nnoe_dr_runbook_last_success')).toBe(0);
    expect(get('drill', 'nnoe_dr_runbook_last_duration_seconds')).toBe(30);
    expect(get('etcd-restore', 'nnoe_dr_runbook_last_success')).toBe(1);
    expect(get('etcd-restore', 'nnoe_dr_runbook_last_duration_seconds')).toBe(100);
    expect(get('etcd-restore', 'nnoe_dr_runbook_last_end_timestamp_seconds')).toBe(Date.parse('2026-12-04T07:01:40Z') / 1000);
  });
});

describe('metrics endpoint', () => {
  const base = {
    workDir: '/tmp/w',
    clusters: [
      {
        name: 'prod',
        etcd: { members: [{ name: 'e1', node: 'node-1', clientUrl: 'http://127.0.0.1:2379', peerUrl: 'http://127.0.0.1:2380' }] },
      },
    ],
    storage: [{ name: 'l', type: 'local', path: '/tmp/b' }],
  };

  it('comes from the config per worker kind, a node of its own first; absent means off', () => {
    const config = ConfigSchema.parse({
      ...base,
      metrics: {
        management: { listen: '127.0.0.1:9464' },
        node: { listen: '0.0.0.0:9465' },
        nodes: { 'node-2': { listen: '127.0.0.1:9466' } },
      },
    });
    expect(metricsEndpointFor(config, undefined)).toEqual({ listen: '127.0.0.1:9464' });
    expect(metricsEndpointFor(config, 'node-1')).toEqual({ listen: '0.0.0.0:9465' });
    expect(metricsEndpointFor(config, 'node-2')).toEqual({ listen: '127.0.0.1:9466' });
    expect(metricsEndpointFor(ConfigSchema.parse(base), undefined)).toBeUndefined();
    expect(ConfigSchema.safeParse({ ...base, metrics: { management: { listen: 'http://x:1' } } }).error?.issues[0]?.message).toMatch(
      /^expected host:port/,
    );
  });

  it('a node worker serves its process series on /metrics', async () => {
    const server = await startMetricsServer({ listen: '127.0.0.1:0' }, { config: ConfigSchema.parse(base), kind: 'node', node: 'node-1' });
    try {
      const res = await fetch(`http://${server.address}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^nnoe_dr_process_cpu_seconds_total\{worker="node-node-1"\} /m);
      expect((await fetch(`http://${server.address}/other`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
