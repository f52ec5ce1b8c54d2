/**
 * age keys: checking recipients (config, public) and identities (secret references), generating a
 * key pair, deriving recipients from an identity. Only native X25519 keys are supported: they are
 * what `age-keygen` makes and what every age implementation reads.
 */
import { execFile } from 'node:child_process';
import type { SecretRef } from '../config/schema';
import { describeSecretRef, readSecret } from '../config/secrets';
import { decodeBech32 } from './bech32';
import { AgeUnavailableError, InvalidKeyError, redactKeys } from './errors';

const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'age-secret-key-';
const KEY_BYTES = 32;

export interface AgeBinaries {
  /** `age` binary (Debian package `age`); default: `age` on PATH. */
  age?: string;
  /** `age-keygen` binary; default: `age-keygen` on PATH. */
  ageKeygen?: string;
}

/**
 * Why `recipient` is not an age X25519 recipient, or undefined when it is one. For config
 * validation: the text names the problem and never repeats the value.
 */
export function validateRecipient(recipient: string): string | undefined {
  const expected = 'expected an age X25519 recipient: "age1" followed by 58 bech32 characters, as printed by age-keygen -y';
  if (/^AGE-SECRET-KEY-/i.test(recipient.trim())) {
    return 'this is a secret identity (AGE-SECRET-KEY-1...), not a recipient: put its public key (age1...) here and keep the identity in a secret reference';
  }
  if (!recipient.startsWith('age1')) return expected;
  const decoded = decodeBech32(recipient);
  if (!decoded.ok) return `${expected}; this one ${decoded.problem}`;
  if (decoded.hrp !== RECIPIENT_HRP || decoded.data.length !== KEY_BYTES || recipient !== recipient.toLowerCase()) return expected;
  return undefined;
}

/**
 * Why `identityText` is not usable as age identities, or undefined. It is the content of an
 * identity file: one or more `AGE-SECRET-KEY-1...` lines (several, e.g. during a key rotation),
 * `#` comments and blank lines, as age-keygen writes it. Never repeats a line.
 */
export function validateIdentities(identityText: string): string | undefined {
  let found = 0;
  const lines = identityText.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const decoded = decodeBech32(line);
    const problem = !decoded.ok
      ? decoded.problem
      : decoded.hrp !== IDENTITY_HRP || line !== line.toUpperCase()
        ? 'is not an X25519 secret key'
        : decoded.data.length !== KEY_BYTES
          ? `holds ${decoded.data.length} bytes instead of ${KEY_BYTES}`
          : undefined;
    if (problem) {
      return `line ${index + 1} ${problem}: expected age X25519 identities (AGE-SECRET-KEY-1 followed by 58 bech32 characters), # comments and blank lines`;
    }
    found += 1;
  }
  return found === 0 ? 'holds no identity: expected at least one AGE-SECRET-KEY-1... line' : undefined;
}

/**
 * Reads the decryption identity from its secret reference (in activities only) and checks it.
 * Errors name where the secret lives, never its content.
 */
export async function readDecryptionIdentity(ref: SecretRef): Promise<string> {
  const identity = await readSecret(ref);
  const problem = validateIdentities(identity);
  if (problem) throw new InvalidKeyError(`decryption identity in ${describeSecretRef(ref)}: ${problem}`);
  return identity;
}

function runKeygen(binary: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(binary, args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(
          new AgeUnavailableError(`${binary} was not found on this worker: install the Debian package "age" (scripts/install-deps.sh)`),
        );
      }
      reject(new InvalidKeyError(`${binary} ${args.join(' ')} failed: ${redactKeys(cleanAgeStderr(stderr)) || err.message}`));
    });
    child.stdin?.on('error', () => undefined); // an early exit is reported by the callback above
    child.stdin?.end(input ?? '');
  });
}

/** age's stderr without its "age: error:" prefixes and its "report unexpected errors" footer. */
export function cleanAgeStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.includes('report unexpected or unhelpful errors'))
    .map((line) => line.replace(/^age(-keygen)?: (error: )?/, ''))
    .join('; ');
}

/** A new X25519 key pair from age-keygen: the identity (secret) and its recipient (public). */
export async function generateIdentity(binaries: AgeBinaries = {}): Promise<{ identity: string; recipient: string }> {
  const out = await runKeygen(binaries.ageKeygen ?? 'age-keygen', []);
  const identity = out.split('\n').find((line) => line.startsWith('AGE-SECRET-KEY-1'));
  const recipient = /^# public key: (age1\S+)$/m.exec(out)?.[1];
  if (!identity || !recipient || validateIdentities(identity) || validateRecipient(recipient)) {
    throw new InvalidKeyError('age-keygen printed no identity and public key in the expected format');
  }
  return { identity, recipient };
}

/**
 * The recipients (public keys) of the identities in `identityText`, one per identity, so a worker
 * can check its identity belongs to the configured recipients before it needs it. The identity goes
 * to age-keygen on stdin, never in argv.
 */
export async function identityToRecipients(identityText: string, binaries: AgeBinaries = {}): Promise<string[]> {
  const problem = validateIdentities(identityText);
  if (problem) throw new InvalidKeyError(`identity ${problem}`);
  const out = await runKeygen(binaries.ageKeygen ?? 'age-keygen', ['-y'], identityText);
  return out
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}
