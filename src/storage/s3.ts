import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import {
  ArtefactNotFoundError,
  checkLevelPrefix,
  type ArtefactWriter,
  type BackupStore,
  type ListedLevel,
  type ListedObject,
  type ObjectRetention,
  type StoredObject,
  type WriteLeftover,
} from './store';

export interface S3StoreOptions {
  name: string;
  bucket: string;
  prefix: string;
  partSizeBytes: number;
  /** S3 server-side encryption, a second layer under age: sent with every object written. */
  serverSideEncryption?: ServerSideEncryptionOptions;
  /** S3 Object Lock: every object written with this retention; deletes remove every version (bypassing GOVERNANCE only when told). */
  objectLock?: ObjectLockOptions;
}

export interface ObjectLockOptions {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  days: number;
  bypassGovernance: boolean;
}

/** S3's limit of keys per DeleteObjects request. */
const DELETE_BATCH = 1000;

/** The request fields that lock a new object for `days` from now. */
function lockFields(lock: ObjectLockOptions | undefined): {
  ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE';
  ObjectLockRetainUntilDate?: Date;
} {
  if (!lock) return {};
  return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + lock.days * 86_400_000) };
}

export interface ServerSideEncryptionOptions {
  algorithm: 'AES256' | 'aws:kms';
  /** KMS key id or ARN, with aws:kms; the bucket's default key when omitted. */
  kmsKeyId?: string;
}

/** The request fields that ask S3 to encrypt an object at rest. */
function sseFields(sse: ServerSideEncryptionOptions | undefined): { ServerSideEncryption?: 'AES256' | 'aws:kms'; SSEKMSKeyId?: string } {
  if (!sse) return {};
  return { ServerSideEncryption: sse.algorithm, ...(sse.algorithm === 'aws:kms' && sse.kmsKeyId ? { SSEKMSKeyId: sse.kmsKeyId } : {}) };
}

/**
 * An S3 bucket. Large artefacts go up as a multipart upload that is completed only on `commit()`,
 * so a failed or unverified artefact never becomes a visible object (lib-storage's Upload completes
 * as soon as the stream ends, which is why we drive the multipart calls ourselves).
 * Memory per writer: one part buffer.
 */
export class S3Store implements BackupStore {
  readonly name: string;

  constructor(
    private readonly client: S3Client,
    private readonly options: S3StoreOptions,
  ) {
    this.name = options.name;
  }

  private objectKey(key: string): string {
    return `${this.options.prefix}${key}`;
  }

  location(key: string): string {
    return `s3://${this.options.bucket}/${this.objectKey(key)}`;
  }

  async preflight(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    if (this.options.objectLock) {
      const config = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.options.bucket })).catch(() => undefined);
      if (config?.ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled') {
        throw new Error(
          `${this.name}: objectLock is configured but bucket ${this.options.bucket} does not have S3 Object Lock enabled (it can only be enabled when the bucket is created: ObjectLockEnabledForBucket)`,
        );
      }
    }
  }

  /** The object's Object Lock retention, or null when it has none (or this target does not lock). */
  async retention(key: string): Promise<ObjectRetention | null> {
    if (!this.options.objectLock) return null;
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
    if (!head.ObjectLockMode || !head.ObjectLockRetainUntilDate) return null;
    const mode = head.ObjectLockMode as ObjectRetention['mode'];
    return {
      mode,
      until: new Date(head.ObjectLockRetainUntilDate).toISOString(),
      bypassable: mode === 'GOVERNANCE' && this.options.objectLock.bypassGovernance,
    };
  }

  async createWriter(key: string): Promise<ArtefactWriter> {
    const upload = new MultipartWriter(this.client, this.options.bucket, this.objectKey(key), this.options.partSizeBytes, {
      ...sseFields(this.options.serverSideEncryption),
      ...lockFields(this.options.objectLock),
    });
    return {
      stream: upload,
      commit: async (): Promise<StoredObject> => {
        const { bytes, sha256 } = await upload.complete();
        return { target: this.name, key, bytes, sha256, location: this.location(key) };
      },
      abort: () => upload.abort(),
    };
  }

  async read(key: string): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
      return out.Body as Readable;
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey')
        throw new ArtefactNotFoundError(`${this.name}: no artefact at ${this.location(key)}`);
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
      return true;
    } catch (err) {
      if ((err as { name?: string }).name === 'NotFound') return false;
      throw err;
    }
  }

  async list(prefix = ''): Promise<string[]> {
    return (await this.listDetailed(prefix)).map((object) => object.key);
  }

  async listDetailed(prefix: string, options: { onPage?: () => void } = {}): Promise<ListedObject[]> {
    const objects: ListedObject[] = [];
    for await (const page of this.pages({ Prefix: this.objectKey(prefix) })) {
      for (const item of page.Contents ?? []) {
        if (item.Key)
          objects.push({
            key: this.storeKey(item.Key),
            bytes: item.Size ?? 0,
            modifiedAt: (item.LastModified ?? new Date(0)).toISOString(),
          });
      }
      options.onPage?.();
    }
    return objects;
  }

  async listLevel(prefix: string): Promise<ListedLevel> {
    checkLevelPrefix(this.name, prefix);
    const keys: string[] = [];
    const prefixes: string[] = [];
    for await (const page of this.pages({ Prefix: this.objectKey(prefix), Delimiter: '/' })) {
      for (const item of page.Contents ?? []) if (item.Key) keys.push(this.storeKey(item.Key));
      for (const common of page.CommonPrefixes ?? []) if (common.Prefix) prefixes.push(this.storeKey(common.Prefix));
    }
    return { keys: keys.sort(), prefixes: prefixes.sort() };
  }

  async *listInOrder(prefix: string, startAfter?: string): AsyncIterable<string[]> {
    const request = { Prefix: this.objectKey(prefix), ...(startAfter !== undefined ? { StartAfter: this.objectKey(startAfter) } : {}) };
    for await (const page of this.pages(request)) {
      yield (page.Contents ?? []).flatMap((item) => (item.Key ? [this.storeKey(item.Key)] : []));
    }
  }

  /** Every page of one ListObjectsV2 listing. */
  private async *pages(request: { Prefix: string; Delimiter?: string; StartAfter?: string }): AsyncIterable<ListObjectsV2CommandOutput> {
    const { StartAfter, ...rest } = request;
    let token: string | undefined;
    do {
      // StartAfter only on the first request: the token carries the position after it.
      const from = token === undefined && StartAfter !== undefined ? { StartAfter } : {};
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.options.bucket, ...rest, ...from, ContinuationToken: token }),
      );
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** An object key of this bucket as a key of this store (the store's prefix taken off). */
  private storeKey(objectKey: string): string {
    return objectKey.slice(this.options.prefix.length);
  }

  async delete(key: string): Promise<void> {
    if (!this.options.objectLock) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
      return;
    }
    // A locked bucket is versioned: a plain delete only hides the object behind a delete marker.
    // Every version goes, each refused by S3 while its retention lasts (bypassed only when configured).
    const objectKey = this.objectKey(key);
    const listed = await this.client.send(new ListObjectVersionsCommand({ Bucket: this.options.bucket, Prefix: objectKey }));
    const versions = [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])].filter((v) => v.Key === objectKey && v.VersionId);
    for (const version of versions) {
      await this.client.send(
        new DeleteObjectCommand({
          Bucket: this.options.bucket,
          Key: objectKey,
          VersionId: version.VersionId,
          ...(this.options.objectLock.bypassGovernance ? { BypassGovernanceRetention: true } : {}),
        }),
      );
    }
  }

  async deleteMany(keys: string[], options: { onProgress?: (done: number) => void } = {}): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.options.bucket,
          Delete: { Objects: batch.map((key) => ({ Key: this.objectKey(key) })), Quiet: true },
        }),
      );
      const failed = out.Errors ?? [];
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new Error(
          `${this.name}: could not delete ${failed.length} of ${batch.length} objects, first ${first.Key ?? '?'}: ${first.Code ?? 'error'} ${first.Message ?? ''}`.trim(),
        );
      }
      options.onProgress?.(i + batch.length);
    }
  }

  /** Open multipart uploads: invisible in listings, yet stored and billed until aborted. */
  async listLeftovers(scope: { key: string } | { olderThan: Date }): Promise<WriteLeftover[]> {
    const uploads = await listMultipartUploads(
      this.client,
      this.options.bucket,
      'key' in scope ? this.objectKey(scope.key) : this.options.prefix,
    );
    return (
      uploads
        // A key-scoped listing matches by prefix: `<set>/etcd.db.gz` also finds `<set>/etcd.db.gz.age`.
        .filter((u) => ('key' in scope ? u.key === this.objectKey(scope.key) : u.initiated.getTime() < scope.olderThan.getTime()))
        .map((u) => ({
          key: this.storeKey(u.key),
          location: `s3://${this.options.bucket}/${u.key} (upload ${u.uploadId})`,
          startedAt: u.initiated.toISOString(),
          handle: u.uploadId,
        }))
    );
  }

  async removeLeftover(leftover: WriteLeftover): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: this.objectKey(leftover.key), UploadId: leftover.handle }),
      );
    } catch (err) {
      // Completed or aborted meanwhile (another prune, the writer's own abort): nothing left to do.
      if ((err as { name?: string }).name !== 'NoSuchUpload') throw err;
    }
  }
}

export interface MultipartUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

/** Every multipart upload under `prefix`, following the listing's markers to the last page. */
export async function listMultipartUploads(s3: S3Client, bucket: string, prefix: string): Promise<MultipartUpload[]> {
  const uploads: MultipartUpload[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    const page = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
    );
    for (const upload of page.Uploads ?? []) {
      if (upload.Key && upload.UploadId && upload.Initiated)
        uploads.push({ key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated });
    }
    const more = page.IsTruncated === true;
    keyMarker = more ? page.NextKeyMarker : undefined;
    uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
  } while (keyMarker);
  return uploads;
}

/**
 * Writable that buffers one part and uploads it before accepting more bytes (backpressure keeps
 * memory at one part). Objects smaller than one part are sent with a single PutObject on complete.
 */
class MultipartWriter extends Writable {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private state: 'open' | 'completed' | 'aborted' = 'open';

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly key: string,
    private readonly partSize: number,
    private readonly sse: ReturnType<typeof sseFields> & ReturnType<typeof lockFields>,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  /** S3 takes a write under Object Lock only with x-amz-sdk-checksum-algorithm (or Content-MD5). */
  private lockedChecksum(): { ChecksumAlgorithm?: 'SHA256' } {
    return this.sse.ObjectLockMode ? { ChecksumAlgorithm: 'SHA256' } : {};
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.bufferedBytes < this.partSize) return done();
    this.uploadBufferedPart().then(() => done(), done);
  }

  private takeBuffer(): Buffer {
    const body = Buffer.concat(this.buffered, this.bufferedBytes);
    this.buffered = [];
    this.bufferedBytes = 0;
    return body;
  }

  private async uploadBufferedPart(): Promise<void> {
    if (!this.uploadId) {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          ChecksumAlgorithm: 'SHA256',
          ...this.sse,
        }),
      );
      this.uploadId = created.UploadId;
    }
    const body = this.takeBuffer();
    const partNumber = this.parts.length + 1;
    const checksum = createHash('sha256').update(body).digest('base64');
    const out = await this.client.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        PartNumber: partNumber,
        Body: body,
        ...this.lockedChecksum(),
        ChecksumSHA256: checksum,
      }),
    );
    this.parts.push({ PartNumber: partNumber, ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256 ?? checksum });
  }

  /** Waits for the stream to end, sends what is left, then makes the object visible. */
  async complete(): Promise<{ bytes: number; sha256: string }> {
    if (this.state !== 'open') throw new Error(`upload of ${this.key} is already ${this.state}`);
    await new Promise<void>((resolve, reject) => {
      if (this.writableFinished) return resolve();
      this.once('finish', resolve);
      this.once('error', reject);
    });
    if (!this.uploadId) {
      const body = this.takeBuffer();
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          Body: body,
          ...this.lockedChecksum(),
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
          ...this.sse,
        }),
      );
    } else {
      if (this.bufferedBytes > 0) await this.uploadBufferedPart();
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          MultipartUpload: { Parts: this.parts },
        }),
      );
    }
    this.state = 'completed';
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.buffered = [];
    this.destroy();
    if (this.uploadId) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId }));
    }
  }
}
