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
  /** The database server refused the user/password (or the user has no access to the database). */
  DatabaseAuthFailed: 'DatabaseAuthFailed',
  /** The database user lacks a privilege the dump, the facts or a restore need (named in the message). */
  DatabasePrivilegeMissing: 'DatabasePrivilegeMissing',
  /** Retryable: the database server cannot be reached, went away, or refuses connections for now. */
  DatabaseUnavailable: 'DatabaseUnavailable',
  /** Retryable: the dump program failed or produced an incomplete dump. */
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
  /** phpIPAM restore: the staging (or keep) schema already exists; choose a new name or drop it. */
  RestoreSchemaExists: 'RestoreSchemaExists',
  /** The dump cannot be replayed safely, is truncated, or the client rejected it (exit code and stderr in the message). */
  DumpLoadFailed: 'DumpLoadFailed',
  /** Retryable: the dump stream itself failed while loading (read, decryption, decompression). */
  DumpStreamFailed: 'DumpStreamFailed',
  /** The swap was refused before anything changed (views, missing schema, no passing verification). */
  SchemaSwapRefused: 'SchemaSwapRefused',
  /** The swap failed and was undone: the live schema is as before. Retryable only for lock waits and lost connections. */
  SchemaSwapFailed: 'SchemaSwapFailed',
  /** The swap failed AND its undo failed: the message lists what to repair by hand. */
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
