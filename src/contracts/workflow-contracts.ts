/**
 * What each workflow takes and returns, by the name other services start it with: the one source of
 * the JSON Schemas in schemas/ (src/scripts/generate-schemas.ts; `npm run schemas`). The checks at
 * the bottom fail the type-check when a workflow's signature and its entry here differ.
 */
import type { agentCacheBackupWorkflow, AgentCacheBackupInput } from '../workflows/agent-cache';
import type { AgentCacheComponentRecord, PhpipamComponentRecord } from '../common/manifest';
import type { agentHostRestoreWorkflow, AgentHostRestoreInput, AgentHostRestoreResult } from '../workflows/agent-host-restore';
import type { recoverAgentNodeWorkflow, AgentNodeRecoveryInput, AgentNodeRecoveryResult } from '../workflows/agent-node-recovery';
import type { AgentCheck } from '../activities/agent-service';
import type { checkAgentsWorkflow, recoverAgentsWorkflow, AgentsInput, RecoverAgentsInput, RecoverAgentsResult } from '../workflows/agents';
import type { backupSetWorkflow, BackupSetInput, BackupSetResult } from '../workflows/backup-set';
import type { changeCaptureWorkflow, CaptureStatus, ChangeCaptureInput } from '../workflows/change-capture';
import type { disasterRecoveryWorkflow, DisasterRecoveryInput, DisasterRecoveryReport } from '../workflows/disaster-recovery';
import type { restoreDrillWorkflow, DrillInput, DrillReport } from '../workflows/drill';
import type { etcdBackupWorkflow, EtcdBackupInput, EtcdBackupResult } from '../workflows/etcd-backup';
import type { replaceEtcdMemberWorkflow, ReplaceMemberInput, ReplaceMemberResult } from '../workflows/etcd-member-replace';
import type { etcdRestoreWorkflow, EtcdRestoreInput, EtcdRestoreResult } from '../workflows/etcd-restore';
import type { agentCacheRestoreWorkflow, nebulaRestoreWorkflow, HostRestoreInput, HostRestoreResult } from '../workflows/host-restore';
import type { phpipamBackupWorkflow, PhpipamBackupInput } from '../workflows/phpipam-backup';
import type { phpipamRestoreWorkflow, PhpipamRestoreInput, PhpipamRestoreResult } from '../workflows/phpipam-restore';
import type { pointInTimeRestoreWorkflow, PointInTimeInput, PointInTimeResult } from '../workflows/pitr';
import type { pruneBackupSetsWorkflow, PruneInput, PruneResult } from '../workflows/prune';
import type { rekeyWorkflow, RekeyInput, RekeyResult } from '../workflows/rekey';

export type CheckAgentsResult = AgentCheck[];

/** Workflow type -> its input and result, as the names the schemas are generated from. */
export interface WorkflowContracts {
  etcdBackupWorkflow: { input: EtcdBackupInput; result: EtcdBackupResult };
  backupSetWorkflow: { input: BackupSetInput; result: BackupSetResult };
  pruneBackupSetsWorkflow: { input: PruneInput; result: PruneResult };
  rekeyWorkflow: { input: RekeyInput; result: RekeyResult };
  agentCacheBackupWorkflow: { input: AgentCacheBackupInput; result: AgentCacheComponentRecord };
  phpipamBackupWorkflow: { input: PhpipamBackupInput; result: PhpipamComponentRecord };
  etcdRestoreWorkflow: { input: EtcdRestoreInput; result: EtcdRestoreResult };
  phpipamRestoreWorkflow: { input: PhpipamRestoreInput; result: PhpipamRestoreResult };
  agentCacheRestoreWorkflow: { input: HostRestoreInput; result: HostRestoreResult };
  nebulaRestoreWorkflow: { input: HostRestoreInput; result: HostRestoreResult };
  replaceEtcdMemberWorkflow: { input: ReplaceMemberInput; result: ReplaceMemberResult };
  changeCaptureWorkflow: { input: ChangeCaptureInput; result: CaptureStatus };
  pointInTimeRestoreWorkflow: { input: PointInTimeInput; result: PointInTimeResult };
  restoreDrillWorkflow: { input: DrillInput; result: DrillReport };
  disasterRecoveryWorkflow: { input: DisasterRecoveryInput; result: DisasterRecoveryReport };
  recoverAgentNodeWorkflow: { input: AgentNodeRecoveryInput; result: AgentNodeRecoveryResult };
  checkAgentsWorkflow: { input: AgentsInput; result: CheckAgentsResult };
  recoverAgentsWorkflow: { input: RecoverAgentsInput; result: RecoverAgentsResult };
  agentHostRestoreWorkflow: { input: AgentHostRestoreInput; result: AgentHostRestoreResult };
}

// ---- compile-time: each entry is exactly its workflow's parameter and awaited result.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Matches<W extends (input: never) => Promise<unknown>, C extends { input: unknown; result: unknown }> =
  Same<NonNullable<Parameters<W>[0]>, C['input']> extends true ? Same<Awaited<ReturnType<W>>, C['result']> : false;
type AllTrue<T extends Record<string, true>> = T;
export type ContractsMatchWorkflows = AllTrue<{
  etcdBackupWorkflow: Matches<typeof etcdBackupWorkflow, WorkflowContracts['etcdBackupWorkflow']>;
  backupSetWorkflow: Matches<typeof backupSetWorkflow, WorkflowContracts['backupSetWorkflow']>;
  pruneBackupSetsWorkflow: Matches<typeof pruneBackupSetsWorkflow, WorkflowContracts['pruneBackupSetsWorkflow']>;
  rekeyWorkflow: Matches<typeof rekeyWorkflow, WorkflowContracts['rekeyWorkflow']>;
  agentCacheBackupWorkflow: Matches<typeof agentCacheBackupWorkflow, WorkflowContracts['agentCacheBackupWorkflow']>;
  phpipamBackupWorkflow: Matches<typeof phpipamBackupWorkflow, WorkflowContracts['phpipamBackupWorkflow']>;
  etcdRestoreWorkflow: Matches<typeof etcdRestoreWorkflow, WorkflowContracts['etcdRestoreWorkflow']>;
  phpipamRestoreWorkflow: Matches<typeof phpipamRestoreWorkflow, WorkflowContracts['phpipamRestoreWorkflow']>;
  agentCacheRestoreWorkflow: Matches<typeof agentCacheRestoreWorkflow, WorkflowContracts['agentCacheRestoreWorkflow']>;
  nebulaRestoreWorkflow: Matches<typeof nebulaRestoreWorkflow, WorkflowContracts['nebulaRestoreWorkflow']>;
  replaceEtcdMemberWorkflow: Matches<typeof replaceEtcdMemberWorkflow, WorkflowContracts['replaceEtcdMemberWorkflow']>;
  changeCaptureWorkflow: Matches<typeof changeCaptureWorkflow, WorkflowContracts['changeCaptureWorkflow']>;
  pointInTimeRestoreWorkflow: Matches<typeof pointInTimeRestoreWorkflow, WorkflowContracts['pointInTimeRestoreWorkflow']>;
  restoreDrillWorkflow: Matches<typeof restoreDrillWorkflow, WorkflowContracts['restoreDrillWorkflow']>;
  disasterRecoveryWorkflow: Matches<typeof disasterRecoveryWorkflow, WorkflowContracts['disasterRecoveryWorkflow']>;
  recoverAgentNodeWorkflow: Matches<typeof recoverAgentNodeWorkflow, WorkflowContracts['recoverAgentNodeWorkflow']>;
  checkAgentsWorkflow: Matches<typeof checkAgentsWorkflow, WorkflowContracts['checkAgentsWorkflow']>;
  recoverAgentsWorkflow: Matches<typeof recoverAgentsWorkflow, WorkflowContracts['recoverAgentsWorkflow']>;
  agentHostRestoreWorkflow: Matches<typeof agentHostRestoreWorkflow, WorkflowContracts['agentHostRestoreWorkflow']>;
}>;
