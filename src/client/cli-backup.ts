/**
 * `nnoe-dr backup etcd|set`: start a backup runbook and follow it step by step.
 */
import type { Command } from 'commander';
import { startBackupSet, startEtcdBackup, type BackupSetResult, type EtcdBackupResult } from './temporal';
import { chooseTargets } from './cli-input';
import { printStarted, type CliContext } from './cli-context';

export function registerBackupCommands(program: Command, ctx: CliContext): void {
  const { withClient, clusterOf, json, out, follow, printStep } = ctx;

  const printResult = (workflowId: string, result: EtcdBackupResult | BackupSetResult) => {
    if (json()) {
      out(JSON.stringify({ workflowId, ...result }, null, 2));
      return;
    }
    out(`backup set ${result.setId} ${result.manifest.status}`);
    for (const copy of result.manifest.components.flatMap((c) => c.artefacts).flatMap((a) => a.copies))
      out(`  ${copy.target}: ${copy.location}`);
  };

  const backup = program.command('backup').description('run a backup runbook');
  backup
    .command('etcd')
    .description('snapshot the etcd cluster into every storage target and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--target <name...>', 'storage targets (default: all)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action((opts: { cluster?: string; target?: string[]; follow: boolean }) =>
      withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, false);
        const handle = await startEtcdBackup(client, cfg, { cluster, targets: chooseTargets(cfg, opts.target) });
        if (!json()) out(`started ${handle.workflowId} (runbook etcd-backup, cluster ${cluster})`);
        if (!opts.follow) {
          printStarted(ctx, handle);
          return;
        }
        printResult(handle.workflowId, await follow<EtcdBackupResult>(handle, printStep));
      }),
    );

  backup
    .command('set')
    .description('back up every component of a cluster as one set (one manifest) and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--component <name...>', 'components to include (default: all available)')
    .option('--target <name...>', 'storage targets (default: all)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action((opts: { cluster?: string; component?: string[]; target?: string[]; follow: boolean }) =>
      withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, false);
        const handle = await startBackupSet(client, cfg, { cluster, components: opts.component, targets: chooseTargets(cfg, opts.target) });
        if (!json()) out(`started ${handle.workflowId} (runbook backup-set, cluster ${cluster})`);
        if (!opts.follow) {
          printStarted(ctx, handle);
          return;
        }
        printResult(handle.workflowId, await follow<BackupSetResult>(handle, printStep));
      }),
    );
}
