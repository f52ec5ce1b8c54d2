/**
 * nnoe-dr against an etcd cluster with auth on (a `root` user, nnoe-dr's own user with the root
 * role, client-cert TLS kept), with username + password from a secret file: backup (Snapshot,
 * Status, HashKV), a drill (restore check), change capture and PITR; a wrong password fails once,
 * naming the user; no run's history holds a password. The cluster is a one-member etcd beside
 * the world's, served by workers of this file on their own task queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { inject } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { findCluster, loadConfig } from '../src/config/load';
import type { Config } from '../src/config/schema';
import { connectMember } from '../src/etcd/connect';
import { readKeyspace } from '../src/etcd/scratch';
import { startAuthEtcd, type AuthEtcd } from '../src/sandbox/auth-etcd';
import { startDrill, startEtcdBackup } from '../src/client/temporal';
import { createWorker } from '../src/worker';
import { captureStatusQuery, stopCaptureSignal } from '../src/workflows/change-capture';
import type { DrillReport } from '../src/workflows/drill';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import type { EtcdRestoreResult } from '../src/workflows/etcd-restore';
import { createEtcdRestoreActivities } from '../src/activities/etcd-restore';
import { REVISION_BUMP_DEFAULT } from '../src/config/schema';
import type { PointInTimeResult } from '../src/workflows/pitr';
import { etcdComponent, openHarness, pollUntil, type Harness } from './support/harness';
import { FailureType } from '../src/common/failures';

const AUTH_CLUSTER = 'nnoe-auth';
const WRONG_PASSWORD_CLUSTER = 'nnoe-auth-wrong-password';
const NODE = 'auth-node-1';

let h: Harness;
let etcd: AuthEtcd;
let config: Config;
let connection: NativeConnection;
let workers: Worker[] = [];
let running: Promise<void>[] = [];
const handles: WorkflowHandle[] = [];

beforeAll(async () => {
  h = await openHarness();
  etcd = await startAuthEtcd(h.world, { name: AUTH_CLUSTER, node: NODE, username: 'nnoe-backup' });
  const wrongPasswordFile = join(h.world.dir, 'secrets', `${AUTH_CLUSTER}-wrong-password`);
  await writeFile(wrongPasswordFile, 'not-the-password', { mode: 0o600 });
  const base = parseYaml(await readFile(h.configPath, 'utf8')) as Record<string, any>;
  const wrong = {
    ...etcd.cluster,
    name: WRONG_PASSWORD_CLUSTER,
    etcd: { ...etcd.cluster.etcd, auth: { username: 'nnoe-backup', password: { file: wrongPasswordFile } } },
  };
  const configPath = join(h.world.dir, 'nnoe-dr.auth.yaml');
  await writeFile(
    configPath,
    stringifyYaml({
      ...base,
      temporal: { ...base.temporal, taskQueue: `nnoe-dr-auth-${Date.now()}` },
      clusters: [etcd.cluster, wrong],
    }),
  );
  config = loadConfig(configPath);
  // This file's workers: no state-change chatter (a runtime made earlier in this process keeps its logger).
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    /* already instantiated */
  }
  connection = await NativeConnection.connect({ address: inject('world').temporalAddress });
  workers = [
    await createWorker({ config, workflowBundlePath: inject('world').workflowBundlePath }, connection),
    await createWorker({ config, node: NODE }, connection),
  ];
  running = workers.map((w) => w.run());
});

afterAll(async () => {
  for (const w of workers) w.shutdown();
  await Promise.all(running);
  await connection?.close();
  await h.close();
});

async function authClient() {
  const cluster = findCluster(config, AUTH_CLUSTER);
  return connectMember(cluster, cluster.etcd.members[0]!);
}

/** Puts and deletes under /auth/<phase>/; returns the revision after them. */
async function writePhase(phase: string): Promise<number> {
  const client = await authClient();
  try {
    for (let i = 0; i < 20; i++) await client.put(`/auth/${phase}/key-${i}`).value(`${phase}-${i}`);
    for (let i = 0; i < 5; i++) await client.delete().key(`/auth/${phase}/key-${i}`);
    return Number((await client.put(`/auth/last-phase`).value(phase).exec()).header.revision);
  } finally {
    client.close();
  }
}

async function keyspace(revision?: number): Promise<Map<string, string>> {
  const client = await authClient();
  try {
    return await readKeyspace(client, revision);
  } finally {
    client.close();
  }
}

/** Every string of a history, payload bytes decoded as UTF-8 (where a secret would show). */
function historyText(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(historyText).join('\n');
  if (value && typeof value === 'object') return Object.values(value).map(historyText).join('\n');
  return '';
}

describe('auth-enabled etcd', () => {
  it("backs up (token on Snapshot, Status, HashKV), drills, captures changes and restores to a revision with username and password; the restore proves its content equal to the snapshot's", async () => {
    await writePhase('base');
    const backup = await startEtcdBackup(h.client, config, { cluster: AUTH_CLUSTER, targets: ['local'] });
    handles.push(backup);
    const result = (await backup.result()) as EtcdBackupResult;
    const facts = etcdComponent(result.manifest).facts;
    expect(result.manifest.status).toBe('complete');
    expect(facts.trailerVerified).toBe(true);

    // The restore check: the snapshot restored into a scratch member (auth on in it too) equals its facts.
    const drill = await startDrill(h.client, config, { cluster: AUTH_CLUSTER, setId: result.setId });
    handles.push(drill);
    const report = (await drill.result()) as DrillReport;
    expect(report.checks.filter((c) => !c.ok && !c.skipped)).toEqual([]);
    expect(report.checks.some((c) => c.component === 'etcd' && c.ok)).toBe(true);
    expect(report.ok).toBe(true);
    expect(report.checks).toContainEqual(
      expect.objectContaining({
        name: "content (keys, values, leases) equals the backup's digest",
        ok: true,
        expected: facts.keyspaceDigest!.sha256,
      }),
    );

    const capture = await h.client.workflow.start('changeCaptureWorkflow', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `auth-capture-${Date.now()}`,
      args: [{ cluster: AUTH_CLUSTER, fromRevision: facts.revision + 1, flushMs: 200, sliceMinutes: 0.25, targets: ['local'] }],
    });
    handles.push(capture);
    const r1 = await writePhase('one');
    const r2 = await writePhase('two');
    await pollUntil(async () => ((await capture.query(captureStatusQuery)).lastDurable ?? 0) >= r2, 60_000, `capture durable up to ${r2}`);
    const expected = await keyspace(r1);
    await capture.signal(stopCaptureSignal);
    await capture.result();

    const pitr = await h.client.workflow.start('pointInTimeRestoreWorkflow', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `auth-pitr-${Date.now()}`,
      args: [{ cluster: AUTH_CLUSTER, targetRevision: r1, approved: true }],
    });
    handles.push(pitr);
    const restored = (await pitr.result()) as PointInTimeResult;
    expect(restored.plan.targetRevision).toBe(r1);
    expect(await keyspace()).toEqual(expected);

    // The report says whether the restore under the replay bumped the revision, and where its content sat.
    const bumps = h.world.etcd.version !== '3.4';
    const contentAt = bumps ? facts.keyRevision! + REVISION_BUMP_DEFAULT : facts.revision;
    expect(restored.restore).toMatchObject({
      setId: result.setId,
      snapshotRevision: facts.revision,
      revisionBump: { used: bumps },
      restoredRevision: contentAt,
    });
    // The restore proved its content equal to the snapshot's key for key (digest of keys, values, leases), bumped or not ...
    const child = (await h.client.workflow.getHandle(`${pitr.workflowId}/etcd-restore`).result()) as EtcdRestoreResult;
    expect(child.content).toEqual({
      member: etcd.member.name,
      revision: contentAt,
      keys: facts.keyspaceDigest!.keys,
      sha256: facts.keyspaceDigest!.sha256,
    });
    // ... and the same check refuses content that differs.
    const refused = await createEtcdRestoreActivities({ config })
      .verifyRestoredContent({
        cluster: AUTH_CLUSTER,
        revision: contentAt,
        expected: { keys: facts.keyspaceDigest!.keys, sha256: '0'.repeat(64) },
      })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({
      type: FailureType.RestoreVerificationFailed,
      nonRetryable: true,
      message: expect.stringMatching(/content differs from the snapshot's/),
    });
  });

  it('a wrong password fails at once, naming the user and the secret, never a password', async () => {
    const backup = await startEtcdBackup(h.client, config, { cluster: WRONG_PASSWORD_CLUSTER, targets: ['local'] });
    handles.push(backup);
    const err = await backup.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    let cause: unknown = err;
    while (cause && !(cause instanceof ApplicationFailure)) cause = (cause as Error).cause;
    const failure = cause as ApplicationFailure;
    expect(failure.type).toBe(FailureType.EtcdAuthenticationFailed);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/refused user "nnoe-backup".*authentication failed.*nnoe-auth-wrong-password/);
    expect(failure.message).not.toContain('not-the-password');
    // Failed on the first attempt: not retried.
    const history = await backup.fetchHistory();
    const attempts = history
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 0);
    expect(Math.max(...attempts)).toBe(1);
  });

  it('no history of these runs (children included) holds a password', async () => {
    const passwords = await Promise.all(Object.values(etcd.users).map(async (u) => (await readFile(u.passwordFile, 'utf8')).trim()));
    passwords.push('not-the-password');
    const runs = [];
    for await (const run of h.client.workflow.list({ query: `TaskQueue = '${config.temporal.taskQueue}'` })) runs.push(run);
    expect(runs.length).toBeGreaterThanOrEqual(handles.length + 1); // the PITR's child restore too
    for (const run of runs) {
      const text = historyText(await h.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory());
      expect(text).toContain(AUTH_CLUSTER.slice(0, 9)); // the scan reads the payloads' text
      for (const password of passwords) expect(text.includes(password), `${run.workflowId} history holds a password`).toBe(false);
    }
  });
});
