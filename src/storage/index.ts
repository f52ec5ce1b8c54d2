import { S3Client } from '@aws-sdk/client-s3';
import type { S3TargetConfig, StorageTargetConfig } from '../config/schema';
import { readSecret } from '../config/secrets';
import { LocalStore } from './local';
import { S3Store } from './s3';
import type { BackupStore } from './store';

export * from './store';
export { LocalStore } from './local';
export { S3Store } from './s3';

/** An S3 client for a target, credentials read from their secret references. */
export async function s3ClientFor(target: S3TargetConfig): Promise<S3Client> {
  const credentials =
    target.accessKeyId && target.secretAccessKey
      ? { accessKeyId: await readSecret(target.accessKeyId), secretAccessKey: await readSecret(target.secretAccessKey) }
      : undefined; // default AWS credential chain (instance role, env, profile)
  return new S3Client({
    region: target.region,
    endpoint: target.endpoint,
    forcePathStyle: target.forcePathStyle,
    credentials,
    maxAttempts: 3,
  });
}

/** Builds a store from its config. */
export async function openStore(target: StorageTargetConfig): Promise<BackupStore> {
  if (target.type === 'local') return new LocalStore(target.name, target.path);
  return new S3Store(await s3ClientFor(target), {
    name: target.name,
    bucket: target.bucket,
    prefix: target.prefix,
    partSizeBytes: target.partSizeMiB * 1024 * 1024,
    serverSideEncryption: target.serverSideEncryption,
    objectLock: target.objectLock,
  });
}
export { publishToStores, type PublishedCopy } from './publish';
