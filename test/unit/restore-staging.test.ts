/** A finished restore leaves no empty `restore/<set>/` directory behind. */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeRestoreStaging, restoreStagingDir } from '../../src/restore/staging';

let workDir: string | undefined;
afterEach(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('restore staging', () => {
  it('removes the set dir with its last part, not while another part still stages there', async () => {
    workDir = await mkdtemp(join(tmpdir(), 'nnoe-staging-'));
    for (const part of ['etcd-1', 'phpipam']) {
      await mkdir(restoreStagingDir(workDir, 'set-1', part), { recursive: true });
      await writeFile(join(restoreStagingDir(workDir, 'set-1', part), 'x'), 'staged');
    }
    await removeRestoreStaging(workDir, 'set-1', 'etcd-1');
    expect(await readdir(join(workDir, 'restore', 'set-1'))).toEqual(['phpipam']);
    await removeRestoreStaging(workDir, 'set-1', 'phpipam');
    expect(await readdir(join(workDir, 'restore'))).toEqual([]);
    await removeRestoreStaging(workDir, 'set-1', 'phpipam'); // again: nothing to do, no error
  });
});
