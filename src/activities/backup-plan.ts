import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { typedFailures } from './failures';

/** What a backup set of a cluster covers, from the worker's config (workflows never read config). */
export function createBackupPlanActivities(deps: { config: Config }) {
  async function describeBackupPlan(input: { cluster: string }): Promise<{ agentNodes: string[] }> {
    return { agentNodes: findCluster(deps.config, input.cluster).agents.map((a) => a.node) };
  }
  return { describeBackupPlan: typedFailures(describeBackupPlan) };
}
