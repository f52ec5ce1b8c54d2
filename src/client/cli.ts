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
import type { Client } from '@temporalio/client';
import { connectClient, followRun, RunFailedError, startBackupSet, startEtcdBackup, startPrune, type BackupSetResult, type EtcdBackupResult, type PruneResult } from './temporal';
import { applyBackupSchedule, backupScheduleOptions, isScheduleProfile, listNnoeSchedules, nnoeScheduleHandle, pruneScheduleOptions, SCHEDULE_PROFILES } from './schedules';

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

  const printStep = (step: { state: string; name: string; detail?: string }) => {
    if (!json()) out(`  ${step.state === 'done' ? 'ok  ' : 'FAIL'} ${step.name}${step.detail ? `: ${step.detail}` : ''}`);
  };

  const printResult = (workflowId: string, result: EtcdBackupResult | BackupSetResult) => {
    if (json()) {
      out(JSON.stringify({ workflowId, ...result }, null, 2));
      return;
    }
    out(`backup set ${result.setId} ${result.manifest.status}`);
    for (const copy of result.manifest.components.flatMap((c) => c.artefacts).flatMap((a) => a.copies)) out(`  ${copy.target}: ${copy.location}`);
  };

  const backup = program.command('backup').description('run a backup runbook');
  backup.command('etcd')
    .description('snapshot the etcd cluster into every storage target and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--target <name...>', 'storage targets (default: all)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action((opts: { cluster?: string; target?: string[]; follow: boolean }) => withClient(async (client, cfg) => {
      const cluster = opts.cluster ?? cfg.clusters[0]!.name;
      const handle = await startEtcdBackup(client, cfg, { cluster, targets: opts.target });
      if (!json()) out(`started ${handle.workflowId} (runbook etcd-backup, cluster ${cluster})`);
      if (!opts.follow) {
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
        return;
      }
      printResult(handle.workflowId, await followRun<EtcdBackupResult>(handle, printStep));
    }));

  backup.command('set')
    .description('back up every component of a cluster as one set (one manifest) and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--component <name...>', 'components to include (default: all available)')
    .option('--target <name...>', 'storage targets (default: all)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action((opts: { cluster?: string; component?: string[]; target?: string[]; follow: boolean }) => withClient(async (client, cfg) => {
      const cluster = opts.cluster ?? cfg.clusters[0]!.name;
      const handle = await startBackupSet(client, cfg, { cluster, components: opts.component, targets: opts.target });
      if (!json()) out(`started ${handle.workflowId} (runbook backup-set, cluster ${cluster})`);
      if (!opts.follow) {
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
        return;
      }
      printResult(handle.workflowId, await followRun<BackupSetResult>(handle, printStep));
    }));

  const schedules = program.command('schedules').description('periodic backup sets as Temporal Schedules');
  schedules.command('apply')
    .description(`create or update a cluster's backup schedule from a profile (${Object.entries(SCHEDULE_PROFILES).map(([p, v]) => `${p}: ${v.cron}`).join('; ')})`)
    .requiredOption('--profile <name>', 'production | development')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--target <name...>', 'storage targets (default: all)')
    .action((opts: { profile: string; cluster?: string; target?: string[] }) => withClient(async (client, cfg) => {
      if (!isScheduleProfile(opts.profile)) {
        throw new ConfigError('--profile', [`unknown profile "${opts.profile}"; expected one of ${Object.keys(SCHEDULE_PROFILES).join(', ')}`]);
      }
      const cluster = opts.cluster ?? cfg.clusters[0]!.name;
      const options = backupScheduleOptions(cfg, cluster, opts.profile, opts.target);
      const outcome = await applyBackupSchedule(client, options);
      const prune = pruneScheduleOptions(cfg, opts.profile, opts.target);
      const pruneOutcome = await applyBackupSchedule(client, prune);
      if (json()) {
        out(JSON.stringify({ scheduleId: options.scheduleId, outcome, profile: opts.profile, cron: SCHEDULE_PROFILES[opts.profile].cron, prune: { scheduleId: prune.scheduleId, outcome: pruneOutcome } }));
      } else {
        out(`${outcome} ${options.scheduleId}: backup set of ${cluster} ${SCHEDULE_PROFILES[opts.profile].description} (cron ${SCHEDULE_PROFILES[opts.profile].cron}, overlap SKIP, catch-up 1h)`);
        out(`${pruneOutcome} ${prune.scheduleId}: daily prune by the retention policy`);
      }
    }));

  schedules.command('list')
    .description('schedules managed by nnoe-dr')
    .action(() => withClient(async (client) => {
      const list = await listNnoeSchedules(client);
      if (json()) { out(JSON.stringify(list, null, 2)); return; }
      if (list.length === 0) { out('no schedules'); return; }
      out(['SCHEDULE', 'PROFILE', 'CRON', 'PAUSED', 'NEXT RUN'].join('\t'));
      for (const s of list) out([s.scheduleId, s.profile ?? '-', s.cron ?? '-', String(s.paused), s.nextActionTimes[0] ?? '-'].join('\t'));
    }));

  const scheduleVerb = (verb: 'pause' | 'unpause' | 'trigger' | 'delete', description: string) =>
    schedules.command(verb)
      .description(description)
      .argument('<schedule>', 'a cluster name or a full schedule id')
      .option('--note <text>', 'why (shown in the Temporal UI)')
      .action((id: string, opts: { note?: string }) => withClient(async (client) => {
        const handle = await nnoeScheduleHandle(client, id);
        if (verb === 'pause') await handle.pause(opts.note ?? 'paused with nnoe-dr');
        else if (verb === 'unpause') await handle.unpause(opts.note ?? 'unpaused with nnoe-dr');
        else if (verb === 'trigger') await handle.trigger();
        else await handle.delete();
        if (json()) out(JSON.stringify({ scheduleId: handle.scheduleId, done: verb }));
        else out(`${{ pause: 'paused', unpause: 'unpaused', trigger: 'triggered', delete: 'deleted' }[verb]} ${handle.scheduleId}`);
      }));
  scheduleVerb('pause', 'pause a schedule (no runs until unpaused)');
  scheduleVerb('unpause', 'resume a paused schedule');
  scheduleVerb('trigger', 'start one run now (the overlap policy still applies)');
  scheduleVerb('delete', 'delete a schedule (running workflows go on)');

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

  backups.command('prune')
    .description('delete expired backup sets (retention policy from the config) and stale multipart uploads')
    .option('--cluster <name>', 'only this cluster')
    .option('--target <name...>', 'only these storage targets (default: all)')
    .option('--dry-run', 'list what would go, delete nothing')
    .action((opts: { cluster?: string; target?: string[]; dryRun?: boolean }) => withClient(async (client, cfg) => {
      const handle = await startPrune(client, cfg, { cluster: opts.cluster, targets: opts.target, dryRun: opts.dryRun === true });
      const result = await followRun<PruneResult>(handle, printStep);
      if (json()) { out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2)); return; }
      for (const set of result.expire) out(`${result.dryRun ? 'would delete' : 'deleted'} ${set.setId}: ${set.reason}`);
      for (const set of result.keep) out(`keep ${set.setId}: ${set.reasons.join('; ')}`);
      out(`${result.dryRun ? 'dry run: ' : ''}${result.expire.length} expired, ${result.keep.length} kept, ${result.abortedUploads.length} stale uploads ${result.dryRun ? 'to abort' : 'aborted'}`);
    }));

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
