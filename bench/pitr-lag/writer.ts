/**
 * The paced etcd writer of bench/pitr-lag, in a process of its own so that its gRPC work does not
 * delay the benchmark's own clocks (the segment listings) and the acknowledgement times it records
 * are not held up by them either. Started by run.ts with an IPC channel:
 *
 *   parent -> { configPath, member, rate, seconds, concurrency, valueBytes, keys, keyPrefix }
 *   child  -> { type: 'started', startMs } then { type: 'done', result: WriterOutput }
 *
 * Put i is due at start + i/rate and is sent as soon as it is due and fewer than `concurrency`
 * puts are in flight; at start + seconds the writer stops sending (puts still due then are
 * counted as skipped: the cluster could not keep the pace). Each put's commit time is when its
 * acknowledgement arrived here, with its revision from the response header.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../../src/config/load';
import { connectMember } from '../../src/etcd/connect';

export interface WriterRequest {
  configPath: string;
  member: string;
  rate: number;
  seconds: number;
  concurrency: number;
  valueBytes: number;
  keys: number;
  keyPrefix: string;
}

export interface WriterOutput {
  /** Per acknowledged put: [revision, key index, due ms, sent ms, acknowledged ms] (ms since epoch). */
  written: Array<[number, number, number, number, number]>;
  /** Due before the deadline but never sent: the writer was behind the pace. */
  skipped: number;
  errors: number;
  firstError?: string;
  startMs: number;
  maxInFlight: number;
  /** This process's CPU seconds (user + system). */
  cpuSeconds: number;
}

export function keyName(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(6, '0')}`;
}

async function write(request: WriterRequest): Promise<WriterOutput> {
  const config = loadConfig(request.configPath);
  const cluster = config.clusters[0]!;
  const member = cluster.etcd.members.find((m) => m.name === request.member);
  if (!member) throw new Error(`no etcd member ${request.member} in ${request.configPath}`);
  const client = await connectMember(cluster, member, 30_000);
  try {
    await client.maintenance.status(); // connected before the clock starts
    const value = Buffer.from(
      randomBytes(Math.ceil(request.valueBytes / 2))
        .toString('hex')
        .slice(0, request.valueBytes),
    );
    const keys = Array.from({ length: request.keys }, (_, i) => Buffer.from(keyName(request.keyPrefix, i)));
    const intervalMs = 1000 / request.rate;
    const total = Math.round(request.rate * request.seconds);
    const durationMs = request.seconds * 1000;
    const written: WriterOutput['written'] = [];
    let errors = 0;
    let firstError: string | undefined;
    let inFlight = 0;
    let maxInFlight = 0;
    let freed: (() => void) | undefined;
    const pending = new Set<Promise<void>>();
    const cpuBefore = process.cpuUsage();
    const startMs = Date.now();
    const startPerf = performance.now();
    process.send?.({ type: 'started', startMs });

    const send = (i: number) => {
      const dueMs = startMs + i * intervalMs;
      const sentMs = Date.now();
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const key = i % request.keys;
      const put: Promise<void> = client.kv
        .put({ key: keys[key]!, value })
        .then(
          (res) => {
            written.push([Number(res.header.revision), key, dueMs, sentMs, Date.now()]);
          },
          (err: Error) => {
            errors++;
            firstError ??= err.message;
          },
        )
        .finally(() => {
          inFlight--;
          pending.delete(put);
          freed?.();
        });
      pending.add(put);
    };

    let next = 0;
    for (;;) {
      const elapsed = performance.now() - startPerf;
      if (elapsed >= durationMs || next >= total) break;
      while (next < total && next * intervalMs <= elapsed && inFlight < request.concurrency) send(next++);
      if (inFlight >= request.concurrency) {
        await new Promise<void>((done) => {
          freed = done;
        });
        freed = undefined;
      } else {
        await new Promise((done) => setTimeout(done, Math.max(0, Math.min(5, next * intervalMs - (performance.now() - startPerf)))));
      }
    }
    await Promise.all(pending);
    const cpu = process.cpuUsage(cpuBefore);
    written.sort((a, b) => a[0] - b[0]);
    return { written, skipped: total - next, errors, firstError, startMs, maxInFlight, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    client.close();
  }
}

if (require.main === module) {
  process.once('message', (request: WriterRequest) => {
    write(request).then(
      (result) => process.send!({ type: 'done', result }, () => process.exit(0)),
      (err: Error) => process.send!({ type: 'failed', message: err.stack ?? err.message }, () => process.exit(1)),
    );
  });
}
