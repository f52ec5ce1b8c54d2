import type { Duplex } from 'node:stream';
import type { Config } from '../config/schema';
import type { ArtefactRecord } from '../common/manifest';
import { createEncryptStream } from '../crypto';

/** How every artefact is encrypted under this config: what the manifest records, a fresh stream per artefact, the file suffix. */
export interface ArtefactEncryption {
  record: NonNullable<ArtefactRecord['encryption']>;
  createStream(): Duplex;
  fileName(plain: string): string;
}

/** null when the config stores artefacts in clear. */
export function artefactEncryption(config: Config): ArtefactEncryption | null {
  const encryption = config.encryption;
  if (!encryption) return null;
  return {
    record: { format: 'age', recipients: encryption.recipients },
    createStream: () => createEncryptStream(encryption.recipients),
    fileName: (plain) => `${plain}.age`,
  };
}
