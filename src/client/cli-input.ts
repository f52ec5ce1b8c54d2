/**
 * The CLI's checks of what the operator typed, made before anything connects or starts: every
 * failure is a UsageError (exit 2) naming the bad value and what was expected.
 */
import type { Config } from '../config/schema';
import { findTargets } from '../config/load';
import { durationProblem } from '../common/input-checks';

/** Bad usage: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * The cluster a command works on. An unknown name is refused listing the configured ones; without
 * --cluster the only configured cluster is used, and with more than one a destructive command refuses
 * (it must never pick one for the operator). Read-only commands then take the first.
 */
export function chooseCluster(config: Config, name: string | undefined, opts: { destructive: boolean }): string {
  const known = config.clusters.map((c) => c.name);
  if (name !== undefined) {
    if (!known.includes(name)) throw new UsageError(`--cluster: no cluster named "${name}" in the config; configured: ${known.join(', ')}`);
    return name;
  }
  if (opts.destructive && known.length > 1) {
    throw new UsageError(`--cluster is required: this command changes a cluster and the config has ${known.length} (${known.join(', ')})`);
  }
  return known[0]!;
}

/** Storage target names checked against the config (undefined: all). */
export function chooseTargets(config: Config, names: string[] | undefined): string[] | undefined {
  if (!names || names.length === 0) return undefined;
  try {
    findTargets(config, names);
  } catch (err) {
    throw new UsageError(`--target: ${(err as Error).message.split('\n  - ').slice(1).join('; ')}`);
  }
  return names;
}

/** A duration option in Temporal's format, refused before any run starts. */
export function durationOption(flag: string, value: string): string {
  const problem = durationProblem(flag, value);
  if (problem) throw new UsageError(problem);
  return value;
}
