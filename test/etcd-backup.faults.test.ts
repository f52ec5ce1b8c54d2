/**
 * Faults and bad input for the etcd backup runbook, on the real cluster: members killed, storage
 * gone, wrong or missing TLS material. Each case ends with a clear failure and nothing half-written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { startEtcdBackup } from '../src/client/temporal';
import { rootMessage, type RunProgress } from '../src/workflows/progress';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import { listBackupSets } from '../src/catalog/catalog';
import { VARIANTS } from './support/shared';
import {
  CLUSTER,
  etcdComponent,
  fillKeys,
  leaderName,
  memberClient,
  openHarness,
  pollUntil,
  removeFill,
  startMembers,
  stopMember,
  type Harness,
} from './support/harness';
import { SEGMENT_PREFIX } from '../src/capture/segments';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

const failureOf = async (promise: Promise<unknown>) => {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const root = err as WorkflowFailedError;
  let cause: any = root.cause;
  while (cause?.cause) cause = cause.cause;
  return { message: rootMessage(root), type: cause?.type as string | undefined };
};

async function setIds(): Promise<string[]> {
  return (await listBackupSets(h.config, { targets: ['local', 's3'] })).map((s) => s.setId);
}

/**
 * No temp files, no unmanifested artefacts: everything in the local store belongs to a listed set
 * (beside `wal/`, where change capture keeps its segments when another test file ran it first).
 */
async function localStoreIsClean(): Promise<void> {
  const entries = await readdir(h.world.localStoreDir, { recursive: true });
  expect(entries.filter((e) => e.includes('.partial-'))).toEqual([]);
  const sets = new Set(await setIds());
  const setDirs = entries.filter((e) => !e.includes('/') && e !== SEGMENT_PREFIX);
  expect(setDirs.filter((d) => !sets.has(d))).toEqual([]);
}

describe('etcd backup under faults', () => {
  it('completes from another member when the leader is killed mid-stream', async () => {
    const etcd = await memberClient(h.config, 'etcd-1');
    const members = h.world.etcd.members.map((m) => m.name);
    try {
      // Enough incompressible data that the stream takes a few seconds.
      await fillKeys(etcd, '/fill/', 160, 1024 * 1024);
      const leader = await leaderName(h.config);
      const handle = await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] });
      await pollUntil(
        async () => {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          return pending.some((a) => a.activityType?.name === 'streamEtcdSnapshot' && a.heartbeatDetails);
        },
        60_000,
        'the snapshot stream to start',
      );
      await stopMember(h.world, leader, 'KILL');

      const result = (await handle.result()) as EtcdBackupResult;
      expect(result.manifest.status).toBe('complete');
      expect(etcdComponent(result.manifest).facts.member).not.toBe(leader);
      const progress = await handle.query<RunProgress>('progress');
      expect(progress.steps.find((s) => s.name === 'stream and verify snapshot')!.detail).toContain(`revision`);
      const history = await handle.fetchHistory();
      const failedAttempts = history.events!.filter((e) => e.activityTaskFailedEventAttributes).length;
      expect(failedAttempts).toBeGreaterThanOrEqual(1);
      await localStoreIsClean();
    } finally {
      await startMembers(h.world, h.config, members);
      etcd.close();
      await removeFill(h.config, '/fill/'); // so later backups stay small
    }
  });

  it('fails clearly after bounded retries when every member is down, and writes no manifest', async () => {
    const members = h.world.etcd.members.map((m) => m.name);
    const before = await setIds();
    for (const name of members) await stopMember(h.world, name);
    try {
      const handle = await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] });
      const failure = await failureOf(handle.result());
      expect(failure.message).toMatch(/no healthy etcd member in cluster nnoe-local: etcd-1: .+; etcd-2: .+; etcd-3: .+/);
      const history = await handle.fetchHistory();
      // Retries are not separate history events: the started event carries the last attempt number.
      const started = history
        .events!.filter((e) => e.activityTaskStartedEventAttributes)
        .map((e) => e.activityTaskStartedEventAttributes!.attempt);
      expect(started).toEqual([1, 3]); // prepare: first try; rank members: the 3rd and last attempt
      const progress = await handle.query<RunProgress>('progress');
      expect(progress.state).toBe('failed');
      expect(progress.steps.find((s) => s.name === 'write manifest')!.state).toBe('skipped');
    } finally {
      await startMembers(h.world, h.config, members);
    }
    expect(await setIds()).toEqual(before);
    await localStoreIsClean();
  });

  it('fails clearly when the S3 target is unreachable, leaving no object anywhere', async () => {
    const before = await setIds();
    const handle = await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', VARIANTS.deadS3Target] });
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('StorageUnavailable');
    expect(failure.message).toContain(`storage target ${VARIANTS.deadS3Target} cannot take a backup`);
    expect(await setIds()).toEqual(before);
    await localStoreIsClean();
  });

  it('backs up over mTLS, and names the certificate when etcd rejects it', async () => {
    const handle = await startEtcdBackup(h.client, h.config, { cluster: VARIANTS.rogueCertCluster, targets: ['local'] });
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('EtcdTlsRejected');
    expect(failure.message).toContain('rogue-client.crt');
  });

  it('names the missing certificate file, without retrying', async () => {
    const handle = await startEtcdBackup(h.client, h.config, { cluster: VARIANTS.missingCertCluster, targets: ['local'] });
    const failure = await failureOf(handle.result());
    expect(failure.type).toBe('EtcdTlsMaterialMissing');
    const started = (await handle.fetchHistory())
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(started).toEqual([1, 1]);
    expect(failure.message).toMatch(/client certificate .*no-such-client\.crt cannot be read \(ENOENT\)/);
  });
});
