#!/usr/bin/env node
/**
 * nnoe-dr: the operator's CLI. A thin layer: parse, call the client helpers or the catalog, print.
 * Every command has --json for scripts; exit code 0 = success, 1 = the run or check failed,
 * 2 = bad usage or configuration.
 */
import { Command } from 'commander';
import { ConfigError, defaultConfigPath, loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { BackupSetNotFoundError } from '../catalog/catalog';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { connectClient, followRun, RunFailedError } from './temporal';
import { transferPrinter } from './transfer-progress';
import { registerAgentCommands } from './cli-agents';
import { registerBackupCommands } from './cli-backup';
import { registerBackupsCommands } from './cli-backups';
import { registerCaptureCommands } from './cli-capture';
import type { CliContext } from './cli-context';
import { registerRestoreCommands } from './cli-restore';
import { registerScheduleCommands } from './cli-schedules';
import { registerStatusCommand } from './cli-status';
import { chooseCluster, UsageError } from './cli-input';

interface GlobalOptions {
  config?: string;
  json?: boolean;
}

/** The parsed program plus the exit code its actions decided on (a failed verification is not an exception). */
export function buildCli(out: (line: string) => void = console.log): { program: Command; outcome: { exitCode: number } } {
  const outcome = { exitCode: 0 };
  const program = new Command('nnoe-dr')
    .description('Backup, restore and disaster recovery for NNOE (etcd, phpIPAM, agents, Nebula) as Temporal workflows')
    .option('-c, --config <file>', 'configuration file (default: $NNOE_DR_CONFIG or ./nnoe-dr.yaml)')
    .option('--json', 'machine-readable output')
    .showHelpAfterError()
    // Before any subcommand is added (they inherit it): usage errors throw, main() turns them into exit 2.
    .exitOverride();

  let loaded: Config | undefined;
  /** Loaded once: actions check names against it before they connect. */
  const config = (): Config => (loaded ??= loadConfig(program.opts<GlobalOptions>().config ?? defaultConfigPath()));
  /** --cluster checked against the config; `destructive` commands refuse to guess among several clusters. */
  const clusterOf = (name: string | undefined, destructive: boolean) => chooseCluster(config(), name, { destructive });
  const json = () => program.opts<GlobalOptions>().json === true;

  /** Connects, runs `fn`, and always closes the connection. */
  const withClient = async <T>(fn: (client: Client, cfg: Config) => Promise<T>): Promise<T> => {
    const cfg = config();
    const client = await connectClient(cfg);
    try {
      return await fn(client, cfg);
    } finally {
      await client.connection.close();
    }
  };

  /** Follows a run; Ctrl-C stops only the following, and says so (the run goes on in Temporal). */
  const follow = async <R>(
    handle: WorkflowHandle,
    onStep: (step: { state: string; name: string; detail?: string }) => void,
  ): Promise<R> => {
    const interrupted = () => {
      process.stderr.write(
        `\nstopped following ${handle.workflowId}: the run goes on in Temporal. Follow it again with\n` +
          `  temporal workflow show --workflow-id ${handle.workflowId} --follow\n` +
          `  temporal workflow query --workflow-id ${handle.workflowId} --type progress\n` +
          `or cancel it with: temporal workflow cancel --workflow-id ${handle.workflowId}\n`,
      );
      process.exit(130);
    };
    process.once('SIGINT', interrupted);
    // Long transfers (heartbeats with a byte count): bytes, throughput and ETA while the step runs.
    const transfers = json()
      ? null
      : transferPrinter({
          tty: out === console.log && process.stdout.isTTY === true,
          write: (text) => process.stdout.write(text),
          line: out,
          columns: process.stdout.columns,
        });
    try {
      return await followRun<R>(
        handle,
        (step) => {
          transfers?.clear();
          onStep(step);
        },
        500,
        transfers ? (views) => transfers.show(views) : undefined,
      );
    } finally {
      transfers?.clear();
      process.removeListener('SIGINT', interrupted);
    }
  };

  const printStep = (step: { state: string; name: string; detail?: string }) => {
    if (!json()) out(`  ${step.state === 'done' ? 'ok  ' : 'FAIL'} ${step.name}${step.detail ? `: ${step.detail}` : ''}`);
  };

  // Command groups in the order `--help` lists them.
  const ctx: CliContext = { withClient, config, clusterOf, json, out, outcome, follow, printStep };
  registerBackupCommands(program, ctx);
  registerScheduleCommands(program, ctx);
  registerRestoreCommands(program, ctx);
  registerCaptureCommands(program, ctx);
  registerBackupsCommands(program, ctx);
  registerAgentCommands(program, ctx);
  registerStatusCommand(program, ctx);
  return { program, outcome };
}

/** Runs the CLI; returns the exit code instead of exiting so it is callable from code and tests. */
export async function main(
  argv: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const { program, outcome } = buildCli(out);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return outcome.exitCode;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('commander.')) {
      // Help and version exit 0; every other commander error is bad usage (commander says 1).
      return (error as { exitCode?: number }).exitCode === 0 ? 0 : 2;
    }
    if (error instanceof ConfigError || error instanceof UsageError) {
      err(error.message);
      return 2;
    }
    if (error instanceof BackupSetNotFoundError) {
      err(error.message);
      return 1;
    }
    if (error instanceof RunFailedError) {
      err(`run ${error.workflowId} failed: ${error.message}`);
      return 1;
    }
    err(`nnoe-dr: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (require.main === module) {
  // Exit once stdout has taken every line: into a pipe, process.exit alone cut `backups list` short.
  main(process.argv.slice(2)).then((code) => process.stdout.write('', () => process.exit(code)));
}
