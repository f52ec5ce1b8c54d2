/**
 * `nnoe-dr status`: are my sites protected right now? One line per cluster and component (newest
 * complete set and its age against the RPO, newest verified set), then the newest drill, the
 * capture and its lag, the schedules, the runbooks running and each agent. Exit 1 when anything
 * is out of its objective, so cron or a CI job can run it; --watch repeats it.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import type { CliContext } from './cli-context';
import { chooseCluster } from './cli-input';
import { gatherClusterFacts, readCatalog } from '../status/gather';
import { evaluateCluster, formatLine, type StatusLine } from '../status/objectives';

export interface StatusReport {
  checkedAt: string;
  /** False when any line is out of its objective. */
  ok: boolean;
  clusters: Array<{ cluster: string; ok: boolean; lines: StatusLine[] }>;
}

export async function clusterStatus(client: Client, config: Config, clusters: string[]): Promise<StatusReport> {
  const out: StatusReport['clusters'] = [];
  const catalog = await readCatalog(config);
  for (const cluster of clusters) {
    const lines = evaluateCluster(await gatherClusterFacts(client, config, cluster, catalog));
    out.push({ cluster, ok: lines.every((l) => l.ok), lines });
  }
  return { checkedAt: new Date().toISOString(), ok: out.every((c) => c.ok), clusters: out };
}

function seconds(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`expected whole seconds, at least 1, got "${value}"`);
  return Number(value);
}

export function registerStatusCommand(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description(
      'is every cluster protected now? newest and verified sets vs their objectives, capture lag, schedules, running runbooks, agents (exit 1 when something is out of its objective)',
    )
    .option('--cluster <name>', 'only this cluster (default: every configured cluster)')
    .option('--watch [seconds]', 'repeat every N seconds (default 30) until Ctrl-C', seconds)
    .action((opts: { cluster?: string; watch?: number | true }) => {
      // Checked before anything connects: an unknown cluster is bad usage (exit 2), not "out of objective".
      const cfg = ctx.config();
      const clusters =
        opts.cluster === undefined ? cfg.clusters.map((c) => c.name) : [chooseCluster(cfg, opts.cluster, { destructive: false })];
      return ctx.withClient((client) => watchStatus(client, cfg, clusters, opts, ctx));
    });
}

/** Prints the status once, or every --watch seconds until Ctrl-C; the exit code is the last round's. */
async function watchStatus(
  client: Client,
  cfg: Config,
  clusters: string[],
  opts: { watch?: number | true },
  ctx: CliContext,
): Promise<void> {
  const intervalMs = opts.watch === undefined ? null : (opts.watch === true ? 30 : opts.watch) * 1000;
  for (;;) {
    const report = await clusterStatus(client, cfg, clusters);
    if (intervalMs !== null && !ctx.json() && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
    if (ctx.json()) ctx.out(JSON.stringify(report, null, intervalMs === null ? 2 : undefined));
    else {
      for (const cluster of report.clusters) for (const line of cluster.lines) ctx.out(formatLine(line));
      ctx.out(
        report.ok
          ? `every objective met (${report.checkedAt})`
          : `OUT OF OBJECTIVE: ${report.clusters
              .flatMap((c) => c.lines)
              .filter((l) => !l.ok)
              .map((l) => `${l.cluster} ${l.subject}`)
              .join(', ')} (${report.checkedAt})`,
      );
    }
    ctx.outcome.exitCode = report.ok ? 0 : 1;
    if (intervalMs === null) return;
    await new Promise((done) => setTimeout(done, intervalMs));
  }
}
