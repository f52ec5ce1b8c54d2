/**
 * supervisorctl as a client: the supervisor service driver and the etcd member repointing talk to
 * a supervisord through it, in the sandbox and on hosts that run NNOE under supervisord alike.
 */
import { execFile } from 'node:child_process';

export const SUPERVISORCTL_BINARY = '/usr/bin/supervisorctl';

/** supervisord reads its config with Python's ConfigParser: `%` must be doubled. */
export function escapePercent(value: string): string {
  return value.replace(/%/g, '%%');
}

/** Quotes one argv element for supervisord's shlex-based `command=` parsing. */
export function quoteArg(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return escapePercent(arg);
  return escapePercent(`'${arg.replace(/'/g, `'"'"'`)}'`);
}

export interface SupervisorctlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs supervisorctl and reports its exit code instead of throwing. */
export function runSupervisorctl(supervisorConfPath: string, args: string[], timeoutMs = 60_000): Promise<SupervisorctlResult> {
  return new Promise((resolve, reject) => {
    execFile(SUPERVISORCTL_BINARY, ['-c', supervisorConfPath, ...args], { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`could not run ${SUPERVISORCTL_BINARY} ${args.join(' ')}: ${error.message}`));
        return;
      }
      resolve({ exitCode: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

/** supervisorctl `status` exits 3 when some program is not RUNNING; that is an answer, not a failure. */
const STATUS_SOME_NOT_RUNNING = 3;

/**
 * `supervisorctl -c <conf> <args...>`, resolving to its stdout. Throws if it
 * exits non-zero (supervisorctl 4 does so when an action fails, e.g. starting
 * a program that exits at once), except `status`, whose exit code 3 only means
 * that not every program is running.
 */
export async function supervisorctl(supervisorConfPath: string, ...args: string[]): Promise<string> {
  const result = await runSupervisorctl(supervisorConfPath, args);
  const isStatusAnswer = args[0] === 'status' && result.exitCode === STATUS_SOME_NOT_RUNNING;
  if (result.exitCode !== 0 && !isStatusAnswer) {
    throw new Error(
      `supervisorctl -c ${supervisorConfPath} ${args.join(' ')} exited ${result.exitCode}: ` + `${(result.stdout + result.stderr).trim()}`,
    );
  }
  return result.stdout;
}

export type ProgramState = 'STOPPED' | 'STARTING' | 'RUNNING' | 'BACKOFF' | 'STOPPING' | 'EXITED' | 'FATAL' | 'UNKNOWN';

/** Program name -> state, parsed from `supervisorctl status`. */
export async function programStates(supervisorConfPath: string): Promise<Record<string, ProgramState>> {
  const output = await supervisorctl(supervisorConfPath, 'status');
  const states: Record<string, ProgramState> = {};
  for (const line of output.split('\n')) {
    const match = /^(\S+)\s+([A-Z]+)/.exec(line);
    if (match) states[match[1] as string] = match[2] as ProgramState;
  }
  return states;
}
