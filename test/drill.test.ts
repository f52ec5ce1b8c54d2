/**
 * Restore drills on the world's real components: sets made by the backup set workflow (etcd
 * snapshot + phpIPAM dump + Nebula archives, encrypted, in local and S3) restored into a scratch
 * etcd on loopback and a scratch schema of the world's MariaDB. A good set passes, is marked
 * verified in both targets and shows up in the metrics textfile (and for retention); a set whose
 * manifest no longer matches its data fails, POSTs an alert to a webhook served by this file, and
 * marks nothing. The drill runs on a management worker of its own, whose config names the webhook
 * and the textfile (the shared worker's config has no `drills` section).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { inject } from 'vitest';
import { buffer } from 'node:stream/consumers';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startBackupSet } from '../src/client/temporal';
import { applyBackupSchedule, drillScheduleOptions, DRILL_CRON, listNnoeSchedules } from '../src/client/schedules';
import { createManagementActivities } from '../src/activities';
import { createPruneActivities } from '../src/activities/prune';
import type { Config } from '../src/config/schema';
import type { BackupManifest, PhpipamComponentRecord } from '../src/common/manifest';
import type { BackupSetResult } from '../src/workflows/backup-set';
import type { DrillInput, DrillReport } from '../src/workflows/drill';
import { progressQuery } from '../src/workflows/progress';
import { readManifest } from '../src/catalog/catalog';
import { artefactKey, MANIFEST_FILE, openStore, type BackupStore } from '../src/storage';
import { connectAsRoot, mariadbLayout } from '../src/sandbox/mariadb';
import { CLUSTER, etcdComponent, memberClient, openHarness, recordHistory, tempDir, type Harness } from './support/harness';
import { writeObject } from './support/objects';
import { VARIANTS } from './support/shared';
import { findCluster } from '../src/config/load';

const TASK_QUEUE = 'drill-test';
const WEBHOOK_TOKEN = 'tok-9f3e1c';
const TARGETS = ['local', 's3'];

let h: Harness;
let root: Connection;
let drillConfig: Config;
let worker: Worker;
let connection: NativeConnection;
let running: Promise<void>;
let webhook: Server;
let scratch: { path: string; remove(): Promise<void> };
const posts: Array<{ url: string; headers: IncomingHttpHeaders; body: string }> = [];

const storeOf = (name: string): Promise<BackupStore> => openStore(h.config.storage.find((t) => t.name === name)!);
const manifestBytes = async (target: string, setId: string) =>
  buffer(await (await storeOf(target)).read(artefactKey(setId, MANIFEST_FILE)));

async function drillSchemas(): Promise<string[]> {
  const [rows] = await root.query<RowDataPacket[]>(
    "SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'phpipam\\_drill\\_%'",
  );
  return rows.map((r) => String(r.s));
}

/** A set with everything a drill restores (etcd, phpIPAM) and something it only checks (Nebula archives). */
async function backupSet(): Promise<BackupSetResult> {
  const handle = await startBackupSet(h.client, h.config, {
    cluster: CLUSTER,
    components: ['etcd', 'phpipam', 'nebula'],
    targets: TARGETS,
  });
  const result = (await handle.result()) as BackupSetResult;
  expect(result.manifest.status).toBe('complete');
  return result;
}

function startDrill(input: DrillInput, id: string) {
  return h.client.workflow.start('restoreDrillWorkflow', { taskQueue: TASK_QUEUE, workflowId: `drill-test-${id}`, args: [input] });
}

const metricsFile = () => join(scratch.path, 'textfile', 'nnoe_dr_drill.prom');
const sample = (text: string, line: RegExp) => text.split('\n').find((l) => line.test(l));

beforeAll(async () => {
  h = await openHarness();
  root = await connectAsRoot(mariadbLayout(h.world.mariadb!.dir));
  // The drill connects as the world's restore credential (phpipam.restore), provisioned with its scratch schemas' grants.
  scratch = await tempDir('drill');
  // NNOE-shaped keys, the config's critical key among them: a drill checks the sets hold it.
  const etcd = await memberClient(h.config, findCluster(h.config, CLUSTER).etcd.members[0]!.name);
  try {
    await etcd.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ zone: 'example.com', ttl: 300 }));
    for (let i = 0; i < 20; i++) await etcd.put(`/nnoe/dhcp/leases/drill-${i}`).value(`10.0.0.${i}`);
  } finally {
    etcd.close();
  }
  webhook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((ready) => webhook.listen(0, '127.0.0.1', ready));
  const { port } = webhook.address() as { port: number };
  drillConfig = {
    ...structuredClone(h.config),
    drills: {
      alertWebhook: `http://127.0.0.1:${port}/hooks/nnoe?token=${WEBHOOK_TOKEN}`,
      alertTimeoutSeconds: 5,
      metricsFile: metricsFile(),
    },
  };
  connection = await NativeConnection.connect({ address: inject('world').temporalAddress });
  worker = await Worker.create({
    connection,
    taskQueue: TASK_QUEUE,
    workflowBundle: { codePath: inject('world').workflowBundlePath },
    activities: createManagementActivities({ config: drillConfig }),
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
  await new Promise<void>((done) => (webhook ? webhook.close(() => done()) : done()));
  if (root) {
    for (const schema of await drillSchemas()) await root.query(`DROP DATABASE \`${schema}\``);
    await root.end();
  }
  await scratch?.remove();
  if (h) {
    const etcd = await memberClient(h.config, findCluster(h.config, CLUSTER).etcd.members[0]!.name);
    try {
      await etcd.delete().prefix('/nnoe/dhcp/leases/drill-');
    } finally {
      etcd.close();
    }
  }
  await h?.close();
});

describe('restore drill', () => {
  let good: BackupSetResult;

  it('restores the newest set into scratch etcd and a scratch schema, marks it verified in every target and emits metrics', async () => {
    good = await backupSet();
    const etcd = etcdComponent(good.manifest);
    expect(etcd.facts.hashKV?.revision).toBe(etcd.facts.revision); // the backup recorded what the drill compares
    const before = {
      local: await readManifest(await storeOf('local'), good.setId),
      s3: await readManifest(await storeOf('s3'), good.setId),
    };

    const handle = await startDrill({ cluster: CLUSTER }, good.setId); // no set named: the newest complete one, as scheduled
    const report = (await handle.result()) as DrillReport;

    expect(report).toMatchObject({ cluster: CLUSTER, setId: good.setId, ok: true, alert: null });
    expect(report.unreachableTargets).toEqual([expect.stringMatching(new RegExp(`^${VARIANTS.deadS3Target} `))]); // the world's dead target, listed and skipped
    expect([...report.marked].sort()).toEqual(TARGETS);
    expect(report.rto.etcdMs).toBeGreaterThan(0);
    expect(report.rto.phpipamMs).toBeGreaterThan(0);
    const names = (component: string) => report.checks.filter((c) => c.component === component && c.ok && !c.skipped).map((c) => c.name);
    expect(names('etcd')).toEqual([
      'snapshot revision',
      'snapshot status hash',
      'snapshot status totalKey',
      'scratch member revision',
      "live keys at the snapshot revision equal the backup's count",
      "content (keys, values, leases) equals the backup's digest",
      'hashKV at the snapshot revision',
      'live keys at the snapshot revision (count vs full scan)',
      'critical key /nnoe/dns/zones/example.com',
    ]);
    expect(report.checks.find((c) => c.name === 'hashKV at the snapshot revision')).toMatchObject({
      ok: true,
      expected: etcd.facts.hashKV!.hash,
      actual: etcd.facts.hashKV!.hash,
    });
    expect(names('phpipam')).toEqual(['row counts and CHECKSUM TABLE']);
    expect(names('artefacts')).toHaveLength(good.manifest.components.filter((c) => c.component === 'nebula').length);
    expect(names('set')).toEqual(['manifest equal in every target']);
    expect(report.checks.every((c) => c.ok)).toBe(true);

    // Marked in both targets, everything else of the manifest as the backup wrote it.
    for (const target of TARGETS) {
      const after = await readManifest(await storeOf(target), good.setId);
      const { verification, ...rest } = after;
      expect(rest, target).toEqual(before[target as 'local' | 's3']);
      expect(verification, target).toMatchObject({ drillWorkflowId: handle.workflowId, rto: report.rto, checks: report.checks });
      expect(Date.parse(verification!.verifiedAt)).toBeGreaterThanOrEqual(Date.parse(report.startedAt));
    }

    // The textfile and the result carry the same figures.
    const text = readFileSync(metricsFile(), 'utf8');
    expect(sample(text, /^nnoe_dr_drill_success\{cluster="nnoe-local"\} /)).toBe('nnoe_dr_drill_success{cluster="nnoe-local"} 1');
    expect(sample(text, /component="etcd"/)).toBe(
      `nnoe_dr_drill_rto_seconds{cluster="nnoe-local",component="etcd"} ${report.rto.etcdMs! / 1000}`,
    );
    expect(sample(text, /component="phpipam"/)).toBe(
      `nnoe_dr_drill_rto_seconds{cluster="nnoe-local",component="phpipam"} ${report.rto.phpipamMs! / 1000}`,
    );
    expect(sample(text, /^nnoe_dr_drill_last_run_timestamp_seconds/)).toBe(
      `nnoe_dr_drill_last_run_timestamp_seconds{cluster="nnoe-local"} ${report.metrics!.lastRunTimestampSeconds}`,
    );
    expect(report.metrics).toMatchObject({
      success: 1,
      file: metricsFile(),
      rtoSeconds: { etcd: report.rto.etcdMs! / 1000, phpipam: report.rto.phpipamMs! / 1000 },
    });
    expect(await readdir(join(scratch.path, 'textfile'))).toEqual(['nnoe_dr_drill.prom']); // no temp file left

    // Nothing left behind, no alert for a passing drill.
    expect(await drillSchemas()).toEqual([]);
    expect(existsSync(join(h.config.workDir, 'drill', handle.firstExecutionRunId))).toBe(false);
    expect(posts).toEqual([]);
    expect((await handle.query(progressQuery)).steps.map((s) => `${s.name}:${s.state}`)).toEqual([
      'choose set:done',
      'restore etcd:done',
      'restore phpIPAM:done',
      'check other artefacts:done',
      'mark verified:done',
      'emit metrics:done',
      'alert:skipped',
    ]);

    // Retention sees the verification (the prune reads it from the manifest).
    const catalog = await createPruneActivities({ config: h.config }).readCatalogForRetention({ cluster: CLUSTER, targets: TARGETS });
    const { verification } = await readManifest(await storeOf('local'), good.setId);
    expect(catalog.sets.find((s) => s.setId === good.setId)?.verifiedAt).toBe(verification!.verifiedAt);

    await recordHistory(handle, 'drill-passed');
  }, 900_000);

  it('fails on a set whose manifest its data no longer matches: alerts without secrets, marks nothing, keeps the metrics honest', async () => {
    const bad = await backupSet();
    const setId = bad.setId;
    const etcd = etcdComponent(bad.manifest);
    const phpipam = bad.manifest.components.find((c): c is PhpipamComponentRecord => c.component === 'phpipam')!;
    const table = phpipam.facts.tables.find((t) => t.name === 'ipaddresses')!;
    // Both copies of the manifest now record another keyspace hash and another checksum for one table...
    const tampered: BackupManifest = structuredClone(bad.manifest);
    const tEtcd = etcdComponent(tampered);
    tEtcd.facts.hashKV = { ...tEtcd.facts.hashKV!, hash: (tEtcd.facts.hashKV!.hash + 1) >>> 0 };
    tampered.components
      .find((c): c is PhpipamComponentRecord => c.component === 'phpipam')!
      .facts.tables.find((t) => t.name === 'ipaddresses')!.checksum = '12345';
    for (const target of TARGETS)
      await writeObject(await storeOf(target), artefactKey(setId, MANIFEST_FILE), Buffer.from(`${JSON.stringify(tampered, null, 2)}\n`));
    // ...and the local copy of the snapshot is damaged: the drill must use the good S3 copy (and still find the hash wrong).
    const snapshot = etcd.artefacts[0]!;
    const damaged = await buffer(await (await storeOf('local')).read(snapshot.key));
    const middle = Math.floor(damaged.length / 2);
    damaged[middle] = damaged[middle]! ^ 0xff;
    await writeObject(await storeOf('local'), snapshot.key, damaged);
    const manifestsBefore = await Promise.all(TARGETS.map((t) => manifestBytes(t, setId)));
    const metricsBefore = readFileSync(metricsFile(), 'utf8');

    const handle = await startDrill({ cluster: CLUSTER, setId }, setId);
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause.type).toBe('DrillFailed');
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toContain(`restore drill of ${CLUSTER} (set ${setId}) failed`);
    expect(cause.message).toContain('the set was not marked verified');
    const report = cause.details?.[0] as DrillReport;
    expect(report).toMatchObject({ ok: false, setId, marked: [], alert: { sent: true, status: 204 } });
    const failedChecks = report.checks.filter((c) => !c.ok && !c.skipped);
    expect(failedChecks).toEqual([
      {
        component: 'etcd',
        name: 'hashKV at the snapshot revision',
        ok: false,
        expected: tEtcd.facts.hashKV!.hash,
        actual: etcd.facts.hashKV!.hash,
        detail: expect.any(String),
      },
      { component: 'phpipam', name: 'table ipaddresses: checksum', ok: false, expected: '12345', actual: table.checksum },
    ]);
    // Every other etcd check passed: the restore ran from the S3 copy.
    expect(report.checks.filter((c) => c.component === 'etcd' && c.ok).length).toBe(8); // the backup's live-key count and content digest included
    expect(report.rto.etcdMs).toBeGreaterThan(0);

    // One alert, JSON, naming what failed and nothing secret.
    expect(posts).toHaveLength(1);
    const post = posts[0]!;
    expect(post.url).toBe(`/hooks/nnoe?token=${WEBHOOK_TOKEN}`);
    expect(post.headers['content-type']).toBe('application/json');
    const alert = JSON.parse(post.body);
    expect(alert).toMatchObject({
      source: 'nnoe-dr',
      event: 'restore-drill-failed',
      cluster: CLUSTER,
      setId,
      workflowId: handle.workflowId,
      failedChecks: failedChecks.map((c) => ({ component: c.component, name: c.name })),
    });
    const secrets = [
      readFileSync(h.world.mariadb!.passwordFile, 'utf8').trim(),
      readFileSync((h.config.encryption!.identity as { file: string }).file, 'utf8').trim(),
      WEBHOOK_TOKEN,
    ];
    for (const secret of secrets) expect(post.body).not.toContain(secret);
    expect(JSON.stringify(cause.details)).not.toContain(WEBHOOK_TOKEN);

    // Nothing marked: both manifests byte for byte as before; no scratch schema left.
    expect(await Promise.all(TARGETS.map((t) => manifestBytes(t, setId)))).toEqual(manifestsBefore);
    expect(await drillSchemas()).toEqual([]);

    // The textfile says the last drill failed and keeps the time of the last one that passed.
    const text = readFileSync(metricsFile(), 'utf8');
    expect(sample(text, /^nnoe_dr_drill_success/)).toBe('nnoe_dr_drill_success{cluster="nnoe-local"} 0');
    expect(sample(text, /^nnoe_dr_drill_last_success_timestamp_seconds/)).toBe(
      sample(metricsBefore, /^nnoe_dr_drill_last_success_timestamp_seconds/),
    );
    expect(report.metrics).toMatchObject({ success: 0 });
    expect((await handle.query(progressQuery)).steps.map((s) => `${s.name}:${s.state}`)).toEqual([
      'choose set:done',
      'restore etcd:failed',
      'restore phpIPAM:failed',
      'check other artefacts:done',
      'mark verified:skipped',
      'emit metrics:done',
      'alert:done',
    ]);

    // The good set stays the newest verified one for retention.
    const catalog = await createPruneActivities({ config: h.config }).readCatalogForRetention({ cluster: CLUSTER, targets: TARGETS });
    expect(catalog.sets.find((s) => s.setId === setId)?.verifiedAt).toBeUndefined();
    expect(catalog.sets.find((s) => s.setId === good.setId)?.verifiedAt).toBeDefined();
  }, 900_000);

  it('is scheduled daily per cluster by the same apply as the backups', async () => {
    const options = drillScheduleOptions(h.config, CLUSTER, 'production');
    expect(await applyBackupSchedule(h.client, options)).toBe('created');
    try {
      expect(await applyBackupSchedule(h.client, options)).toBe('updated');
      const listed = (await listNnoeSchedules(h.client)).find((s) => s.scheduleId === options.scheduleId);
      expect(listed).toMatchObject({ workflowType: 'restoreDrillWorkflow', cron: DRILL_CRON, profile: 'production', paused: false });
    } finally {
      await h.client.schedule.getHandle(options.scheduleId).delete();
    }
  });
});
