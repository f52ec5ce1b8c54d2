/**
 * `nnoe-dr agents check|recover`: the NNOE agents as they really are. The real agent serves no
 * HTTP and goes deaf when etcd restarts, so `check` judges each agent from the node (process, etcd
 * connection, rendered config vs etcd) and names a deaf or stale agent with the reason; `recover`
 * restarts, republishes to and checks each agent in turn (what every restore does at its end).
 */
import type { Command } from 'commander';
import type { AgentCheck } from '../activities/agent-service';
import type { RecoverAgentsResult } from '../workflows/agents';
import { findCluster } from '../config/load';
import { agentState } from '../status/gather';
import type { CliContext } from './cli-context';
import { followRun, startAgentHostRestore, startCheckAgents, startRecoverAgents } from './temporal';
import type { AgentHostRestoreResult } from '../workflows/agent-host-restore';

/** One line per agent: `node-1  serving  2 zones, 1 scopes, etcd 127.0.0.1:2379`. */
export function agentCheckLine(check: AgentCheck): string {
  const verdict = agentState(check);
  const state = verdict === 'serving' ? verdict : verdict.toUpperCase();
  const facts = `${check.zones} zones, ${check.scopes} scopes${check.etcdConnection ? `, etcd ${check.etcdConnection}` : ''}`;
  return `${check.node.padEnd(10)} ${state.padEnd(8)} ${facts}${check.reason ? `\n             ${check.reason}` : ''}`;
}

export function registerAgentCommands(program: Command, ctx: CliContext): void {
  const agents = program.command('agents').description("NNOE agents: are they serving etcd's state? (check) bring them back (recover)");
  agents
    .command('check')
    .description('check every agent: running, connected to etcd, rendering what etcd holds (exit 1 when one is not)')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--node <node...>', 'only these agent nodes')
    .action((opts: { cluster?: string; node?: string[] }) =>
      ctx.withClient(async (client, cfg) => {
        const cluster = findCluster(cfg, opts.cluster ?? cfg.clusters[0]!.name).name;
        const checks = await (await startCheckAgents(client, cfg, { cluster, nodes: opts.node })).result();
        if (ctx.json()) ctx.out(JSON.stringify({ cluster, agents: checks }, null, 2));
        else for (const check of checks) ctx.out(agentCheckLine(check));
        if (checks.some((c) => !c.serving)) ctx.outcome.exitCode = 1;
      }),
    );
  agents
    .command('recover')
    .description('restart each agent, republish every key it watches, check it (one agent at a time)')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--node <node...>', 'only these agent nodes')
    .option('--dry-run', 'count the keys a republish would put, per prefix; restart nothing')
    .action((opts: { cluster?: string; node?: string[]; dryRun?: boolean }) =>
      ctx.withClient(async (client, cfg) => {
        const cluster = findCluster(cfg, opts.cluster ?? cfg.clusters[0]!.name).name;
        const handle = await startRecoverAgents(client, cfg, { cluster, nodes: opts.node, dryRun: opts.dryRun === true });
        if (!ctx.json()) ctx.out(`started ${handle.workflowId} (runbook agents-recover, cluster ${cluster})`);
        const result = await followRun<RecoverAgentsResult>(handle, ctx.printStep);
        if (ctx.json()) {
          ctx.out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
          return;
        }
        for (const planned of result.plan ?? []) {
          ctx.out(`${planned.node}: would republish ${planned.republish.prefixes.map((p) => `${p.prefix} ${p.keys}`).join(', ')}`);
        }
        for (const agent of result.agents) ctx.out(agentCheckLine(agent.check));
      }),
    );
  agents
    .command('restore-host')
    .description("restore a node's host state (agent.toml, agent.d, etcd client TLS dir, DNSSEC keys, Kea leases) and recover its agent")
    .argument('<node>', 'the agent node')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', "backup set (default: the newest complete set holding this node's host state)")
    .option('--dry-run', 'fetch, check and extract the archive on the node; change nothing')
    .action((node: string, opts: { cluster?: string; set?: string; dryRun?: boolean }) =>
      ctx.withClient(async (client, cfg) => {
        const cluster = findCluster(cfg, opts.cluster ?? cfg.clusters[0]!.name).name;
        const handle = await startAgentHostRestore(client, cfg, { cluster, node, setId: opts.set, dryRun: opts.dryRun === true });
        if (!ctx.json()) ctx.out(`started ${handle.workflowId} (runbook agent-host-restore, cluster ${cluster})`);
        const result = await followRun<AgentHostRestoreResult>(handle, ctx.printStep);
        if (ctx.json()) {
          ctx.out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
          return;
        }
        if (result.agent) ctx.out(agentCheckLine(result.agent.check));
      }),
    );
}
