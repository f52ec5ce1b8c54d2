/**
 * Benchmark: the etcd backup workflow against the shell baseline
 * (`etcdctl snapshot save`, `gzip`, `cp` into the store folder), alternating in one invocation.
 *
 *   npx tsx bench/etcd-backup/run.ts [--size-mib 1024] [--rounds 3] [--targets local]
 *       [--worker compiled|tsx] [--workflow-bundle at-start|prebuilt] [--worker-node-options="..."]
 *       [--worker-env K=V,...] [--compression gzip|zstd] [--world-dir DIR] [--keep-world] [--json]
 *
 * Starts its own world (3-member etcd with mTLS, S3, Temporal dev server) in a temp dir, fills etcd,
 * starts one management worker process and alternates workflow and baseline rounds (A B, B A, ...).
 * Prints wall time, peak RSS and CPU time of each, the medians and the ratio workflow/baseline.
 * Exits 0 whether or not the target is met (it is a measurement); 1 when something broke.
 * See bench/etcd-backup/README.md.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { stringify } from 'yaml';
import { connectClient, startEtcdBackup, type EtcdBackupResult } from '../../src/client/temporal';
import { utcStamp } from '../../src/common/manifest';
import { sleep } from '../../src/common/poll';
import { loadConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { stopWorld, worldEtcdPrograms, type World } from '../../src/sandbox/world';
import { openStore } from '../../src/storage';
import type { RunProgress } from '../../src/workflows/progress';
import { parseTargets, parseWorkerMode, positiveInteger, positiveNumber, readCommandLine } from '../support/cli';
import { runBenchmark, runMain, startWorldWithTemporal } from '../support/lifecycle';
import {
  cpuSeconds,
  etcdCpuSeconds,
  hwmBytes,
  killRunningTimed,
  logTail,
  median,
  MiB,
  mib,
  rssBytes,
  runTimed,
  sampleRss,
  settleWriteback,
  stopChild,
  type TimedRun,
} from '../support/processes';
import { benchWorldConfig, etcdctlTlsArgs, fillCluster, leaderMember, startWorkerProcess, tsxWorkerArgs } from '../support/bench-world';
import { loadText, newRunDir, pad, repoRoot, resultsRoot, verdict, writeResult } from '../support/results';

const TASK_QUEUE = 'nnoe-dr-bench';
/** Issue 15: the workflow at most 0.7x the shell's wall time, the worker at most 200 MB (= 190.7 MiB). */
const TARGET_RATIO = 0.7;
const TARGET_WORKER_RSS_MIB = 200e6 / MiB;

const HELP = `usage: npx tsx bench/etcd-backup/run.ts [options]

  --size-mib N       value bytes to put into etcd, in MiB (default 1024)
  --rounds N         rounds; each runs the workflow and the baseline once, order alternating (default 3)
  --targets LIST     storage targets of the workflow, comma-separated: local, s3 (default local;
                     the baseline always copies into a local folder)
  --worker MODE      compiled (node <build>/worker.js, like production; default) or tsx (node --import tsx)
  --workflow-bundle  at-start: the worker bundles the workflow code when it starts, as
                     \`node dist/worker.js\` does today (default); prebuilt: the benchmark bundles it
                     first and passes --workflow-bundle (as the tests do)
  --worker-node-options="FLAGS"   extra node flags for the worker, e.g. --worker-node-options=--max-semi-space-size=2
  --worker-env K=V,...            extra environment for the worker, e.g. MALLOC_ARENA_MAX=2
  --compression F    the workflow's compression (config \`compression\`): gzip (default) or zstd;
                     the baseline always runs gzip, as the runbook does
  --world-dir DIR    use (or start) the world in DIR instead of a fresh temp dir; an earlier fill
                     there is only topped up. DIR is never deleted.
  --keep-world       leave the world running at the end (the worker is always stopped)
  --stop-world DIR   only stop the world a --keep-world run left in DIR, then exit
  --json             also print one JSON object with every figure
  -h, --help         this text`;

interface Options {
  sizeMiB: number;
  rounds: number;
  targets: string[];
  worker: 'compiled' | 'tsx';
  workflowBundle: 'at-start' | 'prebuilt';
  workerNodeOptions: string[];
  workerEnv: Record<string, string>;
  compression: 'gzip' | 'zstd';
  worldDir?: string;
  keepWorld: boolean;
  json: boolean;
  stopWorld?: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mib': { type: 'string', default: '1024' },
      rounds: { type: 'string', default: '3' },
      targets: { type: 'string', default: 'local' },
      worker: { type: 'string', default: 'compiled' },
      'workflow-bundle': { type: 'string', default: 'at-start' },
      'worker-node-options': { type: 'string', default: '' },
      'worker-env': { type: 'string', default: '' },
      compression: { type: 'string', default: 'gzip' },
      'world-dir': { type: 'string' },
      'keep-world': { type: 'boolean', default: false },
      'stop-world': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  const targets = parseTargets(values.targets);
  if (!targets.includes('local')) throw new Error('--targets must include local: the baseline copies into a local folder');
  const worker = parseWorkerMode(values.worker);
  const bundle = values['workflow-bundle'];
  if (bundle !== 'at-start' && bundle !== 'prebuilt') throw new Error(`--workflow-bundle expects at-start or prebuilt, got "${bundle}"`);
  const compression = values.compression;
  if (compression !== 'gzip' && compression !== 'zstd') throw new Error(`--compression expects gzip or zstd, got "${compression}"`);
  const workerEnv: Record<string, string> = {};
  for (const pair of values['worker-env']
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--worker-env expects NAME=VALUE pairs separated by commas, got "${pair}"`);
    workerEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    sizeMiB: positiveNumber('size-mib', values['size-mib']),
    rounds: positiveInteger('rounds', values.rounds),
    targets,
    worker,
    workflowBundle: bundle,
    workerNodeOptions: values['worker-node-options'].split(' ').filter(Boolean),
    workerEnv,
    compression,
    worldDir: values['world-dir'] && resolve(values['world-dir']),
    keepWorld: values['keep-world'],
    stopWorld: values['stop-world'] && resolve(values['stop-world']),
    json: values.json,
  };
}

// ------------------------------------------------------------------ one measurement each

interface Measurement {
  round: number;
  position: 1 | 2;
  run: 'workflow' | 'baseline';
  wallSeconds: number;
  peakRssBytes: number;
  cpuSeconds: number;
  /** CPU seconds the etcd members used meanwhile (serving the snapshot, mostly). */
  etcdCpuSeconds: number;
  rawBytes: number;
  gzBytes: number;
  /** workflow: seconds per workflow step; baseline: seconds per command. */
  parts: Record<string, number>;
  /** baseline: peak RSS per command. */
  partRss?: Record<string, number>;
}

interface Bench {
  options: Options;
  world: World;
  config: Config;
  client: Client;
  worker: ChildProcess;
  logDir: string;
}

let lastWorkflowStamp = '';

/** Workflow ids and set ids have second resolution: never start two backups in the same second. */
async function nextFreeSecond(): Promise<void> {
  while (utcStamp(new Date()) === lastWorkflowStamp) await sleep(50);
  lastWorkflowStamp = utcStamp(new Date());
}

async function measureWorkflow(bench: Bench, round: number, position: 1 | 2): Promise<Measurement> {
  const { worker, client, config, options } = bench;
  const pid = worker.pid!;
  const cluster = config.clusters[0]!.name;
  await nextFreeSecond();
  let onExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;
  const workerDied = new Promise<never>((_, reject) => {
    onExit = (code, signal) => reject(new Error(`the worker exited (${signal ?? code}) during a backup; see ${bench.logDir}/worker.log`));
    worker.once('exit', onExit);
  });
  workerDied.catch(() => undefined);

  const cpuBefore = cpuSeconds(pid) ?? 0;
  const etcdBefore = etcdCpuSeconds(bench.world.dir);
  const sampler = sampleRss(pid);
  const started = performance.now();
  const handle = await startEtcdBackup(client, config, { cluster, targets: options.targets });
  const result = await Promise.race([handle.result() as Promise<EtcdBackupResult>, workerDied]).finally(() => worker.off('exit', onExit!));
  const wallSeconds = (performance.now() - started) / 1000;
  const peakRssBytes = sampler.stop();
  const cpu = (cpuSeconds(pid) ?? 0) - cpuBefore;
  const etcdCpu = etcdCpuSeconds(bench.world.dir) - etcdBefore;

  const progress = await handle.query<RunProgress>('progress').catch(() => undefined);
  const parts: Record<string, number> = {};
  for (const step of progress?.steps ?? []) {
    if (step.startedAt && step.finishedAt) parts[step.name] = (Date.parse(step.finishedAt) - Date.parse(step.startedAt)) / 1000;
  }
  const artefact = result.manifest.components[0]!.artefacts[0]!;
  await removeWorkflowArtefacts(bench, result.setId);
  return {
    round,
    position,
    run: 'workflow',
    wallSeconds,
    peakRssBytes,
    cpuSeconds: cpu,
    etcdCpuSeconds: etcdCpu,
    rawBytes: artefact.raw.bytes,
    gzBytes: artefact.bytes,
    parts,
  };
}

async function removeWorkflowArtefacts(bench: Bench, setId: string): Promise<void> {
  for (const target of bench.config.storage) {
    const store = await openStore(target);
    for (const key of await store.list(`${setId}/`)) await store.delete(key);
  }
  rmSync(join(bench.world.localStoreDir, setId), { recursive: true, force: true });
  rmSync(join(bench.config.workDir, setId), { recursive: true, force: true });
}

async function measureBaseline(bench: Bench, round: number, position: 1 | 2): Promise<Measurement> {
  const { world } = bench;
  const leader = await leaderMember(bench.config);
  const scratch = join(world.workDir, 'baseline');
  const store = join(world.localStoreDir, 'baseline');
  rmSync(scratch, { recursive: true, force: true });
  rmSync(store, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  mkdirSync(store, { recursive: true });
  const snap = join(scratch, 'snap.db');
  const logFile = join(bench.logDir, 'baseline.log');
  const etcdctlArgs = [`--endpoints=${leader.clientUrl}`, ...etcdctlTlsArgs(world), 'snapshot', 'save', snap];

  const etcdBefore = etcdCpuSeconds(world.dir);
  const started = performance.now();
  const save = await runTimed(worldEtcdPrograms(world).etcdctl, etcdctlArgs, { env: { ...process.env, ETCDCTL_API: '3' }, logFile });
  const rawBytes = statSync(snap).size;
  const gzip = await runTimed('gzip', [snap], { logFile });
  const copy = await runTimed('cp', [`${snap}.gz`, `${store}/`], { logFile });
  const wallSeconds = (performance.now() - started) / 1000;
  const etcdCpu = etcdCpuSeconds(world.dir) - etcdBefore;

  const gzBytes = statSync(join(store, 'snap.db.gz')).size;
  rmSync(scratch, { recursive: true, force: true });
  rmSync(store, { recursive: true, force: true });
  const steps: Array<[string, TimedRun]> = [
    ['etcdctl snapshot save', save],
    ['gzip', gzip],
    ['cp', copy],
  ];
  return {
    round,
    position,
    run: 'baseline',
    wallSeconds,
    peakRssBytes: Math.max(...steps.map(([, step]) => step.maxRssBytes)),
    cpuSeconds: steps.reduce((sum, [, step]) => sum + step.cpuSeconds, 0),
    etcdCpuSeconds: etcdCpu,
    rawBytes,
    gzBytes,
    parts: Object.fromEntries(steps.map(([name, step]) => [name, step.wallSeconds])),
    partRss: Object.fromEntries(steps.map(([name, step]) => [name, step.maxRssBytes])),
  };
}

// ------------------------------------------------------------------ setup

function run(command: string, args: string[], what: string): void {
  const result = spawnSync(command, args, { cwd: repoRoot, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${what} failed (${command} ${args.join(' ')} exited with ${result.status ?? result.signal})`);
}

/** The worker's command line (after `node`), built or bundled as the options say. */
async function workerCommand(options: Options): Promise<{ args: string[]; describe: string }> {
  const buildDir = join(resultsRoot, 'build');
  let args: string[];
  let describe: string;
  if (options.worker === 'tsx') {
    args = tsxWorkerArgs();
    describe = 'node --import tsx src/worker.ts';
  } else {
    // Compiled into bench/results (git-ignored), so the repository's dist/ is left alone.
    const outDir = join(buildDir, 'dist');
    const started = performance.now();
    console.log(`compiling the worker: npx tsc -p tsconfig.json --outDir ${outDir}`);
    run('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', outDir], 'compiling the worker');
    console.log(`  compiled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    args = [join(outDir, 'worker.js')];
    describe = 'node bench/results/build/dist/worker.js';
  }
  if (options.workflowBundle === 'prebuilt') {
    const bundlePath = join(buildDir, 'workflow-bundle.js');
    const started = performance.now();
    // Loaded only here: webpack is heavy and the default path does not need it in this process.
    const { bundleWorkflowCode } = await import('@temporalio/worker');
    const bundle = await bundleWorkflowCode({ workflowsPath: join(repoRoot, 'src', 'workflows', 'index.ts'), logger: quietLogger });
    mkdirSync(buildDir, { recursive: true });
    writeFileSync(bundlePath, bundle.code);
    console.log(`  workflow bundle ${bundlePath} built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    args.push('--workflow-bundle', bundlePath);
    describe += ' --workflow-bundle bench/results/build/workflow-bundle.js';
  }
  args.unshift(...options.workerNodeOptions);
  if (options.workerNodeOptions.length > 0) describe = describe.replace(/^node /, `node ${options.workerNodeOptions.join(' ')} `);
  const env = Object.entries(options.workerEnv)
    .map(([key, value]) => `${key}=${value} `)
    .join('');
  return { args, describe: `${env}${describe}` };
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => console.warn(message),
  error: (message: string) => console.error(message),
};

// ------------------------------------------------------------------ report

function describeParts(m: Measurement): string {
  const short: Record<string, string> = {
    'check plan and storage': 'plan',
    'choose etcd member': 'choose',
    'stream and verify snapshot': 'stream+verify',
    'write manifest': 'manifest',
    'etcdctl snapshot save': 'save',
  };
  return Object.entries(m.parts)
    .map(([name, seconds]) => `${short[name] ?? name} ${seconds.toFixed(1)}`)
    .join(', ');
}

function printTable(measurements: Measurement[]): void {
  const header = [
    pad('round', 5),
    pad('run', 9),
    pad('wall s', 7, true),
    pad('peak RSS MiB', 12, true),
    pad('CPU s', 6, true),
    pad('etcd CPU s', 10, true),
    pad('raw MiB', 8, true),
    pad('gz MiB', 7, true),
    '  parts (s)',
  ].join('  ');
  console.log(header);
  console.log('-'.repeat(header.length + 30));
  for (const m of measurements) {
    console.log(
      [
        pad(`${m.round}.${m.position}`, 5),
        pad(m.run, 9),
        pad(m.wallSeconds.toFixed(2), 7, true),
        pad(mib(m.peakRssBytes), 12, true),
        pad(m.cpuSeconds.toFixed(1), 6, true),
        pad(m.etcdCpuSeconds.toFixed(1), 10, true),
        pad(mib(m.rawBytes), 8, true),
        pad(mib(m.gzBytes), 7, true),
        `  ${describeParts(m)}`,
      ].join('  '),
    );
  }
}

function summarize(measurements: Measurement[]) {
  const of = (run: Measurement['run']) => measurements.filter((m) => m.run === run);
  const workflow = of('workflow');
  const baseline = of('baseline');
  const workflowWall = median(workflow.map((m) => m.wallSeconds));
  const baselineWall = median(baseline.map((m) => m.wallSeconds));
  const ratio = workflowWall / baselineWall;
  const workerPeak = Math.max(...workflow.map((m) => m.peakRssBytes));
  const baselinePeak = Math.max(...baseline.map((m) => m.peakRssBytes));
  return {
    workflowMedianWallSeconds: workflowWall,
    baselineMedianWallSeconds: baselineWall,
    ratio,
    ratioTarget: TARGET_RATIO,
    ratioMet: ratio <= TARGET_RATIO,
    workerPeakRssMiB: workerPeak / MiB,
    workerPeakRssTargetMiB: TARGET_WORKER_RSS_MIB,
    workerRssMet: workerPeak / MiB <= TARGET_WORKER_RSS_MIB,
    baselinePeakRssMiB: baselinePeak / MiB,
    workflowMedianCpuSeconds: median(workflow.map((m) => m.cpuSeconds)),
    baselineMedianCpuSeconds: median(baseline.map((m) => m.cpuSeconds)),
    workflowMedianEtcdCpuSeconds: median(workflow.map((m) => m.etcdCpuSeconds)),
    baselineMedianEtcdCpuSeconds: median(baseline.map((m) => m.etcdCpuSeconds)),
    /** (worker + etcd CPU) / (etcdctl + gzip + cp + etcd CPU), medians: steadier than wall time on a busy machine. */
    cpuRatio: median(workflow.map((m) => m.cpuSeconds + m.etcdCpuSeconds)) / median(baseline.map((m) => m.cpuSeconds + m.etcdCpuSeconds)),
    snapshotMiB: median(measurements.map((m) => m.rawBytes)) / MiB,
    workflowGzMiB: median(workflow.map((m) => m.gzBytes)) / MiB,
    baselineGzMiB: median(baseline.map((m) => m.gzBytes)) / MiB,
  };
}

// ------------------------------------------------------------------ main

async function main(argv: string[]): Promise<number> {
  const commandLine = readCommandLine(argv, parseOptions, HELP);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const { options } = commandLine;
  if (options.stopWorld) {
    await stopWorld(options.stopWorld);
    console.log(`stopped the world in ${options.stopWorld} (its directory is left in place)`);
    return 0;
  }
  const command = ['npx tsx bench/etcd-backup/run.ts', ...argv].join(' ');
  const began = performance.now();
  const logDir = newRunDir('etcd-backup');
  return runBenchmark(
    async (teardown) => {
      console.log(`$ ${command}`);
      console.log(`logs: ${logDir}; load average ${loadText()}`);
      const worker = await workerCommand(options);

      // The world: reused from --world-dir, else fresh in a temp dir that goes away at the end.
      const dir = options.worldDir ?? mkdtempSync(join(tmpdir(), 'nnoe-dr-bench-'));
      const ownDir = !options.worldDir;
      teardown.add('world', async () => {
        if (options.keepWorld) {
          console.log(`the world keeps running in ${dir}; stop it with: npx tsx bench/etcd-backup/run.ts --stop-world ${dir}`);
          return;
        }
        console.log('stopping the world ...');
        await stopWorld(dir);
        if (ownDir) rmSync(dir, { recursive: true, force: true });
      });
      const world = await startWorldWithTemporal(dir);

      const configPath = join(dir, 'nnoe-dr.bench.yaml');
      writeFileSync(
        configPath,
        stringify({ ...benchWorldConfig(world, { taskQueue: TASK_QUEUE, targets: options.targets }), compression: options.compression }),
      );
      const config = loadConfig(configPath);

      teardown.checkInterrupted();
      const filled = await fillCluster(config, options.sizeMiB);
      teardown.checkInterrupted();
      console.log(`  etcd db size ${mib(filled.dbSizeBytes)} MiB, ${filled.keys} keys (fill took ${filled.fillSeconds.toFixed(0)} s)`);
      await settleWriteback();

      const phase = performance.now();
      console.log(`starting the management worker: ${worker.describe} ...`);
      // Without WORKER_ENV or the world marker: the worker's settings are what this benchmark measures (--worker-env).
      const workerProcess = await startWorkerProcess({
        args: worker.args,
        configPath,
        logPath: join(logDir, 'worker.log'),
        env: options.workerEnv,
      });
      teardown.add('worker', async () => {
        await stopChild(workerProcess);
      });
      teardown.add('baseline commands', killRunningTimed);
      await sleep(2000);
      const workerIdleRss = rssBytes(workerProcess.pid!) ?? 0;
      console.log(
        `  worker pid ${workerProcess.pid} polling after ${((performance.now() - phase) / 1000).toFixed(1)} s; idle RSS ${mib(workerIdleRss)} MiB`,
      );

      const client = await connectClient(config);
      teardown.add('temporal client', () => client.connection.close());
      const bench: Bench = { options, world, config, client, worker: workerProcess, logDir };

      const measurements: Measurement[] = [];
      for (let round = 1; round <= options.rounds; round++) {
        const order: Array<Measurement['run']> = round % 2 === 1 ? ['workflow', 'baseline'] : ['baseline', 'workflow'];
        for (const [index, what] of order.entries()) {
          const position = (index + 1) as 1 | 2;
          await settleWriteback();
          teardown.checkInterrupted();
          const m = what === 'workflow' ? await measureWorkflow(bench, round, position) : await measureBaseline(bench, round, position);
          measurements.push(m);
          console.log(
            `round ${round}.${position} ${pad(what, 8)} ${m.wallSeconds.toFixed(2)} s, peak RSS ${mib(m.peakRssBytes)} MiB, ` +
              `CPU ${m.cpuSeconds.toFixed(1)} s + etcd ${m.etcdCpuSeconds.toFixed(1)} s (${describeParts(m)})`,
          );
        }
      }
      const workerHwm = hwmBytes(workerProcess.pid!) ?? 0;

      console.log('');
      printTable(measurements);
      const summary = summarize(measurements);
      console.log('');
      console.log(
        `snapshot ${summary.snapshotMiB.toFixed(1)} MiB raw; compressed ${summary.workflowGzMiB.toFixed(1)} MiB (workflow, ${options.compression}), ${summary.baselineGzMiB.toFixed(1)} MiB (baseline, gzip)`,
      );
      console.log(
        `median wall: workflow ${summary.workflowMedianWallSeconds.toFixed(2)} s, baseline ${summary.baselineMedianWallSeconds.toFixed(2)} s`,
      );
      console.log(
        `ratio workflow/baseline ${summary.ratio.toFixed(2)} (target <= ${TARGET_RATIO.toFixed(1)}): ${verdict(summary.ratioMet)}`,
      );
      console.log(
        `worker peak RSS during backups ${summary.workerPeakRssMiB.toFixed(1)} MiB (target <= 200 MB = ${TARGET_WORKER_RSS_MIB.toFixed(1)} MiB): ${verdict(summary.workerRssMet)}` +
          ` [idle ${mib(workerIdleRss)} MiB, VmHWM over the worker's life ${mib(workerHwm)} MiB]`,
      );
      console.log(`baseline peak RSS (max of etcdctl, gzip, cp) ${summary.baselinePeakRssMiB.toFixed(1)} MiB`);
      console.log(
        `median CPU: workflow ${summary.workflowMedianCpuSeconds.toFixed(1)} s (worker) + ${summary.workflowMedianEtcdCpuSeconds.toFixed(1)} s (etcd), ` +
          `baseline ${summary.baselineMedianCpuSeconds.toFixed(1)} s (etcdctl, gzip, cp) + ${summary.baselineMedianEtcdCpuSeconds.toFixed(1)} s (etcd); ` +
          `CPU ratio ${summary.cpuRatio.toFixed(2)} (for information, no target)`,
      );
      const durationSeconds = (performance.now() - began) / 1000;
      console.log(
        `overall: ${verdict(summary.ratioMet && summary.workerRssMet)}; load average ${loadText()}; run took ${(durationSeconds / 60).toFixed(1)} min (before cleanup)`,
      );

      const report = {
        command,
        startedAt: new Date(Date.now() - durationSeconds * 1000).toISOString(),
        durationSeconds,
        sizeMiB: options.sizeMiB,
        rounds: options.rounds,
        targets: options.targets,
        compression: options.compression,
        worker: {
          mode: options.worker,
          workflowBundle: options.workflowBundle,
          command: worker.describe,
          idleRssMiB: workerIdleRss / MiB,
          lifetimePeakRssMiB: workerHwm / MiB,
        },
        etcd: { dbSizeMiB: filled.dbSizeBytes / MiB, keys: filled.keys, fillSeconds: filled.fillSeconds },
        summary,
        measurements: measurements.map((m) => ({ ...m, peakRssMiB: m.peakRssBytes / MiB })),
        loadAverageAtEnd: loadavg(),
      };
      writeResult(logDir, report, options.json);
      return 0;
    },
    { explainFailure: () => printLogTail(join(logDir, 'worker.log')) },
  );
}

/** A failed backup is mostly explained by the worker's last words. */
function printLogTail(logFile: string): void {
  if (existsSync(logFile)) console.error(`--- last lines of ${logFile} ---\n${logTail(logFile, 15)}`);
}

runMain(main);
