/**
 * bench/fleet: a fleet of N clusters on one management worker. One config with N clusters (they
 * share the bench world's etcd and MariaDB under different names, so their sets have different
 * ids), each with its backup schedule (the production profile's, with a cron that fires at one
 * whole minute for all of them, as schedules of a fleet do at 00:00, 06:00 ...). For N = 10, 25, 50
 * it reports: wall time (scheduled time -> the last set closed), schedule-to-start latency p50/p99
 * (scheduled time -> the run's first workflow task started, from its history), the management
 * worker's peak RSS and CPU (from /proc), failed runs and missed schedules.
 *
 *   npx tsx bench/fleet/run.ts [--sizes 10,25,50] [--targets local] [--worker compiled|tsx]
 *       [--worker-args="--max-concurrent-activities 8"] [--json]
 *
 * Goal at N = 50: no failure, no missed schedule, worker peak RSS <= 400 MB. Exits 0 whether met or
 * not; 1 when the benchmark itself broke (the worker died, runs did not end in time); 2 for bad options.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Client, ScheduleDescription } from '@temporalio/client';
import { tsToMs } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { stringify } from 'yaml';
import { connectClient } from '../../src/client/temporal';
import { backupScheduleOptions } from '../../src/client/schedules';
import { loadConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { sleep } from '../../src/common/poll';
import { openStore } from '../../src/storage';
import { parseTargets, parseWorkerMode, readCommandLine, type WorkerMode } from '../support/cli';
import { OwnWorld, runBenchmark, runMain } from '../support/lifecycle';
import { MiB, procCpuTimes, sampleRss, stopChild } from '../support/processes';
import { benchWorldConfig, fillCluster, startWorkerProcess, workerArgs } from '../support/bench-world';
import { loadText, newRunDir, pad, resultsRoot, verdict, writeResult } from '../support/results';

const HELP = `usage: npx tsx bench/fleet/run.ts [options]

  --sizes LIST        fleet sizes, run one after another (default 10,25,50)
  --targets LIST      storage targets of every set: local, s3 (default local)
  --worker MODE       compiled (default, as in production) or tsx
  --worker-args="..." extra worker flags, e.g. --worker-args="--max-concurrent-activities 8"
  --etcd-mib N        fill the shared etcd with N MiB of values first (default 0: the world's seed keys only)
  --timeout-minutes N how long a fleet's sets may take before the run counts as broken (default 30)
  --json              also print one JSON object with every figure
  -h, --help          this text`;

interface Options {
  sizes: number[];
  targets: string[];
  worker: WorkerMode;
  workerArgs: string[];
  etcdMiB: number;
  timeoutMinutes: number;
  json: boolean;
}

function parse(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      sizes: { type: 'string', default: '10,25,50' },
      targets: { type: 'string', default: 'local' },
      worker: { type: 'string', default: 'compiled' },
      'worker-args': { type: 'string', default: '' },
      'etcd-mib': { type: 'string', default: '0' },
      'timeout-minutes': { type: 'string', default: '30' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  const sizes = values.sizes.split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 999))
    throw new Error(`--sizes expects whole numbers 1..999 separated by commas, got "${values.sizes}"`);
  const timeoutMinutes = Number(values['timeout-minutes']);
  if (!(timeoutMinutes > 0)) throw new Error(`--timeout-minutes expects a positive number, got "${values['timeout-minutes']}"`);
  const etcdMiB = Number(values['etcd-mib']);
  if (!(etcdMiB >= 0)) throw new Error(`--etcd-mib expects a number of MiB (0 or more), got "${values['etcd-mib']}"`);
  return {
    sizes,
    targets: parseTargets(values.targets),
    etcdMiB,
    worker: parseWorkerMode(values.worker),
    workerArgs: values['worker-args'].split(' ').filter(Boolean),
    timeoutMinutes,
    json: values.json,
  };
}

const TASK_QUEUE = 'nnoe-dr-bench-fleet';
const GOAL = { n: 50, failures: 0, missed: 0, rssMiB: 400 };

const clusterName = (i: number) => `fleet-${String(i + 1).padStart(3, '0')}`;

/** The world's one cluster copied `count` times under fleet names: the same etcd and phpIPAM database. */
function fleetConfig(base: Record<string, unknown>, count: number): Record<string, unknown> {
  const [cluster] = base.clusters as Array<Record<string, unknown>>;
  return { ...base, clusters: Array.from({ length: count }, (_, i) => ({ ...cluster, name: clusterName(i) })) };
}

interface RunFigure {
  cluster: string;
  workflowId: string;
  scheduledMs: number;
  startedMs: number;
  firstTaskMs: number | null;
  closedMs: number | null;
  status: string;
}

interface FleetFigures {
  n: number;
  wallSeconds: number;
  latencyP50Seconds: number | null;
  latencyP99Seconds: number | null;
  latencyMaxSeconds: number | null;
  /** The server's part of the latency: scheduled time -> the run created (p50, p99). */
  createdP50Seconds: number | null;
  createdP99Seconds: number | null;
  workerPeakRssMiB: number;
  workerCpuSeconds: number;
  workerChildrenCpuSeconds: number;
  /** Worker CPU seconds per wall second: 1.0 is one core busy. */
  workerCpuCores: number;
  failed: number;
  missed: number;
  failures: string[];
}

function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The first whole minute at least `leadMs` away: every schedule of the fleet fires then. */
function nextMinute(leadMs: number): Date {
  const at = new Date(Date.now() + leadMs);
  at.setUTCSeconds(0, 0);
  return new Date(at.getTime() + 60_000);
}

async function firstWorkflowTaskStartedMs(client: Client, workflowId: string, runId: string): Promise<number | null> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const started = history.events?.find((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
  return started?.eventTime ? tsToMs(started.eventTime) : null;
}

async function runFleet(
  client: Client,
  config: Config,
  n: number,
  workerPid: number,
  timeoutMs: number,
  targets: string[],
): Promise<FleetFigures> {
  const clusters = config.clusters.slice(0, n).map((c) => c.name);
  const fireAt = nextMinute(20_000 + n * 300); // time to create the schedules first
  const cron = `${fireAt.getUTCMinutes()} ${fireAt.getUTCHours()} * * *`;
  console.log(`\nN = ${n}: ${n} schedules firing at ${fireAt.toISOString()} (cron "${cron}") ...`);
  const handles = [];
  for (const cluster of clusters) {
    const options = backupScheduleOptions(config, cluster, 'production', targets);
    await client.schedule.create({ ...options, spec: { cronExpressions: [cron] } }).catch(async (err: Error) => {
      if (err.name !== 'ScheduleAlreadyRunning') throw err;
      await client.schedule.getHandle(options.scheduleId).delete();
      await client.schedule.create({ ...options, spec: { cronExpressions: [cron] } });
    });
    handles.push(client.schedule.getHandle(options.scheduleId));
  }
  const cpuBefore = procCpuTimes(workerPid);
  const rss = sampleRss(workerPid, 200);
  const started = performance.now();
  const deadline = Date.now() + Math.max(0, fireAt.getTime() - Date.now()) + timeoutMs;
  try {
    // Wait for every schedule's action, then for every run to close.
    let descriptions: ScheduleDescription[] = [];
    for (;;) {
      descriptions = [];
      for (const handle of handles) descriptions.push(await patiently(() => handle.describe()));
      const fired = descriptions.filter((d) => d.info.recentActions.length > 0 || d.info.numActionsMissedCatchupWindow > 0).length;
      if (fired === n) break;
      if (Date.now() > deadline) throw new Error(`only ${fired} of ${n} schedules acted by ${new Date(deadline).toISOString()}`);
      await sleep(1000);
    }
    const runs: RunFigure[] = [];
    for (const [i, d] of descriptions.entries()) {
      const action = d.info.recentActions[0];
      if (!action) continue;
      const workflow = action.action.workflow;
      const handle = client.workflow.getHandle(workflow.workflowId, workflow.firstExecutionRunId);
      let status = 'RUNNING';
      let closedMs: number | null = null;
      let startedMs = Number.NaN;
      while (Date.now() < deadline) {
        const info = await patiently(() => handle.describe());
        startedMs = info.startTime.getTime();
        status = info.status.name;
        if (status !== 'RUNNING') {
          closedMs = info.closeTime?.getTime() ?? null;
          break;
        }
        await sleep(2000);
      }
      runs.push({
        cluster: clusters[i]!,
        workflowId: workflow.workflowId,
        scheduledMs: action.scheduledAt.getTime(),
        startedMs,
        firstTaskMs: await patiently(() => firstWorkflowTaskStartedMs(client, workflow.workflowId, workflow.firstExecutionRunId)),
        closedMs,
        status,
      });
    }
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = procCpuTimes(workerPid);
    if (!cpuBefore || !cpuAfter) throw new Error('the management worker is gone (see its log)');
    const latencies = runs.flatMap((r) => (r.firstTaskMs === null ? [] : [(r.firstTaskMs - r.scheduledMs) / 1000]));
    const created = runs.map((r) => (r.startedMs - r.scheduledMs) / 1000);
    const closed = runs.flatMap((r) => (r.closedMs === null ? [] : [r.closedMs]));
    const missed =
      descriptions.reduce((sum, d) => sum + d.info.numActionsMissedCatchupWindow + d.info.numActionsSkippedOverlap, 0) + (n - runs.length);
    const failedRuns = runs.filter((r) => r.status !== 'COMPLETED');
    const wallSeconds = closed.length ? (Math.max(...closed) - fireAt.getTime()) / 1000 : seconds;
    const workerCpuSeconds = cpuAfter.self - cpuBefore.self;
    return {
      n,
      wallSeconds,
      latencyP50Seconds: percentile(latencies, 50),
      latencyP99Seconds: percentile(latencies, 99),
      latencyMaxSeconds: percentile(latencies, 100),
      createdP50Seconds: percentile(created, 50),
      createdP99Seconds: percentile(created, 99),
      workerPeakRssMiB: rss.stop() / MiB,
      workerCpuSeconds,
      workerChildrenCpuSeconds: cpuAfter.children - cpuBefore.children,
      workerCpuCores: workerCpuSeconds / Math.max(wallSeconds, 1),
      failed: failedRuns.length,
      missed,
      failures: await Promise.all(failedRuns.map(async (r) => `${r.workflowId}: ${r.status}${await failureText(client, r.workflowId)}`)),
    };
  } finally {
    rss.stop();
    await Promise.all(handles.map((h) => h.delete().catch(() => undefined)));
  }
}

/** A read of the dev server, tried again a few times: under a fleet's load it sometimes answers with an error. */
async function patiently<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(1000 * attempt);
    }
  }
}

async function failureText(client: Client, workflowId: string): Promise<string> {
  try {
    await client.workflow.getHandle(workflowId).result();
    return '';
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    return ` (${cause?.message ?? (err as Error).message})`.slice(0, 400);
  }
}

/** The sets a fleet run wrote: removed, so the next size starts from the same store. */
async function removeFleetSets(config: Config): Promise<number> {
  let removed = 0;
  for (const target of config.storage) {
    const store = await openStore(target);
    for (const key of await store.list()) {
      if (!key.startsWith('fleet-')) continue;
      await store.delete(key);
      removed += 1;
    }
  }
  return removed;
}

async function main(argv: string[]): Promise<number> {
  const line = readCommandLine(argv, parse, HELP);
  if ('exitCode' in line) return line.exitCode;
  const options = line.options;
  const world = new OwnWorld('nnoe-dr-bench-fleet-');
  return runBenchmark(
    async (teardown) => {
      const runDir = newRunDir('fleet');
      console.log(`bench/fleet: sizes ${options.sizes.join(', ')}; load ${loadText()}; logs in ${runDir}`);
      const args = [...workerArgs(options.worker, join(resultsRoot, 'build')), ...options.workerArgs];
      const { dir, world: w } = await world.start(teardown);
      const maxN = Math.max(...options.sizes);
      const configPath = join(runDir, 'nnoe-dr.yaml');
      writeFileSync(configPath, stringify(fleetConfig(benchWorldConfig(w, { taskQueue: TASK_QUEUE, targets: options.targets }), maxN)));
      const config = loadConfig(configPath);
      if (options.etcdMiB > 0) {
        const filled = await fillCluster(config, options.etcdMiB);
        console.log(`etcd holds ${(filled.dbSizeBytes / MiB).toFixed(0)} MiB (db size): every set snapshots it`);
      }
      const worker = await startWorkerProcess({ args, configPath, logPath: join(runDir, 'worker-management.log'), worldDir: dir });
      teardown.add('worker', () => stopChild(worker));
      console.log(`management worker pid ${worker.pid}: node ${args.join(' ')}`);
      const client = await connectClient(config);
      teardown.add('client', () => client.connection.close());

      const figures: FleetFigures[] = [];
      for (const n of options.sizes) {
        teardown.checkInterrupted();
        const fleet = await runFleet(client, config, n, worker.pid!, options.timeoutMinutes * 60_000, options.targets);
        figures.push(fleet);
        console.log(
          `  wall ${fleet.wallSeconds.toFixed(1)} s, schedule-to-start p50 ${fleet.latencyP50Seconds?.toFixed(2)} s p99 ${fleet.latencyP99Seconds?.toFixed(2)} s ` +
            `(run created p50 ${fleet.createdP50Seconds?.toFixed(2)} s p99 ${fleet.createdP99Seconds?.toFixed(2)} s), ` +
            `worker peak RSS ${fleet.workerPeakRssMiB.toFixed(0)} MiB, CPU ${fleet.workerCpuSeconds.toFixed(1)} s (+ ${fleet.workerChildrenCpuSeconds.toFixed(1)} s children), failed ${fleet.failed}, missed ${fleet.missed}`,
        );
        for (const failure of fleet.failures) console.log(`    ${failure}`);
        console.log(`  removed ${await removeFleetSets(config)} objects of the fleet's sets`);
      }

      console.log(
        `\nsummary (management worker ${options.worker}${options.workerArgs.length ? ` ${options.workerArgs.join(' ')}` : ''}; targets ${options.targets.join(',')}; etcd ${options.etcdMiB} MiB filled; load ${loadText()}):`,
      );
      console.log(
        [
          pad('N', 4, true),
          pad('wall s', 8, true),
          pad('start p50 s', 12, true),
          pad('start p99 s', 12, true),
          pad('peak RSS MiB', 13, true),
          pad('CPU s', 7, true),
          pad('CPU cores', 10, true),
          pad('failed', 7, true),
          pad('missed', 7, true),
        ].join(' '),
      );
      for (const f of figures) {
        console.log(
          [
            pad(String(f.n), 4, true),
            pad(f.wallSeconds.toFixed(1), 8, true),
            pad(f.latencyP50Seconds?.toFixed(2) ?? '-', 12, true),
            pad(f.latencyP99Seconds?.toFixed(2) ?? '-', 12, true),
            pad(f.workerPeakRssMiB.toFixed(0), 13, true),
            pad(f.workerCpuSeconds.toFixed(1), 7, true),
            pad(f.workerCpuCores.toFixed(2), 10, true),
            pad(String(f.failed), 7, true),
            pad(String(f.missed), 7, true),
          ].join(' '),
        );
      }
      const atGoal = figures.find((f) => f.n === GOAL.n);
      if (atGoal) {
        const met = atGoal.failed === GOAL.failures && atGoal.missed === GOAL.missed && atGoal.workerPeakRssMiB <= GOAL.rssMiB;
        console.log(
          `N = ${GOAL.n}: ${atGoal.failed} failed, ${atGoal.missed} missed, peak RSS ${atGoal.workerPeakRssMiB.toFixed(0)} MiB <= ${GOAL.rssMiB}: ${verdict(met)}`,
        );
      } else {
        console.log(`N = ${GOAL.n} not run: no verdict on the goal`);
      }
      writeResult(runDir, { options, load: loadText(), goal: GOAL, figures }, options.json);
      return 0;
    },
    { afterCleanup: (code) => world.confirmStopped(code) },
  );
}

runMain(main);
