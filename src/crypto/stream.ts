/**
 * Encryption at rest in the standard age format (https://age-encryption.org/v1), by the reference
 * implementation: the `age` binary streams stdin -> stdout, so memory stays flat (age works in
 * 64 KiB chunks) whatever the artefact size, and the crypto runs in another process, off the
 * worker's event loop (Go's assembly ChaCha20-Poly1305 is also several times faster than pure JS).
 *
 * Place in the artefact pipeline: source -> hashing (raw) -> gzip -> encrypt -> fan-out to the
 * store writers (whose sha256 is then of the ciphertext).
 *
 * Secrets: recipients are public and go in argv. The identity never does (argv is visible in `ps`)
 * and never touches a file: it is written to an extra stdio channel of a bash that hands it to
 * `age -i` as a process substitution. Node's stdio channels are socketpairs, which
 * `open(/dev/fd/N)` refuses (ENXIO); bash's `<(...)` is a real pipe, which age can open.
 *
 * A decryption error arrives after age may already have written earlier (authenticated) chunks:
 * a consumer must treat a stream error as "discard everything", as `pipeline` does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { Readable, Writable } from 'node:stream';
import { AgeError, AgeUnavailableError, CiphertextCorruptedError, DecryptionFailedError, InvalidKeyError, redactKeys } from './errors';
import { cleanAgeStderr, validateIdentities, validateRecipient, type AgeBinaries } from './keys';

const STDERR_LIMIT = 8 * 1024;
/** bash's "command not found" exit status, seen when the age binary is missing on the decrypt path. */
const EXIT_NOT_FOUND = 127;

/**
 * A Duplex over one `age` child process: what is written goes to its stdin, its stdout is read.
 * It ends only when age exits 0; any other exit destroys it with an error built from age's stderr.
 */
export class AgeStream extends Duplex {
  private readonly child: ChildProcess;
  private stderr = '';

  constructor(
    command: string,
    args: string[],
    private readonly describeFailure: (stderr: string, exitCode: number | null) => Error,
    /** Written to the child's fd 3 and closed (the identity for decryption). */
    secretInput?: string,
  ) {
    super();
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe', secretInput === undefined ? 'ignore' : 'pipe'] });
    const { stdin, stdout, stderr } = this.child as ChildProcess & { stdin: Writable; stdout: Readable; stderr: Readable };
    // A dying child makes its pipes fail (EPIPE, ECONNRESET); its exit status tells the real story.
    stdin.on('error', () => undefined);
    this.child.stdio[3]?.on('error', () => undefined);
    if (secretInput !== undefined) (this.child.stdio[3] as Writable).end(secretInput);
    stdout.on('data', (chunk: Buffer) => {
      if (!this.destroyed && !this.push(chunk)) stdout.pause();
    });
    stderr.setEncoding('utf8');
    stderr.on('data', (text: string) => {
      this.stderr = (this.stderr + text).slice(-STDERR_LIMIT);
    });
    this.child.once('error', (err: NodeJS.ErrnoException) => {
      this.destroy(err.code === 'ENOENT' ? notInstalled(command) : new AgeError(`cannot run ${command}: ${err.message}`));
    });
    // 'close' comes after the child exited and all its output was read.
    this.child.once('close', (exitCode: number | null) => {
      if (this.destroyed) return;
      if (exitCode === 0) this.push(null);
      else this.destroy(this.describeFailure(this.stderr, exitCode));
    });
  }

  /** The age process, for diagnostics (memory sampling in tests, argv checks). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const stdin = this.child.stdin as Writable;
    if (stdin.destroyed) return done(); // child gone: its exit status ends this stream
    if (stdin.write(chunk)) return done();
    const onDrain = () => {
      stdin.off('drain', onDrain);
      stdin.off('close', onDrain);
      done();
    };
    stdin.once('drain', onDrain);
    stdin.once('close', onDrain); // child gone: its exit status ends this stream
  }

  override _final(done: (err?: Error | null) => void): void {
    (this.child.stdin as Writable).end();
    done();
  }

  override _read(): void {
    this.child.stdout?.resume();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // A consumer that gave up (or an error upstream) must not leave age running.
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    done(err);
  }
}

function exitStatus(exitCode: number | null): string {
  return exitCode === null ? 'killed by a signal' : `exit ${exitCode}`;
}

function notInstalled(binary: string): AgeUnavailableError {
  const why = binary === 'bash' ? 'bash hands the identity to age' : 'install the Debian package "age" (scripts/install-deps.sh)';
  return new AgeUnavailableError(`${binary} was not found on this worker: ${why}`);
}

function checkRecipients(recipients: string[]): void {
  if (recipients.length === 0) throw new InvalidKeyError('no encryption recipient: expected at least one age1... recipient');
  recipients.forEach((recipient, index) => {
    const problem = validateRecipient(recipient);
    if (problem) throw new InvalidKeyError(`encryption recipient ${index + 1}: ${problem}`);
  });
}

/**
 * Encrypts to every recipient (any one of their identities can decrypt). Invalid recipients throw
 * here, before anything runs; failures of age itself arrive as a stream error.
 */
export function createEncryptStream(recipients: string[], binaries: AgeBinaries = {}): AgeStream {
  checkRecipients(recipients);
  const age = binaries.age ?? 'age';
  const args = ['--encrypt', ...recipients.flatMap((r) => ['-r', r])];
  return new AgeStream(
    age,
    args,
    (stderr, exitCode) => new AgeError(`age --encrypt failed (${exitStatus(exitCode)}): ${redactKeys(cleanAgeStderr(stderr))}`),
  );
}

/**
 * Decrypts with the identities in `identityText` (the content of the secret reference, see
 * readDecryptionIdentity). A wrong identity fails with DecryptionFailedError, a damaged file with
 * CiphertextCorruptedError, both as stream errors.
 */
export function createDecryptStream(identityText: string, binaries: AgeBinaries = {}): AgeStream {
  const problem = validateIdentities(identityText);
  if (problem) throw new InvalidKeyError(`decryption identity ${problem}`);
  const age = binaries.age ?? 'age';
  // "$0" is the age binary; fd 3 is closed for age once the substitution has it.
  const script = 'exec "$0" --decrypt -i <(cat <&3) 3<&-';
  return new AgeStream('bash', ['-c', script, age], (stderr, exitCode) => decryptFailure(age, stderr, exitCode), identityText);
}

function decryptFailure(age: string, stderr: string, exitCode: number | null): Error {
  const detail = redactKeys(cleanAgeStderr(stderr));
  if (exitCode === EXIT_NOT_FOUND && /not found|No such file/i.test(stderr)) return notInstalled(age);
  if (stderr.includes('no identity matched any of the recipients')) {
    return new DecryptionFailedError(
      'no identity matches any recipient of this file: it was encrypted for other keys ' +
        '(expected the identity of one of the recipients it was encrypted to)',
    );
  }
  if (stderr.includes('failed to decrypt and authenticate payload chunk')) {
    return new CiphertextCorruptedError(
      'the encrypted data failed authentication: it is corrupted, truncated or was changed after encryption',
    );
  }
  if (/failed to read header|parsing age header|header MAC|decrypt header/i.test(stderr)) {
    return new CiphertextCorruptedError(`not a readable age file (expected an age-encryption.org/v1 header): ${detail}`);
  }
  return new AgeError(`age --decrypt failed (${exitStatus(exitCode)}): ${detail}`);
}
