/**
 * Service drivers: how nnoe-dr stops and starts a service on a node. `systemd` for production
 * (systemctl), `supervisor` for the sandbox and tests (supervisorctl against one supervisord), the
 * same verbs either way. Run only by node workers, on the node that hosts the service.
 */
import type { ServiceRef } from '../config/schema';
import { runSupervisorctl } from './supervisorctl';
import { runSystemctl } from './systemctl';

/** Stop/start may wait for a slow service to go down or come up. */
const ACTION_TIMEOUT_MS = 120_000;

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

/** The command's stdout; a ServiceCommandError naming it and its output when it exits non-zero. */
function checked(what: string, command: string, result: { exitCode: number; stdout: string; stderr: string }): string {
  if (result.exitCode === 0) return result.stdout;
  throw new ServiceCommandError(
    `${what} failed (${command} exited ${result.exitCode}): ${(result.stderr || result.stdout).trim().slice(0, 300)}`,
  );
}

function supervisorDriver(supervisorConf: string, program: string): ServiceDriver {
  const ctl = async (verb: string) =>
    checked(
      `supervisorctl ${verb} ${program}`,
      `supervisorctl -c ${supervisorConf} ${verb} ${program}`,
      await runSupervisorctl(supervisorConf, [verb, program], ACTION_TIMEOUT_MS),
    );
  const isRunning = async (): Promise<boolean> =>
    /\bRUNNING\b/.test((await runSupervisorctl(supervisorConf, ['status', program]).catch(() => null))?.stdout ?? '');
  return {
    describe: `supervisor program ${program}`,
    // supervisorctl exits non-zero for "already stopped/started"; the state afterwards is what matters.
    // No status call first: on a restore's critical path every supervisorctl round trip counts.
    stop: async () =>
      ctl('stop').then(
        () => true,
        async (err: unknown) => {
          if (await isRunning()) throw err;
          return false;
        },
      ),
    start: async () => {
      await ctl('start').catch(async (err: unknown) => {
        if (!(await isRunning())) throw err;
      });
    },
    isRunning,
    pid: async () => pidOf((await runSupervisorctl(supervisorConf, ['pid', program]).catch(() => null))?.stdout),
  };
}

function pidOf(text: string | undefined): number | null {
  const pid = Number((text ?? '').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export function serviceDriver(ref: ServiceRef): ServiceDriver {
  if (ref.driver === 'supervisor') return supervisorDriver(ref.supervisorConf, ref.program);
  const unit = ref.unit;
  const ctl = async (verb: string) =>
    checked(`systemctl ${verb} ${unit}`, `systemctl ${verb} ${unit}`, await runSystemctl([verb, unit], ACTION_TIMEOUT_MS));
  const isRunning = async () => (await runSystemctl(['is-active', unit]).catch(() => null))?.stdout.trim() === 'active';
  return {
    describe: `systemd unit ${unit}`,
    stop: async () => {
      const wasRunning = await isRunning();
      await ctl('stop');
      return wasRunning;
    },
    start: async () => {
      await ctl('start');
    },
    isRunning,
    pid: async () => pidOf((await runSystemctl(['show', '--property=MainPID', '--value', unit]).catch(() => null))?.stdout),
  };
}
