/**
 * One run of the phpIPAM dump component (the `dumpPhpipamToStores` activity) in a process of its
 * own, so bench/phpipam-dump/run.ts can measure its peak RSS alone. Run by run.ts as
 *
 *   node --import tsx bench/phpipam-dump/dump-once.ts '<json DumpOnceInput>'
 *
 * The activity runs through MockActivityEnvironment (heartbeats, cancellation signal) into a
 * LocalStore; the last stdout line is one JSON object (DumpOnceResult).
 */
import { performance } from 'node:perf_hooks';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createPhpipamBackupActivities, phpipamDumpFileName, type PhpipamDumpOutcome } from '../../src/activities/phpipam-backup';
import { PhpipamSchema } from '../../src/phpipam';
import { LocalStore } from '../../src/storage';

/** runDump's heartbeat interval (src/phpipam/dump.ts PROGRESS_INTERVAL_MS). */
const PROGRESS_INTERVAL_SECONDS = 1;

export interface DumpOnceInput {
  host: string;
  port: number;
  database: string;
  user: string;
  passwordFile: string;
  storeDir: string;
  workDir: string;
  setId: string;
}

export interface DumpOnceResult {
  /** Seconds inside the activity (connect, table facts, dump, gzip, store commit). */
  activitySeconds: number;
  /** Seconds from process start (module loading included) to the end of the activity. */
  processSeconds: number;
  /** This process's own peak RSS (getrusage ru_maxrss), bytes. */
  maxRssBytes: number;
  /** RSS after the imports, before the activity starts, bytes. */
  startRssBytes: number;
  /**
   * Seconds from the start of the activity to the first heartbeat of the dump phase, minus the
   * progress interval (1 s): roughly the preflight plus the table facts (COUNT(*) and CHECKSUM TABLE
   * of every table), before mariadb-dump starts. Undefined when the dump phase sent no heartbeat.
   */
  beforeDumpSeconds?: number;
  /** Seconds each table's facts took (between consecutive "table facts" heartbeats). */
  tableFactSeconds: Record<string, number>;
  /** Where the artefact was stored, its gzip and raw sizes. */
  location: string;
  gzBytes: number;
  rawBytes: number;
  tablesMatchDump: boolean | null;
  dumpCommand: string[];
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '') as DumpOnceInput;
  const cfg = PhpipamSchema.parse({
    host: input.host,
    port: input.port,
    database: input.database,
    user: input.user,
    password: { file: input.passwordFile },
  });
  const store = new LocalStore('local', input.storeDir);
  const activities = createPhpipamBackupActivities({
    phpipam: () => cfg,
    stores: async () => [store],
    workDir: input.workDir,
  });
  const startRssBytes = process.memoryUsage.rss();
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const started = performance.now();
  let firstDumpBeat: number | undefined;
  const tableBeats: Array<[string, number]> = [];
  env.on('heartbeat', (details: unknown) => {
    const beat = details as { phase?: string; table?: string } | undefined;
    if (beat?.phase === 'table facts' && beat.table) tableBeats.push([beat.table, performance.now()]);
    if (beat?.phase === 'dump' && firstDumpBeat === undefined) firstDumpBeat = performance.now();
  });
  const outcome = (await env.run(activities.dumpPhpipamToStores, {
    cluster: 'bench',
    setId: input.setId,
    fileName: phpipamDumpFileName(new Date()),
    targets: ['local'],
  })) as PhpipamDumpOutcome;
  const activitySeconds = (performance.now() - started) / 1000;
  const tableFactSeconds: Record<string, number> = {};
  for (const [index, [table, at]] of tableBeats.entries()) {
    const next = tableBeats[index + 1]?.[1];
    if (next !== undefined) tableFactSeconds[table] = (next - at) / 1000;
  }
  const result: DumpOnceResult = {
    activitySeconds,
    beforeDumpSeconds: firstDumpBeat === undefined ? undefined : Math.max(0, (firstDumpBeat - started) / 1000 - PROGRESS_INTERVAL_SECONDS),
    tableFactSeconds,
    processSeconds: performance.now() / 1000, // performance.timeOrigin is the process start
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    startRssBytes,
    location: outcome.artefact.copies[0]!.location,
    gzBytes: outcome.artefact.bytes,
    rawBytes: outcome.artefact.raw.bytes,
    tablesMatchDump: outcome.facts.tablesMatchDump,
    dumpCommand: outcome.facts.dumpCommand,
  };
  console.log(JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
