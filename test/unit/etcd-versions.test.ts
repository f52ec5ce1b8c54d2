/**
 * Which etcd programs nnoe-dr and the world use: the version asked for, the cache the install
 * script fills, the config's etcdBinDir, and what `snapshot status`'s totalKey means per tool.
 */
import { supportsLearners } from '../../src/activities/etcd-restore';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdPrograms } from '../../src/etcd/programs';
import { readSnapshotStatus, snapshotTool, supportsRevisionBump, totalKeyMeaningOf } from '../../src/etcd/snapshot-file';
import { revisionBumpFor } from '../../src/activities/etcd-member';
import { installedEtcd, requestedEtcdVersion } from '../../src/sandbox/etcd-version';

let cache: string;
beforeAll(async () => {
  cache = await mkdtemp(join(tmpdir(), 'etcd-versions-'));
});
afterAll(async () => {
  await rm(cache, { recursive: true, force: true });
});

/** A stand-in tool answering `version` and `snapshot status -w json` like etcdutl/etcdctl of `release`. */
async function fakeTool(binDir: string, name: string, release: string, status: object): Promise<void> {
  await mkdir(binDir, { recursive: true });
  const file = join(binDir, name);
  await writeFile(
    file,
    `#!/bin/sh\nif [ "$1" = version ]; then echo "${name} version: ${release}"; echo "API version: 3"; else echo '${JSON.stringify(status)}'; fi\n`,
  );
  await chmod(file, 0o755);
}

describe('etcd version of the world', () => {
  it('defaults to 3.5 and refuses an unknown version, naming the choices', () => {
    expect(requestedEtcdVersion({})).toBe('3.5');
    expect(requestedEtcdVersion({ NNOE_ETCD_VERSION: '3.6' })).toBe('3.6');
    expect(() => requestedEtcdVersion({ NNOE_ETCD_VERSION: '3.7' })).toThrow(
      'NNOE_ETCD_VERSION=3.7 is not a version the world can run: expected one of 3.4, 3.5, 3.6',
    );
  });

  it('names the version, the missing binary and the install command when a version is not installed', async () => {
    const env = { XDG_CACHE_HOME: cache };
    const binDir = join(cache, 'nnoe-dr', 'etcd', '3.6', 'bin');
    expect(() => installedEtcd('3.6', env)).toThrow(
      `etcd 3.6 is not installed: ${binDir}/etcd is missing; run \`bash scripts/install-etcd.sh 3.6\``,
    );
    await mkdir(binDir, { recursive: true });
    for (const name of ['etcd', 'etcdctl']) await writeFile(join(binDir, name), '');
    expect(() => installedEtcd('3.6', env)).toThrow(`${binDir}/etcdutl is missing`);
    await writeFile(join(binDir, 'etcdutl'), '');
    await writeFile(join(binDir, '..', '.nnoe-dr-stamp'), '3.6.17\n');
    expect(installedEtcd('3.6', env)).toEqual({
      version: '3.6',
      release: '3.6.17',
      binDir,
      etcd: `${binDir}/etcd`,
      etcdctl: `${binDir}/etcdctl`,
      etcdutl: `${binDir}/etcdutl`,
    });
  });
});

describe('etcd programs from the config', () => {
  it('takes etcd/etcdctl from etcdBinDir and etcdutl only where it exists; a dir without etcdctl is an error naming it', async () => {
    const dir34 = join(cache, 'bin34');
    await fakeTool(dir34, 'etcd', '3.4.23', {});
    await expect(async () => etcdPrograms(dir34)).rejects.toThrow(`etcdBinDir ${dir34} holds no etcdctl`);
    await fakeTool(dir34, 'etcdctl', '3.4.23', {});
    expect(etcdPrograms(dir34)).toEqual({ etcd: `${dir34}/etcd`, etcdctl: `${dir34}/etcdctl` });
    expect(snapshotTool(dir34)).toMatchObject({ command: `${dir34}/etcdctl`, env: { ETCDCTL_API: '3' } });
  });

  it("reads snapshot status with etcdutl where present, recording the tool, what totalKey counts and 3.6's storage version", async () => {
    const status = { hash: 1696549950, revision: 6, totalSize: 20480 };
    const dir35 = join(cache, 'bin35');
    const dir36 = join(cache, 'bin36');
    for (const name of ['etcd', 'etcdctl']) await fakeTool(dir35, name, '3.5.16', {});
    await fakeTool(dir35, 'etcdutl', '3.5.16', { ...status, totalKey: 12 });
    for (const name of ['etcd', 'etcdctl']) await fakeTool(dir36, name, '3.6.17', {});
    await fakeTool(dir36, 'etcdutl', '3.6.17', { ...status, totalKey: 1, version: '3.6.0' });
    // The figures are those of one snapshot (two keys written, one deleted) read by the real 3.5 and 3.6 etcdutl.
    expect(await readSnapshotStatus('/x.db', dir35)).toEqual({
      ...status,
      totalKey: 12,
      tool: 'etcdutl 3.5.16',
      totalKeyCounts: 'bucket-entries',
    });
    expect(await readSnapshotStatus('/x.db', dir36)).toEqual({
      ...status,
      totalKey: 1,
      storageVersion: '3.6.0',
      tool: 'etcdutl 3.6.17',
      totalKeyCounts: 'live-keys',
    });
  });

  it('bumps the revision on restore only where the tool can (etcdutl 3.5.10+), and says why not otherwise', () => {
    expect(supportsRevisionBump('etcdctl 3.4.23')).toBe(false);
    expect(supportsRevisionBump('etcdutl 3.5.9')).toBe(false);
    expect(supportsRevisionBump('etcdutl 3.5.10')).toBe(true);
    expect(supportsRevisionBump('etcdutl 3.6.0')).toBe(true);
    expect(revisionBumpFor(1_000_000_000, 'etcdutl 3.5.16')).toEqual({
      used: true,
      by: 1_000_000_000,
      detail: '+1000000000 and compacted (etcdutl 3.5.16 --bump-revision --mark-compacted)',
    });
    expect(revisionBumpFor(1_000_000_000, 'etcdctl 3.4.23')).toEqual({
      used: false,
      by: 0,
      detail: 'etcdctl 3.4.23 has no --bump-revision (etcdutl 3.5.10+ has)',
    });
    expect(revisionBumpFor(0, 'etcdutl 3.6.17')).toMatchObject({ used: false, by: 0, detail: expect.stringMatching(/^off/) });
  });

  it('knows which releases count live keys', () => {
    expect(totalKeyMeaningOf('etcdctl 3.4.23')).toBe('bucket-entries');
    expect(totalKeyMeaningOf('etcdutl 3.5.16')).toBe('bucket-entries');
    expect(totalKeyMeaningOf('etcdutl 3.6.0')).toBe('live-keys');
    expect(totalKeyMeaningOf('etcdutl 3.10.1')).toBe('live-keys');
    expect(() => totalKeyMeaningOf('etcdutl')).toThrow(/expected a tool version like "etcdutl 3.6.17"/);
  });
});

describe('learners', () => {
  it('exist from etcd 3.4 (member add --learner, member promote)', () => {
    expect(['3.3.27', '3.4.23', '3.5.16', '3.6.17', '4.0.0'].map(supportsLearners)).toEqual([false, true, true, true, true]);
  });
});
