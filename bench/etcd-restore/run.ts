/**
 * Benchmark: recovery time of the etcd restore workflow against the manual runbook as an operator's
 * shell script, alternating in one invocation.
 *
 *   npx tsx bench/etcd-restore/run.ts [--size-mib 1024] [--rounds 2] [--strategy all-members]
 *       [--worker compiled|tsx] [--no-fetch-variant] [--poll-ms 200] [--json]
 *
 * Starts its own world (3-member etcd with mTLS, Temporal dev server) in a temp dir, fills etcd,
 * takes one encrypted snapshot set with the etcd backup workflow, starts the management worker and
 * one node worker per member's node, then per round (order alternating):
 *   workflow       etcdRestoreWorkflow, approved up front, agents not restarted;
 *   runbook        supervisorctl stop, `etcdctl snapshot restore` per member one after another
 *                  from a snapshot decrypted beforehand, sed --data-dir, reread + update, poll
 *                  `etcdctl endpoint health` until all three answer;
 *   runbook+fetch  the same, preceded by age -d | gunzip of the stored artefact and `snapshot status`.
 * Prints the RTO of each, medians, the ratio workflow/runbook and the workflow's orchestration
 * overhead (its wall time minus the activity time on its critical path, from the history).
 * Exits 0 whether or not the targets are met (it is a measurement); 1 when something broke.
 * See bench/etcd-restore/README.md.
 */
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { stringify } from 'yaml';
import { connectClient, startEtcdBackup, startEtcdRestore, type EtcdBackupResult } from '../../src/client/temporal';
import type { ArtefactRecord, EtcdComponentRecord } from '../../src/common/manifest';
import { sleep } from '../../src/common/poll';
import { loadConfig } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { connectMember, hashKV } from '../../src/etcd/connect';
import { waitForEtcdHealthy, worldEtcdPrograms, type World } from '../../src/sandbox/world';
import { snapshotTool } from '../../src/etcd/snapshot-file';
import type { EtcdRestoreResult, RestoreStrategy } from '../../src/workflows/etcd-restore';
import type { RunProgress } from '../../src/workflows/progress';
import { parseWorkerMode, positiveInteger, positiveNumber, readCommandLine, type WorkerMode } from '../support/cli';
import { OwnWorld, runBenchmark, runMain, WORLD_MARKER_ENV } from '../support/lifecycle';
import { killRunningTimed, median, MiB, mib, runTimed, sampleRss, settleWriteback, type TimedRun } from '../support/processes';
import {
  benchWorldConfig,
  ensureDir,
  etcdctlTlsArgs,
  fillCluster,
  removeDeadDataDirs,
  startWorkers,
  workerArgs,
  writeAgeIdentity,
} from '../support/bench-world';
import { loadText, newRunDir, pad, resultsRoot, verdict, writeResult } from '../support/results';
import { stepOf, stepTimings, timeline, type StepTiming } from './timeline';

const TASK_QUEUE = 'nnoe-dr-bench-restore';
const TARGET_RATIO = 0.6;
const TARGET_OVERHEAD_SECONDS = 2;
/** Issue 15: downtime at most 0.3x the manual runbook's, both as clients see it (`endpoint health`). */
const TARGET_DOWNTIME_RATIO = 0.3;
const HEALTH_TIMEOUT_MS = 5 * 60_000;
/** Activities after the last progress step: the staged snapshots removed on every node. */
const CLEANUP_STEP = 'discard staged snapshots';
/** The operator's decrypt of a set's artefact, for `bash -c SCRIPT <identity> <artefact> <snapshot.db>`. */
const DECRYPT_SNAPSHOT_SCRIPT = 'age -d -i "$0" "$1" | gunzip > "$2"';

const HELP = `usage: npx tsx bench/etcd-restore/run.ts [options]

  --size-mib N        value bytes to put into etcd, in MiB (default 1024)
  --rounds N          rounds; each runs the workflow and the runbook script once, order alternating (default 2)
  --strategy S        the workflow's strategy: all-members (default) or first-node-then-add
  --worker MODE       compiled (tsc + prebuilt workflow bundle into bench/results/etcd-restore/build,
                      rebuilt when src/ is newer; default) or tsx (node --import tsx src/worker.ts)
  --no-fetch-variant  skip the runbook+fetch variant (decrypt + gunzip + snapshot status inside its time)
  --poll-ms N         the runbook's sleep between two \`etcdctl endpoint health\` polls (default 200)
  --json              also print one JSON object with every figure
  -h, --help          this text`;

interface Options {
  sizeMiB: number;
  rounds: number;
  strategy: RestoreStrategy;
  worker: WorkerMode;
  fetchVariant: boolean;
  pollMs: number;
  json: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      'size-mib': { type: 'string', default: '1024' },
      rounds: { type: 'string', default: '2' },
      strategy: { type: 'string', default: 'all-members' },
      worker: { type: 'string', default: 'compiled' },
      'no-fetch-variant': { type: 'boolean', default: false },
      'poll-ms': { type: 'string', default: '200' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  if (values.strategy !== 'all-members' && values.strategy !== 'first-node-then-add') {
    throw new Error(`--strategy expects all-members or first-node-then-add, got "${values.strategy}"`);
  }
  const worker = parseWorkerMode(values.worker);
  return {
    sizeMiB: positiveNumber('size-mib', values['size-mib']),
    rounds: positiveInteger('rounds', values.rounds),
    strategy: values.strategy,
    worker,
    fetchVariant: !values['no-fetch-variant'],
    pollMs: positiveInteger('poll-ms', values['poll-ms']),
    json: values.json,
  };
}

// ------------------------------------------------------------------ measurements

type RunKind = 'workflow' | 'runbook' | 'runbook+fetch';

interface WorkflowFigures {
  workflowId: string;
  /** WorkflowExecutionStarted to its close event (server clock). */
  serverSeconds: number;
  /** Client start to the start event, plus the close event to the client holding the result. */
  clientSeconds: number;
  criticalActivitySeconds: number;
  /** RTO minus criticalActivitySeconds. */
  overheadSeconds: number;
  workflowTaskSeconds: number;
  dispatchSeconds: number;
  retrySeconds: number;
  edgeSeconds: number;
  steps: StepTiming[];
  criticalPath: Array<{ step: string; type: string; taskQueue: string; seconds: number; waitedSeconds: number; attempt: number }>;
  peakRssMiB: Record<string, number>;
}

interface Measurement {
  round: number;
  position: number;
  run: RunKind;
  /** workflow: client start to result; runbook: stop to healthy; runbook+fetch: fetch to healthy. */
  rtoSeconds: number;
  /**
   * From the first member being stopped to the cluster answering healthy. workflow: to the close
   * of its last successful `checkEtcdCluster` (health, member list, revision and HashKV on every
   * member); runbook: to its first successful `endpoint health` poll.
   */
  downtimeSeconds: number;
  /**
   * workflow only: from the first member being stopped to the first successful `etcdctl endpoint
   * health` of a poller beside the run (the runbook's command and interval): what clients see,
   * measured the same way as the runbook's downtime.
   */
  clientDowntimeSeconds?: number;
  /** workflow: seconds per progress step; runbook: seconds per command. */
  parts: Array<{ name: string; seconds: number }>;
  workflow?: WorkflowFigures;
  /** runbook: `etcdctl endpoint health` calls until all three answered. */
  healthPolls?: number;
  state: ClusterState;
}

interface ClusterState {
  revision: number;
  hashKV: number;
  members: number;
}

interface Bench {
  options: Options;
  world: World;
  config: Config;
  client: Client;
  workers: Map<string, ChildProcess>;
  logDir: string;
  setId: string;
  snapshotRevision: number;
  artefactPath: string;
  identityFile: string;
  /** Decrypted and gunzipped once, before any measurement (the runbook variant restores from it). */
  snapshotFile: string;
  scratch: string;
}

/** Rejects when any worker exits; stop() detaches. */
function watchWorkers(workers: Map<string, ChildProcess>, logDir: string): { died: Promise<never>; stop(): void } {
  const listeners: Array<[ChildProcess, (code: number | null, signal: NodeJS.Signals | null) => void]> = [];
  const died = new Promise<never>((_, reject) => {
    for (const [name, worker] of workers) {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        reject(new Error(`worker ${name} exited (${signal ?? code}) during a restore; see ${logDir}/worker-${name}.log`));
      worker.once('exit', onExit);
      listeners.push([worker, onExit]);
    }
  });
  died.catch(() => undefined);
  return {
    died,
    stop: () => {
      for (const [worker, onExit] of listeners) worker.off('exit', onExit);
    },
  };
}

async function measureWorkflow(bench: Bench, round: number, position: number): Promise<Measurement> {
  const { client, config, options } = bench;
  const cluster = config.clusters[0]!.name;
  const watch = watchWorkers(bench.workers, bench.logDir);
  const samplers = [...bench.workers].map(([name, worker]) => [name, sampleRss(worker.pid!)] as const);
  const health = pollHealth(bench);
  const started = performance.now();
  let result: EtcdRestoreResult;
  let handle;
  let peakRssMiB: Record<string, number>;
  try {
    handle = await startEtcdRestore(client, config, {
      cluster,
      setId: bench.setId,
      approved: true,
      restartAgents: false,
      strategy: options.strategy,
    });
    result = await Promise.race([handle.result() as Promise<EtcdRestoreResult>, watch.died]);
  } finally {
    watch.stop();
    peakRssMiB = Object.fromEntries(samplers.map(([name, sampler]) => [name, sampler.stop() / MiB]));
  }
  const polls = await health.stop();
  const rtoSeconds = (performance.now() - started) / 1000;
  if (!result.check?.healthy)
    throw new Error(`restore ${handle.workflowId} ended without a healthy check: ${JSON.stringify(result.check)}`);

  const history = await handle.fetchHistory();
  const progress = await handle.query<RunProgress>('progress');
  const tl = timeline(history.events ?? []);
  const spans = progress.steps
    .filter((s) => s.startedAt && s.finishedAt)
    .map((s) => ({ name: s.name, startedMs: Date.parse(s.startedAt!), finishedMs: Date.parse(s.finishedAt!) }));
  const steps = stepTimings(tl, spans, CLEANUP_STEP);
  const stops = tl.activities.filter((a) => a.type === 'stopEtcdMember');
  const checks = tl.activities.filter((a) => a.type === 'checkEtcdCluster' && a.outcome === 'completed');
  const firstStopMs = Math.min(...stops.map((s) => s.startedMs));
  const downtimeSeconds = stops.length > 0 && checks.length > 0 ? (checks[checks.length - 1]!.closedMs - firstStopMs) / 1000 : Number.NaN;
  const clientDowntimeSeconds = stops.length > 0 ? clientDowntime(polls, firstStopMs) : Number.NaN;
  let previousClosed = tl.workflowStartedMs;
  const figures: WorkflowFigures = {
    workflowId: handle.workflowId,
    serverSeconds: (tl.workflowClosedMs - tl.workflowStartedMs) / 1000,
    clientSeconds: rtoSeconds - (tl.workflowClosedMs - tl.workflowStartedMs) / 1000,
    criticalActivitySeconds: tl.criticalActivitySeconds,
    overheadSeconds: rtoSeconds - tl.criticalActivitySeconds,
    workflowTaskSeconds: tl.workflowTaskSeconds,
    dispatchSeconds: tl.dispatchSeconds,
    retrySeconds: tl.retrySeconds,
    edgeSeconds: tl.edgeSeconds,
    steps,
    criticalPath: tl.criticalPath.map((a) => {
      const waitedSeconds = (a.startedMs - previousClosed) / 1000;
      previousClosed = a.closedMs;
      return {
        step: stepOf(a, spans, CLEANUP_STEP),
        type: a.type,
        taskQueue: a.taskQueue,
        seconds: (a.closedMs - a.startedMs) / 1000,
        waitedSeconds,
        attempt: a.attempt,
      };
    }),
    peakRssMiB,
  };
  return {
    round,
    position,
    run: 'workflow',
    rtoSeconds,
    downtimeSeconds,
    clientDowntimeSeconds,
    parts: spans.map((s) => ({ name: s.name, seconds: (s.finishedMs - s.startedMs) / 1000 })),
    workflow: figures,
    state: await clusterState(bench.config),
  };
}

interface HealthPoll {
  /** Wall-clock ms (comparable with the history's event times: same machine) when the poll returned. */
  doneMs: number;
  healthy: boolean;
}

/** `etcdctl endpoint health` against all members, as the runbook polls it, until stop(). */
function pollHealth(bench: Bench): { stop(): Promise<HealthPoll[]> } {
  const polls: HealthPoll[] = [];
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const healthy = await endpointHealth(bench);
      polls.push({ doneMs: Date.now(), healthy });
      if (!stopping) await sleep(bench.options.pollMs);
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await loop;
      return polls;
    },
  };
}

/**
 * First stop → the first healthy poll after an unhealthy one that came after the stop began. 0
 * when no poll after the stop failed: the outage, if any, fell between two polls.
 */
export function clientDowntime(polls: HealthPoll[], firstStopMs: number): number {
  const afterStop = polls.filter((p) => p.doneMs >= firstStopMs);
  const firstFailure = afterStop.findIndex((p) => !p.healthy);
  if (firstFailure < 0) return 0;
  const recovered = afterStop.slice(firstFailure).find((p) => p.healthy);
  return recovered ? (recovered.doneMs - firstStopMs) / 1000 : Number.NaN;
}

function endpointHealth(bench: Bench): Promise<boolean> {
  const members = bench.world.etcd.members;
  const endpoints = `--endpoints=${members.map((m) => m.clientUrl).join(',')}`;
  const { etcdctl } = worldEtcdPrograms(bench.world);
  return execQuiet(
    etcdctl,
    [endpoints, ...etcdctlTlsArgs(bench.world), '--dial-timeout=1s', '--command-timeout=2s', 'endpoint', 'health'],
    10_000,
  );
}

function execQuiet(command: string, args: string[], timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } }, (error) => resolve(!error));
  });
}

async function measureRunbook(bench: Bench, round: number, position: number, withFetch: boolean): Promise<Measurement> {
  const { world } = bench;
  const tag = `baseline-${round}-${position}-${randomBytes(3).toString('hex')}`;
  const token = `${world.etcd.clusterName}-${tag}`;
  const logFile = join(bench.logDir, 'runbook.log');
  const env = { ...process.env, ETCDCTL_API: '3', [WORLD_MARKER_ENV]: world.dir };
  const members = world.etcd.members;
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const parts: Array<{ name: string; seconds: number }> = [];
  const timed = async (name: string, command: string, args: string[]): Promise<TimedRun> => {
    const run = await runTimed(command, args, { env, logFile });
    parts.push({ name, seconds: run.wallSeconds });
    return run;
  };
  writeFileSync(logFile, `--- round ${round}.${position} ${withFetch ? 'runbook+fetch' : 'runbook'} ---\n`, { flag: 'a' });
  // The runbook's tools: etcdutl for snapshot status/restore where the version has it, etcdctl 3.4 otherwise.
  const offlineTool = snapshotTool(world.etcd.binDir).command;

  const started = performance.now();
  let snapshot = bench.snapshotFile;
  if (withFetch) {
    snapshot = join(bench.scratch, 'fetched-snapshot.db');
    rmSync(snapshot, { force: true });
    await timed('age -d | gunzip', 'bash', [
      '-o',
      'pipefail',
      '-c',
      DECRYPT_SNAPSHOT_SCRIPT,
      bench.identityFile,
      bench.artefactPath,
      snapshot,
    ]);
    await timed('snapshot status', offlineTool, ['snapshot', 'status', snapshot, '-w', 'json']);
  }
  const stopped = performance.now();
  await timed('supervisorctl stop', 'supervisorctl', ['-c', world.supervisorConf, 'stop', ...members.map((m) => m.program)]);
  const dataDirs = new Map<string, string>();
  for (const member of members) {
    const dataDir = join(world.dir, 'etcd', member.name, tag);
    dataDirs.set(member.name, dataDir);
    await timed(`restore ${member.name}`, offlineTool, [
      'snapshot',
      'restore',
      snapshot,
      '--name',
      member.name,
      '--data-dir',
      dataDir,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      token,
      '--initial-advertise-peer-urls',
      member.peerUrl,
    ]);
  }
  for (const member of members) {
    await timed(`sed ${member.name}`, 'sed', [
      `-i.pre-${tag}`,
      '-e',
      `s|--data-dir=[^ ]*|--data-dir=${dataDirs.get(member.name)}|`,
      '-e',
      `s|--initial-cluster-token=[^ ]*|--initial-cluster-token=${token}|`,
      member.programConf,
    ]);
  }
  await timed('supervisorctl reread', 'supervisorctl', ['-c', world.supervisorConf, 'reread']);
  await timed('supervisorctl update', 'supervisorctl', ['-c', world.supervisorConf, 'update']);
  const polling = performance.now();
  let polls = 0;
  for (;;) {
    polls++;
    const healthy = await endpointHealth(bench);
    if (healthy) break;
    if (performance.now() - polling > HEALTH_TIMEOUT_MS)
      throw new Error(`the runbook's cluster did not answer healthy within ${HEALTH_TIMEOUT_MS / 1000} s; see ${world.dir}/logs`);
    await sleep(bench.options.pollMs);
  }
  const done = performance.now();
  parts.push({ name: 'until healthy', seconds: (done - polling) / 1000 });
  if (withFetch) rmSync(snapshot, { force: true });
  for (const member of members) {
    if (!readFileSync(member.programConf, 'utf8').includes(`--data-dir=${dataDirs.get(member.name)}`))
      throw new Error(`sed did not repoint ${member.programConf}`);
  }
  return {
    round,
    position,
    run: withFetch ? 'runbook+fetch' : 'runbook',
    rtoSeconds: (done - started) / 1000,
    downtimeSeconds: (done - stopped) / 1000,
    parts,
    healthPolls: polls,
    state: await clusterState(bench.config),
  };
}

/** Revision and HashKV of every member (must agree), for comparing what each restore left. */
async function clusterState(config: Config): Promise<ClusterState> {
  const cluster = config.clusters[0]!;
  const states: Array<{ revision: number; hash: number; members: number }> = [];
  for (const member of cluster.etcd.members) {
    const client = await connectMember(cluster, member);
    try {
      const revision = Number((await client.maintenance.status()).header.revision);
      const members = ((await client.cluster.memberList({})).members ?? []).length;
      states.push({ revision, hash: 0, members });
    } finally {
      client.close();
    }
  }
  const revision = Math.min(...states.map((s) => s.revision));
  for (const [i, member] of cluster.etcd.members.entries()) {
    const client = await connectMember(cluster, member);
    try {
      states[i]!.hash = (await hashKV(client, revision)).hash;
    } finally {
      client.close();
    }
  }
  if (new Set(states.map((s) => s.hash)).size > 1)
    throw new Error(`members disagree on HashKV at revision ${revision}: ${states.map((s) => s.hash).join(', ')}`);
  if (states.some((s) => s.members !== cluster.etcd.members.length))
    throw new Error(`member list has ${states.map((s) => s.members).join('/')} members, expected ${cluster.etcd.members.length}`);
  return { revision, hashKV: states[0]!.hash, members: states[0]!.members };
}

/** Old data dirs go (the disk), writeback of the previous run finishes (not billed to the next), the cluster is healthy. */
async function settle(world: World): Promise<void> {
  await waitForEtcdHealthy(world, 120_000);
  removeDeadDataDirs(world);
  await settleWriteback();
}

// ------------------------------------------------------------------ report

const SHORT: Record<string, string> = {
  preflight: 'preflight',
  approval: 'approval',
  'stop etcd': 'stop',
  'restore data dirs': 'restore',
  'repoint members': 'repoint+start',
  'verify cluster': 'verify',
  'restart agents': 'agents',
  'supervisorctl stop': 'stop',
  'supervisorctl reread': 'reread',
  'supervisorctl update': 'update',
};

function describeParts(m: Measurement): string {
  const parts = m.run === 'workflow' ? m.parts.filter((p) => p.name !== 'approval' && p.name !== 'restart agents') : m.parts;
  return parts.map((p) => `${SHORT[p.name] ?? p.name} ${p.seconds.toFixed(2)}`).join(', ');
}

function describeLine(m: Measurement): string {
  const extra = m.workflow
    ? `, as clients see it ${m.clientDowntimeSeconds?.toFixed(2)} s; overhead ${m.workflow.overheadSeconds.toFixed(2)} s`
    : ` (${m.healthPolls} health polls)`;
  return `round ${m.round}.${m.position} ${pad(m.run, 13)} RTO ${m.rtoSeconds.toFixed(2)} s, downtime ${m.downtimeSeconds.toFixed(2)} s${extra}\n    ${describeParts(m)}`;
}

function summarize(measurements: Measurement[]) {
  const of = (run: RunKind) => measurements.filter((m) => m.run === run);
  const workflow = of('workflow');
  const runbook = of('runbook');
  const fetch = of('runbook+fetch');
  const med = (list: Measurement[], pick: (m: Measurement) => number) => (list.length > 0 ? median(list.map(pick)) : Number.NaN);
  const a = med(workflow, (m) => m.rtoSeconds);
  const b = med(runbook, (m) => m.rtoSeconds);
  const overhead = med(workflow, (m) => m.workflow!.overheadSeconds);
  const stepNames = workflow[0]?.workflow?.steps.map((s) => s.name) ?? [];
  return {
    workflowMedianRtoSeconds: a,
    runbookMedianRtoSeconds: b,
    runbookFetchMedianRtoSeconds: med(fetch, (m) => m.rtoSeconds),
    ratio: a / b,
    ratioTarget: TARGET_RATIO,
    ratioMet: a / b <= TARGET_RATIO,
    ratioWithFetch: a / med(fetch, (m) => m.rtoSeconds),
    workflowMedianDowntimeSeconds: med(workflow, (m) => m.downtimeSeconds),
    workflowMedianClientDowntimeSeconds: med(workflow, (m) => m.clientDowntimeSeconds ?? Number.NaN),
    downtimeRatio: med(workflow, (m) => m.clientDowntimeSeconds ?? Number.NaN) / med(runbook, (m) => m.downtimeSeconds),
    downtimeRatioTarget: TARGET_DOWNTIME_RATIO,
    downtimeRatioMet:
      med(workflow, (m) => m.clientDowntimeSeconds ?? Number.NaN) / med(runbook, (m) => m.downtimeSeconds) <= TARGET_DOWNTIME_RATIO,
    runbookMedianDowntimeSeconds: med(runbook, (m) => m.downtimeSeconds),
    runbookFetchMedianDowntimeSeconds: med(fetch, (m) => m.downtimeSeconds),
    overheadMedianSeconds: overhead,
    overheadTargetSeconds: TARGET_OVERHEAD_SECONDS,
    overheadMet: overhead <= TARGET_OVERHEAD_SECONDS,
    overheadParts: {
      workflowTasks: med(workflow, (m) => m.workflow!.workflowTaskSeconds),
      dispatch: med(workflow, (m) => m.workflow!.dispatchSeconds),
      retries: med(workflow, (m) => m.workflow!.retrySeconds),
      serverEdges: med(workflow, (m) => m.workflow!.edgeSeconds),
      client: med(workflow, (m) => m.workflow!.clientSeconds),
    },
    workflowSteps: stepNames.map((name) => {
      const pick = (m: Measurement) => m.workflow!.steps.find((s) => s.name === name);
      return {
        name,
        medianWallSeconds: med(workflow, (m) => pick(m)?.wallSeconds ?? Number.NaN),
        medianCriticalActivitySeconds: med(workflow, (m) => pick(m)?.criticalActivitySeconds ?? Number.NaN),
        longest: workflow[workflow.length - 1]!.workflow!.steps.find((s) => s.name === name)?.longest,
      };
    }),
    runbookParts: [...new Set(runbook.flatMap((m) => m.parts.map((p) => p.name)))].map((name) => ({
      name,
      medianSeconds: med(runbook, (m) => m.parts.find((p) => p.name === name)?.seconds ?? Number.NaN),
    })),
    workerPeakRssMiB: Object.fromEntries(
      [...new Set(workflow.flatMap((m) => Object.keys(m.workflow!.peakRssMiB)))].map((name) => [
        name,
        Math.max(...workflow.map((m) => m.workflow!.peakRssMiB[name] ?? 0)),
      ]),
    ),
  };
}

function printSummary(summary: ReturnType<typeof summarize>, measurements: Measurement[], pollMs: number): void {
  console.log('');
  console.log(
    `${pad('round', 5)}  ${pad('run', 13)}  ${pad('RTO s', 7, true)}  ${pad('downtime s', 10, true)}  ${pad('overhead s', 10, true)}  state (revision, HashKV)`,
  );
  for (const m of measurements) {
    console.log(
      `${pad(`${m.round}.${m.position}`, 5)}  ${pad(m.run, 13)}  ${pad(m.rtoSeconds.toFixed(2), 7, true)}  ${pad(m.downtimeSeconds.toFixed(2), 10, true)}  ` +
        `${pad(m.workflow ? m.workflow.overheadSeconds.toFixed(2) : '', 10, true)}  ${m.state.revision}, ${m.state.hashKV}`,
    );
  }
  console.log('');
  console.log('workflow steps (medians): wall from the progress query | activity time on the critical path | longest activity (last run)');
  for (const step of summary.workflowSteps) {
    const longest = step.longest
      ? `${step.longest.type} on ${step.longest.taskQueue.replace(/^.*\.node\./, '')} ${step.longest.seconds.toFixed(2)} s`
      : '-';
    console.log(
      `  ${pad(step.name, 24)} ${pad(step.medianWallSeconds.toFixed(2), 7, true)} s | ${pad(step.medianCriticalActivitySeconds.toFixed(2), 7, true)} s | ${longest}`,
    );
  }
  console.log('runbook commands (medians): ' + summary.runbookParts.map((p) => `${p.name} ${p.medianSeconds.toFixed(2)}`).join(', '));
  console.log('');
  console.log(
    `median RTO: workflow ${summary.workflowMedianRtoSeconds.toFixed(2)} s, runbook ${summary.runbookMedianRtoSeconds.toFixed(2)} s` +
      (Number.isNaN(summary.runbookFetchMedianRtoSeconds) ? '' : `, runbook+fetch ${summary.runbookFetchMedianRtoSeconds.toFixed(2)} s`),
  );
  console.log(
    `median downtime (stop to healthy): workflow ${summary.workflowMedianDowntimeSeconds.toFixed(2)} s, runbook ${summary.runbookMedianDowntimeSeconds.toFixed(2)} s` +
      (Number.isNaN(summary.runbookFetchMedianDowntimeSeconds)
        ? ''
        : `, runbook+fetch ${summary.runbookFetchMedianDowntimeSeconds.toFixed(2)} s`),
  );
  console.log(
    `median downtime as clients see it (stop to \`endpoint health\`, polled every ${pollMs} ms): workflow ${summary.workflowMedianClientDowntimeSeconds.toFixed(2)} s, ` +
      `runbook ${summary.runbookMedianDowntimeSeconds.toFixed(2)} s; ratio ${summary.downtimeRatio.toFixed(2)} (target <= ${TARGET_DOWNTIME_RATIO}): ${verdict(summary.downtimeRatioMet)}`,
  );
  console.log(
    `ratio workflow/runbook ${summary.ratio.toFixed(2)} (target <= ${TARGET_RATIO}): ${verdict(summary.ratioMet)}` +
      (Number.isNaN(summary.ratioWithFetch) ? '' : `; workflow/runbook+fetch ${summary.ratioWithFetch.toFixed(2)} (for information)`),
  );
  const o = summary.overheadParts;
  console.log(
    `orchestration overhead ${summary.overheadMedianSeconds.toFixed(2)} s (target <= ${TARGET_OVERHEAD_SECONDS} s): ${verdict(summary.overheadMet)}` +
      ` [medians: workflow tasks ${o.workflowTasks.toFixed(2)} s, task dispatch ${o.dispatch.toFixed(2)} s (of which retries ${o.retries.toFixed(2)} s),` +
      ` start/close edges ${o.serverEdges.toFixed(2)} s, client ${o.client.toFixed(2)} s]`,
  );
  console.log(
    `worker peak RSS during restores: ${Object.entries(summary.workerPeakRssMiB)
      .map(([name, peak]) => `${name} ${peak.toFixed(0)} MiB`)
      .join(', ')}`,
  );
}

// ------------------------------------------------------------------ main

async function main(argv: string[]): Promise<number> {
  const commandLine = readCommandLine(argv, parseOptions, HELP);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const { options } = commandLine;
  const command = ['npx tsx bench/etcd-restore/run.ts', ...argv].join(' ');
  const began = performance.now();
  const loadAtStart = loadavg();
  const logDir = newRunDir('etcd-restore');
  const ownWorld = new OwnWorld('nnoe-dr-bench-restore-');
  return runBenchmark(
    async (teardown) => {
      console.log(`$ ${command}`);
      console.log(`logs: ${logDir}; load average ${loadText(loadAtStart)}`);
      const args = workerArgs(options.worker, join(resultsRoot, 'etcd-restore', 'build'));
      const { dir, world } = await ownWorld.start(teardown);

      const { recipient, identityFile } = await writeAgeIdentity(dir);
      const configPath = join(dir, 'nnoe-dr.bench-restore.yaml');
      writeFileSync(
        configPath,
        stringify(benchWorldConfig(world, { taskQueue: TASK_QUEUE, targets: ['local'], encryption: { recipient, identityFile } })),
      );
      const config = loadConfig(configPath);

      teardown.checkInterrupted();
      const filled = await fillCluster(config, options.sizeMiB);
      console.log(`  etcd db size ${mib(filled.dbSizeBytes)} MiB, ${filled.keys} keys (fill took ${filled.fillSeconds.toFixed(0)} s)`);
      teardown.checkInterrupted();

      let phase = performance.now();
      const nodes = [...new Set(world.etcd.members.map((m) => m.node))];
      const workers = await startWorkers(teardown, { args, configPath, nodes, logDir, worldDir: dir });
      teardown.add('runbook commands', killRunningTimed);
      console.log(`  workers polling after ${((performance.now() - phase) / 1000).toFixed(1)} s: management + ${nodes.join(', ')}`);

      const client = await connectClient(config);
      teardown.add('temporal client', () => client.connection.close());

      phase = performance.now();
      const backup = (await (
        await startEtcdBackup(client, config, { cluster: config.clusters[0]!.name, targets: ['local'] })
      ).result()) as EtcdBackupResult;
      const component = backup.manifest.components.find((c): c is EtcdComponentRecord => c.component === 'etcd');
      if (!component) throw new Error(`set ${backup.setId} has no etcd component`);
      const artefact: ArtefactRecord = component.artefacts[0]!;
      const artefactPath = join(world.localStoreDir, artefact.key);
      if (!existsSync(artefactPath)) throw new Error(`the set's local copy ${artefactPath} is missing`);
      console.log(
        `snapshot set ${backup.setId} in ${((performance.now() - phase) / 1000).toFixed(1)} s: revision ${component.facts.revision}, ` +
          `${mib(artefact.raw.bytes)} MiB raw, ${mib(artefact.bytes)} MiB gzipped + age-encrypted`,
      );

      // Decrypted once for the runbook variant, outside any timed part.
      const scratch = ensureDir(join(world.workDir, 'runbook'));
      const snapshotFile = join(scratch, 'snapshot.db');
      phase = performance.now();
      const prepared = spawnSync('bash', ['-o', 'pipefail', '-c', DECRYPT_SNAPSHOT_SCRIPT, identityFile, artefactPath, snapshotFile], {
        stdio: 'inherit',
      });
      if (prepared.status !== 0 || statSync(snapshotFile).size !== artefact.raw.bytes)
        throw new Error(`decrypting ${artefactPath} for the runbook failed`);
      console.log(
        `  runbook snapshot ${snapshotFile} prepared (age -d | gunzip) in ${((performance.now() - phase) / 1000).toFixed(1)} s, not counted`,
      );

      const bench: Bench = {
        options,
        world,
        config,
        client,
        workers,
        logDir,
        setId: backup.setId,
        snapshotRevision: component.facts.revision,
        artefactPath,
        identityFile,
        snapshotFile,
        scratch,
      };
      const measurements: Measurement[] = [];
      const variants: RunKind[] = ['workflow', 'runbook', ...(options.fetchVariant ? ['runbook+fetch' as const] : [])];
      for (let round = 1; round <= options.rounds; round++) {
        const order = round % 2 === 1 ? variants : [...variants].reverse();
        for (const [index, what] of order.entries()) {
          await settle(world);
          teardown.checkInterrupted();
          const m =
            what === 'workflow'
              ? await measureWorkflow(bench, round, index + 1)
              : await measureRunbook(bench, round, index + 1, what === 'runbook+fetch');
          measurements.push(m);
          console.log(describeLine(m));
          if (m.state.revision < bench.snapshotRevision)
            throw new Error(`after ${what} the cluster is at revision ${m.state.revision}, below the snapshot's ${bench.snapshotRevision}`);
        }
      }
      const hashes = new Set(measurements.map((m) => m.state.hashKV));
      const summary = summarize(measurements);
      printSummary(summary, measurements, options.pollMs);
      if (hashes.size > 1) console.log(`note: the restores left different HashKV values (${[...hashes].join(', ')})`);
      const durationSeconds = (performance.now() - began) / 1000;
      const loadAtEnd = loadavg();
      console.log(
        `overall: ratio ${summary.ratioMet ? 'met' : 'missed'}, downtime ratio ${summary.downtimeRatioMet ? 'met' : 'missed'}, overhead ${summary.overheadMet ? 'met' : 'missed'}; ` +
          `load average at start ${loadText(loadAtStart)}, at end ${loadText(loadAtEnd)}; run took ${(durationSeconds / 60).toFixed(1)} min (before cleanup)`,
      );

      const report = {
        command,
        startedAt: new Date(Date.now() - durationSeconds * 1000).toISOString(),
        durationSeconds,
        sizeMiB: options.sizeMiB,
        rounds: options.rounds,
        strategy: options.strategy,
        worker: options.worker,
        pollMs: options.pollMs,
        etcd: { dbSizeMiB: filled.dbSizeBytes / MiB, keys: filled.keys, fillSeconds: filled.fillSeconds },
        snapshot: {
          setId: backup.setId,
          revision: component.facts.revision,
          rawMiB: artefact.raw.bytes / MiB,
          storedMiB: artefact.bytes / MiB,
        },
        summary,
        measurements,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadAtEnd,
      };
      writeResult(logDir, report, options.json);
      return 0;
    },
    {
      explainFailure: () => console.error(`logs in ${logDir}`),
      afterCleanup: (exitCode) => ownWorld.confirmStopped(exitCode),
    },
  );
}

runMain(main);
