/**
 * Where a benchmark run keeps its logs and figures (bench/results/, git-ignored), and the small
 * formatting helpers of the summaries the benchmarks print.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { utcStamp } from '../../src/common/manifest';

export const repoRoot = resolve(__dirname, '../..');
export const resultsRoot = join(repoRoot, 'bench', 'results');

/** bench/results/<bench>/<UTC stamp>/, created: the logs and result.json of one run. */
export function newRunDir(bench: string): string {
  const dir = join(resultsRoot, bench, utcStamp(new Date()));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** result.json in the run's dir; with --json the same figures also go to stdout, on one line. */
export function writeResult(runDir: string, report: object, printJson: boolean): void {
  writeFileSync(join(runDir, 'result.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (printJson) console.log(JSON.stringify(report));
}

/** A table cell: padded to `width`, aligned right for figures. */
export function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

export function verdict(met: boolean): string {
  return met ? 'target met' : 'target missed';
}

/** The 1, 5 and 15 minute load averages: the figures mean little on a busy machine, so each run says how busy it was. */
export function loadText(load: number[] = loadavg()): string {
  return load.map((l) => l.toFixed(2)).join(' ');
}
