export { AgeStream, createDecryptStream, createEncryptStream } from './stream';
export {
  generateIdentity,
  identityToRecipients,
  readDecryptionIdentity,
  validateIdentities,
  validateRecipient,
  type AgeBinaries,
} from './keys';
export { AgeError, AgeUnavailableError, CiphertextCorruptedError, DecryptionFailedError, InvalidKeyError } from './errors';
