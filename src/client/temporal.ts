/**
 * Typed helpers for other services (and our CLI) to start and follow runbooks.
 */
import {
  Client,
  Connection,
  WorkflowFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import type { Config } from '../config/schema';
import { utcStamp } from '../common/manifest';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { runDetails, runSummary } from '../common/run-metadata';
import type { etcdBackupWorkflow, EtcdBackupInput, EtcdBackupResult } from '../workflows/etcd-backup';
import type { backupSetWorkflow, BackupSetInput, BackupSetResult } from '../workflows/backup-set';
import type { pruneBackupSetsWorkflow, PruneInput, PruneResult } from '../workflows/prune';
import type { rekeyWorkflow, RekeyInput } from '../workflows/rekey';
import type { etcdRestoreWorkflow, EtcdRestoreInput } from '../workflows/etcd-restore';
import type { phpipamRestoreWorkflow, PhpipamRestoreInput } from '../workflows/phpipam-restore';
import type { agentCacheRestoreWorkflow, nebulaRestoreWorkflow, HostRestoreInput } from '../workflows/host-restore';
import type { replaceEtcdMemberWorkflow, ReplaceMemberInput } from '../workflows/etcd-member-replace';
import type { pointInTimeRestoreWorkflow, PointInTimeInput } from '../workflows/pitr';
import type { changeCaptureWorkflow, ChangeCaptureInput } from '../workflows/change-capture';
import type { disasterRecoveryWorkflow, DisasterRecoveryInput } from '../workflows/disaster-recovery';
import type { restoreDrillWorkflow, DrillInput } from '../workflows/drill';
import type { agentHostRestoreWorkflow, AgentHostRestoreInput } from '../workflows/agent-host-restore';
import type { checkAgentsWorkflow, recoverAgentsWorkflow, AgentsInput, RecoverAgentsInput } from '../workflows/agents';
import type { RunProgress, StepProgress } from '../workflows/progress';
import { rootMessage } from '../workflows/progress';
import { defaultPayloadConverter } from '@temporalio/common';
import { TransferMeter, transferOfHeartbeat, type TransferView } from './transfer-progress';

export async function connectClient(config: Config): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address });
  return new Client({ connection, namespace: config.temporal.namespace });
}

/**
 * Starts a runbook workflow on the management queue with a readable id
 * (`<runbook>-<cluster>-<UTC stamp>`), the search attributes the UI and prune filter on, and the
 * summary and details the UI shows for the run.
 */
async function startRunbook<W extends (input: any) => Promise<unknown>>(
  client: Client,
  config: Config,
  workflowType: string,
  runbook: string,
  input: Parameters<W>[0] & { cluster?: string },
  idSuffix = '',
): Promise<WorkflowHandleWithFirstExecutionRunId<W>> {
  const cluster = input.cluster;
  return client.workflow.start<W>(workflowType, {
    taskQueue: config.temporal.taskQueue,
    workflowId: [runbook, cluster, utcStamp(new Date())].filter(Boolean).join('-') + idSuffix,
    args: [input] as Parameters<W>,
    typedSearchAttributes: [{ key: NnoeRunbook, value: runbook }, ...(cluster ? [{ key: NnoeCluster, value: cluster }] : [])],
    staticSummary: runSummary(workflowType, input),
    staticDetails: runDetails(workflowType, input),
  });
}

export function startEtcdBackup(client: Client, config: Config, input: EtcdBackupInput) {
  return startRunbook<typeof etcdBackupWorkflow>(client, config, 'etcdBackupWorkflow', 'etcd-backup', input);
}

export function startBackupSet(client: Client, config: Config, input: BackupSetInput) {
  return startRunbook<typeof backupSetWorkflow>(client, config, 'backupSetWorkflow', 'backup-set', input);
}

export function startPrune(client: Client, config: Config, input: PruneInput) {
  return startRunbook<typeof pruneBackupSetsWorkflow>(
    client,
    config,
    'pruneBackupSetsWorkflow',
    'prune',
    input,
    input.dryRun ? '-dry-run' : '',
  );
}

export function startRekey(client: Client, config: Config, input: RekeyInput) {
  return startRunbook<typeof rekeyWorkflow>(client, config, 'rekeyWorkflow', 'rekey', input, input.dryRun ? '-dry-run' : '');
}

export function startEtcdRestore(client: Client, config: Config, input: EtcdRestoreInput) {
  return startRunbook<typeof etcdRestoreWorkflow>(
    client,
    config,
    'etcdRestoreWorkflow',
    'etcd-restore',
    input,
    input.dryRun ? '-dry-run' : '',
  );
}

export function startPhpipamRestore(client: Client, config: Config, input: PhpipamRestoreInput) {
  return startRunbook<typeof phpipamRestoreWorkflow>(
    client,
    config,
    'phpipamRestoreWorkflow',
    'phpipam-restore',
    input,
    input.dryRun ? '-dry-run' : '',
  );
}

/** One node's agent cache; the workflow id ends with the node (`agent-cache-restore-<cluster>-<stamp>-<node>`). */
export function startAgentCacheRestore(client: Client, config: Config, input: HostRestoreInput) {
  return startRunbook<typeof agentCacheRestoreWorkflow>(
    client,
    config,
    'agentCacheRestoreWorkflow',
    'agent-cache-restore',
    input,
    `-${input.node}${input.dryRun ? '-dry-run' : ''}`,
  );
}

/** One node's Nebula files; the workflow id ends with the node. */
export function startNebulaRestore(client: Client, config: Config, input: HostRestoreInput) {
  return startRunbook<typeof nebulaRestoreWorkflow>(
    client,
    config,
    'nebulaRestoreWorkflow',
    'nebula-restore',
    input,
    `-${input.node}${input.dryRun ? '-dry-run' : ''}`,
  );
}

export function startReplaceMember(client: Client, config: Config, input: ReplaceMemberInput) {
  return startRunbook<typeof replaceEtcdMemberWorkflow>(
    client,
    config,
    'replaceEtcdMemberWorkflow',
    'etcd-member-replace',
    input,
    `-${input.member}`,
  );
}

export function startPointInTimeRestore(client: Client, config: Config, input: PointInTimeInput) {
  return startRunbook<typeof pointInTimeRestoreWorkflow>(client, config, 'pointInTimeRestoreWorkflow', 'pitr', input);
}

export function startDisasterRecovery(client: Client, config: Config, input: DisasterRecoveryInput) {
  return startRunbook<typeof disasterRecoveryWorkflow>(client, config, 'disasterRecoveryWorkflow', 'disaster-recovery', input);
}

export function startDrill(client: Client, config: Config, input: DrillInput) {
  return startRunbook<typeof restoreDrillWorkflow>(client, config, 'restoreDrillWorkflow', 'drill', input);
}

/** One agent node's host state (agent.toml, TLS dir, DNSSEC keys, lease file); the workflow id ends with the node. */
export function startAgentHostRestore(client: Client, config: Config, input: AgentHostRestoreInput) {
  return startRunbook<typeof agentHostRestoreWorkflow>(
    client,
    config,
    'agentHostRestoreWorkflow',
    'agent-host-restore',
    input,
    `-${input.node}${input.dryRun ? '-dry-run' : ''}`,
  );
}

export function startCheckAgents(client: Client, config: Config, input: AgentsInput) {
  return startRunbook<typeof checkAgentsWorkflow>(client, config, 'checkAgentsWorkflow', 'agents-check', input);
}

export function startRecoverAgents(client: Client, config: Config, input: RecoverAgentsInput) {
  return startRunbook<typeof recoverAgentsWorkflow>(
    client,
    config,
    'recoverAgentsWorkflow',
    'agents-recover',
    input,
    input.dryRun ? '-dry-run' : '',
  );
}

/** The one change capture of a cluster: a fixed id, so starting it twice finds the running one. */
export function changeCaptureId(cluster: string): string {
  return `nnoe-dr-change-capture-${cluster}`;
}

export async function startChangeCapture(client: Client, config: Config, input: ChangeCaptureInput) {
  return client.workflow.start<typeof changeCaptureWorkflow>('changeCaptureWorkflow', {
    taskQueue: config.temporal.taskQueue,
    workflowId: changeCaptureId(input.cluster),
    workflowIdConflictPolicy: 'USE_EXISTING',
    args: [input],
    typedSearchAttributes: [
      { key: NnoeRunbook, value: 'change-capture' },
      { key: NnoeCluster, value: input.cluster },
    ],
    staticSummary: runSummary('changeCaptureWorkflow', input),
    staticDetails: runDetails('changeCaptureWorkflow', input),
  });
}

/**
 * Polls the `progress` query and reports each step once when it finishes, until the run ends.
 * Returns the run's result, or throws its failure with the root cause as message.
 */
export async function followRun<R>(
  handle: WorkflowHandle,
  onStep: (step: StepProgress) => void,
  pollMs = 500,
  onTransfers?: (transfers: TransferView[]) => void,
): Promise<R> {
  const meter = new TransferMeter();
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
  result.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  while (!settled) {
    report(await handle.query<RunProgress>('progress').catch(() => undefined));
    if (onTransfers) onTransfers(await pendingTransfers(handle, meter).catch(() => []));
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

/** The run's pending activities that heartbeat a byte count, with rate and ETA from the meter's earlier samples. */
export async function pendingTransfers(handle: WorkflowHandle, meter: TransferMeter): Promise<TransferView[]> {
  const pending = (await handle.describe()).raw.pendingActivities ?? [];
  const views: TransferView[] = [];
  for (const activity of pending) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const transfer = transferOfHeartbeat(activity.activityType?.name ?? 'activity', defaultPayloadConverter.fromPayload(payload));
    if (!transfer) continue;
    const at = activity.lastHeartbeatTime;
    const atMs = at ? Number(at.seconds ?? 0) * 1000 + Math.floor((at.nanos ?? 0) / 1e6) : Date.now();
    views.push(meter.add({ id: activity.activityId ?? transfer.what, atMs, ...transfer }));
  }
  meter.retain(new Set(views.map((v) => v.id)));
  return views;
}

export class RunFailedError extends Error {
  override readonly name = 'RunFailedError';
  constructor(
    message: string,
    readonly workflowId: string,
    override readonly cause: Error,
  ) {
    super(message);
  }
}

export type { EtcdBackupInput, EtcdBackupResult, BackupSetInput, BackupSetResult, PruneInput, PruneResult };
