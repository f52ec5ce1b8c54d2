/**
 * A worker's Prometheus endpoint (`metrics.management.listen` / `metrics.node.listen`), served with
 * prom-client: the process's own series (`nnoe_dr_process_*`, `nnoe_dr_nodejs_*`) and, on the
 * management worker, our series (./derive.ts) re-derived every `metrics.refreshSeconds` from the
 * catalog, our schedules, Temporal visibility, the capture's heartbeat against etcd and the task
 * queues' pollers. Nothing is kept in memory between refreshes, so a restarted worker exports the
 * same values as the one before it. The Temporal SDK's own series are the Runtime's exporter, on
 * its own address (`temporalListen`, see installTemporalMetrics).
 */
import { createServer, type Server } from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { Runtime } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import { NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { backupScheduleId, drillScheduleId } from '../client/schedules';
import { captureFact, configuredComponents, objectivesOf, readCatalog, scheduleFact } from '../status/gather';
import { backupLimit, verifiedLimit } from '../status/objectives';
import type { PruneResult } from '../workflows/prune';
import { assessKeys, heldRecipients } from '../catalog/keys';
import { catalogSamples, METRICS, runbookSamples, type FinishedRun, type MetricName, type MetricSample } from './derive';

export interface MetricsEndpoint {
  listen: string;
  temporalListen?: string;
}

/** The endpoint this worker serves, if the config gives one: per node, else every node, else none. */
export function metricsEndpointFor(config: Config, node: string | undefined): MetricsEndpoint | undefined {
  if (!config.metrics) return undefined;
  return node ? (config.metrics.nodes[node] ?? config.metrics.node) : config.metrics.management;
}

/** The SDK's Prometheus exporter; must run before any connection is made in this process. */
export function installTemporalMetrics(endpoint: MetricsEndpoint | undefined): void {
  if (!endpoint?.temporalListen) return;
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: { bindAddress: endpoint.temporalListen, countersTotalSuffix: true, useSecondsForDurations: true, unitSuffix: true },
      },
    },
  });
}

function splitHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!match) throw new Error(`metrics listen address "${address}" is not host:port`);
  return { host: match[1] ?? match[2]!, port: Number(match[3]) };
}

export interface MetricsServer {
  /** The bound address (host:port), useful when the config asked for port 0. */
  address: string;
  registry: Registry;
  /** Derives our series now (the management worker's timer calls it). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/** Every series of our own, set from scratch: series of a set or runbook that vanished go too. */
function setAll(gauges: Map<MetricName, Gauge>, samples: MetricSample[]): void {
  for (const gauge of gauges.values()) gauge.reset();
  for (const s of samples) gauges.get(s.name as MetricName)!.set(s.labels, s.value);
}

const quoted = (value: string) => `'${value.replace(/'/g, "\\'")}'`;

/** Newest finished runs of every runbook (visibility lists newest first; a few hundred are plenty). */
async function finishedRuns(
  client: Client,
  query: string,
  limit = 300,
): Promise<Array<FinishedRun & { cluster: string; workflowId: string; runId: string }>> {
  const out = [];
  for await (const run of client.workflow.list({ query: `${query} AND ExecutionStatus!='Running'` })) {
    if (run.closeTime) {
      out.push({
        runbook: run.typedSearchAttributes.get(NnoeRunbook) ?? run.type,
        status: run.status.name.toLowerCase(),
        startedAt: run.startTime.toISOString(),
        closedAt: run.closeTime.toISOString(),
        cluster: run.typedSearchAttributes.get(NnoeCluster) ?? 'all',
        workflowId: run.workflowId,
        runId: run.runId,
      });
    }
    if (out.length >= limit) break;
  }
  return out;
}

/** Pollers the server saw on a task queue's activity side lately (a dead worker drops out within minutes). */
async function pollers(client: Client, config: Config, taskQueue: string): Promise<number> {
  const answer = await client.workflowService.describeTaskQueue({
    namespace: config.temporal.namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  return answer.pollers?.length ?? 0;
}

/** Every node a node worker should serve (the worker's own list of valid --node values). */
export function configuredNodes(config: Config): string[] {
  return [
    ...new Set(
      config.clusters.flatMap((c) => [
        ...c.etcd.members.map((m) => m.node),
        ...c.agents.map((a) => a.node),
        ...c.nebula.map((n) => n.node),
        ...c.checks.dhcp.map((d) => d.node),
      ]),
    ),
  ];
}

/** What the management worker exports, read now; a source that cannot be read is counted, the others still export. */
export async function deriveSamples(client: Client, config: Config): Promise<{ samples: MetricSample[]; errors: string[] }> {
  const samples: MetricSample[] = [];
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  // The catalog once for every cluster: each target's manifests are read once per refresh.
  const catalog = await readCatalog(config).catch((err: unknown) => {
    errors.push(`catalog: ${(err as Error).message}`);
    return null;
  });
  const sets = catalog?.sets ?? [];
  errors.push(...(catalog?.unreadableTargets ?? []).map((t) => `target ${t}`));
  // Whose identities this worker holds, once: the key inventory judges every retained set by them.
  const held = await heldRecipients(config).catch((err: unknown) => {
    errors.push(`age identity: ${(err as Error).message}`);
    return undefined;
  });
  for (const cluster of config.clusters) {
    const labels = { cluster: cluster.name };
    const clusterSets = sets.filter((s) => s.cluster === cluster.name);
    samples.push(
      ...catalogSamples(
        cluster.name,
        configuredComponents(cluster),
        clusterSets.map((s) => s.manifest),
      ),
    );
    if (held !== undefined) {
      const atRisk = assessKeys(clusterSets, config.encryption?.recipients ?? [], held).sets.filter((s) => s.problems.length > 0).length;
      samples.push({ name: 'nnoe_dr_backup_sets_keys_at_risk', labels, value: atRisk });
    }
    await attempt(`schedules of ${cluster.name}`, async () => {
      const [backupSchedule, drillSchedule] = await Promise.all([
        scheduleFact(client, backupScheduleId(cluster.name)),
        scheduleFact(client, drillScheduleId(cluster.name)),
      ]);
      if (backupSchedule?.periodMs)
        samples.push({ name: 'nnoe_dr_backup_schedule_period_seconds', labels, value: backupSchedule.periodMs / 1000 });
      if (backupSchedule) samples.push({ name: 'nnoe_dr_backup_schedule_paused', labels, value: backupSchedule.paused ? 1 : 0 });
      // The bounds `nnoe-dr status` judges by, so the alerts hold the cluster to the same objectives.
      const objectives = objectivesOf(cluster);
      const backup = backupLimit({ objectives, backupSchedule });
      const verified = verifiedLimit({ objectives, drillSchedule });
      if (backup) samples.push({ name: 'nnoe_dr_objective_backup_max_age_seconds', labels, value: backup.ms / 1000 });
      if (verified) samples.push({ name: 'nnoe_dr_objective_verified_max_age_seconds', labels, value: verified.ms / 1000 });
    });
    samples.push({ name: 'nnoe_dr_objective_capture_max_lag_revisions', labels, value: cluster.objectives.captureMaxLagRevisions });
    await attempt(`capture of ${cluster.name}`, async () => {
      const capture = await captureFact(client, cluster);
      samples.push({ name: 'nnoe_dr_capture_running', labels, value: capture.state === 'running' ? 1 : 0 });
      if (capture.lastDurable !== null) samples.push({ name: 'nnoe_dr_capture_last_durable_revision', labels, value: capture.lastDurable });
      if (capture.state === 'running' && capture.currentRevision !== null && capture.lastDurable !== null) {
        samples.push({ name: 'nnoe_dr_capture_lag_revisions', labels, value: Math.max(0, capture.currentRevision - capture.lastDurable) });
      }
      if (capture.etcdError) errors.push(`etcd revision of ${cluster.name}: ${capture.etcdError}`);
    });
    await attempt(`runbooks of ${cluster.name}`, async () => {
      samples.push(...runbookSamples(cluster.name, await finishedRuns(client, `${NnoeCluster.name}=${quoted(cluster.name)}`)));
    });
  }
  await attempt('prune runs', async () => {
    const runs = await finishedRuns(client, `${NnoeRunbook.name}='prune'`, 50);
    samples.push(
      ...runbookSamples(
        'all',
        runs.filter((r) => r.cluster === 'all'),
      ),
    );
    for (const run of runs.filter((r) => r.status === 'completed')) {
      const result = (await client.workflow.getHandle(run.workflowId, run.runId).result()) as PruneResult;
      if (result.dryRun) continue;
      samples.push({ name: 'nnoe_dr_prune_last_deleted_sets', labels: {}, value: result.expire.length });
      samples.push({ name: 'nnoe_dr_prune_last_deleted_segments', labels: {}, value: result.segments?.objects ?? 0 });
      break;
    }
  });
  await attempt('task queues', async () => {
    const base = config.temporal.taskQueue;
    samples.push({
      name: 'nnoe_dr_task_queue_pollers',
      labels: { task_queue: base, kind: 'management', node: '' },
      value: await pollers(client, config, base),
    });
    for (const node of configuredNodes(config)) {
      const queue = nodeTaskQueue(base, node);
      samples.push({
        name: 'nnoe_dr_task_queue_pollers',
        labels: { task_queue: queue, kind: 'node', node },
        value: await pollers(client, config, queue),
      });
    }
  });
  return { samples, errors };
}

/**
 * Serves /metrics on `endpoint.listen`. With a client (the management worker), our series are
 * derived now and every `refreshSeconds`; without one (node workers), only the process's series.
 */
export async function startMetricsServer(
  endpoint: MetricsEndpoint,
  options: { client?: Client; config: Config; kind: 'management' | 'node'; node?: string },
): Promise<MetricsServer> {
  const registry = new Registry();
  registry.setDefaultLabels({ worker: options.kind === 'node' ? `node-${options.node}` : 'management' });
  collectDefaultMetrics({ register: registry, prefix: 'nnoe_dr_' });
  const gauges = new Map<MetricName, Gauge>();
  let timer: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> = Promise.resolve();
  const refresh = async () => {
    if (!options.client) return;
    if (gauges.size === 0) {
      for (const [name, def] of Object.entries(METRICS))
        gauges.set(name as MetricName, new Gauge({ name, help: def.help, labelNames: [...def.labels], registers: [registry] }));
    }
    const { samples, errors } = await deriveSamples(options.client, options.config);
    const now = Date.now() / 1000;
    const previousOk = gauges.get('nnoe_dr_metrics_refresh_timestamp_seconds')!;
    const lastOk = (await previousOk.get()).values[0]?.value;
    setAll(gauges, [
      ...samples,
      { name: 'nnoe_dr_metrics_refresh_errors', labels: {}, value: errors.length },
      // Kept from the last clean refresh when this one had errors: the alert on it sees metrics going stale.
      ...(errors.length === 0
        ? [{ name: 'nnoe_dr_metrics_refresh_timestamp_seconds', labels: {}, value: now }]
        : lastOk !== undefined
          ? [{ name: 'nnoe_dr_metrics_refresh_timestamp_seconds', labels: {}, value: lastOk }]
          : []),
    ]);
    if (errors.length > 0) console.error(`nnoe-dr metrics: ${errors.length} source(s) could not be read: ${errors.join('; ')}`);
  };
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('see /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(`${(err as Error).message}\n`),
    );
  });
  const { host, port } = splitHostPort(endpoint.listen);
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(port, host, ready);
  });
  const bound = server.address() as { address: string; port: number };
  if (options.client) {
    const tick = () => {
      refreshing = refresh().catch((err: unknown) => console.error(`nnoe-dr metrics refresh failed: ${(err as Error).message}`));
      return refreshing;
    };
    void tick(); // not awaited: a large catalog must not hold up the worker's start
    timer = setInterval(() => void tick(), (options.config.metrics?.refreshSeconds ?? 60) * 1000);
  }
  return {
    address: `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`,
    registry,
    refresh: () => (refreshing = refreshing.then(refresh, refresh)),
    close: async () => {
      clearInterval(timer);
      await refreshing;
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
