/**
 * `nnoe-dr capture start|status|stop`: the cluster's continuous change capture (what point-in-time
 * restores replay).
 */
import type { Command } from 'commander';
import { ConfigError } from '../config/load';
import { changeCaptureId, startChangeCapture } from './temporal';
import { captureInputProblem, captureStatusQuery, stopCaptureSignal, type CaptureStatus } from '../workflows/change-capture';
import { liveDurableRevision } from '../status/gather';
import { printStarted, type CliContext } from './cli-context';

export function registerCaptureCommands(program: Command, ctx: CliContext): void {
  const { withClient, clusterOf, json, out } = ctx;

  const capture = program.command('capture').description('continuous change capture (point-in-time recovery)');
  capture
    .command('start')
    .description("start the cluster's change capture (once: a running one is kept)")
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--flush-ms <n>', 'durability bound per change in ms (a flush every quarter of it)', '500')
    .option('--node <name>', "run the capture on this node's worker")
    .action((opts: { cluster?: string; flushMs: string; node?: string }) => {
      const flushMs = /^\d+$/.test(opts.flushMs) ? Number(opts.flushMs) : Number.NaN;
      const problem = captureInputProblem({ flushMs });
      if (problem) throw new ConfigError('capture start', [`--flush-ms "${opts.flushMs}": ${problem.replace(/^flushMs "[^"]*" /, '')}`]);
      return withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, false);
        const handle = await startChangeCapture(client, cfg, { cluster, flushMs, node: opts.node });
        if (json()) printStarted(ctx, handle);
        else out(`change capture of ${cluster}: ${handle.workflowId}`);
      });
    });
  capture
    .command('status')
    .description("how far the cluster's change capture is durable, and whether it runs")
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .action((opts: { cluster?: string }) =>
      withClient(async (client) => {
        const handle = client.workflow.getHandle(changeCaptureId(clusterOf(opts.cluster, false)));
        const description = await handle.describe();
        const status = await handle.query(captureStatusQuery);
        const running = description.status.name === 'RUNNING';
        // The workflow learns a slice's totals when it returns; the running slice's heartbeat is fresher.
        const live = running ? liveDurableRevision(description) : null;
        const lastDurable = Math.max(status.lastDurable ?? 0, live ?? 0) || null;
        const state = !running
          ? `${description.status.name === 'COMPLETED' ? 'stopped' : description.status.name.toLowerCase()} at ${description.closeTime?.toISOString() ?? '?'}`
          : status.stopping
            ? 'stopping'
            : 'running';
        if (json())
          out(
            JSON.stringify(
              {
                ...status,
                lastDurable,
                state: running ? (status.stopping ? 'stopping' : 'running') : description.status.name.toLowerCase(),
              },
              null,
              2,
            ),
          );
        else
          out(
            `capture ${state}: incarnation ${status.clusterId ?? '-'} durable up to revision ${lastDurable ?? '-'} (${status.segments} segments, ${status.events} events, max lag ${status.maxLagMs} ms, ${status.gaps.length} gaps${running ? '; totals as of the last finished slice' : ''})`,
          );
      }),
    );
  capture
    .command('stop')
    .description("stop the cluster's change capture (it flushes what it holds first)")
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--no-wait', 'only ask; do not wait for the capture to end')
    .action((opts: { cluster?: string; wait: boolean }) =>
      withClient(async (client) => {
        const handle = client.workflow.getHandle(changeCaptureId(clusterOf(opts.cluster, false)));
        const description = await handle.describe();
        if (description.status.name !== 'RUNNING') {
          // Already over: what the operator asked for holds, so this is no failure.
          const closed = `${description.status.name === 'COMPLETED' ? 'stopped' : description.status.name.toLowerCase()} at ${description.closeTime?.toISOString() ?? '?'}`;
          if (json())
            out(JSON.stringify({ workflowId: handle.workflowId, state: description.status.name.toLowerCase(), alreadyStopped: true }));
          else out(`capture already ${closed}: nothing to stop`);
          return;
        }
        await handle.signal(stopCaptureSignal);
        if (!opts.wait) {
          if (!json()) out('stop requested: the running slice flushes and returns (within a few seconds)');
          return;
        }
        const final = (await handle.result()) as CaptureStatus;
        if (json()) out(JSON.stringify(final, null, 2));
        else
          out(`capture stopped: durable up to revision ${final.lastDurable ?? '-'} (${final.segments} segments, ${final.events} events)`);
      }),
    );
}
