/**
 * What every CLI command file gets from the program (src/client/cli.ts): the config, a connected
 * client, the output and exit code, and how a followed run prints its steps.
 */
import type { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { Config } from '../config/schema';

/** A step of a followed run, as its `progress` query reports it. */
export interface FollowedStep {
  state: string;
  name: string;
  detail?: string;
}

export interface CliContext {
  /** Connects, runs `fn`, and always closes the connection. */
  withClient: <T>(fn: (client: Client, cfg: Config) => Promise<T>) => Promise<T>;
  /** The loaded config, for checks made before anything connects. */
  config: () => Config;
  /** --cluster checked against the config; `destructive` commands refuse to guess among several clusters. */
  clusterOf: (name: string | undefined, destructive: boolean) => string;
  json: () => boolean;
  out: (line: string) => void;
  outcome: { exitCode: number };
  /** Follows a run; Ctrl-C stops only the following, and says so (the run goes on in Temporal). */
  follow: <R>(handle: WorkflowHandle, onStep: (step: FollowedStep) => void) => Promise<R>;
  printStep: (step: FollowedStep) => void;
}

/** `{ workflowId, runId }` (--json) after a run started with --no-follow. */
export function printStarted(ctx: CliContext, handle: WorkflowHandleWithFirstExecutionRunId): void {
  if (ctx.json()) ctx.out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
}
