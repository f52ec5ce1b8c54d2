/**
 * Compression of artefacts: parallel gzip (pigz-style members) or zstd (frames) on several threads,
 * chosen per cluster (`compression:` in the config), and reading either back.
 */
import type { Config } from '../config/schema';
import { compressedFileName, type CompressionFormat } from './format';
import { ParallelCompress } from './parallel-compress';

export {
  compressedFileName,
  createDecompressStages,
  createDecompressStream,
  DEFAULT_LEVEL,
  type ArtefactCompressionRecord,
  type CompressionFormat,
} from './format';
export { ParallelCompress, type ParallelCompressOptions } from './parallel-compress';
export { CompressionPool, type BlockCompressor } from './pool';
export { ZlibThreadpoolCompressor } from './threadpool';
export { COMPRESSION_THREADS_ENV, sharedCompressor } from './shared';

/** A compressing Transform: what replaces zlib.createGzip() at every artefact's call site. */
export function createCompressStream(format: CompressionFormat = 'gzip'): ParallelCompress {
  return new ParallelCompress({ format });
}

/** How a cluster's artefacts are compressed under this config: the format, a fresh stream per artefact, the file name. */
export interface ArtefactCompression {
  format: CompressionFormat;
  createStream(): ParallelCompress;
  /** `etcd-snapshot-<stamp>.db.gz` -> `.db.zst` for zstd; unchanged for gzip. */
  fileName(plain: string): string;
}

/** The cluster's `compression`, else the config's; gzip without a config. */
export function artefactCompression(config?: Pick<Config, 'compression' | 'clusters'>, clusterName?: string): ArtefactCompression {
  const cluster = clusterName === undefined ? undefined : config?.clusters.find((c) => c.name === clusterName);
  const format = cluster?.compression ?? config?.compression ?? 'gzip';
  return { format, createStream: () => createCompressStream(format), fileName: (plain) => compressedFileName(plain, format) };
}
