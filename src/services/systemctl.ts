/**
 * systemctl as a client: the systemd service driver and the etcd member repointing (drop-ins,
 * daemon-reload) talk to systemd through it.
 */
import { execFile } from 'node:child_process';

export interface SystemctlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `systemctl <args>` and reports its exit code instead of throwing (e.g. `is-active` answers with it). */
export function runSystemctl(args: string[], timeoutMs = 120_000): Promise<SystemctlResult> {
  return new Promise((resolve, reject) => {
    execFile('systemctl', args, { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(new Error(`could not run systemctl ${args.join(' ')}: ${error.message}`));
        return;
      }
      resolve({ exitCode: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

/** `systemctl <args>`, resolving to its stdout; throws naming the command and its error output when it exits non-zero. */
export async function systemctl(args: string[], timeoutMs = 120_000): Promise<string> {
  const result = await runSystemctl(args, timeoutMs);
  if (result.exitCode !== 0) {
    throw new Error(`systemctl ${args.join(' ')} failed (${result.exitCode}): ${(result.stderr || result.stdout).trim().slice(0, 300)}`);
  }
  return result.stdout;
}
