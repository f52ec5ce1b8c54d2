/**
 * Typed errors of the encryption layer. Messages say what is wrong and what was expected; they
 * never contain key material (age's own stderr is passed through `redactKeys` first).
 */
export class AgeError extends Error {
  override name = 'AgeError';
}

/** A recipient or identity that is not a well-formed age X25519 key. */
export class InvalidKeyError extends AgeError {
  override name = 'InvalidKeyError';
}

/** The `age` (or `age-keygen`) binary is missing on this worker. */
export class AgeUnavailableError extends AgeError {
  override name = 'AgeUnavailableError';
}

/** None of the given identities can open the file: it was encrypted for other recipients. */
export class DecryptionFailedError extends AgeError {
  override name = 'DecryptionFailedError';
}

/** The ciphertext is not a readable age file, or fails authentication (corrupted, truncated, tampered). */
export class CiphertextCorruptedError extends AgeError {
  override name = 'CiphertextCorruptedError';
}

const SECRET_KEY = /AGE-SECRET-KEY-[0-9A-Z]+/gi;

/** Removes anything shaped like an age secret key from text that ends up in an error message. */
export function redactKeys(text: string): string {
  return text.replace(SECRET_KEY, 'AGE-SECRET-KEY-[redacted]');
}
