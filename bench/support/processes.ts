/**
 * Process helpers for benchmarks: a teardown stack that also runs on Ctrl-C and on errors, child
 * processes in their own process group (so a benchmark can always take them down again), peak
 * RSS sampling from /proc, commands timed under GNU time, and waiting for writeback to settle.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sleep } from '../../src/common/poll';

export const GNU_TIME = '/usr/bin/time';

// ------------------------------------------------------------------ teardown

type TeardownStep = { what: string; run: () => Promise<void> | void };

/** The signals a Teardown handles, with their numbers. */
const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
type HandledSignal = keyof typeof SIGNAL_NUMBERS;

/** 128 + the signal's number, as a shell reports a process that a signal ended. */
export function exitCodeForSignal(signal: HandledSignal): number {
  return 128 + SIGNAL_NUMBERS[signal];
}

/**
 * Cleanup steps, run last-registered first, exactly once: at the normal end, on an error, and on
 * SIGINT/SIGTERM/SIGHUP. A step that fails is reported and the others still run.
 */
export class Teardown {
  private readonly steps: TeardownStep[] = [];
  private running: Promise<void> | undefined;
  /** Set by a signal: the benchmark should stop starting new work. */
  interrupted: HandledSignal | undefined;

  /** Throws once a signal arrived, so the main flow stops instead of racing the cleanup. */
  checkInterrupted(): void {
    if (this.interrupted) throw new InterruptedError(this.interrupted);
  }

  add(what: string, run: () => Promise<void> | void): void {
    this.steps.push({ what, run });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop()!;
        try {
          await step.run();
        } catch (err) {
          console.error(`cleanup "${step.what}" failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.running;
  }

  /** On a signal: clean up, then exit 128+n. A second signal while cleaning up is ignored (say so). */
  installSignalHandlers(): void {
    for (const signal of Object.keys(SIGNAL_NUMBERS) as HandledSignal[]) {
      process.on(signal, () => {
        if (this.running) {
          console.error(`\n${signal}: still cleaning up, please wait`);
          return;
        }
        this.interrupted = signal;
        interruptedBy = signal;
        console.error(`\n${signal}: stopping everything this benchmark started ...`);
        void this.run().finally(() => process.exit(exitCodeForSignal(signal)));
      });
    }
  }
}

export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** The signal a Teardown received, for helpers that have no Teardown at hand. */
let interruptedBy: NodeJS.Signals | undefined;

// ------------------------------------------------------------------ child processes

/**
 * Signals a child's whole process group (children are spawned `detached`, so each leads its own
 * group: a terminal's Ctrl-C does not reach them behind our back, and grandchildren such as the
 * command under GNU time are reached too).
 */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  signalGroup(child, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// ------------------------------------------------------------------ /proc sampling

function procStatusField(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined; // the process is gone
  }
}

/** Resident set size now, in bytes. */
export function rssBytes(pid: number): number | undefined {
  return procStatusField(pid, 'VmRSS');
}

/** Peak resident set size over the whole life of the process, in bytes. */
export function hwmBytes(pid: number): number | undefined {
  return procStatusField(pid, 'VmHWM');
}

/**
 * User + system CPU seconds so far of the process itself, and of its children it has waited for
 * (e.g. the `age` processes of a worker); undefined once the process is gone.
 */
export function procCpuTimes(pid: number): { self: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime (fields 14-17 of stat), in ticks; USER_HZ is 100 on Linux.
    return { self: (Number(fields[11]) + Number(fields[12])) / 100, children: (Number(fields[13]) + Number(fields[14])) / 100 };
  } catch {
    return undefined;
  }
}

/** User + system CPU time the process has used so far, in seconds. */
export function cpuSeconds(pid: number): number | undefined {
  return procCpuTimes(pid)?.self;
}

/** Pids whose command line (NUL-separated args) satisfies `match`. */
export function findProcesses(match: (args: string[]) => boolean): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (match(readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0'))) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** CPU seconds used so far by the etcd members of the world in `worldDir` (found by their data dir). */
export function etcdCpuSeconds(worldDir: string): number {
  const members = findProcesses(
    (args) => basename(args[0] ?? '') === 'etcd' && args.some((arg) => arg.startsWith(`--data-dir=${worldDir}/`)),
  );
  return members.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
}

/** Samples VmRSS of `pid` every `intervalMs` until stopped; stop() gives the maximum seen. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number } {
  let peak = rssBytes(pid) ?? 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid) ?? 0);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssBytes(pid) ?? 0);
      return peak;
    },
  };
}

// ------------------------------------------------------------------ timed commands

export interface TimedRun {
  command: string;
  wallSeconds: number;
  /** Peak RSS (GNU time %M), bytes. */
  maxRssBytes: number;
  /** User + system CPU seconds (GNU time %U + %S). */
  cpuSeconds: number;
}

/** Children currently running under runTimed; killed by killRunningTimed (for teardown). */
const runningTimed = new Set<ChildProcess>();

export function killRunningTimed(): void {
  for (const child of runningTimed) signalGroup(child, 'SIGKILL');
}

/**
 * Runs `command args` under `/usr/bin/time` (own process group), stdout/stderr to `logFile`.
 * Rejects with the log tail when the command fails.
 */
export async function runTimed(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; logFile: string }): Promise<TimedRun> {
  if (interruptedBy) throw new InterruptedError(interruptedBy);
  const scratch = mkdtempSync(join(tmpdir(), 'bench-time-'));
  const timeFile = join(scratch, 'time.out');
  const log = openSync(options.logFile, 'a');
  const started = performance.now();
  try {
    const child = spawn(GNU_TIME, ['-f', '%M %U %S', '-o', timeFile, command, ...args], {
      env: options.env ?? process.env,
      stdio: ['ignore', log, log],
      detached: true,
    });
    runningTimed.add(child);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (exitCode) => resolve(exitCode));
    }).finally(() => runningTimed.delete(child));
    const wallSeconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${logTail(options.logFile, 10)}`);
    // GNU time prints "Command exited with non-zero status" lines first when it fails; the last line has the figures.
    const figures = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    const [maxRssKiB = 0, user = 0, system = 0] = figures;
    return { command: `${command} ${args.join(' ')}`, wallSeconds, maxRssBytes: maxRssKiB * 1024, cpuSeconds: user + system };
  } finally {
    closeSync(log);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The last `lines` lines of a log, for an error message ('' when it cannot be read). */
export function logTail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ------------------------------------------------------------------ waiting

/** `sync`, then 1 s: writeback of the previous measurement finishes, so it is not billed to the next one. */
export async function settleWriteback(): Promise<void> {
  spawnSync('sync');
  await sleep(1000);
}

// ------------------------------------------------------------------ numbers

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const MiB = 1024 * 1024;

export function mib(bytes: number, digits = 1): string {
  return (bytes / MiB).toFixed(digits);
}
