/**
 * The worker entry point as operators run it: node mode polls its own queue and shuts down
 * cleanly on SIGTERM; a bad config stops it at once with the bad path named.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inject } from 'vitest';
import { tempDir } from './support/harness';

const repoRoot = join(__dirname, '..');

function runWorker(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker.ts', ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, exit, output: () => out };
}

describe('worker entry point', () => {
  it('runs in node mode on the node queue and exits 0 on SIGTERM', async () => {
    const worker = runWorker(['--config', inject('world').configPath, '--node', 'node-2']);
    const deadline = Date.now() + 60_000;
    while (!worker.output().includes('polling') && Date.now() < deadline && worker.child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(worker.output()).toContain('nnoe-dr worker (node node-2) polling nnoe-dr.node.node-2');
    worker.child.kill('SIGTERM');
    expect(await worker.exit).toBe(0);
  });

  it('refuses a node that no member names', async () => {
    const worker = runWorker(['--config', inject('world').configPath, '--node', 'node-9']);
    expect(await worker.exit).toBe(1);
    expect(worker.output()).toContain(
      'node "node-9" is not named by any etcd member, agent or Nebula node in the config (expected one of: node-1, node-2, node-3)',
    );
  });

  it('stops at once on an invalid config, naming the bad path', async () => {
    const dir = await tempDir('worker-config');
    try {
      const config = join(dir.path, 'bad.yaml');
      await writeFile(config, 'workDir: relative/path\nclusters: []\nstorage: [{ name: local, type: local, path: /tmp/x }]\n');
      const worker = runWorker(['--config', config]);
      expect(await worker.exit).toBe(1);
      expect(worker.output()).toContain(`invalid configuration ${config}`);
      expect(worker.output()).toContain('workDir: expected an absolute directory path');
      expect(worker.output()).toContain('clusters: expected at least one cluster');
    } finally {
      await dir.remove();
    }
  });
});
