/**
 * The service drivers over the one supervisorctl and one systemctl client (src/services/): the
 * systemd driver against a fake `systemctl` on PATH that records its calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceDriver } from '../../src/services/driver';
import { systemctl } from '../../src/services/systemctl';

let dir: string;
let path: string | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nnoe-systemctl-'));
  // is-active answers from a state file; stop/start change it; `start bad.service` fails like systemd does.
  await writeFile(
    join(dir, 'systemctl'),
    `#!/bin/sh
echo "$*" >> "${dir}/calls"
case "$1" in
  is-active) if [ -f "${dir}/active" ]; then echo active; else echo inactive; exit 3; fi ;;
  stop) rm -f "${dir}/active" ;;
  start) if [ "$2" = bad.service ]; then echo "Job for bad.service failed." >&2; exit 1; fi; touch "${dir}/active" ;;
  show) if [ -f "${dir}/active" ]; then echo 4242; else echo 0; fi ;;
esac
`,
  );
  await chmod(join(dir, 'systemctl'), 0o755);
  path = process.env.PATH;
  process.env.PATH = `${dir}:${path ?? ''}`;
});
afterAll(async () => {
  process.env.PATH = path;
  await rm(dir, { recursive: true, force: true });
});

describe('the systemd service driver', () => {
  it('stops, starts and reads the main pid through systemctl', async () => {
    const agent = serviceDriver({ driver: 'systemd', unit: 'nnoe-agent.service' });
    expect(agent.describe).toBe('systemd unit nnoe-agent.service');
    await agent.start();
    expect(await agent.isRunning()).toBe(true);
    expect(await agent.pid()).toBe(4242);
    expect(await agent.stop()).toBe(true);
    expect(await agent.isRunning()).toBe(false);
    expect(await agent.pid()).toBeNull();
    expect(await agent.stop()).toBe(false);
    expect((await readFile(join(dir, 'calls'), 'utf8')).trim().split('\n')).toEqual([
      'start nnoe-agent.service',
      'is-active nnoe-agent.service',
      'show --property=MainPID --value nnoe-agent.service',
      'is-active nnoe-agent.service',
      'stop nnoe-agent.service',
      'is-active nnoe-agent.service',
      'show --property=MainPID --value nnoe-agent.service',
      'is-active nnoe-agent.service',
      'stop nnoe-agent.service',
    ]);
  });

  it('names the command and its error output when systemctl fails', async () => {
    await expect(serviceDriver({ driver: 'systemd', unit: 'bad.service' }).start()).rejects.toThrow(
      'systemctl start bad.service failed (systemctl start bad.service exited 1): Job for bad.service failed.',
    );
    await expect(systemctl(['start', 'bad.service'])).rejects.toThrow(
      'systemctl start bad.service failed (1): Job for bad.service failed.',
    );
  });
});
