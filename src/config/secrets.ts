import { readFile } from 'node:fs/promises';
import type { SecretRef } from './schema';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/** Where a secret comes from, for error messages: never its value. */
export function describeSecretRef(ref: SecretRef): string {
  return 'file' in ref ? `file ${ref.file}` : `environment variable ${ref.env}`;
}

export class SecretUnavailableError extends DomainError {
  override readonly name = 'SecretUnavailableError';
  constructor(message: string) {
    super(message, FailureType.SecretUnavailable, true);
  }
}

/** Reads a secret. Called only inside activities, so the value never reaches workflow history. */
export async function readSecret(ref: SecretRef): Promise<string> {
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value === '') {
      throw new SecretUnavailableError(`secret ${describeSecretRef(ref)} is not set on this worker`);
    }
    return value;
  }
  try {
    return (await readFile(ref.file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new SecretUnavailableError(`secret ${describeSecretRef(ref)} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
