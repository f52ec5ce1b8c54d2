/**
 * Benchmark: the phpIPAM dump component (the `dumpPhpipamToStores` activity) against the shell
 * baseline `mariadb-dump --single-transaction ... | gzip > file`, alternating in one invocation.
 *
 *   npx tsx bench/phpipam-dump/run.ts [--rows 1000000] [--rounds 3] [--small-rows N] [--json]
 *
 * Starts a private MariaDB (binlog on) in a temp dir, loads the phpIPAM-like fixture, and
 * alternates rounds (A B, B A, ...): A runs the activity in a child process
 * (bench/phpipam-dump/dump-once.ts) into a local store, B runs the pipeline under bash. Wall time
 * and peak RSS of each; medians; ratio A/B. "Flat memory" is judged by first measuring one round at
 * --small-rows (default rows/10) and comparing the component's peak RSS there with the peak at
 * --rows. Exits 0 whether or not the target is met (it is a measurement); 1 when something broke.
 * See bench/phpipam-dump/README.md.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { clientOptionFileText } from '../../src/phpipam';
import { connectAsRoot, startMariadb, type MariadbInstance } from '../../src/sandbox/mariadb';
import { loadPhpipamFixture, type FixtureCounts } from '../../src/sandbox/phpipam-fixture';
import { integerAtLeast, readCommandLine } from '../support/cli';
import { runBenchmark, runMain } from '../support/lifecycle';
import {
  findProcesses,
  GNU_TIME,
  hwmBytes,
  logTail,
  median,
  MiB,
  mib,
  rssBytes,
  settleWriteback,
  signalGroup,
  stopChild,
  type Teardown,
} from '../support/processes';
import { loadText, pad, repoRoot } from '../support/results';
import type { DumpOnceInput, DumpOnceResult } from './dump-once';

const DUMP_ONCE = join(__dirname, 'dump-once.ts');
const MARIADB_DUMP = '/usr/bin/mariadb-dump';
/** Issue 15: the component at most 1.0x `mariadb-dump | gzip`. */
const TARGET_RATIO = 1.0;
/** Peak RSS at --rows may exceed the peak at --small-rows by this factor and still count as flat. */
const FLAT_FACTOR = 1.2;
const SAMPLE_MS = 100;

const HELP = `usage: npx tsx bench/phpipam-dump/run.ts [options]

  --rows N          rows in ipaddresses (default 1000000; the other tables scale with it)
  --rounds N        rounds at --rows; each runs the component and the baseline once, order alternating (default 3)
  --small-rows N    first measure one round at N rows, to see whether peak RSS grows with the rows
                    (default rows/10; 0 skips it and leaves "flat memory" undecided)
  --batch-rows N    rows per INSERT when loading the fixture (default 2000)
  --json            also print one JSON object with every figure
  -h, --help        this text`;

interface Options {
  rows: number;
  rounds: number;
  smallRows: number;
  batchRows: number;
  json: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '1000000' },
      rounds: { type: 'string', default: '3' },
      'small-rows': { type: 'string' },
      'batch-rows': { type: 'string', default: '2000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  const rows = integerAtLeast('rows', values.rows, 1);
  return {
    rows,
    rounds: integerAtLeast('rounds', values.rounds, 1),
    smallRows: values['small-rows'] === undefined ? Math.floor(rows / 10) : integerAtLeast('small-rows', values['small-rows'], 0),
    batchRows: integerAtLeast('batch-rows', values['batch-rows'], 1),
    json: values.json,
  };
}

// ------------------------------------------------------------------ measurements

interface Measurement {
  rows: number;
  round: number;
  position: 1 | 2;
  run: 'component' | 'baseline';
  /** component: inside the activity; baseline: the whole bash pipeline. The ratio uses this. */
  wallSeconds: number;
  /** component: the child process from spawn to exit (node start and tsx compilation included). */
  processWallSeconds: number;
  /** component: the node process (ru_maxrss); baseline: the larger of mariadb-dump and gzip. */
  peakRssBytes: number;
  /** The dump program's own peak RSS (mariadb-dump; for the component sampled, VmHWM). */
  dumpRssBytes: number;
  /** component: peak of node + mariadb-dump sampled together; baseline: mariadb-dump + gzip peaks (an upper bound). */
  totalRssBytes: number;
  /** component: preflight + table facts before mariadb-dump starts (from heartbeats, about +-0.1 s). */
  beforeDumpSeconds?: number;
  /** component: COUNT(*) + CHECKSUM TABLE per table, seconds. */
  tableFactSeconds?: Record<string, number>;
  /** baseline: gzip's peak RSS. */
  gzipRssBytes?: number;
  gzBytes: number;
  rawBytes?: number;
}

interface Bench {
  db: MariadbInstance;
  dir: string;
  optionFile: string;
  logFile: string;
}

let setCounter = 0;

async function measureComponent(bench: Bench, rows: number, round: number, position: 1 | 2, teardown: Teardown): Promise<Measurement> {
  const { db } = bench;
  const storeDir = join(bench.dir, 'component-store');
  const workDir = join(bench.dir, 'component-work');
  rmSync(storeDir, { recursive: true, force: true });
  rmSync(workDir, { recursive: true, force: true });
  const input: DumpOnceInput = {
    host: db.phpipam.host,
    port: db.phpipam.port,
    database: db.phpipam.database,
    user: db.phpipam.user,
    passwordFile: db.phpipam.passwordFile,
    storeDir,
    workDir,
    setId: `bench-${++setCounter}`,
  };
  const log = openSync(bench.logFile, 'a');
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', DUMP_ONCE, JSON.stringify(input)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', log],
    detached: true,
  });
  closeSync(log);
  teardown.add(`dump-once ${input.setId}`, () => stopChild(child, 5_000));
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));

  // Sample node and its mariadb-dump child together every SAMPLE_MS.
  const portArg = `--port=${db.phpipam.port}`;
  let nodePeak = 0;
  let dumpPeak = 0;
  let totalPeak = 0;
  const sample = () => {
    const nodeRss = rssBytes(child.pid!) ?? 0;
    const dumps = findProcesses((args) => args[0]?.endsWith('mariadb-dump') === true && args.includes(portArg));
    let dumpRss = 0;
    for (const pid of dumps) {
      dumpRss += rssBytes(pid) ?? 0;
      dumpPeak = Math.max(dumpPeak, hwmBytes(pid) ?? 0);
    }
    nodePeak = Math.max(nodePeak, nodeRss);
    totalPeak = Math.max(totalPeak, nodeRss + dumpRss);
  };
  const timer = setInterval(sample, SAMPLE_MS);
  const code = await new Promise<number | null>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (exitCode) => done(exitCode));
  }).finally(() => clearInterval(timer));
  const processWallSeconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`dump-once exited with ${code}; see ${bench.logFile}:\n${logTail(bench.logFile, 10)}`);
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as DumpOnceResult;
  if (result.tablesMatchDump === false) console.warn('  warning: the activity reports tablesMatchDump=false');
  rmSync(storeDir, { recursive: true, force: true });
  rmSync(workDir, { recursive: true, force: true });
  return {
    rows,
    round,
    position,
    run: 'component',
    wallSeconds: result.activitySeconds,
    processWallSeconds,
    beforeDumpSeconds: result.beforeDumpSeconds,
    tableFactSeconds: result.tableFactSeconds,
    peakRssBytes: Math.max(result.maxRssBytes, nodePeak),
    dumpRssBytes: dumpPeak,
    totalRssBytes: totalPeak,
    gzBytes: result.gzBytes,
    rawBytes: result.rawBytes,
  };
}

async function measureBaseline(bench: Bench, rows: number, round: number, position: 1 | 2, teardown: Teardown): Promise<Measurement> {
  const { db } = bench;
  const scratch = join(bench.dir, 'baseline');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const out = join(scratch, 'out.sql.gz');
  const dumpTime = join(scratch, 'dump.time');
  const gzipTime = join(scratch, 'gzip.time');
  const q = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
  const script = [
    'set -o pipefail;',
    GNU_TIME,
    '-f',
    '%M',
    '-o',
    q(dumpTime),
    MARIADB_DUMP,
    q(`--defaults-file=${bench.optionFile}`),
    `--host=${db.phpipam.host}`,
    `--port=${db.phpipam.port}`,
    '--protocol=TCP',
    q(`--user=${db.phpipam.user}`),
    '--single-transaction',
    '--routines',
    '--triggers',
    '--events',
    '--hex-blob',
    q(db.phpipam.database),
    '|',
    GNU_TIME,
    '-f',
    '%M',
    '-o',
    q(gzipTime),
    'gzip',
    '>',
    q(out),
  ].join(' ');
  const log = openSync(bench.logFile, 'a');
  const started = performance.now();
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  teardown.add(`baseline ${rows}/${round}`, () => signalGroup(child, 'SIGKILL'));
  const code = await new Promise<number | null>((done, fail) => {
    child.once('error', fail);
    child.once('exit', (exitCode) => done(exitCode));
  });
  const wallSeconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`the baseline pipeline exited with ${code}; see ${bench.logFile}:\n${logTail(bench.logFile, 10)}`);
  const kib = (file: string) => Number(readFileSync(file, 'utf8').trim().split('\n').pop()) * 1024;
  const dumpRss = kib(dumpTime);
  const gzipRss = kib(gzipTime);
  const gzBytes = statSync(out).size;
  rmSync(scratch, { recursive: true, force: true });
  return {
    rows,
    round,
    position,
    run: 'baseline',
    wallSeconds,
    processWallSeconds: wallSeconds,
    peakRssBytes: Math.max(dumpRss, gzipRss),
    dumpRssBytes: dumpRss,
    totalRssBytes: dumpRss + gzipRss,
    gzipRssBytes: gzipRss,
    gzBytes,
  };
}

// ------------------------------------------------------------------ fixture

/** Empties the phpipam database (as root) and loads the fixture with `rows` addresses as the phpipam user. */
async function loadFixture(
  db: MariadbInstance,
  rows: number,
  batchRows: number,
  fresh: boolean,
): Promise<{ counts: FixtureCounts; seconds: number }> {
  if (!fresh) {
    const root = await connectAsRoot(db.layout);
    try {
      await root.query(`DROP DATABASE ${db.phpipam.database}`);
      await root.query(`CREATE DATABASE ${db.phpipam.database} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
      await root.query('RESET MASTER'); // the previous load's binlog is of no use here
    } finally {
      await root.end();
    }
  }
  const password = readFileSync(db.phpipam.passwordFile, 'utf8');
  const conn = await mysql.createConnection({
    host: db.phpipam.host,
    port: db.phpipam.port,
    user: db.phpipam.user,
    password,
    database: db.phpipam.database,
    multipleStatements: true,
  });
  const started = performance.now();
  const step = Math.max(batchRows, Math.ceil(rows / 10 / batchRows) * batchRows);
  let next = step;
  console.log(`loading the fixture: ${rows} ipaddresses ...`);
  try {
    const counts = await loadPhpipamFixture(conn, {
      ipaddresses: rows,
      batchRows,
      onProgress: (loaded) => {
        if (loaded < next && loaded < rows) return;
        next = loaded + step;
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `  ${loaded}/${rows} (${((100 * loaded) / rows).toFixed(0)} %), ${seconds.toFixed(0)} s, ${(loaded / Math.max(seconds, 0.001)).toFixed(0)} rows/s`,
        );
      },
    });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `  loaded in ${seconds.toFixed(1)} s: ${Object.entries(counts)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}`,
    );
    return { counts, seconds };
  } finally {
    await conn.end();
  }
}

// ------------------------------------------------------------------ report

function describe(m: Measurement): string {
  const extra =
    m.run === 'component'
      ? `activity ${m.wallSeconds.toFixed(2)} s (process ${m.processWallSeconds.toFixed(2)} s; before the dump starts ` +
        `${m.beforeDumpSeconds?.toFixed(2) ?? '?'} s, ipaddresses facts ${m.tableFactSeconds?.ipaddresses?.toFixed(2) ?? '?'} s), node peak ${mib(m.peakRssBytes)} MiB, ` +
        `mariadb-dump peak ${mib(m.dumpRssBytes)} MiB, node+dump ${mib(m.totalRssBytes)} MiB`
      : `pipeline ${m.wallSeconds.toFixed(2)} s, mariadb-dump peak ${mib(m.dumpRssBytes)} MiB, gzip ${mib(m.gzipRssBytes ?? 0)} MiB`;
  return `${pad(m.run, 9)} ${extra}, gz ${mib(m.gzBytes)} MiB`;
}

function printTable(measurements: Measurement[]): void {
  const header = [
    pad('rows', 8, true),
    pad('round', 5),
    pad('run', 9),
    pad('wall s', 7, true),
    pad('proc s', 7, true),
    pad('peak RSS MiB', 12, true),
    pad('dump RSS MiB', 12, true),
    pad('total MiB', 9, true),
    pad('gz MiB', 7, true),
  ].join('  ');
  console.log(header);
  console.log('-'.repeat(header.length));
  for (const m of measurements) {
    console.log(
      [
        pad(String(m.rows), 8, true),
        pad(`${m.round}.${m.position}`, 5),
        pad(m.run, 9),
        pad(m.wallSeconds.toFixed(2), 7, true),
        pad(m.processWallSeconds.toFixed(2), 7, true),
        pad(mib(m.peakRssBytes), 12, true),
        pad(mib(m.dumpRssBytes), 12, true),
        pad(mib(m.totalRssBytes), 9, true),
        pad(mib(m.gzBytes), 7, true),
      ].join('  '),
    );
  }
}

function summarize(measurements: Measurement[], rows: number, smallRows: number) {
  const pick = (n: number, run: Measurement['run']) => measurements.filter((m) => m.rows === n && m.run === run);
  const component = pick(rows, 'component');
  const baseline = pick(rows, 'baseline');
  const componentWall = median(component.map((m) => m.wallSeconds));
  const baselineWall = median(baseline.map((m) => m.wallSeconds));
  const ratio = componentWall / baselineWall;
  const peak = (list: Measurement[], of: (m: Measurement) => number) => (list.length > 0 ? Math.max(...list.map(of)) : Number.NaN);
  const componentPeak = peak(component, (m) => m.peakRssBytes);
  const smallComponentPeak = peak(pick(smallRows, 'component'), (m) => m.peakRssBytes);
  const flat =
    smallRows > 0 && smallRows !== rows && Number.isFinite(smallComponentPeak)
      ? componentPeak <= FLAT_FACTOR * smallComponentPeak
      : undefined;
  const ratioMet = ratio <= TARGET_RATIO;
  const beforeDump = median(component.map((m) => m.beforeDumpSeconds ?? Number.NaN));
  return {
    rows,
    componentMedianWallSeconds: componentWall,
    componentMedianProcessWallSeconds: median(component.map((m) => m.processWallSeconds)),
    baselineMedianWallSeconds: baselineWall,
    ratio,
    ratioTarget: TARGET_RATIO,
    ratioMet,
    componentMedianBeforeDumpSeconds: beforeDump,
    /** Informative only: (component wall - preflight and table facts) / baseline wall. */
    dumpOnlyRatio: (componentWall - beforeDump) / baselineWall,
    componentPeakRssMiB: componentPeak / MiB,
    componentDumpPeakRssMiB: peak(component, (m) => m.dumpRssBytes) / MiB,
    componentTotalPeakRssMiB: peak(component, (m) => m.totalRssBytes) / MiB,
    baselineDumpPeakRssMiB: peak(baseline, (m) => m.dumpRssBytes) / MiB,
    baselineGzipPeakRssMiB: peak(baseline, (m) => m.gzipRssBytes ?? 0) / MiB,
    smallRows,
    smallComponentPeakRssMiB: smallComponentPeak / MiB,
    smallComponentDumpPeakRssMiB: peak(pick(smallRows, 'component'), (m) => m.dumpRssBytes) / MiB,
    smallBaselineDumpPeakRssMiB: peak(pick(smallRows, 'baseline'), (m) => m.dumpRssBytes) / MiB,
    flatFactor: FLAT_FACTOR,
    memoryFlat: flat,
    targetMet: flat === undefined ? undefined : ratioMet && flat,
    componentGzMiB: median(component.map((m) => m.gzBytes)) / MiB,
    baselineGzMiB: median(baseline.map((m) => m.gzBytes)) / MiB,
    rawMiB: median(component.map((m) => m.rawBytes ?? 0)) / MiB,
  };
}

// ------------------------------------------------------------------ main

async function main(argv: string[]): Promise<number> {
  const commandLine = readCommandLine(argv, parseOptions, HELP);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const { options } = commandLine;
  const command = ['npx tsx bench/phpipam-dump/run.ts', ...argv].join(' ');
  const began = performance.now();
  return runBenchmark(async (teardown) => {
    console.log(`$ ${command}`);
    console.log(`started ${new Date().toISOString()}; load average ${loadText()}`);
    const dir = mkdtempSync(join(tmpdir(), 'nnoe-dr-phpipam-bench-'));
    teardown.add('temp dir', () => rmSync(dir, { recursive: true, force: true }));
    const logFile = join(dir, 'bench.log');

    const phase = performance.now();
    console.log(`starting MariaDB in ${dir} ...`);
    const db = await startMariadb({ dir: join(dir, 'mariadb') });
    teardown.add('mariadb', async () => {
      console.log('stopping MariaDB ...');
      await db.stop();
    });
    console.log(`  up in ${((performance.now() - phase) / 1000).toFixed(1)} s on port ${db.phpipam.port}`);

    // The baseline's password, in a 0600 option file as an operator would keep it.
    const optionFile = join(dir, 'baseline-client.cnf');
    writeFileSync(optionFile, clientOptionFileText({ password: readFileSync(db.phpipam.passwordFile, 'utf8') }), { mode: 0o600 });
    const bench: Bench = { db, dir, optionFile, logFile };

    const measurements: Measurement[] = [];
    const loads: Array<{ rows: number; seconds: number }> = [];
    const phases = [
      ...(options.smallRows > 0 && options.smallRows !== options.rows ? [{ rows: options.smallRows, rounds: 1 }] : []),
      { rows: options.rows, rounds: options.rounds },
    ];
    for (const [index, { rows, rounds }] of phases.entries()) {
      teardown.checkInterrupted();
      const loaded = await loadFixture(db, rows, options.batchRows, index === 0);
      loads.push({ rows, seconds: loaded.seconds });
      for (let round = 1; round <= rounds; round++) {
        const order: Array<Measurement['run']> = round % 2 === 1 ? ['component', 'baseline'] : ['baseline', 'component'];
        for (const [i, what] of order.entries()) {
          const position = (i + 1) as 1 | 2;
          await settleWriteback();
          teardown.checkInterrupted();
          const m =
            what === 'component'
              ? await measureComponent(bench, rows, round, position, teardown)
              : await measureBaseline(bench, rows, round, position, teardown);
          measurements.push(m);
          console.log(`${rows} rows, round ${round}.${position} ${describe(m)}`);
        }
      }
    }

    const summary = summarize(measurements, options.rows, phases.length > 1 ? options.smallRows : 0);
    const durationSeconds = (performance.now() - began) / 1000;
    console.log('');
    printTable(measurements);
    console.log('');
    console.log(
      `median wall at ${options.rows} rows: component ${summary.componentMedianWallSeconds.toFixed(2)} s (activity; process ` +
        `${summary.componentMedianProcessWallSeconds.toFixed(2)} s), baseline ${summary.baselineMedianWallSeconds.toFixed(2)} s`,
    );
    console.log(`ratio component/baseline ${summary.ratio.toFixed(3)} (target <= ${TARGET_RATIO}): ${summary.ratioMet ? 'met' : 'missed'}`);
    console.log(
      `  of the component's wall, ${summary.componentMedianBeforeDumpSeconds.toFixed(2)} s (median) pass before mariadb-dump starts ` +
        `(preflight, COUNT(*) + CHECKSUM TABLE per table); without them the ratio would be ${summary.dumpOnlyRatio.toFixed(3)} (informative)`,
    );
    console.log(
      `peak RSS at ${options.rows} rows: component node ${summary.componentPeakRssMiB.toFixed(1)} MiB + its mariadb-dump ` +
        `${summary.componentDumpPeakRssMiB.toFixed(1)} MiB (together ${summary.componentTotalPeakRssMiB.toFixed(1)} MiB); baseline mariadb-dump ` +
        `${summary.baselineDumpPeakRssMiB.toFixed(1)} MiB, gzip ${summary.baselineGzipPeakRssMiB.toFixed(1)} MiB`,
    );
    if (summary.memoryFlat === undefined) {
      console.log('memory flat: not measured (--small-rows 0)');
    } else {
      console.log(
        `memory flat: component peak RSS ${summary.smallComponentPeakRssMiB.toFixed(1)} MiB at ${summary.smallRows} rows -> ` +
          `${summary.componentPeakRssMiB.toFixed(1)} MiB at ${options.rows} rows (flat if <= ${FLAT_FACTOR}x): ${summary.memoryFlat ? 'yes' : 'no'}; ` +
          `its mariadb-dump ${summary.smallComponentDumpPeakRssMiB.toFixed(1)} -> ${summary.componentDumpPeakRssMiB.toFixed(1)} MiB`,
      );
    }
    console.log(
      `target (<= ${TARGET_RATIO}x wall at flat memory): ${summary.targetMet === undefined ? 'undecided' : summary.targetMet ? 'met' : 'missed'}`,
    );
    console.log(
      `fixture loads: ${loads.map((l) => `${l.rows} rows ${l.seconds.toFixed(0)} s`).join(', ')}; total duration ${(durationSeconds / 60).toFixed(1)} min; ` +
        `load average now ${loadText()}`,
    );
    if (options.json) {
      console.log(JSON.stringify({ command, durationSeconds, loads, summary, measurements }));
    }
    return 0;
  });
}

runMain(main);
