export {
  gfsBucket,
  planRetention,
  RETENTION_PROFILES,
  RetentionPolicyError,
  type ExpiredSet,
  type KeptSet,
  type RetentionInput,
  type RetentionPlan,
  type RetentionPolicy,
  type RetentionProfile,
  type RetentionProfileName,
  type RetentionSet,
} from './policy';
export { deleteBackupSet, deleteSegmentObjects, listBackupSetKeys, listSegmentObjects, type DeletedSet, type SegmentObject } from './prune';
export {
  planSegmentRetention,
  SEGMENT_TIME_MARGIN_MS,
  type ChainRetention,
  type SegmentRetentionInput,
  type SegmentRetentionPlan,
  type SegmentRetentionSet,
} from './segments';
