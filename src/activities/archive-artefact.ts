import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Context } from '@temporalio/activity';
import type { ArtefactRecord } from '../common/manifest';
import { publishToStores, type BackupStore } from '../storage';
import { HashingStream } from '../storage/hashing';
import type { ArtefactEncryption } from './artefact-encryption';
import { withHeartbeat } from './heartbeat';
import { createCompressStream, type ArtefactCompression } from '../compression';

/**
 * source -> sha256 of the raw bytes -> parallel gzip/zstd -> [age] -> every store, committed only when the
 * whole stream went through; heartbeats the byte count so a stuck copy is noticed.
 */
export async function publishCompressed(opts: {
  source: Readable;
  stores: BackupStore[];
  key: string;
  fileName: string;
  encryption: ArtefactEncryption | null;
  /** Default gzip; the file name is the caller's (see ArtefactCompression.fileName). */
  compression?: ArtefactCompression;
}): Promise<ArtefactRecord> {
  const raw = new HashingStream();
  const ctx = Context.current();
  const abortOnCancel = () => opts.source.destroy(new Error('cancelled'));
  ctx.cancellationSignal.addEventListener('abort', abortOnCancel);
  try {
    const { copies } = await withHeartbeat(
      () => ({ bytes: raw.bytes }),
      () =>
        publishToStores(opts.stores, opts.key, (sink) =>
          pipeline([
            opts.source,
            raw,
            opts.compression?.createStream() ?? createCompressStream('gzip'),
            ...(opts.encryption ? [opts.encryption.createStream()] : []),
            sink,
          ]),
        ),
    );
    const first = copies[0]!;
    return {
      file: opts.fileName,
      key: opts.key,
      compression: opts.compression?.format ?? 'gzip',
      encryption: opts.encryption?.record ?? null,
      bytes: first.bytes,
      sha256: first.sha256,
      raw: { bytes: raw.bytes, sha256: raw.digestHex() },
      copies,
    };
  } finally {
    ctx.cancellationSignal.removeEventListener('abort', abortOnCancel);
  }
}
