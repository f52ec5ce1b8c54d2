import type { Config } from '../config/schema';
import { createEtcdBackupActivities } from './etcd-backup';
import { createPruneActivities } from './prune';
import { createBackupPlanActivities } from './backup-plan';

/** Activities of the management worker: everything that works over the network. */
export function createManagementActivities(deps: { config: Config }) {
  return { ...createEtcdBackupActivities(deps), ...createPruneActivities(deps), ...createBackupPlanActivities(deps) };
}

export { createNodeActivities } from './node';
