/**
 * Benchmark: the recovery point of change capture, i.e. how long after etcd acknowledged a write
 * that write is durable in every storage target (what a point-in-time restore can reach).
 *
 *   npx tsx bench/pitr-lag/run.ts [--rate 1000] [--seconds 60] [--flush-ms 1000] [--targets local,s3]
 *       [--slice-minutes 1] [--concurrency 256] [--value-bytes 256] [--keys 1000] [--poll-ms 20]
 *       [--no-encryption] [--node node-1] [--worker compiled|tsx] [--no-probe] [--json]
 *
 * Starts its own world (3-member etcd with mTLS, S3, Temporal dev server) in a temp dir and the
 * management worker, takes an etcd snapshot (the capture's base), starts changeCaptureWorkflow, and
 * writes at a steady rate with a paced writer in a process of its own (writer.ts). Each put's commit
 * time is when etcd acknowledged it (its revision from the response header), or when the capture
 * worker received it if that came first. The benchmark watches the segment prefix in every target
 * (inotify + readdir on the local directory, ListObjectsV2 on S3) and takes, for every event, the
 * time a segment covering its revision had appeared in ALL targets: lag = that - commit time.
 * Afterwards it reads every segment back and checks that each written revision is in exactly one.
 * Exits 0 whether or not the target is met (it is a measurement); 1 when something broke (an event
 * lost or doubled, the capture failed, a process left behind). See bench/pitr-lag/README.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { stringify } from 'yaml';
import { segmentStore } from '../../src/capture/segment-store';
import { chainSegments, encodeEvents, parseSegmentKey, segmentDir, type CapturedEvent, type SegmentName } from '../../src/capture/segments';
import { connectClient, startEtcdBackup } from '../../src/client/temporal';
import { utcStamp } from '../../src/common/manifest';
import { waitUntil, sleep } from '../../src/common/poll';
import { loadConfig } from '../../src/config/load';
import type { Config, S3TargetConfig } from '../../src/config/schema';
import { createEncryptStream } from '../../src/crypto';
import { processesWithEnvironmentMarker } from '../../src/sandbox/supervisor';
import { openStore, publishToStores, s3ClientFor, type BackupStore } from '../../src/storage';
import type { EtcdBackupResult } from '../../src/workflows/etcd-backup';
import { stopCaptureSignal, type CaptureStatus, type changeCaptureWorkflow } from '../../src/workflows/change-capture';
import { parseTargets, parseWorkerMode, positiveInteger, positiveNumber, readCommandLine, type WorkerMode } from '../support/cli';
import { OwnWorld, runBenchmark, runMain, WORLD_MARKER_ENV } from '../support/lifecycle';
import { MiB, mib, procCpuTimes, sampleRss, stopChild, type Teardown } from '../support/processes';
import { benchWorldConfig, connectLeader, startWorkers, workerArgs, writeAgeIdentity } from '../support/bench-world';
import { loadText, newRunDir, repoRoot, resultsRoot, writeResult } from '../support/results';
import { keyName, type WriterOutput, type WriterRequest } from './writer';

const TASK_QUEUE = 'nnoe-dr-bench-pitr';
const TARGET_P99_MS = 1000;
/** For reference: the best-known etcd backup sidecar uploads its change deltas every 20 s by default. */
const SIDECAR_DELTA_PERIOD_MS = 20_000;
/** S3 is listed this often while no segment is waiting for it (it is listed every --poll-ms while one is). */
const S3_IDLE_POLL_MS = 200;
const KEY_PREFIX = '/nnoe/bench/pitr-lag/';

const HELP = `usage: npx tsx bench/pitr-lag/run.ts [options]

  --rate N           writes per second, paced evenly (default 1000)
  --seconds N        how long to write (default 60)
  --flush-ms N       the capture's flushMs, its durability bound per event (default 1000)
  --targets LIST     storage targets of the snapshot and the capture, comma-separated: local, s3 (default local,s3)
  --slice-minutes N  the capture's sliceMinutes: its activity returns (and a new one starts) this often (default 1)
  --concurrency N    most puts in flight at once (default 256)
  --value-bytes N    bytes per value (default 256)
  --keys N           distinct keys written round-robin (default 1000)
  --poll-ms N        listing interval per target while looking for a segment (default 20)
  --no-encryption    store segments without age (the default encrypts, as production does)
  --node NAME        run the capture on that node's worker (a node worker is started) instead of the management worker
  --worker MODE      compiled (tsc + prebuilt workflow bundle into bench/results/pitr-lag/build; default) or tsx
  --no-probe         skip the isolated timing of each flush part (gzip, age, local commit, S3 PUT, listing)
  --json             also print one JSON object with every figure
  -h, --help         this text`;

interface Options {
  rate: number;
  seconds: number;
  flushMs: number;
  targets: string[];
  sliceMinutes: number;
  concurrency: number;
  valueBytes: number;
  keys: number;
  pollMs: number;
  encryption: boolean;
  node?: string;
  worker: WorkerMode;
  probe: boolean;
  json: boolean;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      rate: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '60' },
      'flush-ms': { type: 'string', default: '1000' },
      targets: { type: 'string', default: 'local,s3' },
      'slice-minutes': { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '256' },
      'value-bytes': { type: 'string', default: '256' },
      keys: { type: 'string', default: '1000' },
      'poll-ms': { type: 'string', default: '20' },
      'no-encryption': { type: 'boolean', default: false },
      node: { type: 'string' },
      worker: { type: 'string', default: 'compiled' },
      'no-probe': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  const targets = [...new Set(parseTargets(values.targets))];
  if (targets.length === 0) throw new Error('--targets names no target');
  const worker = parseWorkerMode(values.worker);
  return {
    rate: positiveNumber('rate', values.rate),
    seconds: positiveNumber('seconds', values.seconds),
    flushMs: positiveInteger('flush-ms', values['flush-ms']),
    targets,
    sliceMinutes: positiveNumber('slice-minutes', values['slice-minutes']),
    concurrency: positiveInteger('concurrency', values.concurrency),
    valueBytes: positiveInteger('value-bytes', values['value-bytes']),
    keys: positiveInteger('keys', values.keys),
    pollMs: positiveInteger('poll-ms', values['poll-ms']),
    encryption: !values['no-encryption'],
    node: values.node,
    worker,
    probe: !values['no-probe'],
    json: values.json,
  };
}

// ------------------------------------------------------------------ numbers

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

function distribution(values: number[]): Distribution {
  const sorted = Float64Array.from(values).sort();
  const list = Array.from(sorted);
  const mean = list.reduce((sum, v) => sum + v, 0) / Math.max(1, list.length);
  return {
    count: list.length,
    p50: percentile(list, 50),
    p90: percentile(list, 90),
    p99: percentile(list, 99),
    p999: percentile(list, 99.9),
    max: list.length ? list[list.length - 1]! : Number.NaN,
    mean,
  };
}

const ms = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : 'n/a');
const fixed = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

// ------------------------------------------------------------------ CPU of the world's processes

function processKind(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const all = args.join(' ');
    if (args[0]?.endsWith('/etcd')) return 'etcd (3 members)';
    if (/moto/.test(all)) return 'S3 (moto)';
    if (/temporal/.test(args[0] ?? '') || /server start-dev/.test(all)) return 'Temporal dev server';
    if (/worker\.(js|ts)/.test(all)) return /--node/.test(all) ? 'node worker' : 'management worker';
    if (/supervisord/.test(all)) return 'supervisord';
    return 'other';
  } catch {
    return 'gone';
  }
}

type CpuSnapshot = Map<number, { kind: string; self: number; children: number }>;

function cpuSnapshot(worldDir: string): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  for (const pid of processesWithEnvironmentMarker(WORLD_MARKER_ENV, worldDir)) {
    const cpu = procCpuTimes(pid);
    if (cpu) snapshot.set(pid, { kind: processKind(pid), ...cpu });
  }
  return snapshot;
}

/** CPU seconds per kind of process between two snapshots; a worker's age children are their own line. */
function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pid, end] of after) {
    const start = before.get(pid) ?? { self: 0, children: 0 };
    out[end.kind] = (out[end.kind] ?? 0) + end.self - start.self;
    if (end.kind.endsWith('worker'))
      out[`${end.kind}: children (age)`] = (out[`${end.kind}: children (age)`] ?? 0) + end.children - start.children;
  }
  return out;
}

// ------------------------------------------------------------------ watching the targets

interface LocalTimes {
  /** Birth of the writer's temp file: the flush has gzipped its buffer and opened its writers. */
  birthMs: number;
  /** Last write into it: age has encrypted and written the segment. */
  mtimeMs: number;
  /** Its rename into place (after the fsync). */
  ctimeMs: number;
  bytes: number;
}

interface SeenSegment {
  name: SegmentName;
  /** First time each target listed it (ms since epoch, at the listing's answer): the latest it can have appeared. */
  seen: Map<string, number>;
  /**
   * The earliest it can have appeared in each target: the local file's rename (ctime); for S3 the
   * start of the listing before the one that first showed it.
   */
  low: Map<string, number>;
  /** When it had appeared in every target (upper bound, used for the lag). */
  durableMs?: number;
  /** The lower bound of the same. */
  durableLowMs?: number;
  local?: LocalTimes;
}

/**
 * Follows the segment prefix in every target: the local directory through inotify plus a readdir
 * every pollMs, S3 by ListObjectsV2 after the last key seen (keys sort by revision), every pollMs
 * while a segment another target already lists is missing there, else every S3_IDLE_POLL_MS (so
 * the listing itself takes little of the CPU the capture needs).
 */
class SegmentTracker {
  readonly segments = new Map<string, SeenSegment>();
  readonly s3ListMs: number[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private watcher: FSWatcher | undefined;
  private localScan: Promise<void> | undefined;
  private localRescan = false;
  private wake: (() => void) | undefined;
  errors: string[] = [];

  constructor(
    private readonly cluster: string,
    private readonly clusterId: string,
    private readonly targets: Array<{ name: string; local?: string; s3?: { client: S3Client; bucket: string; prefix: string } }>,
    private readonly pollMs: number,
  ) {}

  start(): void {
    for (const target of this.targets) {
      if (target.local) {
        const dir = target.local;
        mkdirSync(dir, { recursive: true }); // the store makes it on the first segment; inotify needs it now
        this.watcher = watch(dir, () => this.scanLocal(target.name, dir));
        this.loops.push(this.every(this.pollMs, () => this.scanLocal(target.name, dir)));
      } else if (target.s3) {
        this.loops.push(this.followS3(target.name, target.s3));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.wake?.();
    await Promise.all(this.loops);
    await this.localScan;
  }

  private async every(intervalMs: number, run: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      await run();
      await sleep(intervalMs);
    }
  }

  private scanLocal(target: string, dir: string): Promise<void> {
    if (this.localScan) {
      this.localRescan = true;
      return this.localScan;
    }
    this.localScan = (async () => {
      do {
        this.localRescan = false;
        const names = await readdir(dir).catch((err: Error) => {
          this.note(`readdir ${dir}: ${err.message}`);
          return [] as string[];
        });
        const at = Date.now();
        for (const name of names) {
          if (name.startsWith('.')) continue; // a writer's temp file
          const seg = this.saw(target, `${segmentDir(this.cluster, this.clusterId)}${name}`, at);
          if (seg && !seg.local) {
            const st = await stat(join(dir, name), { bigint: false }).catch(() => undefined);
            if (st) {
              seg.local = { birthMs: st.birthtimeMs, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, bytes: st.size };
              this.setLow(seg, target, Math.min(st.ctimeMs, seg.seen.get(target)!));
            }
          }
        }
      } while (this.localRescan && !this.stopped);
    })().finally(() => {
      this.localScan = undefined;
    });
    return this.localScan;
  }

  private async followS3(target: string, s3: { client: S3Client; bucket: string; prefix: string }): Promise<void> {
    const prefix = `${s3.prefix}${segmentDir(this.cluster, this.clusterId)}`;
    let startAfter: string | undefined;
    let lastList = 0;
    /** Start of the last listing that answered: a key it did not show appeared after that. */
    let previousStart = Date.now();
    while (!this.stopped) {
      const waiting = [...this.segments.values()].some((s) => !s.seen.has(target));
      if (waiting || this.targets.length === 1 || Date.now() - lastList >= S3_IDLE_POLL_MS) {
        const started = Date.now();
        lastList = started;
        try {
          let token: string | undefined;
          do {
            const page = await s3.client.send(
              new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, StartAfter: startAfter, ContinuationToken: token }),
            );
            const at = Date.now();
            for (const item of page.Contents ?? []) {
              if (!item.Key) continue;
              const seg = this.saw(target, item.Key.slice(s3.prefix.length), at);
              if (seg && !seg.low.has(target)) this.setLow(seg, target, previousStart);
              if (!startAfter || item.Key > startAfter) startAfter = item.Key;
            }
            token = page.IsTruncated ? page.NextContinuationToken : undefined;
          } while (token);
          this.s3ListMs.push(Date.now() - started);
          previousStart = started;
        } catch (err) {
          this.note(`S3 listing: ${(err as Error).message}`);
        }
        // While a segment is due here, list again at once (one listing in flight at a time).
        if (waiting) continue;
      }
      await new Promise<void>((done) => {
        this.wake = done;
        setTimeout(done, this.pollMs);
      });
    }
  }

  private saw(target: string, key: string, at: number): SeenSegment | undefined {
    const name = parseSegmentKey(this.cluster, this.clusterId, key);
    if (!name) return undefined;
    let seg = this.segments.get(key);
    if (!seg) {
      seg = { name, seen: new Map(), low: new Map() };
      this.segments.set(key, seg);
    }
    if (!seg.seen.has(target)) {
      seg.seen.set(target, at);
      if (seg.seen.size === this.targets.length) seg.durableMs = Math.max(...seg.seen.values());
    }
    return seg;
  }

  private setLow(seg: SeenSegment, target: string, at: number): void {
    seg.low.set(target, at);
    if (seg.low.size === this.targets.length) seg.durableLowMs = Math.max(...seg.low.values());
  }

  private note(message: string): void {
    if (this.errors.length < 20) this.errors.push(message);
  }

  durable(): SeenSegment[] {
    return [...this.segments.values()].filter((s) => s.durableMs !== undefined).sort((a, b) => a.name.from - b.name.from);
  }

  /** The last revision durable in every target without a hole after `after`. */
  reachable(after: number): number {
    return chainSegments(
      this.durable().map((s) => s.name),
      after,
    ).reachable;
  }
}

// ------------------------------------------------------------------ the paced writer (writer.ts)

interface Written {
  rev: number;
  key: number;
  /** When the put was due (the pace), sent, and acknowledged as seen by the writer (ms since epoch). */
  dueMs: number;
  sentMs: number;
  ackMs: number;
}

interface WriterResult {
  written: Written[];
  skipped: number;
  errors: number;
  firstError?: string;
  seconds: number;
  /** How late puts were sent against the pace (the concurrency cap was reached). */
  lateness: Distribution;
  putLatency: Distribution;
  maxInFlight: number;
  cpuSeconds: number;
}

/** Runs writer.ts in its own process (own event loop, own CPU) and collects what it wrote. */
async function runWriter(request: WriterRequest, worldDir: string, teardown: Teardown): Promise<WriterResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'writer.ts')], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    detached: true,
    env: { ...process.env, [WORLD_MARKER_ENV]: worldDir },
  });
  teardown.add('writer', () => stopChild(child, 5000));
  const output = await new Promise<WriterOutput>((done, fail) => {
    child.on('message', (message: { type: string; result?: WriterOutput; message?: string }) => {
      if (message.type === 'done') done(message.result!);
      if (message.type === 'failed') fail(new Error(`the writer failed: ${message.message}`));
    });
    child.once('exit', (code, signal) => fail(new Error(`the writer exited (${signal ?? code}) before reporting`)));
    child.send(request);
  });
  const written = output.written.map(([rev, key, dueMs, sentMs, ackMs]) => ({ rev, key, dueMs, sentMs, ackMs }));
  const lastAck = written.reduce((last, w) => Math.max(last, w.ackMs), output.startMs);
  return {
    written,
    skipped: output.skipped,
    errors: output.errors,
    firstError: output.firstError,
    seconds: (lastAck - output.startMs) / 1000,
    lateness: distribution(written.map((w) => Math.max(0, w.sentMs - w.dueMs))),
    putLatency: distribution(written.map((w) => w.ackMs - w.sentMs)),
    maxInFlight: output.maxInFlight,
    cpuSeconds: output.cpuSeconds,
  };
}

// ------------------------------------------------------------------ isolated costs of one flush

interface PartTimings {
  [part: string]: Distribution;
}

/**
 * Times each part of a flush on its own, with a segment of the measured run's median size, in
 * this process (the worker does the same calls): gzip, the age process, the local commit (write,
 * fsync, rename, fsync of the directory), the S3 PUT, the whole publishToStores as the activity
 * does it, and the listing a new capture slice starts with.
 */
async function probeFlushParts(
  config: Config,
  clusterId: string,
  targets: string[],
  sample: CapturedEvent[],
  encryption: boolean,
  rounds = 30,
): Promise<PartTimings> {
  const stores = await Promise.all(config.storage.filter((t) => targets.includes(t.name)).map(openStore));
  const recipients = config.encryption?.recipients ?? [];
  const timings: Record<string, number[]> = {};
  const time = async (part: string, run: () => Promise<unknown>) => {
    const started = performance.now();
    await run();
    (timings[part] ??= []).push(performance.now() - started);
  };
  const drain = () =>
    new Writable({
      write(_chunk, _enc, done) {
        done();
      },
    });
  const body = gzipSync(encodeEvents(sample));
  const cluster = config.clusters[0]!.name;
  for (let i = 0; i < rounds; i++) {
    await time('encode + gzip (gzipSync)', async () => gzipSync(encodeEvents(sample)));
    if (encryption)
      await time('age --encrypt (spawn + encrypt)', () => pipeline(Readable.from([body]), createEncryptStream(recipients), drain()));
    for (const store of stores) {
      const key = `bench-probe/${i}-${store.name}.bin`;
      await time(
        `${store.name}: commit one object (${store.name === 'local' ? 'write, fsync, rename, fsync dir' : 'PutObject'})`,
        async () => {
          const writer = await store.createWriter(key);
          writer.stream.end(body);
          await writer.commit();
        },
      );
      await store.delete(key);
    }
    const key = `bench-probe/${i}-all.bin`;
    await time(`publishToStores to ${targets.join('+')} (${encryption ? 'age included' : 'no age'})`, () =>
      publishToStores(stores, key, (sink) =>
        pipeline([Readable.from([body]), ...(encryption ? [createEncryptStream(recipients)] : []), sink]),
      ),
    );
    for (const store of stores) await store.delete(key);
    if (i % 3 === 0) {
      for (const store of stores)
        await time(`${store.name}: list the cluster's segments (a slice's start)`, () => store.list(segmentDir(cluster, clusterId)));
    }
  }
  return Object.fromEntries(Object.entries(timings).map(([part, values]) => [part, distribution(values)]));
}

// ------------------------------------------------------------------ the analysis

interface Breakdown {
  [part: string]: Distribution;
}

interface Analysis {
  written: number;
  capturedEvents: number;
  capturedInRange: number;
  lost: number[];
  doubled: number[];
  foreign: number;
  wrongKey: number;
  overlappingSegments: number;
  holes: number;
  targetsDiffer: string[];
  lag: Distribution;
  /** The same with each segment's earliest possible appearance (the measurement's resolution). */
  lagLowerBound: Distribution;
  /** The same with the ack time as the writer saw it. */
  lagFromWriterAck: Distribution;
  /** Events the worker received before the writer saw their ack. */
  ackAfterReceive: number;
  /** Per segment, (latest - earliest) possible time it was in every target. */
  durableBandMs: Distribution;
  notDurableInTime: number;
  overTarget: Record<string, number>;
  breakdown?: Breakdown;
  segments: {
    count: number;
    eventsPerSegment: Distribution;
    bytes: Distribution;
    flushPeriodMs: Distribution;
    encryptWriteMs?: Distribution;
    fsyncRenameMs?: Distribution;
    afterRenameToAllMs?: Distribution;
    firstToLastReceiveMs: Distribution;
  };
  /** Longest pauses in the worker's receipt of events (between one segment's last event and the next's first): slice turnovers. */
  receiveGaps: Array<{ afterFirstWriteS: number; gapMs: number }>;
  worst: Array<{ key: string; events: number; maxLagMs: number; parts: Record<string, number> }>;
  slowSecond: Array<{ second: number; p99: number; max: number; events: number }>;
}

function analyse(opts: {
  base: number;
  written: Written[];
  extraWritten: Written[];
  events: CapturedEvent[];
  segments: SeenSegment[];
  listings: Map<string, string[]>;
  keyPrefix: string;
}): Analysis {
  const { base, written, events, segments } = opts;
  const allWritten = [...opts.extraWritten, ...written];
  const writtenByRev = new Map(allWritten.map((w) => [w.rev, w]));
  const count = new Map<number, number>();
  const receive = new Map<number, number>();
  let wrongKey = 0;
  let foreign = 0;
  for (const e of events) {
    if (e.rev <= base) continue;
    count.set(e.rev, (count.get(e.rev) ?? 0) + 1);
    if (!receive.has(e.rev)) receive.set(e.rev, e.ms);
    const w = writtenByRev.get(e.rev);
    if (!w) {
      foreign++;
      continue;
    }
    const key = Buffer.from(e.key, 'base64').toString('utf8');
    if (w.key >= 0 && key !== keyName(opts.keyPrefix, w.key)) wrongKey++;
  }
  const lost = allWritten.filter((w) => !count.has(w.rev)).map((w) => w.rev);
  const doubled = [...count].filter(([, n]) => n > 1).map(([rev]) => rev);

  // Segments: contiguous, no overlap, the same in every target.
  const ordered = [...segments].sort((a, b) => a.name.from - b.name.from || a.name.to - b.name.to);
  let overlapping = 0;
  let holes = 0;
  let next = base + 1;
  for (const s of ordered) {
    if (s.name.from < next) overlapping++;
    else if (s.name.from > next) holes++;
    next = Math.max(next, s.name.to + 1);
  }
  const listingSets = [...opts.listings].map(([target, keys]) => [target, new Set(keys)] as const);
  const targetsDiffer: string[] = [];
  for (const [target, keys] of listingSets) {
    for (const [other, otherKeys] of listingSets) {
      if (target === other) continue;
      for (const key of keys) if (!otherKeys.has(key)) targetsDiffer.push(`${key} in ${target}, not in ${other}`);
    }
  }

  // Per event: the first segment covering its revision in every target.
  const durable = ordered.filter((s) => s.durableMs !== undefined);
  const coveringSegment = (rev: number): SeenSegment | undefined => {
    // Overlapping segments (a retry) would each cover rev: the earliest durable one counts.
    if (overlapping > 0)
      return durable.filter((s) => s.name.from <= rev && s.name.to >= rev).sort((x, y) => x.durableMs! - y.durableMs!)[0];
    let lo = 0;
    let hi = durable.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = durable[mid]!;
      if (rev < s.name.from) hi = mid - 1;
      else if (rev > s.name.to) lo = mid + 1;
      else return s;
    }
    return undefined;
  };
  const lags: number[] = [];
  const lagsLow: number[] = [];
  const lagsAck: number[] = [];
  let ackAfterReceive = 0;
  const parts: Record<string, number[]> = {
    'watch delivery (etcd ack -> worker receives)': [],
    'buffered until the flush opens its writers (incl. gzip)': [],
    'age encrypt + write (temp file born -> last write)': [],
    'fsync + rename (last write -> rename)': [],
    'rename -> seen in every target (S3 PUT, listing)': [],
  };
  const partNames = Object.keys(parts);
  const perSegment = new Map<string, { events: number; maxLagMs: number; parts: Record<string, number> }>();
  const perSecond = new Map<number, number[]>();
  /** Events over the target, by the part of their lag that was largest. */
  const overTarget: Record<string, number> = {};
  let notDurable = 0;
  for (const w of written) {
    const s = coveringSegment(w.rev);
    if (!s) {
      notDurable++;
      continue;
    }
    // The commit happened before the writer saw the ack AND before the worker received the event:
    // under load the writer's own event loop is sometimes the later of the two.
    const rx = receive.get(w.rev);
    if (rx !== undefined && rx < w.ackMs) ackAfterReceive++;
    const commitMs = rx !== undefined ? Math.min(w.ackMs, rx) : w.ackMs;
    const lag = s.durableMs! - commitMs;
    lags.push(lag);
    lagsAck.push(s.durableMs! - w.ackMs);
    if (s.durableLowMs !== undefined) lagsLow.push(s.durableLowMs - commitMs);
    const second = Math.floor((w.sentMs - written[0]!.sentMs) / 1000);
    (perSecond.get(second) ?? perSecond.set(second, []).get(second)!).push(lag);
    const local = s.local;
    const split =
      rx !== undefined && local && local.birthMs > 0
        ? [rx - commitMs, local.birthMs - rx, local.mtimeMs - local.birthMs, local.ctimeMs - local.mtimeMs, s.durableMs! - local.ctimeMs]
        : undefined;
    if (split) split.forEach((v, i) => parts[partNames[i]!]!.push(v));
    if (lag > TARGET_P99_MS) {
      const largest = split ? partNames[split.indexOf(Math.max(...split))]! : 'unknown (no local target)';
      overTarget[largest] = (overTarget[largest] ?? 0) + 1;
    }
    const entry = perSegment.get(s.name.key) ?? { events: 0, maxLagMs: 0, parts: {} };
    entry.events++;
    if (lag >= entry.maxLagMs) {
      entry.maxLagMs = lag;
      if (split) entry.parts = Object.fromEntries(split.map((v, i) => [partNames[i]!, Math.round(v)]));
    }
    perSegment.set(s.name.key, entry);
  }
  const local = ordered.map((s) => s.local).filter((l): l is LocalTimes => l !== undefined && l.birthMs > 0);
  const births = local.map((l) => l.birthMs).sort((a, b) => a - b);
  const eventsPer = new Map<string, number>();
  for (const e of events) {
    const s = coveringSegment(e.rev);
    if (s) eventsPer.set(s.name.key, (eventsPer.get(s.name.key) ?? 0) + 1);
  }
  return {
    written: allWritten.length,
    capturedEvents: events.length,
    capturedInRange: [...count.values()].reduce((sum, n) => sum + n, 0),
    lost,
    doubled,
    foreign,
    wrongKey,
    overlappingSegments: overlapping,
    holes,
    targetsDiffer,
    lag: distribution(lags),
    lagLowerBound: distribution(lagsLow),
    lagFromWriterAck: distribution(lagsAck),
    ackAfterReceive,
    durableBandMs: distribution(
      segments.filter((x) => x.durableMs !== undefined && x.durableLowMs !== undefined).map((x) => x.durableMs! - x.durableLowMs!),
    ),
    notDurableInTime: notDurable,
    overTarget,
    breakdown:
      parts[partNames[0]!]!.length > 0
        ? Object.fromEntries(Object.entries(parts).map(([name, values]) => [name, distribution(values)]))
        : undefined,
    segments: {
      count: ordered.length,
      eventsPerSegment: distribution([...eventsPer.values()]),
      bytes: distribution(local.map((l) => l.bytes)),
      flushPeriodMs: distribution(births.slice(1).map((b, i) => b - births[i]!)),
      ...(local.length
        ? {
            encryptWriteMs: distribution(local.map((l) => l.mtimeMs - l.birthMs)),
            fsyncRenameMs: distribution(local.map((l) => l.ctimeMs - l.mtimeMs)),
            afterRenameToAllMs: distribution(ordered.filter((s) => s.local && s.durableMs).map((s) => s.durableMs! - s.local!.ctimeMs)),
          }
        : {}),
      firstToLastReceiveMs: distribution(ordered.map((s) => s.name.lastMs - s.name.firstMs)),
    },
    receiveGaps: ordered
      .slice(1)
      .map((next, i) => ({
        afterFirstWriteS: written.length ? (ordered[i]!.name.lastMs - written[0]!.sentMs) / 1000 : Number.NaN,
        gapMs: next.name.firstMs - ordered[i]!.name.lastMs,
      }))
      .filter((g) => g.afterFirstWriteS >= 0)
      .sort((a, b) => b.gapMs - a.gapMs)
      .slice(0, 3), // before the writes the cluster is idle
    worst: [...perSegment]
      .sort((a, b) => b[1].maxLagMs - a[1].maxLagMs)
      .slice(0, 5)
      .map(([key, v]) => ({ key: key.split('/').pop()!, ...v })),
    slowSecond: [...perSecond]
      .map(([second, values]) => {
        const d = distribution(values);
        return { second, p99: d.p99, max: d.max, events: d.count };
      })
      .sort((a, b) => b.max - a.max)
      .slice(0, 5),
  };
}

/** The commit the measured code is at, and whether src/ differs from it (others may be editing it). */
function describeSource(): string {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD').stdout.trim() || 'unknown';
  const dirty = git('status', '--porcelain', '--', 'src').stdout.trim() !== '';
  return `src at ${head}${dirty ? ' with uncommitted changes' : ''}`;
}

// ------------------------------------------------------------------ main

async function main(argv: string[]): Promise<number> {
  const commandLine = readCommandLine(argv, parseOptions, HELP);
  if ('exitCode' in commandLine) return commandLine.exitCode;
  const { options } = commandLine;
  const command = ['npx tsx bench/pitr-lag/run.ts', ...argv].join(' ');
  const sourceVersion = describeSource();
  const began = performance.now();
  const loadAtStart = loadavg();
  const logDir = newRunDir('pitr-lag');
  const ownWorld = new OwnWorld('nnoe-dr-bench-pitr-');
  return runBenchmark(
    async (teardown) => {
      console.log(`$ ${command}`);
      console.log(`logs: ${logDir}; load average ${loadText(loadAtStart)} (${cpus().length} cores); ${sourceVersion}`);
      const args = workerArgs(options.worker, join(resultsRoot, 'pitr-lag', 'build'));
      const { dir, world } = await ownWorld.start(teardown);

      const encryption = options.encryption ? await writeAgeIdentity(dir) : undefined;
      const configPath = join(dir, 'nnoe-dr.bench-pitr.yaml');
      writeFileSync(configPath, stringify(benchWorldConfig(world, { taskQueue: TASK_QUEUE, targets: options.targets, encryption })));
      const config = loadConfig(configPath);
      const clusterName = config.clusters[0]!.name;

      let phase = performance.now();
      const workers = await startWorkers(teardown, { args, configPath, nodes: options.node ? [options.node] : [], logDir, worldDir: dir });
      const captureWorker = workers.get(options.node ?? 'management')!;
      console.log(
        `  workers polling after ${((performance.now() - phase) / 1000).toFixed(1)} s: ${[...workers.keys()].join(', ')}; ` +
          `the capture runs on the ${options.node ? `${options.node} worker` : 'management worker'} (pid ${captureWorker.pid})`,
      );

      const client: Client = await connectClient(config);
      teardown.add('temporal client', () => client.connection.close());

      // Writes go to the leader, as most clients' writes end up there anyway. The keys exist before
      // the snapshot (the writes then overwrite them, like NNOE's records being updated).
      const { leader, client: etcd } = await connectLeader(config, 30_000);
      teardown.add('etcd client', () => etcd.close());
      const clusterId = String((await etcd.maintenance.status()).header.cluster_id);
      phase = performance.now();
      for (let i = 0; i < options.keys; i += 64) {
        await Promise.all(
          Array.from({ length: Math.min(64, options.keys - i) }, (_, j) =>
            etcd.kv.put({ key: Buffer.from(keyName(KEY_PREFIX, i + j)), value: Buffer.from('seed') }),
          ),
        );
      }
      console.log(
        `seeded ${options.keys} keys under ${KEY_PREFIX} in ${((performance.now() - phase) / 1000).toFixed(1)} s (etcd leader ${leader.name})`,
      );

      phase = performance.now();
      const backup = (await (
        await startEtcdBackup(client, config, { cluster: clusterName, targets: options.targets })
      ).result()) as EtcdBackupResult;
      const component = backup.manifest.components.find((c) => c.component === 'etcd');
      if (component?.component !== 'etcd') throw new Error(`set ${backup.setId} has no etcd component`);
      const base = component.facts.revision;
      console.log(
        `snapshot set ${backup.setId} in ${((performance.now() - phase) / 1000).toFixed(1)} s at revision ${base}: the capture's base`,
      );

      const trackerTargets = await Promise.all(
        config.storage.map(async (target) => {
          if (target.type === 'local')
            return { name: target.name, local: join(target.path, ...segmentDir(clusterName, clusterId).split('/').filter(Boolean)) };
          const s3 = target as S3TargetConfig;
          const s3Client = await s3ClientFor(s3);
          teardown.add('S3 client', () => s3Client.destroy());
          return { name: target.name, s3: { client: s3Client, bucket: s3.bucket, prefix: s3.prefix } };
        }),
      );
      const tracker = new SegmentTracker(clusterName, clusterId, trackerTargets, options.pollMs);
      tracker.start();
      teardown.add('segment tracker', () => tracker.stop());

      const workflowId = `pitr-lag-bench-${utcStamp(new Date())}`;
      const capture: WorkflowHandle<typeof changeCaptureWorkflow> = await client.workflow.start<typeof changeCaptureWorkflow>(
        'changeCaptureWorkflow',
        {
          taskQueue: config.temporal.taskQueue,
          workflowId,
          args: [
            {
              cluster: clusterName,
              fromRevision: base + 1,
              flushMs: options.flushMs,
              sliceMinutes: options.sliceMinutes,
              targets: options.targets,
              ...(options.node ? { node: options.node } : {}),
            },
          ],
        },
      );
      let captureDone = false;
      teardown.add('capture workflow', async () => {
        if (captureDone) return;
        const { status } = await capture.describe();
        if (status.name === 'RUNNING') await capture.terminate('pitr-lag benchmark cleanup');
      });
      const captureFailed = capture.result().then(
        () => undefined,
        (err: Error) => err,
      );
      console.log(
        `capture ${workflowId} started: flushMs ${options.flushMs}, sliceMinutes ${options.sliceMinutes}, targets ${options.targets.join('+')}, ` +
          `${options.encryption ? 'age-encrypted' : 'not encrypted'}`,
      );

      // Warm-up: one put, durable in every target, shows the capture is live before the clock starts.
      phase = performance.now();
      const warm = await etcd.put(`${KEY_PREFIX}warm-up`).value('1').exec();
      const warmRev = Number(warm.header.revision);
      const warmCommit = Date.now();
      await waitUntil(
        async () => {
          const failure = await Promise.race([captureFailed, sleep(0).then(() => null)]);
          if (failure) throw new Error(`the capture workflow failed: ${failure.message}`);
          return tracker.reachable(base) >= warmRev;
        },
        {
          timeoutMs: 180_000,
          intervalMs: 50,
          describeFailure: () => `timed out after 180 s waiting for revision ${warmRev} durable in ${options.targets.join(' and ')}`,
        },
      );
      console.log(
        `  capture live: the warm-up put was durable everywhere ${((performance.now() - phase) / 1000).toFixed(1)} s after it (includes the activity's start)`,
      );

      // The measured writes.
      const rss = sampleRss(captureWorker.pid!);
      const cpuBefore = cpuSnapshot(dir);
      const ownCpuBefore = process.cpuUsage();
      const loads: number[][] = [];
      const loadTimer = setInterval(() => loads.push(loadavg()), 5000);
      teardown.add('load sampler', () => clearInterval(loadTimer));
      console.log(
        `writing ${options.rate}/s for ${options.seconds} s (${Math.round(options.rate * options.seconds)} puts of ${options.valueBytes} B over ${options.keys} keys, ` +
          `at most ${options.concurrency} in flight) ...`,
      );
      const writer = await runWriter(
        {
          configPath,
          member: leader.name,
          rate: options.rate,
          seconds: options.seconds,
          concurrency: options.concurrency,
          valueBytes: options.valueBytes,
          keys: options.keys,
          keyPrefix: KEY_PREFIX,
        },
        dir,
        teardown,
      );
      teardown.checkInterrupted();
      const lastRev = writer.written.length ? writer.written[writer.written.length - 1]!.rev : warmRev;
      console.log(
        `  ${writer.written.length} puts acknowledged in ${writer.seconds.toFixed(1)} s (${(writer.written.length / writer.seconds).toFixed(0)}/s), ` +
          `${writer.errors} failed${writer.firstError ? ` (first: ${writer.firstError})` : ''}, ${writer.skipped} not sent (behind the pace at the deadline); revisions ${writer.written[0]?.rev ?? '-'}..${lastRev}; ` +
          `put latency p50 ${ms(writer.putLatency.p50)} p99 ${ms(writer.putLatency.p99)}; sent late against the pace p99 ${ms(writer.lateness.p99)}, max ${ms(writer.lateness.max)}`,
      );

      const drainWait = Math.max(30_000, 10 * options.flushMs);
      const drained = await waitUntil(() => tracker.reachable(base) >= lastRev, {
        timeoutMs: drainWait,
        intervalMs: 50,
        describeFailure: () => `timed out after ${(drainWait / 1000).toFixed(0)} s waiting for every write durable`,
      }).then(
        () => true,
        () => false,
      );
      clearInterval(loadTimer);
      const cpuAfter = cpuSnapshot(dir);
      const ownCpu = process.cpuUsage(ownCpuBefore);
      const peakRss = rss.stop();
      if (!drained)
        console.log(
          `  not every write was durable ${drainWait / 1000} s after the last one (reachable ${tracker.reachable(base)} of ${lastRev})`,
        );

      // Stop the capture, as an operator would before a PITR: the signal lands between slices.
      phase = performance.now();
      await capture.signal(stopCaptureSignal);
      const stopWait = options.sliceMinutes * 60_000 + 180_000;
      const final = await Promise.race([
        capture.result() as Promise<CaptureStatus>,
        sleep(stopWait).then(() => {
          throw new Error(`the capture did not stop within ${stopWait / 1000} s of the stop signal`);
        }),
      ]);
      captureDone = true;
      console.log(
        `capture stopped ${((performance.now() - phase) / 1000).toFixed(1)} s after the signal: its status says ${final.segments} segments, ${final.events} events, ` +
          `durable through ${final.lastDurable}, worst lag it saw ${ms(final.maxLagMs)}`,
      );
      await sleep(4 * options.pollMs + S3_IDLE_POLL_MS); // the final flush's segment, if any, into the tracker
      await tracker.stop();

      // Read back: every segment in every target, every revision exactly once.
      phase = performance.now();
      const stores: BackupStore[] = await Promise.all(config.storage.map(openStore));
      const listings = new Map<string, string[]>();
      for (const store of stores)
        listings.set(
          store.name,
          (await store.list(segmentDir(clusterName, clusterId))).filter((k) => parseSegmentKey(clusterName, clusterId, k)),
        );
      const allSegments = [...new Set([...listings.values()].flat())]
        .map((k) => parseSegmentKey(clusterName, clusterId, k)!)
        .sort((a, b) => a.from - b.from);
      for (const name of allSegments) {
        if (!tracker.segments.has(name.key)) tracker.segments.set(name.key, { name, seen: new Map(), low: new Map() }); // listed only now: never seen durable in time
      }
      const events = await segmentStore(config).readSegmentEvents(allSegments, [config.storage[0]!.name]);
      console.log(
        `read back ${allSegments.length} segments (${events.length} events) from ${config.storage[0]!.name} in ${((performance.now() - phase) / 1000).toFixed(1)} s`,
      );

      const analysis = analyse({
        base,
        written: writer.written,
        events,
        segments: [...tracker.segments.values()],
        listings,
        keyPrefix: KEY_PREFIX,
        extraWritten: [{ rev: warmRev, key: -1, dueMs: warmCommit, sentMs: warmCommit, ackMs: warmCommit }],
      });
      const writtenRevs = new Set([warmRev, ...writer.written.map((w) => w.rev)]);
      const expectedRange = lastRev - base;
      const broken =
        analysis.lost.length > 0 ||
        analysis.doubled.length > 0 ||
        analysis.overlappingSegments > 0 ||
        analysis.holes > 0 ||
        analysis.targetsDiffer.length > 0 ||
        analysis.wrongKey > 0 ||
        analysis.notDurableInTime > 0;

      let probe: PartTimings | undefined;
      if (options.probe) {
        phase = performance.now();
        const median = analysis.segments.eventsPerSegment.p50;
        const sample = events.slice(0, Math.max(1, Math.round(Number.isFinite(median) ? median : (options.rate * options.flushMs) / 2000)));
        probe = await probeFlushParts(config, clusterId, options.targets, sample, options.encryption);
        console.log(
          `isolated flush parts timed in ${((performance.now() - phase) / 1000).toFixed(1)} s (segment of ${sample.length} events, ${gzipSync(encodeEvents(sample)).length} B gzipped)`,
        );
      }

      // ---------------------------------------------------------------- report
      const cpu = cpuBetween(cpuBefore, cpuAfter);
      const loadDuring = loads.length ? loads : [loadavg()];
      const load1 = loadDuring.map((l) => l[0]!);
      const met = analysis.lag.p99 <= TARGET_P99_MS;
      const s3List = distribution(tracker.s3ListMs);
      console.log('');
      console.log(`lag (durable in ${options.targets.join(' and ')} - etcd ack), ${analysis.lag.count} events:`);
      console.log(
        `  p50 ${ms(analysis.lag.p50)}  p90 ${ms(analysis.lag.p90)}  p99 ${ms(analysis.lag.p99)}  p99.9 ${ms(analysis.lag.p999)}  max ${ms(analysis.lag.max)}  (mean ${ms(analysis.lag.mean)})`,
      );
      console.log(
        `  target p99 <= ${TARGET_P99_MS} ms: ${met ? 'met' : 'missed'} (for reference, the best-known etcd backup sidecar's default delta period is ${SIDECAR_DELTA_PERIOD_MS / 1000} s)`,
      );
      console.log(
        `  resolution: each segment's earliest possible appearance gives p50 ${ms(analysis.lagLowerBound.p50)}  p90 ${ms(analysis.lagLowerBound.p90)}  ` +
          `p99 ${ms(analysis.lagLowerBound.p99)}  max ${ms(analysis.lagLowerBound.max)} (local: inotify + readdir every ${options.pollMs} ms, rename time from ctime; ` +
          (s3List.count
            ? `S3: listed back to back while a segment was due there, every ${S3_IDLE_POLL_MS} ms otherwise; a listing took p50 ` +
              `${ms(s3List.p50)}, p99 ${ms(s3List.p99)}; `
            : '') +
          `each segment's durable time known within p50 ${ms(analysis.durableBandMs.p50)}, p99 ${ms(analysis.durableBandMs.p99)})`,
      );
      console.log(
        `  commit time = the earlier of the writer's ack and the worker's receipt (${analysis.ackAfterReceive} events reached the worker before the writer ` +
          `saw their ack); with the writer's ack alone: p50 ${ms(analysis.lagFromWriterAck.p50)}, p99 ${ms(analysis.lagFromWriterAck.p99)}, max ${ms(analysis.lagFromWriterAck.max)}`,
      );
      if (analysis.breakdown) {
        console.log('  where the time goes, per event (p50 / p99 / mean):');
        for (const [part, d] of Object.entries(analysis.breakdown))
          console.log(`    ${part.padEnd(60)} ${ms(d.p50).padStart(8)} ${ms(d.p99).padStart(8)} ${ms(d.mean).padStart(8)}`);
      }
      const over = Object.entries(analysis.overTarget).sort((a, b) => b[1] - a[1]);
      if (over.length) {
        const overCount = over.reduce((sum, [, n]) => sum + n, 0);
        console.log(
          `  ${overCount} events over ${TARGET_P99_MS} ms (${fixed((100 * overCount) / Math.max(1, analysis.lag.count))} %), ` +
            `by their largest part: ${over.map(([part, n]) => `${part.split(' (')[0]} ${n}`).join(', ')}`,
        );
      }
      const seg = analysis.segments;
      console.log(
        `segments: ${seg.count}; events per segment p50 ${fixed(seg.eventsPerSegment.p50, 0)} (max ${fixed(seg.eventsPerSegment.max, 0)}); ` +
          `${fixed(seg.bytes.p50 / 1024, 1)} KiB each (p50); one flush every ${ms(seg.flushPeriodMs.p50)} (p50, p99 ${ms(seg.flushPeriodMs.p99)})`,
      );
      if (seg.encryptWriteMs) {
        console.log(
          `  per segment p50 / p99: age encrypt + write ${ms(seg.encryptWriteMs.p50)} / ${ms(seg.encryptWriteMs.p99)}, fsync + rename ${ms(seg.fsyncRenameMs!.p50)} / ${ms(seg.fsyncRenameMs!.p99)}, ` +
            `rename -> in every target ${ms(seg.afterRenameToAllMs!.p50)} / ${ms(seg.afterRenameToAllMs!.p99)}`,
        );
      }
      console.log(
        `  longest pauses in the worker's receipt of events (a slice turnover shows here): ` +
          `${analysis.receiveGaps.map((g) => `${ms(g.gapMs)} at ${fixed(g.afterFirstWriteS, 1)} s`).join(', ')}`,
      );
      if (analysis.worst.length) {
        console.log('  slowest segments (their slowest event):');
        for (const w of analysis.worst)
          console.log(
            `    ${w.key}: ${w.events} events, lag ${ms(w.maxLagMs)} [${Object.entries(w.parts)
              .map(([p, v]) => `${p.split(' (')[0]} ${v}`)
              .join(', ')}]`,
          );
      }
      console.log(
        `  slowest seconds of the run (s since the first write: p99 / max): ${analysis.slowSecond.map((s) => `${s.second}: ${ms(s.p99)} / ${ms(s.max)}`).join('; ')}`,
      );
      console.log(
        `writes: ${writer.written.length} acknowledged of ${Math.round(options.rate * options.seconds)} due, ${(writer.written.length / writer.seconds).toFixed(0)}/s achieved ` +
          `(asked ${options.rate}/s; most in flight ${writer.maxInFlight} of ${options.concurrency}; ${writer.skipped} not sent, ${writer.errors} failed; ` +
          `put latency p50 ${ms(writer.putLatency.p50)}, p99 ${ms(writer.putLatency.p99)})`,
      );
      console.log(
        `events: captured ${analysis.capturedInRange} after the snapshot (revisions ${base + 1}..${lastRev}: ${expectedRange}), written ${analysis.written} ` +
          `(${writer.written.length} measured + 1 warm-up); lost ${analysis.lost.length}, doubled ${analysis.doubled.length}, foreign ${analysis.foreign}, wrong key ${analysis.wrongKey}; ` +
          `segments overlapping ${analysis.overlappingSegments}, holes ${analysis.holes}, differing between targets ${analysis.targetsDiffer.length}; ` +
          `not durable ${drainWait / 1000} s after the last write: ${analysis.notDurableInTime} => ${broken ? 'BROKEN' : 'exactly once'}`,
      );
      if (analysis.lost.length) console.log(`  lost revisions (first 10): ${analysis.lost.slice(0, 10).join(', ')}`);
      if (analysis.doubled.length) console.log(`  doubled revisions (first 10): ${analysis.doubled.slice(0, 10).join(', ')}`);
      if (analysis.targetsDiffer.length) console.log(`  ${analysis.targetsDiffer.slice(0, 5).join('; ')}`);
      if (analysis.capturedInRange !== writtenRevs.size)
        console.log(`  note: captured ${analysis.capturedInRange} events vs ${writtenRevs.size} written revisions`);
      console.log(`capture worker (pid ${captureWorker.pid}) peak RSS during the writes ${mib(peakRss)} MiB`);
      console.log(
        `CPU seconds during the writes: ${Object.entries(cpu)
          .filter(([, v]) => v >= 0.05)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}, ` +
          `writer process ${writer.cpuSeconds.toFixed(1)}, this process (listing) ${((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)}`,
      );
      console.log(
        `load average: at start ${loadText(loadAtStart)}; 1-min during the writes mean ${fixed(load1.reduce((a, b) => a + b, 0) / load1.length)}, max ${fixed(Math.max(...load1))}; ` +
          `at end ${loadText(loadavg())}`,
      );
      if (tracker.errors.length) console.log(`listing errors (first ${tracker.errors.length}): ${tracker.errors.join('; ')}`);
      if (probe) {
        console.log('flush parts timed in isolation (this process, after the capture stopped), p50 / p99:');
        for (const [part, d] of Object.entries(probe))
          console.log(`  ${part.padEnd(66)} ${ms(d.p50).padStart(8)} ${ms(d.p99).padStart(8)}`);
      }
      const durationSeconds = (performance.now() - began) / 1000;
      console.log(
        `overall: p99 target ${met ? 'met' : 'missed'}; ${broken ? 'events lost or doubled: BROKEN' : 'no event lost or doubled'}; run took ${(durationSeconds / 60).toFixed(1)} min (before cleanup)`,
      );

      const report = {
        command,
        sourceVersion,
        startedAt: new Date(Date.now() - durationSeconds * 1000).toISOString(),
        durationSeconds,
        options,
        snapshot: { setId: backup.setId, revision: base },
        clusterId,
        workflowId,
        writer: {
          ...writer,
          written: undefined,
          acknowledged: writer.written.length,
          achievedRate: writer.written.length / writer.seconds,
        },
        lag: analysis.lag,
        targetP99Ms: TARGET_P99_MS,
        targetMet: met,
        sidecarDeltaPeriodMs: SIDECAR_DELTA_PERIOD_MS,
        analysis: {
          ...analysis,
          lost: analysis.lost.slice(0, 100),
          doubled: analysis.doubled.slice(0, 100),
          targetsDiffer: analysis.targetsDiffer.slice(0, 100),
        },
        captureStatus: final,
        captureWorkerPeakRssMiB: peakRss / MiB,
        cpuSeconds: cpu,
        benchCpuSeconds: (ownCpu.user + ownCpu.system) / 1e6,
        s3ListMs: s3List,
        probe,
        loadAverageAtStart: loadAtStart,
        loadAverageDuring: loads,
        loadAverageAtEnd: loadavg(),
        broken,
      };
      writeResult(logDir, report, options.json);
      return broken ? 1 : 0;
    },
    {
      explainFailure: () => console.error(`logs in ${logDir}`),
      afterCleanup: (exitCode) => ownWorld.confirmStopped(exitCode),
    },
  );
}

runMain(main);
