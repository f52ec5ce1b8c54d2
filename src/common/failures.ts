/**
 * Typed failure codes. Workflows and tests match on these `type` strings; the ones listed in
 * NON_RETRYABLE are raised where retrying cannot help (bad input, missing material).
 */
export const FailureType = {
  InvalidInput: 'InvalidInput',
  ConfigError: 'ConfigError',
  SecretUnavailable: 'SecretUnavailable',
  EtcdTlsMaterialMissing: 'EtcdTlsMaterialMissing',
  EtcdTlsRejected: 'EtcdTlsRejected',
  NoHealthyEtcdMember: 'NoHealthyEtcdMember',
  AllEtcdMembersFailed: 'AllEtcdMembersFailed',
  SnapshotTrailerMismatch: 'SnapshotTrailerMismatch',
  StorageUnavailable: 'StorageUnavailable',
  ChecksumMismatch: 'ChecksumMismatch',
  BackupSetNotFound: 'BackupSetNotFound',
  BackupSetFailed: 'BackupSetFailed',
  PartialBackupSet: 'PartialBackupSet',
  DatabaseAuthFailed: 'DatabaseAuthFailed',
  DatabasePrivilegeMissing: 'DatabasePrivilegeMissing',
  DatabaseUnavailable: 'DatabaseUnavailable',
  DatabaseDumpFailed: 'DatabaseDumpFailed',
  InsufficientDisk: 'InsufficientDisk',
  RestoreFailed: 'RestoreFailed',
  RestoreRefused: 'RestoreRefused',
  RestoreVerificationFailed: 'RestoreVerificationFailed',
  ApprovalTimedOut: 'ApprovalTimedOut',
  RolledBack: 'RolledBack',
  AgentUnhealthy: 'AgentUnhealthy',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export const NON_RETRYABLE: FailureType[] = [
  FailureType.InvalidInput,
  FailureType.ConfigError,
  FailureType.SecretUnavailable,
  FailureType.EtcdTlsMaterialMissing,
  FailureType.EtcdTlsRejected,
  FailureType.BackupSetNotFound,
  FailureType.DatabaseAuthFailed,
  FailureType.DatabasePrivilegeMissing,
  FailureType.ChecksumMismatch,
  FailureType.InsufficientDisk,
  FailureType.RestoreRefused,
  FailureType.ApprovalTimedOut,
  FailureType.RolledBack,
];
