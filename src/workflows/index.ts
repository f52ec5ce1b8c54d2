/** Every workflow the management worker runs (this file is the workflow bundle's entry point). */
export { etcdBackupWorkflow } from './etcd-backup';
export { backupSetWorkflow } from './backup-set';
export { pruneBackupSetsWorkflow } from './prune';
export { rekeyWorkflow } from './rekey';
export { agentCacheBackupWorkflow } from './agent-cache';
export { phpipamBackupWorkflow } from './phpipam-backup';
export { etcdRestoreWorkflow } from './etcd-restore';
export { phpipamRestoreWorkflow } from './phpipam-restore';
export { agentCacheRestoreWorkflow, nebulaRestoreWorkflow } from './host-restore';
export { replaceEtcdMemberWorkflow } from './etcd-member-replace';
export { changeCaptureWorkflow } from './change-capture';
export { pointInTimeRestoreWorkflow } from './pitr';
export { restoreDrillWorkflow } from './drill';
export { disasterRecoveryWorkflow } from './disaster-recovery';
export { recoverAgentNodeWorkflow } from './agent-node-recovery';
export { checkAgentsWorkflow, recoverAgentsWorkflow } from './agents';
export { agentHostRestoreWorkflow } from './agent-host-restore';
