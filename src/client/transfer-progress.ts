/**
 * Following a long transfer: the byte counts activities heartbeat (`{ bytes, total? }`) turned into
 * "fetch ... : 120.0 MiB of 256.0 MiB, 35.2 MiB/s, ETA 4s". Pure: the CLI feeds it the pending
 * activities it reads with `describe()` and decides how to print (one rewritten TTY line, or plain
 * lines now and then when the output is not a terminal).
 */
import { humanBytes } from '../common/plan-view';

export interface TransferSample {
  /** Which activity call: its id (stable across heartbeats). */
  id: string;
  /** What the call does, as the UI shows it (its summary), or its activity type. */
  what: string;
  atMs: number;
  bytes: number;
  /** The size when known (a fetch knows the stored artefact's size). */
  total?: number;
}

export interface TransferView {
  id: string;
  what: string;
  bytes: number;
  total?: number;
  /** Bytes per second over the recent samples; undefined until two samples differ in time. */
  rate?: number;
  /** Seconds left at that rate, when the total is known. */
  etaSeconds?: number;
}

/** Keeps the last samples of each transfer (a window of `windowMs`) and derives rate and ETA. */
export class TransferMeter {
  private readonly samples = new Map<string, TransferSample[]>();

  constructor(private readonly windowMs = 10_000) {}

  add(sample: TransferSample): TransferView {
    const kept = (this.samples.get(sample.id) ?? []).filter((s) => sample.atMs - s.atMs <= this.windowMs && s.atMs < sample.atMs);
    // A retried attempt starts again from 0: its earlier samples say nothing about this one.
    const series = [...kept.filter((s) => s.bytes <= sample.bytes), sample];
    this.samples.set(sample.id, series);
    const first = series[0]!;
    const seconds = (sample.atMs - first.atMs) / 1000;
    const rate = seconds > 0 ? (sample.bytes - first.bytes) / seconds : undefined;
    const etaSeconds =
      rate && rate > 0 && sample.total !== undefined && sample.total >= sample.bytes ? (sample.total - sample.bytes) / rate : undefined;
    return { id: sample.id, what: sample.what, bytes: sample.bytes, total: sample.total, rate, etaSeconds };
  }

  /** Forgets transfers no longer pending. */
  retain(ids: Set<string>): void {
    for (const id of [...this.samples.keys()]) if (!ids.has(id)) this.samples.delete(id);
  }
}

export function formatTransfer(view: TransferView): string {
  const parts = [`${humanBytes(view.bytes)}${view.total !== undefined ? ` of ${humanBytes(view.total)}` : ''}`];
  if (view.rate !== undefined) parts.push(`${humanBytes(Math.round(view.rate))}/s`);
  if (view.etaSeconds !== undefined) parts.push(`ETA ${formatSeconds(view.etaSeconds)}`);
  return `${view.what}: ${parts.join(', ')}`;
}

function formatSeconds(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * The `{ bytes, total?, member?, file?, phase? }` of a heartbeat's details, or null when it carries
 * no byte count; `what` names the transfer (activity type, then whichever of member, file, phase it names).
 */
export function transferOfHeartbeat(activityType: string, details: unknown): { what: string; bytes: number; total?: number } | null {
  if (details === null || typeof details !== 'object') return null;
  const { bytes, total, member, file, phase } = details as Record<string, unknown>;
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return null;
  const what = [activityType, ...[member, file, phase].filter((v): v is string => typeof v === 'string' && v.length > 0)].join(' ');
  return typeof total === 'number' && Number.isFinite(total) ? { what, bytes, total } : { what, bytes };
}

export interface TransferPrinter {
  show(views: TransferView[]): void;
  /** Before a step line: a TTY progress line is wiped so the step line starts clean. */
  clear(): void;
}

/**
 * On a terminal: one progress line, rewritten in place (`\r`, erase line). Elsewhere (a pipe, a log,
 * CI): a plain line per transfer once it has run `plainAfterMs`, then every `plainAfterMs`, so
 * short transfers print nothing and long ones leave a readable trail.
 */
export function transferPrinter(opts: {
  tty: boolean;
  write: (text: string) => void;
  line: (text: string) => void;
  columns?: number;
  plainAfterMs?: number;
  now?: () => number;
}): TransferPrinter {
  const now = opts.now ?? Date.now;
  const every = opts.plainAfterMs ?? 10_000;
  const seen = new Map<string, { since: number; printed: number }>();
  let drawn = false;
  return {
    show(views) {
      if (opts.tty) {
        const text = views.map(formatTransfer).join(' | ');
        if (text === '' && !drawn) return;
        const width = Math.max(20, (opts.columns ?? 100) - 1);
        opts.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
        drawn = text !== '';
        return;
      }
      const at = now();
      for (const view of views) {
        const entry = seen.get(view.id) ?? { since: at, printed: at };
        seen.set(view.id, entry);
        if (at - entry.printed >= every) {
          entry.printed = at;
          opts.line(`  ... ${formatTransfer(view)}`);
        }
      }
    },
    clear() {
      if (opts.tty && drawn) {
        opts.write('\r\x1b[2K');
        drawn = false;
      }
    },
  };
}
