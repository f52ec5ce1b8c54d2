/**
 * How a benchmark run starts and ends. Its body runs with a Teardown that also fires on
 * SIGINT/SIGTERM/SIGHUP; an error or a signal becomes the exit code the READMEs document (1, or
 * 128+n); a world of the benchmark's own is stopped at the end, and a process of it that outlives
 * the stop fails the run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { processesWithEnvironmentMarker } from '../../src/sandbox/supervisor';
import { startWorld, stopWorld, WORLD_MARKER_ENV, type World } from '../../src/sandbox/world';
import { exitCodeForSignal, Teardown } from './processes';

/** Every process of a world carries NNOE_DR_WORLD=<dir> (stopWorld sweeps them up); our workers too. */
export { WORLD_MARKER_ENV };

/** Runs `main` on the command line's arguments and exits with the code it returns; if it throws (a bug), prints the error and exits 1. */
export function runMain(main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

interface RunHooks {
  /** Prints more after "benchmark failed: ..." (where to look). */
  explainFailure?: () => void;
  /** After the cleanup, unless a signal ended the run: has the last word on the exit code. */
  afterCleanup?: (exitCode: number) => number;
}

/**
 * Runs a benchmark's body with a Teardown whose steps run exactly once before this returns, also
 * when the body throws. The body returns the exit code; an error it throws is printed and gives 1;
 * after a signal the Teardown's handler exits with 128+n once the cleanup is done.
 */
export async function runBenchmark(body: (teardown: Teardown) => Promise<number>, hooks: RunHooks = {}): Promise<number> {
  const teardown = new Teardown();
  teardown.installSignalHandlers();
  let exitCode: number;
  try {
    exitCode = await body(teardown);
  } catch (err) {
    // What failed after a signal is the signal's doing (a child it killed): not worth a report.
    if (teardown.interrupted) return exitCodeForSignal(teardown.interrupted);
    console.error(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    hooks.explainFailure?.();
    exitCode = 1;
  } finally {
    await teardown.run();
  }
  return hooks.afterCleanup ? hooks.afterCleanup(exitCode) : exitCode;
}

/** startWorld with the Temporal dev server, saying where and how long it took. */
export async function startWorldWithTemporal(dir: string): Promise<World> {
  console.log(`starting the world in ${dir} ...`);
  const started = performance.now();
  const world = await startWorld({ dir, temporal: true });
  console.log(`  world up in ${((performance.now() - started) / 1000).toFixed(1)} s (Temporal at ${world.temporal!.address})`);
  return world;
}

/**
 * A world of the benchmark's own, in a fresh temp dir. The teardown stops it, notes which of its
 * processes (workers included, by WORLD_MARKER_ENV) outlived the stop, and deletes the dir.
 */
export class OwnWorld {
  private leftoverPids: number[] = [];

  constructor(private readonly tempPrefix: string) {}

  async start(teardown: Teardown): Promise<{ dir: string; world: World }> {
    const dir = mkdtempSync(join(tmpdir(), this.tempPrefix));
    teardown.add('world', async () => {
      console.log('stopping the world ...');
      await stopWorld(dir);
      this.leftoverPids = processesWithEnvironmentMarker(WORLD_MARKER_ENV, dir);
      rmSync(dir, { recursive: true, force: true });
    });
    return { dir, world: await startWorldWithTemporal(dir) };
  }

  /** After the teardown: 1 if a process of the world is still running, else `exitCode` (and it says everything stopped). */
  confirmStopped(exitCode: number): number {
    if (this.leftoverPids.length > 0) {
      console.error(`processes of the benchmark's world still running after cleanup: ${this.leftoverPids.join(', ')}`);
      return 1;
    }
    console.log('everything stopped (no process of the world or its workers left)');
    return exitCode;
  }
}
