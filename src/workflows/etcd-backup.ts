/**
 * Runbook "etcd Backup" + "Verify etcd Backup": snapshot one healthy member (leader first, then
 * the others), verify it, store it gzipped in every target, and write the set's manifest.
 */
import { ActivityFailure, ApplicationFailure, upsertSearchAttributes, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { createEtcdBackupActivities, EtcdSnapshotOutcome, MemberHealth } from '../activities/etcd-backup';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { backupSetId, etcdSnapshotFileName, MANIFEST_FORMAT_VERSION, type BackupManifest } from '../common/manifest';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { ProgressTracker, rootMessage } from './progress';
import { runFailure } from './approval';

export interface EtcdBackupInput {
  cluster: string;
  /** Storage targets by name; all configured targets when omitted. */
  targets?: string[];
  /** Set id chosen by a parent workflow; `<cluster>-<UTC stamp>` when omitted. */
  setId?: string;
  /**
   * 'skip' when a backup-set workflow runs this as one component: the parent writes one manifest
   * for the whole set. Default 'write' (a stand-alone etcd backup is a one-component set).
   */
  manifest?: 'write' | 'skip';
}

export interface EtcdBackupResult {
  setId: string;
  manifest: BackupManifest;
  /** The snapshot attempts that were interrupted (a killed worker, a member that failed) and what their retry cleaned up. */
  interruptedAttempts?: string[];
}

type EtcdBackupActivities = ReturnType<typeof createEtcdBackupActivities>;

const quick: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
};
const { prepareEtcdBackup, rankEtcdMembers, writeBackupManifest, discardBackupArtefacts } = proxyActivities<EtcdBackupActivities>(quick);
/** The snapshot stream heartbeats every second; a dead worker is noticed within the heartbeat timeout. */
const { streamEtcdSnapshot } = proxyActivities<EtcdBackupActivities>({
  startToCloseTimeout: '2h',
  heartbeatTimeout: '30s',
  retry: { maximumAttempts: 2, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

export const ETCD_BACKUP_STEPS = ['check plan and storage', 'choose etcd member', 'stream and verify snapshot', 'write manifest'];

export async function etcdBackupWorkflow(input: EtcdBackupInput): Promise<EtcdBackupResult> {
  if (!input || typeof input.cluster !== 'string' || input.cluster.length === 0) {
    throw ApplicationFailure.nonRetryable(
      'etcd backup needs { cluster: "<name>" } naming a cluster from the config',
      FailureType.InvalidInput,
    );
  }
  const startedAt = new Date();
  let setId = input.setId ?? backupSetId(input.cluster, startedAt);
  const fileName = etcdSnapshotFileName(startedAt);
  const tracker = new ProgressTracker('etcd-backup', input.cluster, ETCD_BACKUP_STEPS);
  tracker.progress.setId = setId;
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'etcd-backup' },
    { key: NnoeBackupSet, value: setId },
  ]);

  try {
    const plan = await tracker.step(
      'check plan and storage',
      // A set of its own takes a free set id (a backup set's parent chooses it before its children run).
      () =>
        prepareEtcdBackup({ cluster: input.cluster, targets: input.targets, ...(input.manifest === 'skip' ? {} : { freeSetId: setId }) }),
      (p) =>
        `targets ${p.targets.join(', ')}; members ${p.members.join(', ')}${p.setId && p.setId !== setId ? `; set id ${setId} was taken: ${p.setId}` : ''}`,
    );
    if (plan.setId && plan.setId !== setId) setId = useSetId(plan.setId, tracker);

    const candidates = await tracker.step(
      'choose etcd member',
      () => rankEtcdMembers({ cluster: input.cluster }),
      (ranked) => describeRanking(ranked),
    );

    const outcome = await tracker.step(
      'stream and verify snapshot',
      () => snapshotFromFirstWorkingMember(input.cluster, candidates, { setId, fileName, targets: plan.targets }, tracker),
      (o) =>
        `${o.facts.member}: revision ${o.facts.revision}, ${o.facts.totalKey} keys, ${o.artefact.raw.bytes} bytes -> ${o.artefact.bytes} gzipped` +
        (o.interrupted.length ? `; after ${o.interrupted.join('; ')}` : ''),
    );
    const interruptedAttempts = outcome.interrupted.length ? { interruptedAttempts: outcome.interrupted } : {};

    const manifest: BackupManifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      tool: 'nnoe-dr',
      setId,
      cluster: input.cluster,
      status: 'complete',
      createdAt: startedAt.toISOString(),
      completedAt: new Date().toISOString(),
      workflow: { workflowId: workflowInfo().workflowId, runId: workflowInfo().runId },
      components: [
        {
          component: 'etcd',
          status: 'ok',
          artefacts: [outcome.artefact],
          facts: outcome.facts,
          startedAt: startedAt.toISOString(),
          finishedAt: new Date().toISOString(),
        },
      ],
      failures: [],
    };
    if (input.manifest === 'skip') {
      tracker.finish('completed');
      return { setId, manifest, ...interruptedAttempts };
    }
    await tracker.step(
      'write manifest',
      async () => {
        try {
          return await writeBackupManifest({ manifest, targets: plan.targets });
        } catch (err) {
          // Without a manifest the artefact is an orphan nobody can trust: take it away again.
          await discardBackupArtefacts({ keys: [outcome.artefact.key], targets: plan.targets });
          throw err;
        }
      },
      (copies) => copies.map((c) => c.location).join(', '),
    );

    tracker.finish('completed');
    return { setId, manifest, ...interruptedAttempts };
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('etcd backup failed', err);
  }
}

/** Another backup of the cluster took this second's set id: the run goes on under the free one. */
export function useSetId(setId: string, tracker: ProgressTracker): string {
  tracker.progress.setId = setId;
  upsertSearchAttributes([{ key: NnoeBackupSet, value: setId }]);
  return setId;
}

function describeRanking(ranked: MemberHealth[]): string {
  return ranked.map((m) => `${m.name}${m.isLeader ? ' (leader)' : ''}${m.healthy ? '' : ' (down)'}`).join(', ');
}

/**
 * Tries healthy members in ranked order; a member that fails hands over to the next. Returns, beside
 * the snapshot, the attempts that did not finish: failed members, and attempts a killed worker
 * interrupted (Temporal retried them; the retry reports what it cleaned up).
 */
async function snapshotFromFirstWorkingMember(
  cluster: string,
  ranked: MemberHealth[],
  request: { setId: string; fileName: string; targets: string[] },
  tracker: ProgressTracker,
): Promise<EtcdSnapshotOutcome & { interrupted: string[] }> {
  const failures: string[] = [];
  for (const member of ranked.filter((m) => m.healthy)) {
    try {
      const outcome = await streamEtcdSnapshot({ cluster, member: member.name, ...request });
      const retried = outcome.retried
        ? [
            `${outcome.retried.attempt - 1} interrupted attempt(s) on ${member.name}${
              outcome.retried.leftoversCleared.length ? `, their leftovers removed: ${outcome.retried.leftoversCleared.join(', ')}` : ''
            }`,
          ]
        : [];
      return { ...outcome, interrupted: [...failures.map((f) => `failed on ${f}`), ...retried] };
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      const cause = err.cause;
      if (cause instanceof ApplicationFailure && cause.type && NON_RETRYABLE.includes(cause.type as FailureType)) throw err;
      failures.push(`${member.name}: ${rootMessage(err)}`);
      tracker.note('stream and verify snapshot', `failed on ${failures.join('; ')}; trying the next member`);
    }
  }
  throw ApplicationFailure.nonRetryable(
    `no etcd member of ${cluster} produced a snapshot: ${failures.join('; ')}`,
    FailureType.AllEtcdMembersFailed,
  );
}
