/**
 * Service drivers: how nnoe-dr stops and starts a service on a node. `systemd` for production
 * (systemctl), `supervisor` for the sandbox and tests (supervisorctl against one supervisord), the
 * same verbs either way. Run only by node workers, on the node that hosts the service.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ServiceRef } from '../config/schema';

const run = promisify(execFile);

export interface ServiceDriver {
  /** Human name for messages: `supervisor program nnoe-agent-node-1`, `systemd unit nnoe-agent.service`. */
  readonly describe: string;
  /** Stops the service (already stopped is fine); resolves to whether it was running. */
  stop(): Promise<boolean>;
  start(): Promise<void>;
  isRunning(): Promise<boolean>;
  /** The service's main process id, or null when it is not running. */
  pid(): Promise<number | null>;
}

export class ServiceCommandError extends Error {
  override readonly name = 'ServiceCommandError';
}

async function command(file: string, args: string[], what: string): Promise<string> {
  try {
    return (await run(file, args, { timeout: 120_000 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string };
    throw new ServiceCommandError(`${what} failed (${file} ${args.join(' ')} exited ${String(e.code)}): ${(e.stderr || e.stdout || '').trim().slice(0, 300)}`);
  }
}

function supervisorDriver(supervisorConf: string, program: string): ServiceDriver {
  const ctl = (verb: string) => command('supervisorctl', ['-c', supervisorConf, verb, program], `supervisorctl ${verb} ${program}`);
  const isRunning = async (): Promise<boolean> => {
    const out = await run('supervisorctl', ['-c', supervisorConf, 'status', program]).then((r) => r.stdout, (e: { stdout?: string }) => e.stdout ?? '');
    return /\bRUNNING\b/.test(out);
  };
  return {
    describe: `supervisor program ${program}`,
    // supervisorctl exits non-zero for "already stopped/started"; the state afterwards is what matters.
    // No status call first: on a restore's critical path every supervisorctl round trip counts.
    stop: async () => ctl('stop').then(() => true, async (err: unknown) => {
      if (await isRunning()) throw err;
      return false;
    }),
    start: async () => { await ctl('start').catch(async (err: unknown) => { if (!(await isRunning())) throw err; }); },
    isRunning,
    pid: async () => {
      const out = await run('supervisorctl', ['-c', supervisorConf, 'pid', program]).then((r) => r.stdout, () => '');
      const pid = Number(out.trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    },
  };
}

export function serviceDriver(ref: ServiceRef): ServiceDriver {
  if (ref.driver === 'supervisor') return supervisorDriver(ref.supervisorConf, ref.program);
  const unit = ref.unit;
  const isRunning = async () => (await run('systemctl', ['is-active', unit]).then((r) => r.stdout, () => '')).trim() === 'active';
  return {
    describe: `systemd unit ${unit}`,
    stop: async () => {
      const wasRunning = await isRunning();
      await command('systemctl', ['stop', unit], `systemctl stop ${unit}`);
      return wasRunning;
    },
    start: async () => { await command('systemctl', ['start', unit], `systemctl start ${unit}`); },
    isRunning,
    pid: async () => {
      const out = await run('systemctl', ['show', '--property=MainPID', '--value', unit]).then((r) => r.stdout, () => '');
      const pid = Number(out.trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    },
  };
}
