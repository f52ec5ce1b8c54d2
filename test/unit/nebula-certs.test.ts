/**
 * Nebula certificate checks (src/nebula/certs.ts) with the real nebula-cert / nebula 1.6 CLIs,
 * on files made by the sandbox generator (src/sandbox/nebula.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NebulaCertError,
  checkNebulaConfig,
  describeNebulaCert,
  describeNebulaCerts,
  enforceNebulaModes,
  verifyHostCert,
} from '../../src/nebula/certs';
import { generateNebulaNode } from '../../src/sandbox/nebula';

let base: string;
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'nnoe-dr-nebula-test-'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const modeOf = async (path: string) => (await lstat(path)).mode & 0o7777;

async function rejection(promise: Promise<unknown>): Promise<NebulaCertError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(NebulaCertError);
  return error as NebulaCertError;
}

describe('generateNebulaNode', () => {
  it('makes a node dir with its own CA, runbook modes, and a config nebula accepts', async () => {
    const node = await generateNebulaNode(join(base, 'node-1'), { name: 'node-1', ip: '10.42.0.1/24', groups: ['agents'] });
    expect(node.caKey).toBe(join(base, 'node-1', 'ca.key'));
    expect(await modeOf(node.hostKey)).toBe(0o600);
    expect(await modeOf(node.caKey)).toBe(0o600);
    expect(await modeOf(node.config)).toBe(0o600);
    expect(await modeOf(node.hostCrt)).toBe(0o644);
    expect(await modeOf(node.caCrt)).toBe(0o644);
    expect(await readFile(node.config, 'utf8')).toContain(`key: ${node.hostKey}`);
    await expect(verifyHostCert({ caCrt: node.caCrt, hostCrt: node.hostCrt })).resolves.toEqual({ ok: true });
    await expect(checkNebulaConfig(node.config)).resolves.toEqual({ ok: true });
  });

  it('signs every node with the shared CA in caDir and leaves its key out of the node dirs', async () => {
    const caDir = join(base, 'ca');
    const a = await generateNebulaNode(join(base, 'a'), { name: 'a', ip: '10.42.0.1/24', caDir });
    const b = await generateNebulaNode(join(base, 'b'), { name: 'b', ip: '10.42.0.2/24', caDir });
    expect(existsSync(join(base, 'a', 'ca.key'))).toBe(false);
    expect(a.caKey).toBe(join(caDir, 'ca.key'));
    expect(await readFile(a.caCrt, 'utf8')).toBe(await readFile(b.caCrt, 'utf8'));
    await expect(verifyHostCert({ caCrt: a.caCrt, hostCrt: b.hostCrt })).resolves.toEqual({ ok: true });
  });
});

describe('verifyHostCert', () => {
  it("refuses a host certificate signed by another CA, naming both files and nebula-cert's reason", async () => {
    const ours = await generateNebulaNode(join(base, 'ours'), { name: 'node-1', ip: '10.42.0.1/24' });
    const theirs = await generateNebulaNode(join(base, 'theirs'), { name: 'node-1', ip: '10.42.0.1/24' });
    const error = await rejection(verifyHostCert({ caCrt: ours.caCrt, hostCrt: theirs.hostCrt }));
    expect(error.files).toEqual([ours.caCrt, theirs.hostCrt]);
    expect(error.message).toContain(ours.caCrt);
    expect(error.message).toContain(theirs.hostCrt);
    expect(error.message).toMatch(/could not find ca for the certificate/);
  });

  it('accepts a CA bundle holding the signing CA (rotation)', async () => {
    const old = await generateNebulaNode(join(base, 'old'), { name: 'n', ip: '10.42.0.1/24' });
    const next = await generateNebulaNode(join(base, 'next'), { name: 'n', ip: '10.42.0.1/24' });
    const bundle = join(base, 'bundle.crt');
    await writeFile(bundle, (await readFile(old.caCrt, 'utf8')) + (await readFile(next.caCrt, 'utf8')));
    await expect(verifyHostCert({ caCrt: bundle, hostCrt: next.hostCrt })).resolves.toEqual({ ok: true });
    expect((await describeNebulaCerts(bundle)).map((c) => c.isCA)).toEqual([true, true]);
    await expect(describeNebulaCert(bundle)).rejects.toThrow(/holds 2 certificates; expected exactly one/);
  });

  it('names a missing file and a missing binary', async () => {
    const node = await generateNebulaNode(join(base, 'n'), { name: 'n', ip: '10.42.0.1/24' });
    const missing = join(base, 'n', 'nope.crt');
    const error = await rejection(verifyHostCert({ caCrt: node.caCrt, hostCrt: missing }));
    expect(error.message).toMatch(/unable to read crt; open .*nope\.crt: no such file/);
    const noTool = await rejection(
      verifyHostCert({ caCrt: node.caCrt, hostCrt: node.hostCrt }, { nebulaCert: join(base, 'no-nebula-cert') }),
    );
    expect(noTool.message).toMatch(/no-nebula-cert not found on this worker/);
  });
});

describe('checkNebulaConfig', () => {
  it('refuses a host.key that is not the pair of host.crt', async () => {
    const caDir = join(base, 'ca');
    const a = await generateNebulaNode(join(base, 'a'), { name: 'a', ip: '10.42.0.1/24', caDir });
    const b = await generateNebulaNode(join(base, 'b'), { name: 'b', ip: '10.42.0.2/24', caDir });
    await copyFile(b.hostKey, a.hostKey); // a restore that mixed two nodes' files
    const error = await rejection(checkNebulaConfig(a.config));
    expect(error.files).toEqual([a.config]);
    expect(error.message).toMatch(/private key is not a pair with public key/);
  });
});

describe('enforceNebulaModes', () => {
  it('sets keys and config.yml to 0600 and certificates to 0644, reporting each change once', async () => {
    const node = await generateNebulaNode(join(base, 'n'), { name: 'n', ip: '10.42.0.1/24' });
    const notes = join(node.dir, 'README');
    await writeFile(notes, 'not nebula');
    for (const file of [node.caCrt, node.caKey, node.hostCrt, node.hostKey, node.config, notes]) await chmod(file, 0o777);
    // A symlink named like a key is not followed (chmod would change its target).
    const outside = join(base, 'outside.txt');
    await writeFile(outside, 'x');
    await chmod(outside, 0o666);
    await symlink(outside, join(node.dir, 'link.key'));

    const changes = await enforceNebulaModes(node.dir);
    expect(changes).toEqual([
      { file: node.caCrt, from: 0o777, to: 0o644 },
      { file: node.caKey, from: 0o777, to: 0o600 },
      { file: node.config, from: 0o777, to: 0o600 },
      { file: node.hostCrt, from: 0o777, to: 0o644 },
      { file: node.hostKey, from: 0o777, to: 0o600 },
    ]);
    expect(await modeOf(node.hostKey)).toBe(0o600);
    expect(await modeOf(node.hostCrt)).toBe(0o644);
    expect(await modeOf(node.config)).toBe(0o600);
    expect(await modeOf(notes)).toBe(0o777);
    expect(await modeOf(outside)).toBe(0o666);
    expect(await enforceNebulaModes(node.dir)).toEqual([]);
  });
});

describe('describeNebulaCert', () => {
  it('reads name, groups, addresses, issuer, validity and CA-ness', async () => {
    const node = await generateNebulaNode(join(base, 'n'), { name: 'agent-1', ip: '10.42.0.7/24', groups: ['agents', 'dns'] });
    const ca = await describeNebulaCert(node.caCrt);
    const host = await describeNebulaCert(node.hostCrt);
    expect(ca).toMatchObject({ name: 'nnoe-local nebula ca', isCA: true, issuer: '', groups: [] });
    expect(host).toMatchObject({ name: 'agent-1', isCA: false, groups: ['agents', 'dns'], ips: ['10.42.0.7/24'], issuer: ca.fingerprint });
    expect(Date.parse(host.notAfter)).toBeGreaterThan(Date.now());
    expect(Date.parse(host.notAfter)).toBeLessThanOrEqual(Date.parse(ca.notAfter));
    expect(host.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names an unreadable file', async () => {
    const notACert = join(base, 'garbage.crt');
    await writeFile(notACert, 'hello');
    const error = await rejection(describeNebulaCert(notACert));
    expect(error.files).toEqual([notACert]);
    expect(error.message).toContain(`cannot read Nebula certificate ${notACert}`);
  });
});
