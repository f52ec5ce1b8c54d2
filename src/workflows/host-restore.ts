/**
 * Runbooks "sled Cache Restore" and "Nebula Certificate Restore" for one node, the host-local
 * steps on that node's own queue:
 *
 *   preflight -> prepare dir -> stop service -> swap dir -> start service
 *
 * The preflight fetches and checks the archive on the node and validates every entry (absolute
 * paths, `..`, links out of the dir are refused there, before anything is stopped). The restored
 * dir is complete and checked beside the live one before the service stops, so the service is down
 * only for the swap (the runbook extracts while it is stopped; the result is the same, the outage
 * shorter). For Nebula "checked" means the runbook's modes, host.crt issued by ca.crt and the config
 * loading; a CA mismatch is refused with the live dir untouched. The old dir is kept as
 * `<dir>.pre-restore-<stamp>`, and the service is started again whatever happens (non-cancellable).
 */
import { ApplicationFailure, CancellationScope, isCancellation, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { Duration } from '@temporalio/common';
import type {
  createHostRestoreActivities,
  createHostRestorePlanActivities,
  HostRestoreKind,
  HostRestorePlan,
  PreparedDir,
} from '../activities/host-restore';
import type { AgentHealth } from '../activities/agent-service';
import type { NebulaModeChange } from '../nebula/certs';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { ProgressTracker, rootMessage } from './progress';
import { failureTypeOf } from './approval';
import { agentsNotServing, agentsOnNode, describeRecovery, REAL_AGENT_RECOVERY, recoverAgents, type AgentRecovery } from './agent-recovery';
import { rejectBadInput } from './input';
import { durationProblem } from '../common/input-checks';

export interface HostRestoreInput {
  cluster: string;
  node: string;
  /** A set id; the newest complete set holding this node's archive when omitted. */
  setId?: string;
  /** Preflight only: the archive fetched and validated on the node, nothing stopped or written. */
  dryRun?: boolean;
  /** How long the node worker may take to pick up a step (a dead node worker fails the step). Default 2m. */
  nodeResponseTimeout?: Duration;
}

export interface HostRestoreResult {
  kind: HostRestoreKind;
  node: string;
  setId: string;
  dryRun: boolean;
  /** The live dir (now holding the restored files unless dryRun). */
  dir: string;
  /** The old dir, kept beside as `<dir>.pre-restore-<stamp>`; null for a dry run or when there was none. */
  previousDir: string | null;
  entries: number;
  /** Files of the old dir the archive does not hold (still in previousDir). */
  notInArchive: string[];
  /** Nebula: modes set to the runbook's while preparing. */
  modeChanges: NebulaModeChange[];
  hostCert: PreparedDir['hostCert'] | null;
  service: string | null;
  /** The agent's health after its start (cache restore). */
  health: AgentHealth | null;
  /** The agent after its start, republish and check (cache restore; runs since the real agent). */
  agent?: AgentRecovery;
}

type PlanActivities = ReturnType<typeof createHostRestorePlanActivities>;
type NodeActivities = ReturnType<typeof createHostRestoreActivities>;

const { planHostRestore } = proxyActivities<PlanActivities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Steps on the node. `scheduleToStart` makes a dead node worker fail the step instead of hanging it. */
function onNode(node: string, nodeResponseTimeout: Duration): NodeActivities {
  return proxyActivities<NodeActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    scheduleToStartTimeout: nodeResponseTimeout,
    startToCloseTimeout: '1h',
    heartbeatTimeout: '1m',
    retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

/** Starting the service again: patient (a node worker that restarts in time still does it), but bounded. */
function startOnNode(node: string): NodeActivities {
  return proxyActivities<NodeActivities>({
    taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
    scheduleToCloseTimeout: '15m',
    startToCloseTimeout: '5m',
    retry: { initialInterval: '2s', maximumInterval: '30s', nonRetryableErrorTypes: NON_RETRYABLE },
  });
}

interface Labels {
  runbook: string;
  what: string;
  prepare: string;
  stop: string;
  swap: string;
  start: string;
}

const LABELS: Record<HostRestoreKind, Labels> = {
  'agent-cache': {
    runbook: 'agent-cache-restore',
    what: 'cache',
    prepare: 'prepare cache dir',
    stop: 'stop agent',
    swap: 'swap cache dir',
    start: 'start agent',
  },
  nebula: {
    runbook: 'nebula-restore',
    what: 'Nebula',
    prepare: 'prepare Nebula dir',
    stop: 'stop Nebula',
    swap: 'swap Nebula dir',
    start: 'start Nebula',
  },
};

export async function agentCacheRestoreWorkflow(input: HostRestoreInput): Promise<HostRestoreResult> {
  return restoreHostDir('agent-cache', input);
}

export async function nebulaRestoreWorkflow(input: HostRestoreInput): Promise<HostRestoreResult> {
  return restoreHostDir('nebula', input);
}

async function restoreHostDir(kind: HostRestoreKind, input: HostRestoreInput): Promise<HostRestoreResult> {
  if (!input || typeof input.cluster !== 'string' || !input.cluster || typeof input.node !== 'string' || !input.node) {
    throw ApplicationFailure.nonRetryable(
      `a ${kind} restore needs { cluster, node } naming a cluster and one of its nodes from the config`,
      FailureType.InvalidInput,
    );
  }
  rejectBadInput(`${kind} restore`, [durationProblem('nodeResponseTimeout', input.nodeResponseTimeout)]);
  const labels = LABELS[kind];
  const node = onNode(input.node, input.nodeResponseTimeout ?? '2m');
  const tracker = new ProgressTracker(labels.runbook, input.cluster, ['preflight', labels.prepare, labels.stop, labels.swap, labels.start]);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: labels.runbook },
  ]);

  // ---- preflight: the set chosen, the archive fetched, checked and every entry validated on the node.
  let plannedSetId: string | null = null;
  const { plan, staged } = await tracker
    .step(
      'preflight',
      async () => {
        const planned = await planHostRestore({ cluster: input.cluster, node: input.node, kind, setId: input.setId });
        plannedSetId = planned.setId;
        tracker.progress.setId = planned.setId;
        upsertSearchAttributes([{ key: NnoeBackupSet, value: planned.setId }]);
        const archive = await node.stageHostArchive({
          cluster: planned.cluster,
          kind,
          setId: planned.setId,
          artefact: planned.artefact,
          archivedDir: planned.archivedDir,
        });
        return { plan: planned, staged: archive };
      },
      ({ plan: p, staged: a }) =>
        `set ${p.setId}: ${a.entries} entries of ${p.archivedDir} checked on ${p.node} (copy from ${a.target}), to restore into ${a.targetDir}`,
    )
    .catch(async (err: unknown) => {
      const setId = plannedSetId;
      if (setId !== null) await CancellationScope.nonCancellable(() => node.discardStagedArchive({ setId, kind }).catch(() => undefined));
      tracker.finish('failed');
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.nonRetryable(
        `${labels.what} restore on ${input.node} refused in the preflight: ${err instanceof Error ? rootMessage(err) : String(err)}; nothing was stopped or changed`,
        failureTypeOf(err) ?? FailureType.RestoreRefused,
      );
    });

  const discardStaged = () =>
    CancellationScope.nonCancellable(() => node.discardStagedArchive({ setId: plan.setId, kind }).catch(() => undefined));
  const result: HostRestoreResult = {
    kind,
    node: input.node,
    setId: plan.setId,
    dryRun: input.dryRun === true,
    dir: staged.targetDir,
    previousDir: null,
    entries: staged.entries,
    notInArchive: [],
    modeChanges: [],
    hostCert: null,
    service: plan.service,
    health: null,
  };
  if (input.dryRun === true) {
    tracker.note(labels.prepare, 'dry run: nothing stopped, nothing written');
    await discardStaged();
    tracker.finish('completed');
    return result;
  }

  // ---- the changing part: prepared beside, then stop, swap, start.
  let prepared: PreparedDir | null = null;
  let swapped = false;
  let swapStarted = false;
  let serviceTouched = false;
  try {
    prepared = await tracker.step(
      labels.prepare,
      () => node.prepareRestoredDir({ cluster: plan.cluster, kind, setId: plan.setId, archivedDir: plan.archivedDir }),
      (p) =>
        [
          `${p.entries} entries in ${p.dir}`,
          ...(p.modeChanges.length
            ? [`modes set: ${p.modeChanges.map((c) => `${c.file.split('/').pop()} ${c.from.toString(8)}->${c.to.toString(8)}`).join(', ')}`]
            : []),
          ...(p.hostCert ? [`host.crt (${p.hostCert.name}) issued by ca.crt, valid until ${p.hostCert.notAfter}; config loads`] : []),
          ...(p.notInArchive.length ? [`not in the archive, left in the old dir: ${p.notInArchive.join(', ')}`] : []),
        ].join('; '),
    );
    result.entries = prepared.entries;
    result.notInArchive = prepared.notInArchive;
    result.modeChanges = prepared.modeChanges;
    result.hostCert = prepared.hostCert ?? null;

    await tracker.step(
      labels.stop,
      async () => {
        serviceTouched = true; // from here on the service is started again, whatever happens
        return node.stopServiceForRestore({ cluster: plan.cluster, kind });
      },
      (s) =>
        s.service
          ? `${s.service} stopped${s.wasRunning ? '' : ' (was not running)'}`
          : `no ${labels.what} service configured: nothing to stop`,
    );

    swapStarted = true;
    const swap = await tracker.step(
      labels.swap,
      () => node.swapRestoredDir({ cluster: plan.cluster, kind, preparedDir: prepared!.dir, preparedIno: prepared!.ino }),
      (s) => `${s.dir} restored${s.previousDir ? `; old dir kept as ${s.previousDir}` : ''}`,
    );
    swapped = true;
    result.previousDir = swap.previousDir;
  } catch (err) {
    const cause = err instanceof Error ? rootMessage(err) : String(err);
    await CancellationScope.nonCancellable(async () => {
      if (prepared && !swapped)
        await node.discardPreparedDir({ cluster: plan.cluster, kind, preparedDir: prepared.dir }).catch(() => undefined);
      if (serviceTouched) await startService(kind, input.node, plan, tracker, labels, result).catch(() => undefined);
      await discardStaged();
    });
    tracker.finish('failed');
    if (isCancellation(err)) throw err;
    // swapDirectory puts the old dir back when its second rename fails; only a swap that died unreported leaves doubt.
    const state = swapStarted
      ? `check ${staged.targetDir} and its .pre-restore-* sibling (the swap step failed)`
      : `${staged.targetDir} was not changed`;
    throw ApplicationFailure.nonRetryable(
      `${labels.what} restore of ${plan.setId} on ${input.node} failed: ${cause}; ${state}`,
      failureTypeOf(err) ?? FailureType.RestoreFailed,
    );
  }

  let startFailure: unknown = null;
  await CancellationScope.nonCancellable(async () => {
    await startService(kind, input.node, plan, tracker, labels, result).catch((err: unknown) => {
      startFailure = err;
    });
    await discardStaged();
  });
  if (startFailure) {
    tracker.finish('failed');
    const cause = startFailure instanceof Error ? rootMessage(startFailure) : String(startFailure);
    throw ApplicationFailure.nonRetryable(
      `${staged.targetDir} on ${input.node} was restored from ${plan.setId} (old dir ${result.previousDir}) but the service did not come back: ${cause}`,
      failureTypeOf(startFailure) ?? FailureType.RestoreFailed,
    );
  }
  tracker.finish('completed');
  return result;
}

/** Agent: started and waited for until healthy. Nebula: started when a service is configured. */
async function startService(
  kind: HostRestoreKind,
  nodeName: string,
  plan: HostRestorePlan,
  tracker: ProgressTracker,
  labels: Labels,
  result: HostRestoreResult,
): Promise<void> {
  if (kind === 'agent-cache' && patched(REAL_AGENT_RECOVERY)) {
    // The real agent never reads its cache back: it serves only what is put after its start.
    const [agent] = await tracker.step(labels.start, () => recoverAgents(plan.cluster, [nodeName], { startOnly: true }), describeRecovery);
    result.agent = agent;
    const problem = agentsNotServing(agent ? [agent] : []);
    if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.AgentsNotServing);
    return;
  }
  if (kind === 'agent-cache') {
    result.health = await tracker.step(
      labels.start,
      () => agentsOnNode(nodeName).startAgentAndWait({ cluster: plan.cluster }),
      (h) => `healthy ${h.readyAfterMs} ms after its start`,
    );
    return;
  }
  await tracker.step(
    labels.start,
    () => startOnNode(nodeName).startServiceAfterRestore({ cluster: plan.cluster, kind }),
    (s) => (s.service ? `${s.service} running` : `no ${labels.what} service configured: nothing to start`),
  );
}
