/**
 * Runbook "Backup Script Example" as a workflow: one run = one backup set. Each component runs as
 * a child workflow under the same set id; one manifest lists every artefact. A component that
 * fails makes the set partial (recorded with its reason); the run then fails so monitoring sees it.
 */
import { ApplicationFailure, executeChild, proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { backupSetId, MANIFEST_FORMAT_VERSION, type BackupManifest, type ComponentRecord } from '../common/manifest';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { etcdBackupWorkflow } from './etcd-backup';
import { ProgressTracker, rootMessage } from './progress';
import type { createEtcdBackupActivities } from '../activities/etcd-backup';

/** Components a set can hold, in the order the runbook's script takes them. */
export const BACKUP_COMPONENTS = ['etcd'] as const;
export type BackupComponent = (typeof BACKUP_COMPONENTS)[number];

export interface BackupSetInput {
  cluster: string;
  /** Components to include; all available components when omitted. */
  components?: string[];
  targets?: string[];
}

export interface BackupSetResult {
  setId: string;
  manifest: BackupManifest;
}

const { writeBackupManifest, discardBackupArtefacts } = proxyActivities<ReturnType<typeof createEtcdBackupActivities>>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

function chooseComponents(requested: string[] | undefined): BackupComponent[] {
  if (!requested || requested.length === 0) return [...BACKUP_COMPONENTS];
  const unknown = requested.filter((c) => !(BACKUP_COMPONENTS as readonly string[]).includes(c));
  if (unknown.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `unknown backup component(s) ${unknown.join(', ')}; available: ${BACKUP_COMPONENTS.join(', ')}`, FailureType.InvalidInput);
  }
  return BACKUP_COMPONENTS.filter((c) => requested.includes(c));
}

/** Runs one component as a child workflow; returns its records, never writes a manifest. */
async function runComponent(component: BackupComponent, input: BackupSetInput, setId: string): Promise<ComponentRecord[]> {
  // Named after the set, so an operator finds every part of a set by its id.
  const childId = `${setId}/${component}`;
  switch (component) {
    case 'etcd': {
      const result = await executeChild(etcdBackupWorkflow, {
        workflowId: childId,
        args: [{ cluster: input.cluster, targets: input.targets, setId, manifest: 'skip' }],
      });
      return result.manifest.components;
    }
  }
}

export async function backupSetWorkflow(input: BackupSetInput): Promise<BackupSetResult> {
  if (!input || typeof input.cluster !== 'string' || input.cluster.length === 0) {
    throw ApplicationFailure.nonRetryable('a backup set needs { cluster: "<name>" } naming a cluster from the config', FailureType.InvalidInput);
  }
  const components = chooseComponents(input.components);
  const startedAt = new Date();
  const setId = backupSetId(input.cluster, startedAt);
  const tracker = new ProgressTracker('backup-set', input.cluster, [...components.map((c) => `back up ${c}`), 'write manifest']);
  tracker.progress.setId = setId;
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'backup-set' },
    { key: NnoeBackupSet, value: setId },
  ]);

  const records: ComponentRecord[] = [];
  const failures: BackupManifest['failures'] = [];
  for (const component of components) {
    try {
      records.push(...await tracker.step(`back up ${component}`, () => runComponent(component, input, setId),
        (r) => r.flatMap((c) => c.artefacts).map((a) => `${a.file} (${a.bytes} bytes)`).join(', ')));
    } catch (err) {
      failures.push({ component, reason: err instanceof Error ? rootMessage(err) : String(err) });
    }
  }
  if (records.length === 0) {
    tracker.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `backup set ${setId} has no component: ${failures.map((f) => `${f.component}: ${f.reason}`).join('; ')}`, FailureType.BackupSetFailed);
  }

  const manifest: BackupManifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    tool: 'nnoe-dr',
    setId,
    cluster: input.cluster,
    status: failures.length === 0 ? 'complete' : 'partial',
    createdAt: startedAt.toISOString(),
    completedAt: new Date().toISOString(),
    workflow: { workflowId: workflowInfo().workflowId, runId: workflowInfo().runId },
    components: records,
    failures,
  };
  const targets = [...new Set(records.flatMap((r) => r.artefacts.flatMap((a) => a.copies.map((c) => c.target))))];
  try {
    await tracker.step('write manifest', () => writeBackupManifest({ manifest, targets }),
      (copies) => copies.map((c) => c.location).join(', '));
  } catch (err) {
    tracker.finish('failed');
    // Without a manifest the artefacts are orphans nobody can trust: take them away again.
    await discardBackupArtefacts({ keys: records.flatMap((r) => r.artefacts.map((a) => a.key)), targets });
    throw err;
  }

  if (failures.length > 0) {
    tracker.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `backup set ${setId} is partial: ${failures.map((f) => `${f.component}: ${f.reason}`).join('; ')}`, FailureType.PartialBackupSet);
  }
  tracker.finish('completed');
  return { setId, manifest };
}
