/**
 * A full disk (issue 13): the workDir and a local target on a small tmpfs of their own. The backup
 * that does not fit fails at once with an error naming the full filesystem's path, leaves nothing
 * half-written, the older set stays intact, and the next backup succeeds once space is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createManagementActivities } from '../src/activities';
import type { Config } from '../src/config/schema';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import { listBackupSets } from '../src/catalog/catalog';
import { CLUSTER, etcdComponent, fillKeys, memberClient, openHarness, removeFill, type Harness } from './support/harness';

const run = promisify(execFile);
const TASK_QUEUE = 'disk-full-test';
const MiB = 1024 * 1024;

let h: Harness;
let mount: string;
let config: Config;
let connection: NativeConnection | undefined;
let worker: Worker | undefined;
let running: Promise<void> | undefined;
let sizeMiB: number;

beforeAll(async () => {
  h = await openHarness();
  // Room for the cluster's snapshot twice over (raw staging copy + gzip copy), not for much more.
  const etcd = await memberClient(h.config, 'etcd-1');
  try {
    sizeMiB = 2 * Math.ceil(Number((await etcd.maintenance.status()).dbSize) / MiB) + 16;
  } finally {
    etcd.close();
  }
  mount = await mkdtemp(join(tmpdir(), 'nnoe-dr-small-disk-'));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0700`, 'tmpfs', mount]);
  await mkdir(join(mount, 'work'));
  config = {
    ...structuredClone(h.config),
    workDir: join(mount, 'work'),
    storage: [{ type: 'local', name: 'small', path: join(mount, 'backups') }],
  };
  connection = await NativeConnection.connect({ address: inject('world').temporalAddress });
  worker = await Worker.create({
    connection,
    taskQueue: TASK_QUEUE,
    workflowBundle: { codePath: inject('world').workflowBundlePath },
    activities: createManagementActivities({ config }),
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
  if (mount) {
    await run('umount', [mount]).catch(() => undefined);
    await rm(mount, { recursive: true, force: true });
  }
  await h?.close();
});

let runs = 0;
async function backup(): Promise<EtcdBackupResult> {
  const handle = await h.client.workflow.start('etcdBackupWorkflow', {
    taskQueue: TASK_QUEUE,
    workflowId: `disk-full-test-${Date.now()}-${runs++}`,
    args: [{ cluster: CLUSTER, targets: ['small'] }],
  });
  return handle.result() as Promise<EtcdBackupResult>;
}

const sha256Of = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('a full disk', () => {
  it('fails the backup naming the full filesystem, writes nothing half, keeps the older set, and the next backup succeeds once space is back', async () => {
    const older = await backup();
    const olderArtefact = etcdComponent(older.manifest).artefacts[0]!;

    const etcd = await memberClient(h.config, 'etcd-1');
    try {
      await fillKeys(etcd, '/fill-disk/', sizeMiB, MiB); // incompressible: the snapshot alone is larger than the disk
      const err = await backup().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      let cause: unknown = (err as WorkflowFailedError).cause;
      while (cause instanceof Error && cause.cause) cause = cause.cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe('InsufficientDisk');
      expect((cause as ApplicationFailure).message).toMatch(new RegExp(`^no space left on the filesystem of ${mount}/(work|backups)/`));
      // Not retried on another member: a full disk is the same disk for every member.
      expect((err as WorkflowFailedError).cause?.message).not.toMatch(/trying the next member/);

      // Nothing half-written: no partial file, no staging dir, only the older set.
      expect((await readdir(join(mount, 'backups'), { recursive: true })).filter((e) => e.includes('.partial-'))).toEqual([]);
      expect(await readdir(join(mount, 'work'))).toEqual([]);
      expect((await listBackupSets(config, { targets: ['small'] })).map((s) => s.setId)).toEqual([older.setId]);
      expect(await sha256Of(join(mount, 'backups', ...olderArtefact.key.split('/')))).toBe(olderArtefact.sha256);

      // Space back: the filesystem grows (as an operator would free or add space); the fill stays.
      await run('mount', ['-o', `remount,size=${4 * sizeMiB}m`, mount]);
      const next = await backup();
      expect(next.manifest.status).toBe('complete');
      expect((await listBackupSets(config, { targets: ['small'] })).map((s) => s.setId).sort()).toEqual([older.setId, next.setId].sort());
    } finally {
      etcd.close();
      await removeFill(h.config, '/fill-disk/');
    }
  });
});
