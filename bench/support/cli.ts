/**
 * Command-line helpers for benchmarks. Each benchmark declares its own options with node:util
 * parseArgs; these check the values (an error names the option) and turn --help and a bad option
 * into the exit codes every benchmark documents: 0 after --help, 2 for a bad option.
 */

/** What a command line came to: options to run with, or the exit code to stop with at once. */
export type CommandLine<Options> = { options: Options } | { exitCode: number };

/**
 * `parse` returns undefined for --help and throws for a bad option. Help goes to stdout; a bad
 * option's message goes to stderr with a pointer to --help.
 */
export function readCommandLine<Options>(
  argv: string[],
  parse: (argv: string[]) => Options | undefined,
  help: string,
): CommandLine<Options> {
  let options: Options | undefined;
  try {
    options = parse(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n(--help lists the options)`);
    return { exitCode: 2 };
  }
  if (options === undefined) {
    console.log(help);
    return { exitCode: 0 };
  }
  return { options };
}

function positive(option: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`--${option} expects a positive ${integer ? 'integer' : 'number'}, got "${text}"`);
  }
  return value;
}

export function positiveNumber(option: string, text: string): number {
  return positive(option, text, false);
}

export function positiveInteger(option: string, text: string): number {
  return positive(option, text, true);
}

export function integerAtLeast(option: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${option} expects an integer >= ${min}, got "${text}"`);
  return value;
}

/** --targets: storage targets of the world's config, comma-separated, in the order given. */
export function parseTargets(text: string): string[] {
  const targets = text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const target of targets) {
    if (target !== 'local' && target !== 's3') throw new Error(`--targets: unknown target "${target}" (known: local, s3)`);
  }
  return targets;
}

/** How the benchmark runs the worker: compiled with tsc (as in production) or straight from src/ with tsx. */
export type WorkerMode = 'compiled' | 'tsx';

export function parseWorkerMode(text: string): WorkerMode {
  if (text !== 'compiled' && text !== 'tsx') throw new Error(`--worker expects compiled or tsx, got "${text}"`);
  return text;
}
