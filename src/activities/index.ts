import type { Config } from '../config/schema';
import { createEtcdBackupActivities } from './etcd-backup';

/** Activities of the management worker: everything that works over the network. */
export function createManagementActivities(deps: { config: Config }) {
  return { ...createEtcdBackupActivities(deps) };
}

export { createNodeActivities } from './node';
