/**
 * `nnoe-dr status` on the world: a healthy cluster (a fresh full set, drilled, the capture keeping
 * up, both agents serving) exits 0; a backup older than its objective, a failed drill and a deaf
 * agent each exit 1 naming what is out and why. Its config is the world's without the dead S3
 * target (an unreadable target is itself out of objective) and with objectives of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { inject } from 'vitest';
import { freePorts } from '../src/sandbox/ports';
import { parse, stringify } from 'yaml';
import { changeCaptureId, startBackupSet, startChangeCapture, startDrill, startRecoverAgents } from '../src/client/temporal';
import { stopCaptureSignal } from '../src/workflows/change-capture';
import { supervisorctl } from '../src/sandbox/supervisor';
import { CLUSTER, memberClient, openHarness, pollUntil, runCli, startMembers, tempDir, type Harness } from './support/harness';
import { VARIANTS } from './support/shared';
import type { StatusReport } from '../src/client/cli-status';

let h: Harness;
let scratch: { path: string; remove(): Promise<void> };
const spawned: ChildProcess[] = [];

/** The world's config without the dead target (and the variant clusters, unless kept), with these objectives for the main cluster. */
function configWith(name: string, objectives: Record<string, unknown>, extra: { keepVariants?: boolean; metrics?: object } = {}): string {
  const raw = parse(readFileSync(h.configPath, 'utf8')) as {
    storage: Array<{ name: string }>;
    clusters: Array<{ name: string; objectives?: unknown }>;
    metrics?: object;
  };
  raw.storage = raw.storage.filter((t) => t.name !== VARIANTS.deadS3Target);
  raw.clusters = raw.clusters
    .filter((c) => extra.keepVariants || c.name === CLUSTER)
    .map((c) => (c.name === CLUSTER ? { ...c, objectives } : c));
  if (extra.metrics) raw.metrics = extra.metrics;
  const path = join(scratch.path, `${name}.yaml`);
  writeFileSync(path, stringify(raw));
  return path;
}

/** Starts a program of this test; stopped in afterAll. Resolves once `ready` shows on its stdout. */
async function start(command: string, args: string[], log: string, ready: string): Promise<ChildProcess> {
  const child = spawn(command, args, { cwd: join(__dirname, '..'), stdio: ['ignore', 'pipe', openSync(join(scratch.path, log), 'a')] });
  spawned.push(child);
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`${command} did not start within 60 s; see ${log}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes(ready)) {
        clearTimeout(timer);
        done();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${command} exited with ${code}; see ${log}`));
    });
  });
  child.stdout!.resume();
  return child;
}

const status = async (configPath: string) => {
  const run = await runCli(configPath, '--json', 'status', '--cluster', CLUSTER);
  return { code: run.code, err: run.err, report: JSON.parse(run.out || '{}') as StatusReport };
};
const outOf = (report: StatusReport) => report.clusters.flatMap((c) => c.lines).filter((l) => !l.ok);

beforeAll(async () => {
  h = await openHarness();
  scratch = await tempDir('status');
  // The config's critical key, as a zone the agents render: a drill checks the set holds it.
  const etcd = await memberClient(h.config, 'etcd-1');
  try {
    await etcd
      .put('/nnoe/dns/zones/example.com')
      .value(JSON.stringify({ domain: 'example.com', ttl: 300, records: [{ name: 'www', type: 'A', value: '10.0.0.1' }] }));
  } finally {
    etcd.close();
  }
  // Earlier files restart etcd members: every agent serving before these tests judge them.
  await (await startRecoverAgents(h.client, h.config, { cluster: CLUSTER })).result();
});

afterAll(async () => {
  if (h) {
    // The capture ends before anything else: files after this one start the cluster's capture by the same id.
    const capture = h.client.workflow.getHandle(changeCaptureId(CLUSTER));
    if (
      await capture.signal(stopCaptureSignal).then(
        () => true,
        () => false,
      )
    )
      await capture.result().catch(() => undefined);
  }
  await Promise.all(
    spawned
      .filter((c) => c.exitCode === null)
      .map(
        (c) =>
          new Promise((done) => {
            c.once('exit', done);
            c.kill('SIGTERM');
          }),
      ),
  );
  if (h) {
    await startMembers(
      h.world,
      h.config,
      h.world.etcd.members.map((m) => m.name),
    );
    await (await startRecoverAgents(h.client, h.config, { cluster: CLUSTER })).result().catch(() => undefined);
    await h.close();
  }
  await scratch?.remove();
});

describe('nnoe-dr status', () => {
  it('a healthy cluster: a fresh full set drilled, the capture keeping up, agents serving: exit 0', async () => {
    const set = await (await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })).result();
    expect(set.manifest.status).toBe('complete');
    await (await startDrill(h.client, h.config, { cluster: CLUSTER, setId: set.setId })).result();
    await startChangeCapture(h.client, h.config, { cluster: CLUSTER, flushMs: 200 });
    const healthy = configWith('healthy', { backupMaxAge: '1h', verifiedMaxAge: '1h' });

    const { code, report, err } = await pollUntil(
      async () => {
        const s = await status(healthy);
        return /^running, durable up to revision \d+/.test(
          s.report.clusters?.[0]?.lines.find((l) => l.subject === 'capture')?.summary ?? '',
        )
          ? s
          : undefined;
      },
      60_000,
      'status to see the capture running from its first revision',
    );
    expect(outOf(report), err).toEqual([]);
    expect(code).toBe(0);
    const lines = report.clusters[0]!.lines;
    expect(lines.map((l) => l.subject)).toEqual([
      'etcd',
      'phpipam',
      'agent-cache',
      'agent-config',
      'nebula',
      'drill',
      'capture',
      'schedules',
      'runbooks',
      'agent node-1',
      'agent node-2',
    ]);
    for (const component of ['etcd', 'phpipam', 'agent-cache', 'agent-config', 'nebula']) {
      expect(lines.find((l) => l.subject === component)!.summary).toMatch(
        new RegExp(`^newest ${set.setId} \\d+s old \\(limit 1h\\); verified ${set.setId} \\d+s ago \\(limit 1h\\)$`),
      );
    }
    expect(lines.find((l) => l.subject === 'drill')!.summary).toMatch(/^newest drill drill-nnoe-local-\S+ passed/);
    expect(lines.find((l) => l.subject === 'capture')!.summary).toMatch(
      /^running, durable up to revision \d+, etcd at \d+: lag \d+ revisions \(limit 1000\)$/,
    );

    const text = await runCli(healthy, 'status', '--cluster', CLUSTER);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^nnoe-local\s+etcd\s+ok\s+newest /m);
    expect(text.out).toMatch(/^every objective met/m);
  }, 600_000);

  it("a real Prometheus scraping a worker sees our series change after a backup, beside the Temporal SDK's own", async () => {
    const [ours, sdk, prometheusPort] = await freePorts(3);
    // A second management worker on the world's queue (same code, same bundle), serving both endpoints.
    const workerConfig = configWith(
      'metrics',
      {},
      {
        keepVariants: true,
        metrics: { management: { listen: `127.0.0.1:${ours}`, temporalListen: `127.0.0.1:${sdk}` }, refreshSeconds: 1 },
      },
    );
    await start(
      process.execPath,
      ['--import', 'tsx', 'src/worker.ts', '--config', workerConfig, '--workflow-bundle', inject('world').workflowBundlePath],
      'worker.log',
      'polling',
    );
    const promConfig = join(scratch.path, 'prometheus.yml');
    writeFileSync(
      promConfig,
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        scrape_configs: [
          { job_name: 'nnoe-dr', static_configs: [{ targets: [`127.0.0.1:${ours}`] }] },
          { job_name: 'temporal-sdk', static_configs: [{ targets: [`127.0.0.1:${sdk}`] }] },
        ],
      }),
    );
    // Prometheus logs to stderr; its port answering is the readiness signal here.
    const prometheus = spawn(
      'prometheus',
      [
        `--config.file=${promConfig}`,
        `--storage.tsdb.path=${join(scratch.path, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${prometheusPort}`,
      ],
      { stdio: ['ignore', 'ignore', openSync(join(scratch.path, 'prometheus.log'), 'a')] },
    );
    spawned.push(prometheus);
    const query = async (q: string): Promise<number[]> => {
      const body = (await (await fetch(`http://127.0.0.1:${prometheusPort}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as {
        data: { result: Array<{ value: [number, string] }> };
      };
      return body.data.result.map((r) => Number(r.value[1]));
    };
    const lastEtcd = `nnoe_dr_backup_last_success_timestamp_seconds{job="nnoe-dr",cluster="${CLUSTER}",component="etcd"}`;
    const [before] = await pollUntil(
      async () => {
        const v = await query(lastEtcd);
        return v.length > 0 ? v : undefined;
      },
      60_000,
      'Prometheus to scrape the newest etcd backup time',
    );

    const set = await (await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['etcd'], targets: ['local'] })).result();
    const created = Date.parse(set.manifest.createdAt) / 1000;
    expect(created).toBeGreaterThan(before!);
    await pollUntil(
      async () => Math.abs((await query(lastEtcd))[0]! - created) < 0.01 || undefined,
      30_000,
      'Prometheus to see the new set',
    );
    expect((await query(`nnoe_dr_backup_last_bytes{cluster="${CLUSTER}",component="etcd"}`))[0]).toBe(
      set.manifest.components[0]!.artefacts.reduce((n, a) => n + a.bytes, 0),
    );
    expect(await query(`nnoe_dr_runbook_last_success{cluster="${CLUSTER}",runbook="backup-set"}`)).toEqual([1]);
    expect(await query('nnoe_dr_task_queue_pollers{kind="node",node="node-1"}')).toEqual([1]); // the world's node worker
    expect(await query(`nnoe_dr_objective_capture_max_lag_revisions{cluster="${CLUSTER}"}`)).toEqual([1000]); // what status and the alerts judge by
    expect(await query(`nnoe_dr_backup_sets_keys_at_risk{cluster="${CLUSTER}"}`)).toEqual([0]); // the world's identity opens every set it made
    expect((await query('count({job="temporal-sdk",__name__=~"temporal_.+"})'))[0]).toBeGreaterThan(0);
  }, 300_000);

  it('a backup older than its objective: exit 1, every component named with its age', async () => {
    const { code, report } = await status(configWith('stale', { backupMaxAge: '1s' }));
    expect(code).toBe(1);
    const out = outOf(report);
    expect(out.map((l) => l.subject)).toEqual(['etcd', 'phpipam', 'agent-cache', 'agent-config', 'nebula']);
    expect(out[0]!.problem).toMatch(/^newest complete set is \d+[sm].* old, over 1s \(objectives\.backupMaxAge\)$/);
  });

  it('a failed drill: exit 1 naming the run', async () => {
    const drill = await startDrill(h.client, h.config, { cluster: CLUSTER, setId: `${CLUSTER}-no-such-set` });
    await expect(drill.result()).rejects.toThrow();
    const { code, report } = await pollUntil(
      async () => {
        const s = await status(configWith('drill', {}));
        return s.report.clusters?.[0]?.lines.some((l) => l.subject === 'drill' && !l.ok) ? s : undefined;
      },
      30_000,
      'visibility to show the failed drill',
    );
    expect(code).toBe(1);
    expect(outOf(report)).toEqual([
      expect.objectContaining({ subject: 'drill', problem: `the newest restore drill failed: see ${drill.workflowId}` }),
    ]);
  });

  it('a deaf agent (etcd restarted under it): exit 1 naming the agent and why', async () => {
    // The real agent's watches end for good when etcd restarts: it runs on, deaf (test/real-agent.test.ts).
    for (const m of h.world.etcd.members) await supervisorctl(h.world.supervisorConf, 'restart', m.program);
    const { code, report } = await pollUntil(
      async () => {
        const s = await status(configWith('deaf', {}));
        return s.report.clusters?.[0]?.lines.some((l) => l.subject === 'agent node-1' && l.summary === 'deaf') ? s : undefined;
      },
      90_000,
      "status to find node-1's agent deaf",
    );
    expect(code).toBe(1);
    expect(outOf(report).find((l) => l.subject === 'agent node-1')!.problem).toMatch(/^deaf: pid \d+ runs but holds no connection to etcd/);
  });
});
