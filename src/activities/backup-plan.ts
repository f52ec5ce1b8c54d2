import type { Config } from '../config/schema';
import { findCluster } from '../config/load';

export interface BackupPlan {
  agentNodes: string[];
  phpipam: boolean;
  /** Absent in results recorded before Nebula backups existed. */
  nebulaNodes?: string[];
  encrypted?: boolean;
}

/** What a backup set of a cluster covers, from the worker's config (workflows never read config). */
export function createBackupPlanActivities(deps: { config: Config }) {
  async function describeBackupPlan(input: { cluster: string }): Promise<BackupPlan> {
    const cluster = findCluster(deps.config, input.cluster);
    return {
      agentNodes: cluster.agents.map((a) => a.node),
      phpipam: cluster.phpipam !== undefined,
      nebulaNodes: cluster.nebula.map((n) => n.node),
      encrypted: deps.config.encryption !== undefined,
    };
  }
  return { describeBackupPlan: describeBackupPlan };
}
