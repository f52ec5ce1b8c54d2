import { ApplicationFailure } from '@temporalio/common';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { FailureType } from '../common/failures';
import { listBackupSets } from '../catalog/catalog';
import { typedFailures } from './failures';

export interface DisasterRecoveryPlan {
  cluster: string;
  setId: string;
  setCreatedAt: string;
  /** The set carries a phpIPAM dump and the cluster has a database configured. */
  phpipam: boolean;
  agentNodes: string[];
  /** Nodes holding Kea lease files to check. */
  dhcpNodes: string[];
  checks: { dns: number; dhcp: number; metrics: number };
}

/** Full disaster recovery, what it will do: one set for every component, and which checks follow. */
export function createDisasterRecoveryActivities(deps: { config: Config }) {
  async function planDisasterRecovery(input: { cluster: string; setId?: string }): Promise<DisasterRecoveryPlan> {
    const cluster = findCluster(deps.config, input.cluster);
    const sets = await listBackupSets(deps.config, { cluster: cluster.name, onUnreadableTarget: () => undefined });
    const usable = sets.filter((s) => s.status === 'complete' && s.components.includes('etcd') && (!cluster.phpipam || s.components.includes('phpipam')));
    const set = input.setId ? sets.find((s) => s.setId === input.setId) : usable[0];
    if (!set) {
      throw ApplicationFailure.nonRetryable(input.setId
        ? `backup set ${input.setId} of ${cluster.name} was not found`
        : `no complete backup set of ${cluster.name} with etcd${cluster.phpipam ? ' and phpIPAM' : ''}: a full recovery needs one`, FailureType.BackupSetNotFound);
    }
    return {
      cluster: cluster.name, setId: set.setId, setCreatedAt: set.createdAt,
      phpipam: cluster.phpipam !== undefined && set.components.includes('phpipam'),
      agentNodes: cluster.agents.map((a) => a.node),
      dhcpNodes: [...new Set(cluster.checks.dhcp.map((c) => c.node))],
      checks: { dns: cluster.checks.dns.length, dhcp: cluster.checks.dhcp.length, metrics: cluster.checks.metrics.length },
    };
  }
  return { planDisasterRecovery: typedFailures(planDisasterRecovery) };
}
