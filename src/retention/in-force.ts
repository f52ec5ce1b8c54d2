/**
 * The one source of truth for the retention a cluster's sets get: the config (the cluster's own
 * `retention`, else the top-level one). Schedule profiles set only the backup cadence; prune and
 * `schedules apply` both show this.
 */
import type { Config, RetentionConfig } from '../config/schema';
import { RETENTION_PROFILES, type RetentionPolicy } from './policy';

export function retentionPolicyOf(retention: RetentionConfig): RetentionPolicy {
  return retention.profile ? RETENTION_PROFILES[retention.profile].policy : retention.policy!;
}

export function retentionInForce(config: Config, cluster: string): RetentionPolicy {
  return retentionPolicyOf(config.clusters.find((c) => c.name === cluster)?.retention ?? config.retention);
}

/** "keep 7 days", "keep 14 days + GFS 7 daily, 4 weekly, 6 monthly". */
export function describeRetention(policy: RetentionPolicy): string {
  const gfs = Object.entries(policy.gfs ?? {})
    .filter(([, n]) => n)
    .map(([period, n]) => `${n} ${period}`);
  return [policy.keepDays ? `keep ${policy.keepDays} days` : null, gfs.length ? `GFS ${gfs.join(', ')}` : null].filter(Boolean).join(' + ');
}
