import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import type { BackupManifest } from '../common/manifest';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { chooseRestoreSet } from '../catalog/choose-set';

/** The components a disaster recovery restores from a set; agents and checks always follow. */
export type DisasterRecoveryComponent = 'etcd' | 'phpipam';
export const DR_COMPONENTS: DisasterRecoveryComponent[] = ['etcd', 'phpipam'];

export interface DisasterRecoveryPlan {
  cluster: string;
  setId: string;
  setCreatedAt: string;
  /** The set carries a phpIPAM dump and the cluster has a database configured, and phpIPAM is restored. */
  phpipam: boolean;
  /** What this run restores (absent in plans of runs started before `components` existed: etcd + phpipam when `phpipam`). */
  components?: DisasterRecoveryComponent[];
  /** Configured components this run leaves as they are, each with why. */
  unchanged?: string[];
  agentNodes: string[];
  /** Nodes holding Kea lease files to check. */
  dhcpNodes: string[];
  checks: { dns: number; dhcp: number; metrics: number };
  /** The cluster's `approvers` from the config (absent: any name may approve): the approve Update's validator holds approvals to it. */
  approvers?: string[];
}

const LABEL: Record<DisasterRecoveryComponent, string> = { etcd: 'etcd', phpipam: 'phpIPAM' };

/** Full disaster recovery, what it will do: one set for every component, and which checks follow. */
export function createDisasterRecoveryActivities(deps: { config: Config }) {
  async function planDisasterRecovery(input: {
    cluster: string;
    setId?: string;
    components?: DisasterRecoveryComponent[];
  }): Promise<DisasterRecoveryPlan> {
    const cluster = findCluster(deps.config, input.cluster);
    const configured: DisasterRecoveryComponent[] = cluster.phpipam ? ['etcd', 'phpipam'] : ['etcd'];
    const chosen = input.components;
    const notConfigured = (chosen ?? []).filter((c) => !configured.includes(c));
    if (notConfigured.length > 0) {
      throw DomainError.nonRetryable(
        `cluster ${cluster.name} has no ${notConfigured.map((c) => LABEL[c]).join(', ')} configured; it can restore ${configured.join(', ')}`,
        FailureType.InvalidInput,
      );
    }
    const wanted = chosen ?? configured;
    const holdsAll = (manifest: BackupManifest) =>
      wanted.every((c) => manifest.components.some((m) => m.component === c)) ? manifest.components[0] : undefined;
    const what = wanted.map((c) => (c === 'etcd' ? 'an etcd snapshot' : 'a phpIPAM dump')).join(' and ');
    const { entry: set } = await chooseRestoreSet(deps.config, { cluster: cluster.name, setId: input.setId, pick: holdsAll, what }).catch(
      (err: unknown) => {
        // A set lacking a configured component is refused up front, naming the explicit way to run without it.
        if (
          chosen === undefined &&
          input.setId &&
          err instanceof DomainError &&
          err.type === FailureType.RestoreRefused &&
          wanted.length > 1
        ) {
          throw DomainError.nonRetryable(
            `${err.message}, while cluster ${cluster.name} has ${wanted.map((c) => LABEL[c]).join(' and ')} configured: ` +
              'run with --components (input `components`) naming what to restore; the rest is left as it is',
            FailureType.RestoreRefused,
          );
        }
        throw err;
      },
    );
    return {
      cluster: cluster.name,
      setId: set.setId,
      setCreatedAt: set.createdAt,
      phpipam: wanted.includes('phpipam'),
      components: wanted,
      unchanged: configured.filter((c) => !wanted.includes(c)).map((c) => `${LABEL[c]} (not chosen with components)`),
      agentNodes: cluster.agents.map((a) => a.node),
      dhcpNodes: [...new Set(cluster.checks.dhcp.map((c) => c.node))],
      checks: { dns: cluster.checks.dns.length, dhcp: cluster.checks.dhcp.length, metrics: cluster.checks.metrics.length },
      approvers: cluster.approvers,
    };
  }
  return { planDisasterRecovery: planDisasterRecovery };
}
