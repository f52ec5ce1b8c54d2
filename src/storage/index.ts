import { S3Client } from '@aws-sdk/client-s3';
import type { StorageTargetConfig } from '../config/schema';
import { readSecret } from '../config/secrets';
import { LocalStore } from './local';
import { S3Store } from './s3';
import type { BackupStore } from './store';

export * from './store';
export { LocalStore } from './local';
export { S3Store } from './s3';

/** Builds a store from its config, reading S3 credentials from their secret references. */
export async function openStore(target: StorageTargetConfig): Promise<BackupStore> {
  if (target.type === 'local') return new LocalStore(target.name, target.path);
  const credentials = target.accessKeyId && target.secretAccessKey
    ? { accessKeyId: await readSecret(target.accessKeyId), secretAccessKey: await readSecret(target.secretAccessKey) }
    : undefined; // default AWS credential chain (instance role, env, profile)
  const client = new S3Client({
    region: target.region,
    endpoint: target.endpoint,
    forcePathStyle: target.forcePathStyle,
    credentials,
    maxAttempts: 3,
  });
  return new S3Store(client, { name: target.name, bucket: target.bucket, prefix: target.prefix, partSizeBytes: target.partSizeMiB * 1024 * 1024 });
}
