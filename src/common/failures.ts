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
  /** etcd auth is on and refused the configured user's password. */
  EtcdAuthenticationFailed: 'EtcdAuthenticationFailed',
  NoHealthyEtcdMember: 'NoHealthyEtcdMember',
  AllEtcdMembersFailed: 'AllEtcdMembersFailed',
  SnapshotTrailerMismatch: 'SnapshotTrailerMismatch',
  StorageUnavailable: 'StorageUnavailable',
  ChecksumMismatch: 'ChecksumMismatch',
  BackupSetNotFound: 'BackupSetNotFound',
  BackupSetFailed: 'BackupSetFailed',
  /** Every set id of that second (and its -2 ... -9) already names a set: too many backups of a cluster in one second. */
  SetIdTaken: 'SetIdTaken',
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
  /** etcd was restored, but agents do not serve its state after restart + republish (no etcd rollback: it would deafen them again). */
  AgentsNotServing: 'AgentsNotServing',
  QuorumLost: 'QuorumLost',
  PitrUnreachable: 'PitrUnreachable',
  /** The etcd cluster a capture watches is another incarnation (cluster ID) than the chain it writes: restored under it. */
  CaptureIncarnationChanged: 'CaptureIncarnationChanged',
  ServiceChecksFailed: 'ServiceChecksFailed',
  /** A tar artefact with an entry a restore must not write (absolute, `..`, link out of the target, device). */
  UnsafeArchive: 'UnsafeArchive',
  /** Restored Nebula files that fail their checks (host.crt not issued by ca.crt, config does not load). */
  NebulaCertInvalid: 'NebulaCertInvalid',
  /** phpIPAM restore (src/phpipam/restore.ts PhpipamRestoreFailureType). */
  RestoreSchemaExists: 'RestoreSchemaExists',
  DumpLoadFailed: 'DumpLoadFailed',
  DumpStreamFailed: 'DumpStreamFailed',
  SchemaSwapRefused: 'SchemaSwapRefused',
  SchemaSwapFailed: 'SchemaSwapFailed',
  SchemaSwapRollbackFailed: 'SchemaSwapRollbackFailed',
  /** A restore drill found the set unusable or unequal to its recorded facts (or could not run it); the set was not marked verified. */
  DrillFailed: 'DrillFailed',
  /** The drill's alert webhook could not be reached or refused the POST (retryable). */
  DrillAlertFailed: 'DrillAlertFailed',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export const NON_RETRYABLE: FailureType[] = [
  FailureType.InvalidInput,
  FailureType.ConfigError,
  FailureType.SecretUnavailable,
  FailureType.EtcdTlsMaterialMissing,
  FailureType.EtcdTlsRejected,
  FailureType.EtcdAuthenticationFailed,
  FailureType.BackupSetNotFound,
  FailureType.SetIdTaken,
  FailureType.DatabaseAuthFailed,
  FailureType.DatabasePrivilegeMissing,
  FailureType.ChecksumMismatch,
  FailureType.InsufficientDisk,
  FailureType.RestoreRefused,
  FailureType.ApprovalTimedOut,
  FailureType.RolledBack,
  FailureType.QuorumLost,
  FailureType.PitrUnreachable,
  FailureType.CaptureIncarnationChanged,
  FailureType.ServiceChecksFailed,
  FailureType.AgentsNotServing,
  FailureType.UnsafeArchive,
  FailureType.NebulaCertInvalid,
  FailureType.RestoreSchemaExists,
  FailureType.DumpLoadFailed,
  FailureType.SchemaSwapRefused,
  FailureType.SchemaSwapRollbackFailed,
  FailureType.DrillFailed,
];
