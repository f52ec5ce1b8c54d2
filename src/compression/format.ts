/**
 * The compression formats artefacts are stored in, and reading them back. What an artefact is in is
 * recorded in its manifest entry (`compression`); a manifest written before the field could say
 * anything but gzip means gzip.
 */
import { PassThrough, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';

export type CompressionFormat = 'gzip' | 'zstd';
/** What a manifest's artefact records; `none` for artefacts stored as they are. */
export type ArtefactCompressionRecord = CompressionFormat | 'none';

/** gzip's default, as the `gzip` CLI of the runbook; zstd's default, as the `zstd` CLI. */
export const DEFAULT_LEVEL: Record<CompressionFormat, number> = { gzip: 6, zstd: 3 };

/** The artefact's file name in `format`: the workflows name files `*.gz`; zstd swaps that for `.zst`. */
export function compressedFileName(plain: string, format: CompressionFormat): string {
  if (format === 'gzip') return plain;
  return plain.endsWith('.gz') ? `${plain.slice(0, -3)}.zst` : `${plain}.zst`;
}

/**
 * Node 24's zstd (zlib.createZstdDecompress); @types/node 20 does not declare it. Absent on an older
 * Node: a zstd artefact then fails with a clear message instead of a TypeError.
 */
interface ZstdZlib {
  createZstdDecompress?: (options?: { chunkSize?: number }) => Transform;
}

/**
 * The stages that turn stored (decrypted) bytes back into the raw artefact: gunzip (every member of
 * a multi-member file, as `gunzip` reads them), zstd (every frame), or none.
 */
export function createDecompressStages(compression: ArtefactCompressionRecord | undefined): Transform[] {
  switch (compression ?? 'gzip') {
    case 'gzip':
      return [zlib.createGunzip({ chunkSize: 256 * 1024 })];
    case 'zstd': {
      const create = (zlib as unknown as ZstdZlib).createZstdDecompress;
      if (!create) throw new Error(`this artefact is zstd-compressed and Node ${process.version} has no zstd (expected Node >= 22.15)`);
      return [create({ chunkSize: 256 * 1024 })];
    }
    case 'none':
      return [];
    default:
      throw new Error(`unknown artefact compression "${String(compression)}" (expected gzip, zstd or none)`);
  }
}

/** A single stage for callers that need exactly one (a pass-through for `none`). */
export function createDecompressStream(compression: ArtefactCompressionRecord | undefined): Transform {
  return createDecompressStages(compression)[0] ?? new PassThrough();
}
