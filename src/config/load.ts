import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { ConfigSchema, type ClusterConfig, type Config, type StorageTargetConfig } from './schema';

/** A configuration that cannot be used; the message lists every bad path and what was expected. */
export class ConfigError extends DomainError {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration ${source}:\n  - ${problems.join('\n  - ')}`, FailureType.ConfigError, true);
  }
}

/** `clusters[0].etcd.members[1].clientUrl` from zod's path array. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return (
    path.reduce<string>(
      (out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part)),
      '',
    ) || '(root)'
  );
}

function describeIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    // Unknown keys are reported on the parent; name them so the user finds the typo.
    if (issue.code === 'unrecognized_keys') {
      return `${formatPath(issue.path)}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    }
    return `${formatPath(issue.path)}: ${issue.message}`;
  });
}

export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, describeIssues(result.error.issues));
  return result.data;
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML: ${(err as Error).message}`]);
  }
  return parseConfig(raw, path);
}

/** Default location: $NNOE_DR_CONFIG, else ./nnoe-dr.yaml. */
export function defaultConfigPath(): string {
  return process.env.NNOE_DR_CONFIG ?? 'nnoe-dr.yaml';
}

export function findCluster(config: Config, name: string): ClusterConfig {
  const cluster = config.clusters.find((c) => c.name === name);
  if (!cluster) {
    throw new ConfigError('config', [`clusters: no cluster named "${name}" (known: ${config.clusters.map((c) => c.name).join(', ')})`]);
  }
  return cluster;
}

export function findTargets(config: Config, names?: string[]): StorageTargetConfig[] {
  if (!names || names.length === 0) return config.storage;
  return names.map((n) => {
    const target = config.storage.find((t) => t.name === n);
    if (!target) {
      throw new ConfigError('config', [`storage: no target named "${n}" (known: ${config.storage.map((t) => t.name).join(', ')})`]);
    }
    return target;
  });
}
