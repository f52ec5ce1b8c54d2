import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import type { BackupManifest } from '../common/manifest';
import { chooseRestoreSet } from './host-restore';
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
    // The newest complete set with every component configured; a set named by hand needs only etcd.
    const etcdOf = (manifest: BackupManifest) => manifest.components.find((c) => c.component === 'etcd');
    const withPhpipam = (manifest: BackupManifest) => (manifest.components.some((c) => c.component === 'phpipam') ? etcdOf(manifest) : undefined);
    const { entry: set } = await chooseRestoreSet(deps.config, cluster.name, input.setId, input.setId || !cluster.phpipam ? etcdOf : withPhpipam,
      cluster.phpipam ? 'an etcd snapshot and a phpIPAM dump' : 'an etcd snapshot');
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
