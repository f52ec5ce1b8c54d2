/**
 * The one worker entry point.
 *   management mode (default): every workflow + the network activities, on the main task queue;
 *   node mode (--node NAME):   the host-local activities of that node, on `<queue>.node.NAME`.
 * SIGINT/SIGTERM drain in-flight tasks and exit cleanly.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { defaultConfigPath, loadConfig } from './config/load';
import type { Config } from './config/schema';
import { createManagementActivities, createNodeActivities } from './activities';
import { nodeTaskQueue } from './common/search-attributes';
import { configuredNodes, installTemporalMetrics, metricsEndpointFor, startMetricsServer, type MetricsServer } from './metrics/server';
import { connectClient } from './client/temporal';

export interface WorkerSettings {
  config: Config;
  node?: string;
  /** A prebuilt workflow bundle (tests build it once); otherwise bundled from source at start. */
  workflowBundlePath?: string;
  /**
   * `--metrics-listen host:port`: this process's own endpoint instead of the config's, without the
   * SDK's listener (two workers of one kind on one host, e.g. the sandbox's two management workers).
   */
  metricsListen?: string;
  /** `--max-concurrent-activities` / `--max-concurrent-workflow-tasks`: instead of workerLimits' defaults. */
  limits?: Partial<WorkerLimits>;
}

export interface WorkerLimits {
  maxConcurrentActivityTaskExecutions: number;
  maxConcurrentWorkflowTaskExecutions: number;
}

/**
 * How much a management worker runs at once (bench/fleet, README "Running workers"): a fixed
 * MANAGEMENT_ACTIVITY_SLOTS for backups, dumps, uploads and checks, plus one per cluster, because a
 * change capture running here holds a slot for its whole slice and must never wait behind
 * backups. Each stream to S3 holds a part (8 MiB): with 16 MiB snapshots 50 sets at once took the
 * worker to 693 MiB with 70 slots, 334 MiB with 10, and were done sooner with 10 (2 cores). The
 * SDK's default of 100 would let a fleet's backups all stream at once. Workflow tasks are short:
 * 40, the SDK's default. Node workers keep the SDK's defaults (one host's work).
 */
export function workerLimits(config: Config, node: string | undefined, overrides: Partial<WorkerLimits> = {}): Partial<WorkerLimits> {
  const defaults: Partial<WorkerLimits> = node
    ? {}
    : {
        maxConcurrentActivityTaskExecutions: MANAGEMENT_ACTIVITY_SLOTS + config.clusters.length,
        maxConcurrentWorkflowTaskExecutions: WORKFLOW_TASK_SLOTS,
      };
  return { ...defaults, ...overrides };
}

/** Activity slots of a management worker besides the captures' (bench/fleet). */
export const MANAGEMENT_ACTIVITY_SLOTS = 10;
const WORKFLOW_TASK_SLOTS = 40;

export async function createWorker(settings: WorkerSettings, connection: NativeConnection): Promise<Worker> {
  const { config, node } = settings;
  const common: Pick<WorkerOptions, 'connection' | 'namespace' | 'maxHeartbeatThrottleInterval' | keyof WorkerLimits> = {
    connection,
    namespace: config.temporal.namespace,
    ...workerLimits(config, node, settings.limits),
    // A cancel (a capture stop, a cancelled restore step) reaches an activity with a heartbeat sent
    // to the server; by default those go out every 0.8 x the heartbeat timeout (24 s for 30 s).
    maxHeartbeatThrottleInterval: '3s',
  };
  if (node) {
    const known = configuredNodes(config);
    if (!known.includes(node)) {
      throw new Error(
        `node "${node}" is not named by any etcd member, agent or Nebula node in the config (expected one of: ${known.join(', ')})`,
      );
    }
    return Worker.create({
      ...common,
      taskQueue: nodeTaskQueue(config.temporal.taskQueue, node),
      activities: createNodeActivities({ config, node }),
    });
  }
  const bundlePath = settings.workflowBundlePath ?? prebuiltBundle();
  return Worker.create({
    ...common,
    taskQueue: config.temporal.taskQueue,
    activities: createManagementActivities({ config }),
    ...(bundlePath ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: require.resolve('./workflows') }),
  });
}

/** The bundle `npm run build` writes beside the compiled worker; absent when running from source. */
function prebuiltBundle(): string | undefined {
  const path = join(__dirname, 'workflow-bundle.js');
  return __filename.endsWith('.js') && existsSync(path) ? path : undefined;
}

export async function runWorker(settings: WorkerSettings): Promise<void> {
  const endpoint = settings.metricsListen ? { listen: settings.metricsListen } : metricsEndpointFor(settings.config, settings.node);
  installTemporalMetrics(endpoint); // before the first connection: the SDK's runtime is created with it
  const connection = await NativeConnection.connect({ address: settings.config.temporal.address });
  let metrics: MetricsServer | undefined;
  let client: Awaited<ReturnType<typeof connectClient>> | undefined;
  try {
    const worker = await createWorker(settings, connection);
    if (endpoint) {
      // The management worker derives our series from the catalog and Temporal; node workers serve their process's.
      if (!settings.node) client = await connectClient(settings.config);
      metrics = await startMetricsServer(endpoint, {
        client,
        config: settings.config,
        kind: settings.node ? 'node' : 'management',
        node: settings.node,
      });
      console.log(
        `nnoe-dr worker metrics on http://${metrics.address}/metrics${endpoint.temporalListen ? `, Temporal SDK metrics on http://${endpoint.temporalListen}/metrics` : ''}`,
      );
    }
    const queue = settings.node ? nodeTaskQueue(settings.config.temporal.taskQueue, settings.node) : settings.config.temporal.taskQueue;
    console.log(
      `nnoe-dr worker (${settings.node ? `node ${settings.node}` : 'management'}) polling ${queue} on ${settings.config.temporal.address}`,
    );
    await worker.run(); // returns after SIGINT/SIGTERM once in-flight tasks are done
  } finally {
    await metrics?.close();
    await client?.connection.close();
    await connection.close();
  }
}

/** A flag's number of slots, at least `min` (the SDK needs 2 workflow task slots with its cache on). */
export function slotCount(flag: string, text: string, min = 1): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`${flag} expects a whole number of at least ${min}, got "${text}"`);
  return value;
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      node: { type: 'string' },
      'workflow-bundle': { type: 'string' },
      'metrics-listen': { type: 'string' },
      'max-concurrent-activities': { type: 'string' },
      'max-concurrent-workflow-tasks': { type: 'string' },
    },
  });
  let limits: Partial<WorkerLimits>;
  try {
    limits = {
      ...(values['max-concurrent-activities'] !== undefined
        ? { maxConcurrentActivityTaskExecutions: slotCount('--max-concurrent-activities', values['max-concurrent-activities']) }
        : {}),
      ...(values['max-concurrent-workflow-tasks'] !== undefined
        ? { maxConcurrentWorkflowTaskExecutions: slotCount('--max-concurrent-workflow-tasks', values['max-concurrent-workflow-tasks'], 2) }
        : {}),
    };
  } catch (err) {
    console.error(`nnoe-dr worker: ${(err as Error).message}`);
    process.exit(2);
  }
  const settings: WorkerSettings = {
    config: loadConfig(values.config ?? defaultConfigPath()),
    node: values.node,
    workflowBundlePath: values['workflow-bundle'],
    metricsListen: values['metrics-listen'],
    limits,
  };
  runWorker(settings).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`nnoe-dr worker failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
