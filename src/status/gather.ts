/**
 * The facts `nnoe-dr status` judges (./objectives.ts), read where they live: the catalog (the
 * manifests in the stores), our Temporal Schedules, Temporal visibility (the newest drill, the
 * runbooks running), the change capture's heartbeat against etcd's revision, and the agent check
 * workflow (the same `checkAgents` activity as `nnoe-dr agents check`). Nothing is changed.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter, msToNumber } from '@temporalio/common';
import type { ClusterConfig, Config } from '../config/schema';
import { findCluster } from '../config/load';
import { listBackupSets, type CatalogEntry } from '../catalog/catalog';
import { connectCluster } from '../etcd/connect';
import { currentRevision } from '../agent/republish';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { backupScheduleId, drillScheduleId } from '../client/schedules';
import { changeCaptureId, startCheckAgents } from '../client/temporal';
import { captureStatusQuery } from '../workflows/change-capture';
import type { AgentCheck } from '../activities/agent-service';
import {
  periodOf,
  type AgentFact,
  type CaptureFact,
  type ClusterFacts,
  type DrillRunFact,
  type RunbookFact,
  type ScheduleFact,
} from './objectives';

/** How long the agent check may take before status reports it unanswered (e.g. a node worker is down). */
export const AGENT_CHECK_TIMEOUT_MS = 60_000;

/** The components the config gives a cluster: what a complete protection backs up. */
export function configuredComponents(cluster: ClusterConfig): string[] {
  return [
    'etcd',
    ...(cluster.phpipam ? ['phpipam'] : []),
    ...(cluster.agents.length > 0 ? ['agent-cache', 'agent-config'] : []),
    ...(cluster.nebula.length > 0 ? ['nebula'] : []),
  ];
}

/** The agent check's verdict as one word (what `agents check` prints). */
export function agentState(check: Pick<AgentCheck, 'serving' | 'running' | 'etcdConnection'>): AgentFact['state'] {
  return check.serving ? 'serving' : check.etcdConnection === null && check.running ? 'deaf' : check.running ? 'stale' : 'down';
}

/** `lastDurable` from the running capture slice's last heartbeat, if there is one. */
export function liveDurableRevision(description: {
  raw: { pendingActivities?: Array<{ heartbeatDetails?: { payloads?: unknown[] | null } | null }> | null };
}): number | null {
  for (const activity of description.raw.pendingActivities ?? []) {
    for (const payload of activity.heartbeatDetails?.payloads ?? []) {
      const details = defaultPayloadConverter.fromPayload(payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0]) as {
        lastDurable?: unknown;
      } | null;
      if (typeof details?.lastDurable === 'number') return details.lastDurable;
    }
  }
  return null;
}

export async function scheduleFact(client: Client, scheduleId: string): Promise<ScheduleFact | null> {
  try {
    const d = await client.schedule.getHandle(scheduleId).describe();
    return { scheduleId, paused: d.state.paused, periodMs: periodOf(d.info.nextActionTimes.map((t) => t.getTime())) };
  } catch (err) {
    if ((err as Error).name === 'ScheduleNotFoundError') return null;
    throw err;
  }
}

const quoted = (value: string) => `'${value.replace(/'/g, "\\'")}'`;

/** The newest finished drill of the cluster (by close time), from visibility. */
async function lastDrill(client: Client, cluster: string): Promise<DrillRunFact | null> {
  let newest: DrillRunFact | null = null;
  let seen = 0;
  for await (const run of client.workflow.list({
    query: `${NnoeRunbook.name}='drill' AND ${NnoeCluster.name}=${quoted(cluster)} AND ExecutionStatus!='Running'`,
  })) {
    const closedAt = run.closeTime?.toISOString() ?? null;
    if (!newest || (closedAt ?? '') > (newest.closedAt ?? ''))
      newest = { workflowId: run.workflowId, status: run.status.name.toLowerCase(), closedAt };
    if (++seen >= 50) break; // newest first; a few pages are plenty
  }
  return newest;
}

async function runningRunbooks(client: Client, cluster: string): Promise<RunbookFact[]> {
  const out: RunbookFact[] = [];
  for await (const run of client.workflow.list({ query: `${NnoeCluster.name}=${quoted(cluster)} AND ExecutionStatus='Running'` })) {
    const runbook = run.typedSearchAttributes.get(NnoeRunbook) ?? run.type;
    if (runbook === 'change-capture' || runbook === 'agents-check') continue; // the capture has its own line; agents-check is status asking
    out.push({ workflowId: run.workflowId, runbook, startedAt: run.startTime.toISOString() });
  }
  return out;
}

export async function captureFact(client: Client, cluster: ClusterConfig): Promise<CaptureFact> {
  const handle = client.workflow.getHandle(changeCaptureId(cluster.name));
  let description;
  try {
    description = await handle.describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { state: 'absent', lastDurable: null, currentRevision: null };
    throw err;
  }
  const state = description.status.name.toLowerCase();
  if (state !== 'running') {
    const status = await handle.query(captureStatusQuery).catch(() => null);
    return { state, lastDurable: status?.lastDurable ?? null, currentRevision: null };
  }
  const status = await handle.query(captureStatusQuery);
  // The workflow learns a slice's totals when it returns; the running slice's heartbeat is fresher;
  // before either, everything before the capture's first revision is durable (in the snapshot).
  const lastDurable = Math.max(status.lastDurable ?? 0, liveDurableRevision(description) ?? 0, (status.fromRevision ?? 1) - 1) || null;
  try {
    const etcd = await connectCluster(cluster);
    try {
      return { state, lastDurable, currentRevision: await currentRevision(etcd) };
    } finally {
      etcd.close();
    }
  } catch (err) {
    return { state, lastDurable, currentRevision: null, etcdError: (err as Error).message };
  }
}

async function agentFacts(client: Client, config: Config, cluster: ClusterConfig, timeoutMs: number): Promise<AgentFact[] | string | null> {
  if (cluster.agents.length === 0) return null;
  const handle = await startCheckAgents(client, config, { cluster: cluster.name });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((done) => {
    timer = setTimeout(() => done('timeout'), timeoutMs);
  });
  try {
    const checks = await Promise.race([handle.result(), timedOut]);
    if (checks === 'timeout') {
      await handle.terminate('nnoe-dr status gave up waiting').catch(() => undefined);
      return `the agent check ${handle.workflowId} did not answer within ${timeoutMs / 1000} s (is every node worker polling?)`;
    }
    return checks.map((c) => ({ node: c.node, state: agentState(c), reason: c.reason ?? null }));
  } catch (err) {
    return `the agent check ${handle.workflowId} failed: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

/** The catalog of every cluster, read once for a status of several. */
export interface CatalogSnapshot {
  sets: CatalogEntry[];
  unreadableTargets: string[];
}

export async function readCatalog(config: Config): Promise<CatalogSnapshot> {
  const unreadableTargets: string[] = [];
  const sets = await listBackupSets(config, {
    onUnreadableTarget: (target, err) => unreadableTargets.push(`${target}: ${(err as Error).message}`),
  });
  return { sets, unreadableTargets };
}

/** The cluster's `objectives` in milliseconds and revisions. */
export function objectivesOf(cluster: ClusterConfig): ClusterFacts['objectives'] {
  const ms = (value: string) => msToNumber(value as Parameters<typeof msToNumber>[0]);
  const { backupMaxAge, verifiedMaxAge, captureMaxLagRevisions } = cluster.objectives;
  return {
    ...(backupMaxAge ? { backupMaxAgeMs: ms(backupMaxAge) } : {}),
    ...(verifiedMaxAge ? { verifiedMaxAgeMs: ms(verifiedMaxAge) } : {}),
    captureMaxLagRevisions,
  };
}

/** Everything status knows of one cluster, read now (the catalog as read by readCatalog). */
export async function gatherClusterFacts(
  client: Client,
  config: Config,
  clusterName: string,
  catalog: CatalogSnapshot,
  options: { agentCheckTimeoutMs?: number } = {},
): Promise<ClusterFacts> {
  const cluster = findCluster(config, clusterName);
  const { unreadableTargets } = catalog;
  const sets = catalog.sets.filter((s) => s.cluster === cluster.name);
  const [backupSchedule, drillSchedule, drill, running, capture] = await Promise.all([
    scheduleFact(client, backupScheduleId(cluster.name)),
    scheduleFact(client, drillScheduleId(cluster.name)),
    lastDrill(client, cluster.name),
    runningRunbooks(client, cluster.name),
    captureFact(client, cluster),
  ]);
  const agents = await agentFacts(client, config, cluster, options.agentCheckTimeoutMs ?? AGENT_CHECK_TIMEOUT_MS);
  return {
    cluster: cluster.name,
    now: Date.now(),
    components: configuredComponents(cluster),
    sets: sets.map((s) => ({
      setId: s.setId,
      status: s.status,
      createdAt: s.createdAt,
      components: s.components,
      ...(s.manifest.verification ? { verifiedAt: s.manifest.verification.verifiedAt } : {}),
    })),
    unreadableTargets,
    backupSchedule,
    drillSchedule,
    objectives: objectivesOf(cluster),
    lastDrill: drill,
    capture,
    running,
    agents,
  };
}
