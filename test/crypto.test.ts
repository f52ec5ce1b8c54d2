/**
 * Encryption at rest (src/crypto): age format through the `age` binary. Needs Debian's `age`
 * package (scripts/install-deps.sh); does not use the shared world.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AgeUnavailableError,
  CiphertextCorruptedError,
  DecryptionFailedError,
  InvalidKeyError,
  createDecryptStream,
  createEncryptStream,
  generateIdentity,
  identityToRecipients,
  readDecryptionIdentity,
  validateIdentities,
  validateRecipient,
  type AgeStream,
} from '../src/crypto';
import { HashingStream } from '../src/storage/hashing';

const MiB = 1024 * 1024;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function encrypt(plaintext: Buffer, recipients: string[]): Promise<Buffer> {
  const encrypting = createEncryptStream(recipients);
  const [, out] = await Promise.all([pipeline(Readable.from([plaintext]), encrypting), collect(encrypting)]);
  return out;
}

async function decrypt(ciphertext: Buffer, identity: string): Promise<Buffer> {
  const decrypting = createDecryptStream(identity);
  const sink = new PassThrough();
  const [, out] = await Promise.all([pipeline(Readable.from([ciphertext]), decrypting, sink), collect(sink)]);
  return out;
}

/** `total` random bytes in 1 MiB chunks, made as they are read. */
function randomSource(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(MiB, total - sent);
      sent += size;
      this.push(randomFillSync(Buffer.allocUnsafe(size)));
    },
  });
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

/** Resident memory of a process in bytes (0 once it is gone). */
function rssOf(pid: number | undefined): number {
  try {
    const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return Number(kib ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function isRunning(pid: number | undefined): boolean {
  try {
    process.kill(pid as number, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let dir: string;
let alice: { identity: string; recipient: string };
let bob: { identity: string; recipient: string };
let mallory: { identity: string; recipient: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-crypto-'));
  [alice, bob, mallory] = await Promise.all([generateIdentity(), generateIdentity(), generateIdentity()]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keys', () => {
  it('generates X25519 key pairs whose recipient age-keygen derives from the identity', async () => {
    expect(alice.identity).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(alice.recipient).toMatch(/^age1[0-9a-z]{58}$/);
    expect(await identityToRecipients(alice.identity)).toEqual([alice.recipient]);
    expect(await identityToRecipients(`# two keys\n${alice.identity}\n\n${bob.identity}\n`)).toEqual([alice.recipient, bob.recipient]);
  });

  it('validates recipients without repeating them', () => {
    expect(validateRecipient(alice.recipient)).toBeUndefined();
    const typo = alice.recipient.slice(0, 10) + (alice.recipient[10] === 'q' ? 'p' : 'q') + alice.recipient.slice(11);
    expect(validateRecipient(typo)).toMatch(/wrong checksum/);
    expect(validateRecipient(alice.recipient.slice(0, -3))).toMatch(/expected an age X25519 recipient/);
    expect(validateRecipient(alice.recipient.toUpperCase())).toMatch(/expected an age X25519 recipient/);
    expect(validateRecipient('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO')).toMatch(/expected an age X25519 recipient/);
    const pasted = validateRecipient(alice.identity);
    expect(pasted).toMatch(/secret identity .* not a recipient/);
    expect(pasted).not.toContain(alice.identity.slice(16));
  });

  it('validates identity files (comments, several keys) without repeating them', () => {
    expect(validateIdentities(alice.identity)).toBeUndefined();
    expect(validateIdentities(`# created: today\n# public key: ${alice.recipient}\n${alice.identity}\n${bob.identity}\n`)).toBeUndefined();
    expect(validateIdentities('# nothing here\n')).toMatch(/holds no identity/);
    const broken = `# key\n${alice.identity.slice(0, -1)}`;
    const problem = validateIdentities(broken);
    expect(problem).toMatch(/^line 2 .*expected age X25519 identities/);
    expect(problem).not.toContain(alice.identity.slice(16, -1));
    expect(validateIdentities(alice.recipient)).toMatch(/line 1 is not an X25519 secret key/);
  });

  it('reads the identity only from a secret reference, naming where it lives on error', async () => {
    const file = join(dir, 'identity.txt');
    await writeFile(file, `# nnoe-dr backups\n${alice.identity}\n`, { mode: 0o600 });
    expect(await readDecryptionIdentity({ file })).toContain(alice.identity);
    process.env.NNOE_DR_TEST_AGE_IDENTITY = 'AGE-SECRET-KEY-1NOTAKEY';
    try {
      const err = await readDecryptionIdentity({ env: 'NNOE_DR_TEST_AGE_IDENTITY' }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(InvalidKeyError);
      expect((err as Error).message).toMatch(/^decryption identity in environment variable NNOE_DR_TEST_AGE_IDENTITY: line 1 /);
      expect((err as Error).message).not.toContain('NOTAKEY');
    } finally {
      delete process.env.NNOE_DR_TEST_AGE_IDENTITY;
    }
    await expect(readDecryptionIdentity({ file: join(dir, 'missing') })).rejects.toThrow(/cannot be read \(ENOENT\)/);
  });

  it('refuses bad recipients and identities before starting age', () => {
    expect(() => createEncryptStream([])).toThrow(/no encryption recipient: expected at least one age1/);
    expect(() => createEncryptStream([alice.recipient, 'age1nope'])).toThrow(/encryption recipient 2: expected an age X25519 recipient/);
    expect(() => createDecryptStream('')).toThrow(InvalidKeyError);
  });
});

describe('encrypt and decrypt streams', () => {
  it('round-trips 256 MiB of random data with flat memory', async () => {
    const total = 256 * MiB;
    const plain = new HashingStream();
    const cipher = new HashingStream();
    const restored = new HashingStream();
    const encrypting = createEncryptStream([alice.recipient]);
    const decrypting = createDecryptStream(alice.identity);
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    const peak = { node: 0, encrypt: 0, decrypt: 0 };
    const sampler = setInterval(() => {
      peak.node = Math.max(peak.node, process.memoryUsage().rss - baseline);
      peak.encrypt = Math.max(peak.encrypt, rssOf(encrypting.pid));
      peak.decrypt = Math.max(peak.decrypt, rssOf(decrypting.pid));
    }, 25);
    try {
      await pipeline(randomSource(total), plain, encrypting, cipher, decrypting, restored, discard());
    } finally {
      clearInterval(sampler);
    }
    expect(restored.bytes).toBe(total);
    expect(restored.digestHex()).toBe(plain.digestHex());
    // age's payload: 16 bytes of tag per 64 KiB chunk, plus a header of a few hundred bytes.
    expect(cipher.bytes - total - (total / (64 * 1024)) * 16).toBeGreaterThan(0);
    expect(cipher.bytes - total - (total / (64 * 1024)) * 16).toBeLessThan(1024);
    // Buffering the input anywhere would cost >= 256 MiB; a streaming pipeline holds a few chunks.
    expect(peak.node).toBeLessThan(96 * MiB);
    expect(peak.encrypt).toBeGreaterThan(0);
    expect(peak.encrypt).toBeLessThan(64 * MiB);
    expect(peak.decrypt).toBeLessThan(64 * MiB);
  });

  it('encrypts an empty input to a valid file', async () => {
    const ciphertext = await encrypt(Buffer.alloc(0), [alice.recipient]);
    expect(ciphertext.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect((await decrypt(ciphertext, alice.identity)).length).toBe(0);
  });

  it('encrypts to two recipients: either identity decrypts, a third does not', async () => {
    const plaintext = randomFillSync(Buffer.alloc(200_000));
    const ciphertext = await encrypt(plaintext, [alice.recipient, bob.recipient]);
    expect((await decrypt(ciphertext, alice.identity)).equals(plaintext)).toBe(true);
    expect((await decrypt(ciphertext, bob.identity)).equals(plaintext)).toBe(true);
    // An identity file holding a wrong key and a right one (a key rotation) decrypts too.
    expect((await decrypt(ciphertext, `${mallory.identity}\n${bob.identity}\n`)).equals(plaintext)).toBe(true);
    await expect(decrypt(ciphertext, mallory.identity)).rejects.toBeInstanceOf(DecryptionFailedError);
  });

  it('refuses a wrong identity with DecryptionFailedError, naming the problem but not the key', async () => {
    const ciphertext = await encrypt(Buffer.from('etcd snapshot'), [alice.recipient]);
    const err = await decrypt(ciphertext, mallory.identity).catch((e: Error) => e);
    expect(err).toBeInstanceOf(DecryptionFailedError);
    expect((err as Error).message).toMatch(/^no identity matches any recipient of this file/);
    expect((err as Error).message).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]/);
  });

  it('refuses flipped, truncated and foreign bytes with CiphertextCorruptedError', async () => {
    const plaintext = randomFillSync(Buffer.alloc(300_000));
    const ciphertext = await encrypt(plaintext, [alice.recipient]);
    const flipped = Buffer.from(ciphertext);
    flipped[flipped.length - 1000]! ^= 0x01;
    const macLine = ciphertext.indexOf('\n--- ') + 5;
    const badMac = Buffer.from(ciphertext);
    badMac[macLine + 2] = badMac[macLine + 2] === 0x41 ? 0x42 : 0x41; // another valid base64 character
    const cases: Array<[string, Buffer, RegExp]> = [
      ['flipped payload byte', flipped, /failed authentication/],
      ['truncated', ciphertext.subarray(0, ciphertext.length - 70_000), /failed authentication/],
      ['header MAC changed', badMac, /not a readable age file.*header MAC/],
      ['not an age file', Buffer.from('gzip? no, just text\n'.repeat(50)), /not a readable age file/],
      ['empty', Buffer.alloc(0), /not a readable age file/],
    ];
    for (const [what, bytes, message] of cases) {
      const err = await decrypt(bytes, alice.identity).catch((e: Error) => e);
      expect(err, what).toBeInstanceOf(CiphertextCorruptedError);
      expect((err as Error).message, what).toMatch(message);
    }
  });

  it('stops age when the consumer gives up, without hanging', async () => {
    const decrypting = createDecryptStream(alice.identity);
    const encrypting = createEncryptStream([alice.recipient]);
    let seen = 0;
    const failingSink = new Writable({
      write(chunk: Buffer, _enc, done) {
        seen += chunk.length;
        done(seen > 4 * MiB ? new Error('disk full') : null);
      },
    });
    await expect(pipeline(randomSource(64 * MiB), encrypting, decrypting, failingSink)).rejects.toThrow('disk full');
    await waitUntil(() => !isRunning(encrypting.pid) && !isRunning(decrypting.pid), 'both age processes exited');
  });

  it('reports a missing age binary clearly', async () => {
    const encrypting = createEncryptStream([alice.recipient], { age: '/nonexistent/age' });
    await expect(pipeline(Readable.from([Buffer.from('x')]), encrypting, discard())).rejects.toBeInstanceOf(AgeUnavailableError);
    const decrypting = createDecryptStream(alice.identity, { age: '/nonexistent/age' });
    const err = await pipeline(Readable.from([Buffer.from('x')]), decrypting, discard()).catch((e: Error) => e);
    expect(err).toBeInstanceOf(AgeUnavailableError);
    expect((err as Error).message).toMatch(/install the Debian package "age"/);
  });

  it('never puts the identity in argv or the environment of the process', async () => {
    const decrypting = createDecryptStream(alice.identity) as AgeStream;
    const input = new PassThrough();
    const done = pipeline(input, decrypting, discard()).catch((e: Error) => e);
    // Look at bash before and age after its exec (same pid), while it waits for input.
    await waitUntil(() => readFileSync(`/proc/${decrypting.pid}/cmdline`, 'utf8').startsWith('age'), 'age has replaced bash', 5000).catch(
      () => undefined,
    );
    const cmdline = readFileSync(`/proc/${decrypting.pid}/cmdline`, 'utf8');
    const environ = readFileSync(`/proc/${decrypting.pid}/environ`, 'utf8');
    expect(cmdline).toContain('--decrypt');
    expect(cmdline).not.toContain('AGE-SECRET-KEY');
    expect(environ).not.toContain('AGE-SECRET-KEY');
    input.end(await encrypt(Buffer.from('hello'), [alice.recipient]));
    expect(await done).toBeUndefined();
  });
});

describe('interoperability with the age reference CLI', () => {
  async function identityFile(identity: string): Promise<string> {
    const file = join(dir, `cli-${Math.random().toString(36).slice(2)}.key`);
    await writeFile(file, `${identity}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    return file;
  }

  function ageCli(args: string[], input: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const child = execFile('age', args, { encoding: 'buffer', maxBuffer: 64 * MiB }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      );
      child.stdin?.end(input);
    });
  }

  it('age -d decrypts what we encrypt', async () => {
    const plaintext = randomFillSync(Buffer.alloc(3 * MiB + 17));
    const ciphertext = await encrypt(plaintext, [alice.recipient, bob.recipient]);
    expect((await ageCli(['-d', '-i', await identityFile(bob.identity)], ciphertext)).equals(plaintext)).toBe(true);
  });

  it('we decrypt what age -r encrypts, binary and armored', async () => {
    const plaintext = randomFillSync(Buffer.alloc(MiB + 5));
    for (const armor of [[], ['-a']]) {
      const ciphertext = await ageCli(['-r', alice.recipient, ...armor], plaintext);
      expect((await decrypt(ciphertext, alice.identity)).equals(plaintext)).toBe(true);
    }
  });

  it('decrypts a fixed file made by age 1.1.1 (the format does not drift)', async () => {
    // Test-only key pair and file, made with: age-keygen; printf ... | age -a -r <recipient>
    const identity = 'AGE-SECRET-KEY-1S2YCJ8J3RJUFN8LNF35WEM4RQRL528RCZEMP6EKQAYVWRV9KG9QQR2XDPW';
    const armored = [
      '-----BEGIN AGE ENCRYPTED FILE-----',
      'YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBIVCtBWXhGakFPRnBSL01v',
      'b1dlK1dmekV0UjV5QXhxT25aOG15Tzl4S0drCnNMT3N4emY3amo4Y1ZGUnZYSjBv',
      'azFOU3RpMDh4OTRpOXlJMmxyMkFXWTAKLS0tIHUra0psdUlLT2xlSytKQ1EzNFFn',
      'MTR2dFI2MGdSRFhKMU1mNi9hU2NidTQKjppeOfXk2Z0419NOM4WDT8Mk8HPhx7LW',
      'fq3dx8pWqmCATVDVEzjeen+lDZsWcnbuImiWMY+Pqvs=',
      '-----END AGE ENCRYPTED FILE-----',
      '',
    ].join('\n');
    expect(await identityToRecipients(identity)).toEqual(['age1ln8qgw97tcj66q6e3x96s9qvc424898v54nrf89jcel0erphteds6uv6dx']);
    expect((await decrypt(Buffer.from(armored), identity)).toString()).toBe('nnoe-dr age test vector\n');
  });
});

describe('pipeline placement', () => {
  it('sits between gzip and the store writers: hashes of raw and stored bytes both hold', async () => {
    const { createGzip, createGunzip } = await import('node:zlib');
    const raw = new HashingStream();
    const stored = new HashingStream();
    const storedBytes: Buffer[] = [];
    const keep = new Transform({
      transform(chunk, _enc, done) {
        storedBytes.push(chunk as Buffer);
        done(null, chunk);
      },
    });
    await pipeline(randomSource(2 * MiB), raw, createGzip(), createEncryptStream([alice.recipient]), stored, keep, discard());
    const back = new HashingStream();
    await pipeline(Readable.from(storedBytes), createDecryptStream(alice.identity), createGunzip(), back, discard());
    expect(back.digestHex()).toBe(raw.digestHex());
    expect(stored.bytes).toBe(Buffer.concat(storedBytes).length);
  });
});
