/**
 * Losing a management worker (kill -9) in the middle of a runbook, with the world's second
 * management worker still up, as production runs them: the run finishes on the other worker, and
 * nothing the dead attempt wrote is left behind (issue 13: clean retries, two management workers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, stat } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { startEtcdBackup, startEtcdRestore } from '../src/client/temporal';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import type { EtcdRestoreResult } from '../src/workflows/etcd-restore';
import { progressQuery } from '../src/workflows/progress';
import { listBackupSets } from '../src/catalog/catalog';
import { s3ClientFor } from '../src/storage';
import { listMultipartUploads } from '../src/storage/s3';
import type { S3TargetConfig } from '../src/config/schema';
import { programLogPath, supervisorctl, supervisorLayout } from '../src/sandbox/supervisor';
import { SEGMENT_PREFIX } from '../src/capture/segments';
import { CLUSTER, etcdComponent, fillKeys, memberClient, openHarness, pollUntil, removeFill, type Harness } from './support/harness';
import { MANAGEMENT_WORKER_PROGRAMS, waitForWorkerProgram } from './support/global-setup';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  writeFileSync(failpointsFile(), '{}');
  await h.close();
});

const failpointsFile = () => join(inject('world').worldDir, 'failpoints.json');

/** The supervisord program whose process is `pid` (a worker identity is `<pid>@<host>`). */
async function programOfPid(pid: number): Promise<string> {
  for (const program of MANAGEMENT_WORKER_PROGRAMS) {
    if (Number(await supervisorctl(h.world.supervisorConf, 'pid', program)) === pid) return program;
  }
  throw new Error(`no management worker program has pid ${pid}`);
}

/** Kills the worker process behind `identity` with SIGKILL; returns a function that starts it again and waits until it polls. */
async function killWorker(identity: string): Promise<() => Promise<void>> {
  const pid = Number(identity.split('@')[0]);
  const program = await programOfPid(pid);
  const logBytes = (await stat(programLogPath(supervisorLayout(h.world.dir), program))).size;
  process.kill(pid, 'SIGKILL');
  let restarted = false;
  return async () => {
    if (restarted) return;
    restarted = true;
    await supervisorctl(h.world.supervisorConf, 'start', program);
    await waitForWorkerProgram(h.world.dir, program, logBytes);
  };
}

async function openUploads(): Promise<string[]> {
  const s3 = h.config.storage.find((t) => t.name === 's3') as S3TargetConfig;
  return (await listMultipartUploads(await s3ClientFor(s3), s3.bucket, s3.prefix)).map((u) => u.key);
}

/** The identity of the worker that completed the run's newest workflow task (the one caching the run). */
async function lastWorkflowWorker(handle: WorkflowHandle): Promise<string> {
  const events = (await handle.fetchHistory()).events ?? [];
  const completed = events.filter((e) => e.workflowTaskCompletedEventAttributes).at(-1);
  return completed!.workflowTaskCompletedEventAttributes!.identity!;
}

describe('a management worker killed mid-run', () => {
  it('mid-stream of an etcd backup: the retry on the other worker removes the partial file, the open upload and the staging copy, and the result names the lost attempt', async () => {
    const etcd = await memberClient(h.config, 'etcd-1');
    let restart: (() => Promise<void>) | undefined;
    try {
      // Incompressible data, so the stream takes seconds and passes several 8 MiB S3 parts.
      await fillKeys(etcd, '/fill/', 160, 1024 * 1024);
      const handle = await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] });
      const identity = await pollUntil(
        async () => {
          const pending = ((await handle.describe()).raw.pendingActivities ?? []).find(
            (a) => a.activityType?.name === 'streamEtcdSnapshot',
          );
          return pending?.heartbeatDetails && (await openUploads()).length > 0 ? (pending.lastWorkerIdentity ?? undefined) : undefined;
        },
        90_000,
        'the snapshot stream to reach S3',
      );
      restart = await killWorker(identity);
      const setId = (await handle.query(progressQuery)).setId!;
      const stagingLeftovers = await readdir(join(h.world.workDir, setId));
      expect(stagingLeftovers.some((d) => d.startsWith('attempt-1-'))).toBe(true); // the dead attempt's debris exists ...

      const result = (await handle.result()) as EtcdBackupResult;
      expect(result.manifest.status).toBe('complete');
      // ... and its retry (after the 30 s heartbeat timeout, on the other worker) removed it and says so.
      expect(result.interruptedAttempts).toHaveLength(1);
      expect(result.interruptedAttempts![0]).toMatch(/^1 interrupted attempt\(s\) on etcd-\d, their leftovers removed: /);
      expect(result.interruptedAttempts![0]).toContain(join(h.world.workDir, setId, stagingLeftovers[0]!));
      expect(result.interruptedAttempts![0]).toMatch(/\.partial-[0-9a-f]{8}/);
      expect(result.interruptedAttempts![0]).toMatch(/s3:\/\/.* \(upload .+\)/);
      const history = (await handle.fetchHistory()).events ?? [];
      expect(history.some((e) => e.activityTaskTimedOutEventAttributes || e.activityTaskFailedEventAttributes)).toBe(false); // retried within one activity
      expect(
        etcdComponent(result.manifest)
          .artefacts[0]!.copies.map((c) => c.target)
          .sort(),
      ).toEqual(['local', 's3']);

      // Debris scan: no partial file, no open upload, no staging dir, nothing outside a listed set.
      const local = await readdir(h.world.localStoreDir, { recursive: true });
      expect(local.filter((e) => e.includes('.partial-'))).toEqual([]);
      const sets = new Set((await listBackupSets(h.config, { targets: ['local'] })).map((s) => s.setId));
      expect(local.filter((e) => !e.includes('/') && e !== SEGMENT_PREFIX && !sets.has(e))).toEqual([]);
      expect(await openUploads()).toEqual([]);
      expect(await readdir(h.world.workDir)).not.toContain(setId);
    } finally {
      await restart?.();
      etcd.close();
      await removeFill(h.config, '/fill/');
    }
  });

  it('after an etcd restore stopped the members: the other worker finishes the restore, no activity times out', async () => {
    // The restore's verification asks for the cluster's critical key (NNOE's zone), as any real set holds it.
    const etcd = await memberClient(h.config, 'etcd-1');
    try {
      await etcd.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ domain: 'example.com', tag: 'worker-loss' }));
    } finally {
      etcd.close();
    }
    const backup = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })
    ).result()) as EtcdBackupResult;
    writeFileSync(failpointsFile(), JSON.stringify({ 'before-repoint:etcd-2': 'pause' }));
    const handle = await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: backup.setId, approved: true });
    let restart: (() => Promise<void>) | undefined;
    try {
      // The members are stopped and etcd-2's repoint is held: the outage has begun.
      await pollUntil(
        async () => (await handle.query(progressQuery)).steps.find((s) => s.name === 'repoint members')?.state === 'running',
        120_000,
        'the repoint step',
      );
      const killed = await lastWorkflowWorker(handle);
      restart = await killWorker(killed);
      writeFileSync(failpointsFile(), '{}');

      const result = (await handle.result()) as EtcdRestoreResult;
      expect(result.check?.healthy).toBe(true);
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.filter((e) => e.activityTaskTimedOutEventAttributes)).toEqual([]);
      const finishedBy = events.filter((e) => e.workflowTaskCompletedEventAttributes).at(-1)!.workflowTaskCompletedEventAttributes!
        .identity;
      expect(finishedBy).not.toBe(killed);
      expect(MANAGEMENT_WORKER_PROGRAMS).toContain(await programOfPid(Number(finishedBy!.split('@')[0])));
    } finally {
      writeFileSync(failpointsFile(), '{}');
      await restart?.();
    }
    // Both workers poll again for the files after this one.
    for (const program of MANAGEMENT_WORKER_PROGRAMS)
      expect(readFileSync(programLogPath(supervisorLayout(h.world.dir), program), 'utf8')).toContain('polling');
  });
});
