#!/usr/bin/env node
/**
 * nnoe-dr: the operator's CLI. A thin layer: parse, call the client helpers or the catalog, print.
 * Every command has --json for scripts; exit code 0 = success, 1 = the run or check failed,
 * 2 = bad usage or configuration.
 */
import { Command } from 'commander';
import { ConfigError, defaultConfigPath, loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { listBackupSets, verifyBackupSet, BackupSetNotFoundError } from '../catalog/catalog';
import { connectClient, followRun, RunFailedError, startEtcdBackup, type EtcdBackupResult } from './temporal';

interface GlobalOptions { config?: string; json?: boolean }

function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** The parsed program plus the exit code its actions decided on (a failed verification is not an exception). */
export function buildCli(out: (line: string) => void = console.log): { program: Command; outcome: { exitCode: number } } {
  const outcome = { exitCode: 0 };
  const program = new Command('nnoe-dr')
    .description('Backup, restore and disaster recovery for NNOE (etcd, phpIPAM, agents, Nebula) as Temporal workflows')
    .option('-c, --config <file>', 'configuration file (default: $NNOE_DR_CONFIG or ./nnoe-dr.yaml)')
    .option('--json', 'machine-readable output')
    .showHelpAfterError();

  const config = (): Config => loadConfig((program.opts<GlobalOptions>().config) ?? defaultConfigPath());
  const json = () => program.opts<GlobalOptions>().json === true;

  const backup = program.command('backup').description('run a backup runbook');
  backup.command('etcd')
    .description('snapshot the etcd cluster into every storage target and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--target <name...>', 'storage targets (default: all)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action(async (opts: { cluster?: string; target?: string[]; follow: boolean }) => {
      const cfg = config();
      const cluster = opts.cluster ?? cfg.clusters[0]!.name;
      const client = await connectClient(cfg);
      try {
        const handle = await startEtcdBackup(client, cfg, { cluster, targets: opts.target });
        if (!json()) out(`started ${handle.workflowId} (runbook etcd-backup, cluster ${cluster})`);
        if (!opts.follow) {
          if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
          return;
        }
        const result = await followRun<EtcdBackupResult>(handle, (step) => {
          if (!json()) out(`  ${step.state === 'done' ? 'ok  ' : 'FAIL'} ${step.name}${step.detail ? `: ${step.detail}` : ''}`);
        });
        if (json()) {
          out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
        } else {
          out(`backup set ${result.setId} complete`);
          for (const copy of result.manifest.components.flatMap((c) => c.artefacts).flatMap((a) => a.copies)) out(`  ${copy.target}: ${copy.location}`);
        }
      } finally {
        await client.connection.close();
      }
    });

  const backups = program.command('backups').description('the catalog of backup sets');
  backups.command('list')
    .description('list backup sets from the manifests in the stores, newest first')
    .option('--cluster <name>', 'only this cluster')
    .option('--target <name...>', 'only these storage targets')
    .action(async (opts: { cluster?: string; target?: string[] }) => {
      const sets = await listBackupSets(config(), { cluster: opts.cluster, targets: opts.target });
      if (json()) {
        out(JSON.stringify(sets.map(({ manifest: _m, ...entry }) => entry), null, 2));
        return;
      }
      if (sets.length === 0) { out('no backup sets'); return; }
      out(['SET', 'STATUS', 'CREATED', 'COMPONENTS', 'SIZE', 'TARGETS'].join('\t'));
      for (const s of sets) out([s.setId, s.status, s.createdAt, s.components.join(','), humanBytes(s.bytes), s.targets.join(',')].join('\t'));
    });

  backups.command('verify')
    .description('read a set back from storage and check every artefact against its manifest')
    .argument('<set-id>', 'backup set id, as printed by `backups list`')
    .option('--target <name...>', 'only these storage targets')
    .action(async (setId: string, opts: { target?: string[] }) => {
      const report = await verifyBackupSet(config(), setId, { targets: opts.target });
      if (json()) {
        out(JSON.stringify(report, null, 2));
      } else {
        for (const check of report.checks) {
          out(`${check.ok ? 'ok  ' : 'FAIL'} ${check.target} ${check.file}${check.problems.length ? `: ${check.problems.join('; ')}` : ''}`);
        }
        out(report.ok ? `backup set ${setId} verified` : `backup set ${setId} FAILED verification`);
      }
      if (!report.ok) outcome.exitCode = 1;
    });

  return { program, outcome };
}

/** Runs the CLI; returns the exit code instead of exiting so it is callable from code and tests. */
export async function main(argv: string[], out: (line: string) => void = console.log, err: (line: string) => void = console.error): Promise<number> {
  const { program, outcome } = buildCli(out);
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return outcome.exitCode;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('commander.')) {
      return (error as { exitCode?: number }).exitCode ?? 2;
    }
    if (error instanceof ConfigError) { err(error.message); return 2; }
    if (error instanceof BackupSetNotFoundError) { err(error.message); return 1; }
    if (error instanceof RunFailedError) { err(`run ${error.workflowId} failed: ${error.message}`); return 1; }
    err(`nnoe-dr: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
