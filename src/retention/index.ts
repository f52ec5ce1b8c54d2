export {
  gfsBucket, planRetention, RETENTION_PROFILES, RetentionPolicyError,
  type ExpiredSet, type KeptSet, type RetentionInput, type RetentionPlan, type RetentionPolicy, type RetentionProfile,
  type RetentionProfileName, type RetentionSet,
} from './policy';
export { abortStaleMultipartUploads, deleteBackupSet, listBackupSetKeys, listStaleMultipartUploads, type DeletedSet, type StaleUpload } from './prune';
