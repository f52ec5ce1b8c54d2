/**
 * Typed helpers for other services (and our CLI) to start and follow runbooks.
 */
import { Client, Connection, WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { Config } from '../config/schema';
import { utcStamp } from '../common/manifest';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import type { etcdBackupWorkflow, EtcdBackupInput, EtcdBackupResult } from '../workflows/etcd-backup';
import type { backupSetWorkflow, BackupSetInput, BackupSetResult } from '../workflows/backup-set';
import type { pruneBackupSetsWorkflow, PruneInput, PruneResult } from '../workflows/prune';
import type { RunProgress, StepProgress } from '../workflows/progress';
import { rootMessage } from '../workflows/progress';

export async function connectClient(config: Config): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address });
  return new Client({ connection, namespace: config.temporal.namespace });
}

export async function startEtcdBackup(client: Client, config: Config, input: EtcdBackupInput): Promise<WorkflowHandleWithFirstExecutionRunId<typeof etcdBackupWorkflow>> {
  return client.workflow.start<typeof etcdBackupWorkflow>('etcdBackupWorkflow', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `etcd-backup-${input.cluster}-${utcStamp(new Date())}`,
    args: [input],
    typedSearchAttributes: [
      { key: NnoeCluster, value: input.cluster },
      { key: NnoeRunbook, value: 'etcd-backup' },
    ],
  });
}

export async function startBackupSet(client: Client, config: Config, input: BackupSetInput): Promise<WorkflowHandleWithFirstExecutionRunId<typeof backupSetWorkflow>> {
  return client.workflow.start<typeof backupSetWorkflow>('backupSetWorkflow', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `backup-set-${input.cluster}-${utcStamp(new Date())}`,
    args: [input],
    typedSearchAttributes: [
      { key: NnoeCluster, value: input.cluster },
      { key: NnoeRunbook, value: 'backup-set' },
    ],
  });
}

export async function startPrune(client: Client, config: Config, input: PruneInput): Promise<WorkflowHandleWithFirstExecutionRunId<typeof pruneBackupSetsWorkflow>> {
  return client.workflow.start<typeof pruneBackupSetsWorkflow>('pruneBackupSetsWorkflow', {
    taskQueue: config.temporal.taskQueue,
    workflowId: `prune-backup-sets-${utcStamp(new Date())}${input.dryRun ? '-dry-run' : ''}`,
    args: [input],
    typedSearchAttributes: [{ key: NnoeRunbook, value: 'prune' }],
  });
}

/**
 * Polls the `progress` query and reports each step once when it finishes, until the run ends.
 * Returns the run's result, or throws its failure with the root cause as message.
 */
export async function followRun<R>(handle: WorkflowHandle, onStep: (step: StepProgress) => void, pollMs = 500): Promise<R> {
  const reported = new Set<string>();
  const report = (progress: RunProgress | undefined) => {
    for (const step of progress?.steps ?? []) {
      if ((step.state === 'done' || step.state === 'failed') && !reported.has(step.name)) {
        reported.add(step.name);
        onStep(step);
      }
    }
  };
  const result = handle.result() as Promise<R>;
  let settled = false;
  result.then(() => { settled = true; }, () => { settled = true; });
  while (!settled) {
    report(await handle.query<RunProgress>('progress').catch(() => undefined));
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, pollMs))]);
  }
  report(await handle.query<RunProgress>('progress').catch(() => undefined));
  try {
    return await result;
  } catch (err) {
    if (err instanceof WorkflowFailedError) throw new RunFailedError(rootMessage(err), handle.workflowId, err);
    throw err;
  }
}

export class RunFailedError extends Error {
  override readonly name = 'RunFailedError';
  constructor(message: string, readonly workflowId: string, override readonly cause: Error) {
    super(message);
  }
}

export type { EtcdBackupInput, EtcdBackupResult, BackupSetInput, BackupSetResult, PruneInput, PruneResult };
