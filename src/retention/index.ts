export {
  gfsBucket, planRetention, RETENTION_PROFILES, RetentionPolicyError,
  type ExpiredSet, type KeptSet, type RetentionInput, type RetentionPlan, type RetentionPolicy, type RetentionProfile,
  type RetentionProfileName, type RetentionSet,
} from './policy';
export {
  abortStaleMultipartUploads, deleteBackupSet, deleteSegmentObjects, listBackupSetKeys, listSegmentObjects, listStaleMultipartUploads,
  type DeletedSet, type SegmentObject, type StaleUpload,
} from './prune';
export {
  planSegmentRetention, SEGMENT_TIME_MARGIN_MS,
  type ChainRetention, type SegmentRetentionInput, type SegmentRetentionPlan, type SegmentRetentionSet,
} from './segments';
