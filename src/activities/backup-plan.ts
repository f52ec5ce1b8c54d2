import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { typedFailures } from './failures';

/** What a backup set of a cluster covers, from the worker's config (workflows never read config). */
export function createBackupPlanActivities(deps: { config: Config }) {
  async function describeBackupPlan(input: { cluster: string }): Promise<{ agentNodes: string[]; phpipam: boolean }> {
    const cluster = findCluster(deps.config, input.cluster);
    return { agentNodes: cluster.agents.map((a) => a.node), phpipam: cluster.phpipam !== undefined };
  }
  return { describeBackupPlan: typedFailures(describeBackupPlan) };
}
