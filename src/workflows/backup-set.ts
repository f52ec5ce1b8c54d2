/**
 * Runbook "Backup Script Example" as a workflow: one run = one backup set. Each component runs as
 * a child workflow under the same set id; one manifest lists every artefact. A component that
 * fails makes the set partial (recorded with its reason); the run then fails so monitoring sees it.
 */
import { ApplicationFailure, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { executeChild, proxyActivities } from './ui-metadata';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import {
  agentCacheFileName,
  agentConfigFileName,
  nebulaArchiveFileName,
  phpipamDumpFileName,
  backupSetId,
  MANIFEST_FORMAT_VERSION,
  type BackupManifest,
  type ComponentRecord,
} from '../common/manifest';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { etcdBackupWorkflow, useSetId } from './etcd-backup';
import { agentCacheBackupWorkflow } from './agent-cache';
import { phpipamBackupWorkflow } from './phpipam-backup';
import type { BackupPlan, createBackupPlanActivities } from '../activities/backup-plan';
import type { createHostFileActivities } from '../activities/host-files';
import { nodeTaskQueue } from '../common/search-attributes';
import { runFailure } from './approval';
import { ProgressTracker, rootMessage } from './progress';
import type { createEtcdBackupActivities } from '../activities/etcd-backup';

/** Components a set can hold, in the order the runbook's script takes them. */
export const BACKUP_COMPONENTS = ['etcd', 'phpipam', 'agent-cache', 'nebula', 'agent-config'] as const;

/**
 * Components arrived one release at a time; `patched` markers keep sets started by an older
 * release replaying with the components they had (etcd only, then + agent caches, then + phpIPAM,
 * then + Nebula and agent configs).
 */
function availableComponents(): BackupComponent[] {
  const withPhpipam = patched('phpipam-component');
  const withAgentCaches = patched('agent-cache-component');
  const withHostFiles = patched('host-files-components');
  return BACKUP_COMPONENTS.filter(
    (c) =>
      c === 'etcd' ||
      (c === 'phpipam' && withPhpipam) ||
      (c === 'agent-cache' && withAgentCaches) ||
      ((c === 'nebula' || c === 'agent-config') && withHostFiles),
  );
}
export type BackupComponent = (typeof BACKUP_COMPONENTS)[number];

export interface BackupSetInput {
  cluster: string;
  /** Agent caches copied without stopping the agents. */
  onlineAgentCaches?: boolean;
  /** Components to include; all available components when omitted. */
  components?: string[];
  targets?: string[];
}

export interface BackupSetResult {
  setId: string;
  manifest: BackupManifest;
  /** Component attempts that were interrupted (a killed worker, a failed member) before one finished, and what was cleaned up. */
  interruptedAttempts?: string[];
}

const { describeBackupPlan } = proxyActivities<ReturnType<typeof createBackupPlanActivities>>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: NON_RETRYABLE },
});

const { writeBackupManifest, discardBackupArtefacts, prepareEtcdBackup } = proxyActivities<ReturnType<typeof createEtcdBackupActivities>>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

type HostFileActivities = ReturnType<typeof createHostFileActivities>;

/** Host-file activities on one node's queue; small files, so a dead node worker fails the part within minutes. */
function hostFileActivities(node: string): HostFileActivities {
  return proxyActivities<HostFileActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    scheduleToCloseTimeout: '10m',
    startToCloseTimeout: '5m',
    retry: { maximumAttempts: 3, initialInterval: '5s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

/** Runs `part` for each node in turn; a failed node is recorded and the others still run. */
async function perNode(
  component: 'nebula' | 'agent-config',
  nodes: string[],
  part: (node: string) => Promise<ComponentRecord | null>,
): Promise<ComponentOutcome> {
  const outcome: ComponentOutcome = { records: [], failures: [] };
  for (const node of nodes) {
    try {
      const record = await part(node);
      if (record) outcome.records.push(record);
    } catch (err) {
      outcome.failures.push({ component: `${component} ${node}`, reason: err instanceof Error ? rootMessage(err) : String(err) });
    }
  }
  return outcome;
}

function chooseComponents(requested: string[] | undefined, available: readonly BackupComponent[]): BackupComponent[] {
  if (!requested || requested.length === 0) return [...available];
  const unknown = requested.filter((c) => !(available as readonly string[]).includes(c));
  if (unknown.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `unknown backup component(s) ${unknown.join(', ')}; available: ${available.join(', ')}`,
      FailureType.InvalidInput,
    );
  }
  return available.filter((c) => requested.includes(c));
}

interface ComponentOutcome {
  records: ComponentRecord[];
  failures: BackupManifest['failures'];
  interrupted?: string[];
}

/**
 * Runs one component as child workflow(s) named after the set (an operator finds every part of a
 * set by its id); returns records and per-part failures, never writes a manifest.
 */
async function runComponent(
  component: BackupComponent,
  input: BackupSetInput,
  setId: string,
  startedAt: Date,
  plan: BackupPlan | null,
): Promise<ComponentOutcome> {
  const targets = input.targets ?? [];
  switch (component) {
    case 'etcd': {
      const result = await executeChild(etcdBackupWorkflow, {
        workflowId: `${setId}/etcd`,
        args: [{ cluster: input.cluster, targets: input.targets, setId, manifest: 'skip' }],
      });
      return {
        records: result.manifest.components,
        failures: [],
        interrupted: (result.interruptedAttempts ?? []).map((a) => `etcd: ${a}`),
      };
    }
    case 'phpipam': {
      const { phpipam } = await describeBackupPlan({ cluster: input.cluster });
      if (!phpipam) return { records: [], failures: [] }; // this cluster has no phpIPAM database configured
      const record = await executeChild(phpipamBackupWorkflow, {
        workflowId: `${setId}/phpipam`,
        args: [{ cluster: input.cluster, setId, fileName: phpipamDumpFileName(startedAt), targets: input.targets ?? [] }],
      });
      return { records: [record], failures: [] };
    }
    case 'agent-cache': {
      // One agent at a time: the others keep serving while one is stopped.
      const outcome: ComponentOutcome = { records: [], failures: [] };
      const { agentNodes } = await describeBackupPlan({ cluster: input.cluster });
      for (const node of agentNodes) {
        try {
          outcome.records.push(
            await executeChild(agentCacheBackupWorkflow, {
              workflowId: `${setId}/agent-cache-${node}`,
              args: [
                {
                  cluster: input.cluster,
                  node,
                  setId,
                  fileName: agentCacheFileName(node, startedAt),
                  targets,
                  online: input.onlineAgentCaches,
                },
              ],
            }),
          );
        } catch (err) {
          outcome.failures.push({ component: `agent-cache ${node}`, reason: err instanceof Error ? rootMessage(err) : String(err) });
        }
      }
      return outcome;
    }
    case 'nebula':
      return perNode('nebula', plan?.nebulaNodes ?? [], async (node) => {
        const partStartedAt = new Date().toISOString();
        const { artefact, facts } = await hostFileActivities(node).backupNebulaFiles({
          cluster: input.cluster,
          setId,
          fileName: nebulaArchiveFileName(node, startedAt),
          targets,
        });
        return {
          component: 'nebula',
          node,
          status: 'ok',
          artefacts: [artefact],
          facts,
          startedAt: partStartedAt,
          finishedAt: new Date().toISOString(),
        };
      });
    case 'agent-config':
      return perNode('agent-config', plan?.agentNodes ?? [], async (node) => {
        const partStartedAt = new Date().toISOString();
        const outcome = await hostFileActivities(node).backupAgentConfig({
          cluster: input.cluster,
          setId,
          fileName: agentConfigFileName(node, startedAt),
          targets,
        });
        if (!outcome) return null; // no config dir on that node
        return {
          component: 'agent-config',
          node,
          status: 'ok',
          artefacts: [outcome.artefact],
          facts: outcome.facts,
          startedAt: partStartedAt,
          finishedAt: new Date().toISOString(),
        };
      });
  }
}

export async function backupSetWorkflow(input: BackupSetInput): Promise<BackupSetResult> {
  if (!input || typeof input.cluster !== 'string' || input.cluster.length === 0) {
    throw ApplicationFailure.nonRetryable(
      'a backup set needs { cluster: "<name>" } naming a cluster from the config',
      FailureType.InvalidInput,
    );
  }
  const components = chooseComponents(input.components, availableComponents());
  const startedAt = new Date();
  let setId = backupSetId(input.cluster, startedAt);
  const tracker = new ProgressTracker('backup-set', input.cluster, [...components.map((c) => `back up ${c}`), 'write manifest']);
  tracker.progress.setId = setId;
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'backup-set' },
    { key: NnoeBackupSet, value: setId },
  ]);

  // Sets with host files read the plan once up front: a Nebula set without encryption is refused
  // before anything is copied (its archives would hold private keys in clear).
  let plan: BackupPlan | null = null;
  if (components.includes('nebula') || components.includes('agent-config')) {
    plan = await describeBackupPlan({ cluster: input.cluster }).catch((err: unknown) => {
      tracker.finish('failed');
      throw runFailure('backup set refused', err);
    });
    if (components.includes('nebula') && (plan.nebulaNodes ?? []).length > 0 && !plan.encrypted) {
      tracker.finish('failed');
      throw ApplicationFailure.nonRetryable(
        `cluster ${input.cluster} backs up Nebula keys but the config has no encryption.recipients: Nebula archives are always encrypted`,
        FailureType.ConfigError,
      );
    }
  }

  // Set ids are stamped to the second: when another backup of the cluster already wrote this
  // second's id, the set takes a free one (<id>-2 ...) before any component writes; it would
  // otherwise overwrite that set's artefacts and manifest. Older runs replay without the check.
  if (patched('backup-set-takes-a-free-set-id')) {
    const prepared = await prepareEtcdBackup({ cluster: input.cluster, targets: input.targets, freeSetId: setId, preflight: false }).catch(
      (err: unknown) => {
        tracker.finish('failed');
        throw runFailure('backup set refused', err);
      },
    );
    if (prepared.setId && prepared.setId !== setId) setId = useSetId(prepared.setId, tracker);
  }

  const records: ComponentRecord[] = [];
  const failures: BackupManifest['failures'] = [];
  const interrupted: string[] = [];
  for (const component of components) {
    try {
      const outcome = await tracker.step(
        `back up ${component}`,
        () => runComponent(component, input, setId, startedAt, plan),
        (o) =>
          [
            ...o.records.flatMap((c) => c.artefacts).map((a) => `${a.file} (${a.bytes} bytes)`),
            ...o.failures.map((f) => `${f.component} FAILED`),
          ].join(', ') || 'nothing configured',
      );
      records.push(...outcome.records);
      failures.push(...outcome.failures);
      interrupted.push(...(outcome.interrupted ?? []));
    } catch (err) {
      failures.push({ component, reason: err instanceof Error ? rootMessage(err) : String(err) });
    }
  }
  if (records.length === 0) {
    tracker.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `backup set ${setId} has no component: ${failures.map((f) => `${f.component}: ${f.reason}`).join('; ')}`,
      FailureType.BackupSetFailed,
    );
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
    await tracker.step(
      'write manifest',
      () => writeBackupManifest({ manifest, targets }),
      (copies) => copies.map((c) => c.location).join(', '),
    );
  } catch (err) {
    tracker.finish('failed');
    // Without a manifest the artefacts are orphans nobody can trust: take them away again.
    await discardBackupArtefacts({ keys: records.flatMap((r) => r.artefacts.map((a) => a.key)), targets });
    throw err;
  }

  if (failures.length > 0) {
    tracker.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `backup set ${setId} is partial: ${failures.map((f) => `${f.component}: ${f.reason}`).join('; ')}`,
      FailureType.PartialBackupSet,
    );
  }
  tracker.finish('completed');
  return { setId, manifest, ...(interrupted.length ? { interruptedAttempts: interrupted } : {}) };
}
