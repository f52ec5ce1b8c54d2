#!/usr/bin/env node
/**
 * nnoe-dr: the operator's CLI. A thin layer: parse, call the client helpers or the catalog, print.
 * Every command has --json for scripts; exit code 0 = success, 1 = the run or check failed,
 * 2 = bad usage or configuration.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, defaultConfigPath, loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { listBackupSets, verifyBackupSet, BackupSetNotFoundError } from '../catalog/catalog';
import { keyInventory } from '../catalog/keys';
import { printKeyInventory } from './key-view';
import type { RekeyResult } from '../workflows/rekey';
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import {
  changeCaptureId, connectClient, followRun, RunFailedError, startBackupSet, startChangeCapture, startEtcdBackup, startEtcdRestore, startPointInTimeRestore,
  startDisasterRecovery, startDrill, startPrune, startRekey, startReplaceMember, type BackupSetResult, type EtcdBackupResult, type PruneResult,
} from './temporal';
import { describeEtcdDryRun, describePlanView, humanBytes } from '../common/plan-view';
import { transferPrinter } from './transfer-progress';
import { targetProblem } from '../capture/point-in-time';
import type { PointInTimeResult } from '../workflows/pitr';
import { captureInputProblem, captureStatusQuery, stopCaptureSignal, type CaptureStatus } from '../workflows/change-capture';
import type { DisasterRecoveryReport } from '../workflows/disaster-recovery';
import type { DrillReport } from '../workflows/drill';
import { approveRestoreUpdate, describeRevisionBump, restorePlanQuery, type EtcdRestoreResult, type RestorePlanView, type RestoreStrategy } from '../workflows/etcd-restore';
import { registerAgentCommands } from './cli-agents';
import { registerStatusCommand } from './cli-status';
import { liveDurableRevision } from '../status/gather';
import { planQuery } from '../workflows/approval';
import type { MemberReplacePlanView, ReplaceMemberResult } from '../workflows/etcd-member-replace';
import { applyBackupSchedule, backupScheduleOptions, drillScheduleOptions, isScheduleProfile, listNnoeSchedules, nnoeScheduleHandles, pruneScheduleOptions, SCHEDULE_PROFILES, type ScheduleProfile } from './schedules';
import { chooseCluster, chooseTargets, durationOption, UsageError } from './cli-input';
import { describeRetention, retentionInForce } from '../retention/in-force';
import { rootMessage } from '../workflows/progress';

interface GlobalOptions { config?: string; json?: boolean }

/** Commander's parser for duration options: refused before anything connects or starts. */
function durationArgument(value: string): string {
  try {
    return durationOption('duration', value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^duration: /, ''));
  }
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
  const config = (): Config => (loaded ??= loadConfig((program.opts<GlobalOptions>().config) ?? defaultConfigPath()));
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
  const follow = async <R>(handle: WorkflowHandle, onStep: (step: { state: string; name: string; detail?: string }) => void): Promise<R> => {
    const interrupted = () => {
      process.stderr.write(`\nstopped following ${handle.workflowId}: the run goes on in Temporal. Follow it again with\n` +
        `  temporal workflow show --workflow-id ${handle.workflowId} --follow\n` +
        `  temporal workflow query --workflow-id ${handle.workflowId} --type progress\n` +
        `or cancel it with: temporal workflow cancel --workflow-id ${handle.workflowId}\n`);
      process.exit(130);
    };
    process.once('SIGINT', interrupted);
    // Long transfers (heartbeats with a byte count): bytes, throughput and ETA while the step runs.
    const transfers = json() ? null : transferPrinter({
      tty: out === console.log && process.stdout.isTTY === true, write: (text) => process.stdout.write(text), line: out, columns: process.stdout.columns,
    });
    try {
      return await followRun<R>(handle, (step) => { transfers?.clear(); onStep(step); }, 500, transfers ? (views) => transfers.show(views) : undefined);
    } finally {
      transfers?.clear();
      process.removeListener('SIGINT', interrupted);
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
      const cluster = clusterOf(opts.cluster, false);
      const handle = await startEtcdBackup(client, cfg, { cluster, targets: chooseTargets(cfg, opts.target) });
      if (!json()) out(`started ${handle.workflowId} (runbook etcd-backup, cluster ${cluster})`);
      if (!opts.follow) {
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
        return;
      }
      printResult(handle.workflowId, await follow<EtcdBackupResult>(handle, printStep));
    }));

  backup.command('set')
    .description('back up every component of a cluster as one set (one manifest) and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--component <name...>', 'components to include (default: all available)')
    .option('--target <name...>', 'storage targets (default: all)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action((opts: { cluster?: string; component?: string[]; target?: string[]; follow: boolean }) => withClient(async (client, cfg) => {
      const cluster = clusterOf(opts.cluster, false);
      const handle = await startBackupSet(client, cfg, { cluster, components: opts.component, targets: chooseTargets(cfg, opts.target) });
      if (!json()) out(`started ${handle.workflowId} (runbook backup-set, cluster ${cluster})`);
      if (!opts.follow) {
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
        return;
      }
      printResult(handle.workflowId, await follow<BackupSetResult>(handle, printStep));
    }));

  const schedules = program.command('schedules').description('periodic backup sets as Temporal Schedules');
  schedules.command('apply')
    .description(`create or update a cluster's backup schedule from a profile (${Object.entries(SCHEDULE_PROFILES).map(([p, v]) => `${p}: ${v.cron}`).join('; ')})`)
    .requiredOption('--profile <name>', 'production | development')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--target <name...>', 'storage targets (default: all)')
    .action((opts: { profile: string; cluster?: string; target?: string[] }) => {
      if (!isScheduleProfile(opts.profile)) {
        throw new UsageError(`--profile: unknown profile "${opts.profile}"; expected one of ${Object.keys(SCHEDULE_PROFILES).join(', ')}`);
      }
      const profile = opts.profile;
      // Checked before anything is created: a schedule of an unknown cluster or target only fails later, every day.
      const cluster = clusterOf(opts.cluster, false);
      const targets = chooseTargets(config(), opts.target);
      return withClient(async (client, cfg) => applySchedules(client, cfg, cluster, profile, targets));
    });

  /** The cluster's backup and drill schedules and the shared prune, created or brought to the profile. */
  async function applySchedules(client: Client, cfg: Config, cluster: string, profile: ScheduleProfile, targets: string[] | undefined) {
    const backupSchedule = backupScheduleOptions(cfg, cluster, profile, targets);
    const outcome = await applyBackupSchedule(client, backupSchedule);
    const prune = pruneScheduleOptions(cfg, profile, targets);
    const pruneOutcome = await applyBackupSchedule(client, prune);
    const drill = drillScheduleOptions(cfg, cluster, profile);
    const drillOutcome = await applyBackupSchedule(client, drill);
    const { cron, description } = SCHEDULE_PROFILES[profile];
    const retention = retentionInForce(cfg, cluster);
    if (json()) {
      out(JSON.stringify({ scheduleId: backupSchedule.scheduleId, outcome, profile, cron, retention, prune: { scheduleId: prune.scheduleId, outcome: pruneOutcome }, drill: { scheduleId: drill.scheduleId, outcome: drillOutcome } }));
      return;
    }
    out(`${outcome} ${backupSchedule.scheduleId}: backup set of ${cluster} ${description} (cron ${cron}, overlap SKIP, catch-up 1h)`);
    out(`${pruneOutcome} ${prune.scheduleId}: daily prune by the config's retention (${cluster}: ${describeRetention(retention)})`);
    out(`${drillOutcome} ${drill.scheduleId}: daily restore drill of the newest set (marks it verified, metrics, alert on failure)`);
  }

  schedules.command('list')
    .description('schedules managed by nnoe-dr')
    .action(() => withClient(async (client) => {
      const list = await listNnoeSchedules(client);
      if (json()) { out(JSON.stringify(list, null, 2)); return; }
      if (list.length === 0) { out('no schedules'); return; }
      out(['SCHEDULE', 'CLUSTER', 'TARGETS', 'PROFILE', 'CRON', 'PAUSED', 'NEXT RUN'].join('\t'));
      for (const s of list) {
        out([s.scheduleId, s.cluster ?? 'all', s.targets?.join(',') ?? 'all', s.profile ?? '-', s.cron ?? '-', String(s.paused), s.nextActionTimes[0] ?? '-'].join('\t'));
      }
    }));

  const scheduleVerb = (verb: 'pause' | 'unpause' | 'trigger' | 'delete', description: string) =>
    schedules.command(verb)
      .description(description)
      .argument('<schedule>', verb === 'trigger' ? 'a cluster name (its backup schedule) or a full schedule id'
        : 'a cluster name (its backup and drill schedules, and the shared prune schedule once no other cluster has a backup schedule) or a full schedule id')
      .option('--note <text>', 'why (shown in the Temporal UI)')
      .action((id: string, opts: { note?: string }) => withClient(async (client) => {
        const handles = await nnoeScheduleHandles(client, id, verb === 'trigger' ? 'backup' : 'all');
        for (const handle of handles) {
          if (verb === 'pause') await handle.pause(opts.note ?? 'paused with nnoe-dr');
          else if (verb === 'unpause') await handle.unpause(opts.note ?? 'unpaused with nnoe-dr');
          else if (verb === 'trigger') await handle.trigger();
          else await handle.delete();
          if (json()) out(JSON.stringify({ scheduleId: handle.scheduleId, done: verb }));
          else out(`${{ pause: 'paused', unpause: 'unpaused', trigger: 'triggered', delete: 'deleted' }[verb]} ${handle.scheduleId}`);
        }
      }));
  scheduleVerb('pause', 'pause a schedule (no runs until unpaused)');
  scheduleVerb('unpause', 'resume a paused schedule');
  scheduleVerb('trigger', 'start one run now (the overlap policy still applies)');
  scheduleVerb('delete', 'delete a schedule (running workflows go on)');

  const printPlan = (workflowId: string, view: RestorePlanView) => {
    for (const line of describePlanView(workflowId, view as unknown as Parameters<typeof describePlanView>[1], humanBytes)) out(line);
  };

  /** Prints the plan once the run waits for its approval (after the preflight and the new data dirs). */
  const announceApproval = async (handle: WorkflowHandle, runningAs: WorkflowHandle = handle) => {
    const over = runningAs.result();
    let ended = false;
    over.then(() => { ended = true; }, () => { ended = true; });
    while (!ended) {
      const view = await handle.query(planQuery<RestorePlanView | MemberReplacePlanView>()).catch(() => null);
      if (view?.state === 'awaiting-approval') {
        printPlan(handle.workflowId, view as RestorePlanView);
        out(`waiting for approval: nnoe-dr restore approve ${handle.workflowId}${view.plan?.setId ? ` --set ${view.plan.setId}` : ''} --by <your name>`);
        return;
      }
      if (view && view.state !== 'planning') return; // approved up front or a dry run
      await Promise.race([over.catch(() => undefined), new Promise((done) => setTimeout(done, 1000))]);
    }
  };

  const restore = program.command('restore').description('restore runbooks (destructive: each asks for approval unless --yes)');
  restore.command('etcd')
    .description('restore the etcd cluster from a backup set and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', 'backup set (default: the newest complete set with an etcd snapshot)')
    .addOption(new Option('--strategy <name>', 'how the members are restored').choices(['all-members', 'first-node-then-add']).default('all-members'))
    .option('--dry-run', 'check the snapshot on every node and show the plan; change nothing')
    .option('--yes', 'approve up front (automation); otherwise approve with `restore approve`')
    .option('--approval-timeout <duration>', 'how long to wait for the approval, e.g. 30m', durationArgument, '1h')
    .option('--revision-bump <revisions>', 'snapshot restore --bump-revision (etcdutl 3.5.10+; default: the config\'s restore.revisionBump, 1000000000)')
    .option('--no-revision-bump', 'restore without the revision bump (watchers across the restore may then miss revisions silently)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action((opts: {
      cluster?: string; set?: string; strategy: string; dryRun?: boolean; yes?: boolean; approvalTimeout: string; revisionBump?: string | false; follow: boolean;
    }) => withClient(async (client, cfg) => {
      const cluster = clusterOf(opts.cluster, opts.dryRun !== true);
      const revisionBump = opts.revisionBump === false ? 0 : opts.revisionBump === undefined ? undefined : Number(opts.revisionBump);
      if (revisionBump !== undefined && !(Number.isSafeInteger(revisionBump) && revisionBump >= 0)) {
        throw new ConfigError('--revision-bump', [`expected a whole number of revisions (0 turns it off), got "${String(opts.revisionBump)}"`]);
      }
      const handle = await startEtcdRestore(client, cfg, {
        cluster, setId: opts.set, strategy: opts.strategy as RestoreStrategy, dryRun: opts.dryRun === true, approved: opts.yes === true, approvalTimeout: opts.approvalTimeout as Duration,
        ...(revisionBump !== undefined ? { revisionBump } : {}),
      });
      if (!json()) out(`started ${handle.workflowId} (runbook etcd-restore, cluster ${cluster})`);
      if (!opts.follow) {
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
        return;
      }
      if (!opts.yes && !opts.dryRun && !json()) void announceApproval(handle);
      const result = await follow<EtcdRestoreResult>(handle, printStep);
      if (json()) { out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2)); return; }
      if (result.dryRun) {
        const configured = cfg.clusters.find((c) => c.name === cluster);
        for (const line of describeEtcdDryRun(cluster, result, {
          nodeOf: (member) => configured?.etcd.members.find((m) => m.name === member)?.node, revisionBump: revisionBump ?? configured?.restore.revisionBump ?? 0,
        })) out(line);
        return;
      }
      const bumped = result.revisionBump?.used ? `, revision bumped by ${result.revisionBump.by}` : '';
      out(`cluster ${cluster} restored from ${result.setId} (revision ${result.check?.revision}${bumped})`);
    }));

  restore.command('plan')
    .description('show the plan of a running restore')
    .argument('<workflow-id>', 'the restore run, as printed when it started')
    .action((workflowId: string) => withClient(async (client) => {
      // Any restore-type run: etcd, phpIPAM, DR (their plan views differ in shape).
      const view = await client.workflow.getHandle(workflowId).query(restorePlanQuery);
      if (json()) out(JSON.stringify(view, null, 2));
      else { printPlan(workflowId, view); out(`state: ${view.state}`); }
    }));

  restore.command('approve')
    .description('approve a restore that waits for it (the set must be the one its plan shows)')
    .argument('<workflow-id>', 'the restore run, as printed when it started')
    .option('--set <id>', 'the set id the plan shows (every restore of a set; not a member replacement)')
    .requiredOption('--by <name>', 'who approves (recorded in the run)')
    .action((workflowId: string, opts: { set?: string; by: string }) => {
      if (opts.by.trim() === '') throw new UsageError('--by: name who approves (it is recorded in the run)');
      return withClient(async (client) => approve(client, workflowId, opts));
    });

  /** Sends the `approve` Update; a refusal prints the run's own reason (wrong set, not waiting). */
  async function approve(client: Client, workflowId: string, opts: { set?: string; by: string }) {
    // The run records the identity this client reports to Temporal (pid@host unless configured) beside the name.
    const identity = (client as { options?: { identity?: string } }).options?.identity;
    const answer = await client.workflow.getHandle(workflowId).executeUpdate(approveRestoreUpdate, { args: [{ setId: opts.set, approvedBy: opts.by, identity }] })
      .catch((err: unknown) => {
        if (err instanceof WorkflowUpdateFailedError) throw new UsageError(`approval of ${workflowId} refused: ${rootMessage(err)}`);
        throw err;
      });
    if (json()) out(JSON.stringify({ workflowId, ...answer }));
    else out(`approved ${workflowId}${opts.set ? ` (set ${opts.set})` : ''} by ${answer.approvedBy}`);
  }

  restore.command('member')
    .description('replace a failed etcd member, after approval (refused when quorum is lost: use `restore etcd` then; a healthy member only with --force)')
    .argument('<member>', 'the failed member, by its name in the config')
    .option('--cluster <name>', 'cluster from the config (required when it has several)')
    .option('--force', 'replace the member even though it is healthy (it is removed and re-added empty)')
    .option('--yes', 'approve up front; otherwise approve with `restore approve`')
    .option('--approval-timeout <duration>', 'how long to wait for the approval, e.g. 30m', durationArgument, '1h')
    .action((member: string, opts: { cluster?: string; force?: boolean; yes?: boolean; approvalTimeout: string }) => withClient(async (client, cfg) => {
      const cluster = clusterOf(opts.cluster, true);
      const handle = await startReplaceMember(client, cfg, { cluster, member, force: opts.force === true, approved: opts.yes === true, approvalTimeout: opts.approvalTimeout as Duration });
      if (!json()) out(`started ${handle.workflowId} (runbook etcd-member-replace, cluster ${cluster})`);
      if (!opts.yes && !json()) void announceApproval(handle);
      const result = await follow<ReplaceMemberResult>(handle, printStep);
      if (json()) out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
      else out(`${member} replaced: member id ${result.addedId}, data dir ${result.newDataDir} (old ${result.oldDataDir} kept)`);
    }));

  restore.command('pitr')
    .description('restore the cluster to a revision or a point in time (snapshot + captured changes)')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--revision <n>', 'target revision (of the live incarnation unless --incarnation)')
    .option('--time <iso>', 'target time, e.g. 2026-11-27T14:35:02Z (not in the future)')
    .option('--incarnation <cluster-id>', 'the etcd cluster ID whose history to restore (default: by time, the one snapshotted at or before it; by revision, the live one)')
    .option('--yes', 'approve the restore up front; otherwise approve its child <id>/etcd-restore with `restore approve`')
    .action((opts: { cluster?: string; revision?: string; time?: string; incarnation?: string; yes?: boolean }) => {
      // Bad input is refused before anything connects or starts (exit 2).
      const targetRevision = opts.revision === undefined ? undefined : /^\d+$/.test(opts.revision) ? Number(opts.revision) : opts.revision;
      const problem = targetProblem({ targetRevision, targetTime: opts.time }, Date.now());
      if (problem) throw new ConfigError('restore pitr', [problem.replace('a revision or a time (ISO-8601)', '--revision N or --time ISO-8601')]);
      return withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, true);
        const handle = await startPointInTimeRestore(client, cfg, {
          cluster, targetRevision: targetRevision as number | undefined, targetTime: opts.time, clusterId: opts.incarnation, approved: opts.yes === true,
        });
        if (!json()) out(`started ${handle.workflowId} (runbook pitr, cluster ${cluster})`);
        if (!opts.yes && !json()) void announceApproval(client.workflow.getHandle(`${handle.workflowId}/etcd-restore`), handle);
        const result = await follow<PointInTimeResult>(handle, printStep);
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
        else {
          const now = result.check.clusterId ? `now incarnation ${result.check.clusterId} at its own revision ${result.check.revision}` : `now at its own revision ${result.check.revision}`;
          out(`cluster ${cluster} restored to the state of revision ${result.plan.targetRevision} of incarnation ${result.plan.clusterId} (set ${result.plan.setId} + ${result.replay.events} replayed events); ${now}`);
          if (result.restore) out(`  ${describeRevisionBump(result.restore)}`);
        }
      });
    });

  program.command('dr')
    .description('full disaster recovery: etcd, phpIPAM, agents, then DNS/DHCP/metrics checks; one approval')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', 'backup set (default: the newest complete one with every component)')
    .option('--components <name...>', 'restore only these (etcd, phpipam); needed when the set lacks a configured component')
    .option('--dry-run', 'plan and run every component\'s preflight; change nothing')
    .option('--yes', 'approve up front; otherwise approve with `restore approve <id> --set <set> --by <name>`')
    .option('--approval-timeout <duration>', 'how long to wait for the approval, e.g. 30m', durationArgument, '1h')
    .action((opts: { cluster?: string; set?: string; components?: string[]; dryRun?: boolean; yes?: boolean; approvalTimeout: string }) => {
      const components = opts.components?.map((c) => {
        if (c !== 'etcd' && c !== 'phpipam') throw new UsageError(`--components: unknown component "${c}"; expected etcd and/or phpipam`);
        return c;
      });
      const cluster = clusterOf(opts.cluster, opts.dryRun !== true);
      return withClient(async (client, cfg) => {
        const handle = await startDisasterRecovery(client, cfg, {
          cluster, setId: opts.set, components, dryRun: opts.dryRun === true, approved: opts.yes === true, approvalTimeout: opts.approvalTimeout as Duration,
        });
        if (!json()) out(`started ${handle.workflowId} (runbook disaster-recovery, cluster ${cluster})`);
        const report = await follow<DisasterRecoveryReport>(handle, (step) => {
          printStep(step);
          if (step.name === 'preflight' && step.state === 'done' && !opts.yes && !opts.dryRun && !json()) {
            out(`waiting for approval: nnoe-dr restore approve ${handle.workflowId} --set ${tracked.setId ?? '<set above>'} --by <your name>`);
          }
          if (step.name === 'plan' && step.state === 'done') tracked.setId = /^set (\S+?):/.exec(step.detail ?? '')?.[1];
        });
        printDisasterRecovery(handle.workflowId, cluster, report);
      });
    });
  const tracked: { setId?: string } = {};

  const printDisasterRecovery = (workflowId: string, cluster: string, report: DisasterRecoveryReport) => {
    if (json()) { out(JSON.stringify({ workflowId, ...report }, null, 2)); return; }
    if (report.dryRun) {
      out(`dry run of the disaster recovery of ${cluster} from ${report.plan?.setId}: every preflight passed; nothing was changed`);
    } else {
      out(`disaster recovery of ${cluster} from ${report.plan?.setId}: ${report.ok ? 'every check passes' : 'CHECKS FAIL'}`);
    }
    if (report.etcdRestore) out(`  etcd: ${describeRevisionBump(report.etcdRestore)}`);
    for (const line of report.unchanged) out(`  left as it was: ${line}`);
    for (const check of report.checks) out(`  ${check.ok ? 'ok  ' : 'FAIL'} ${check.kind} ${check.target}: ${check.detail}`);
  };

  program.command('drill')
    .description('restore the newest (or a given) set into a scratch etcd and schema, compare with its manifest, mark it verified')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', 'backup set (default: the newest complete one)')
    .action((opts: { cluster?: string; set?: string }) => withClient(async (client, cfg) => {
      const cluster = clusterOf(opts.cluster, false);
      const handle = await startDrill(client, cfg, { cluster, setId: opts.set });
      if (!json()) out(`started ${handle.workflowId} (runbook drill, cluster ${cluster})`);
      const report = await follow<DrillReport>(handle, printStep);
      if (json()) { out(JSON.stringify({ workflowId: handle.workflowId, ...report }, null, 2)); return; }
      const rto = [`etcd ${report.rto.etcdMs ?? '-'} ms`, report.rto.phpipamMs === null || report.rto.phpipamMs === undefined ? 'no phpIPAM in the set' : `phpIPAM ${report.rto.phpipamMs} ms`];
      out(`drill of ${report.setId}: passed (RTO ${rto.join(', ')}); set marked verified`);
    }));

  const capture = program.command('capture').description('continuous change capture (point-in-time recovery)');
  capture.command('start')
    .description('start the cluster\'s change capture (once: a running one is kept)')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--flush-ms <n>', 'durability bound per change in ms (a flush every quarter of it)', '500')
    .option('--node <name>', 'run the capture on this node\'s worker')
    .action((opts: { cluster?: string; flushMs: string; node?: string }) => {
      const flushMs = /^\d+$/.test(opts.flushMs) ? Number(opts.flushMs) : Number.NaN;
      const problem = captureInputProblem({ flushMs });
      if (problem) throw new ConfigError('capture start', [`--flush-ms "${opts.flushMs}": ${problem.replace(/^flushMs "[^"]*" /, '')}`]);
      return withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, false);
        const handle = await startChangeCapture(client, cfg, { cluster, flushMs, node: opts.node });
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
        else out(`change capture of ${cluster}: ${handle.workflowId}`);
      });
    });
  capture.command('status')
    .description('how far the cluster\'s change capture is durable, and whether it runs')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .action((opts: { cluster?: string }) => withClient(async (client) => {
      const handle = client.workflow.getHandle(changeCaptureId(clusterOf(opts.cluster, false)));
      const description = await handle.describe();
      const status = await handle.query(captureStatusQuery);
      const running = description.status.name === 'RUNNING';
      // The workflow learns a slice's totals when it returns; the running slice's heartbeat is fresher.
      const live = running ? liveDurableRevision(description) : null;
      const lastDurable = Math.max(status.lastDurable ?? 0, live ?? 0) || null;
      const state = !running ? `${description.status.name === 'COMPLETED' ? 'stopped' : description.status.name.toLowerCase()} at ${description.closeTime?.toISOString() ?? '?'}`
        : status.stopping ? 'stopping' : 'running';
      if (json()) out(JSON.stringify({ ...status, lastDurable, state: running ? (status.stopping ? 'stopping' : 'running') : description.status.name.toLowerCase() }, null, 2));
      else out(`capture ${state}: incarnation ${status.clusterId ?? '-'} durable up to revision ${lastDurable ?? '-'} (${status.segments} segments, ${status.events} events, max lag ${status.maxLagMs} ms, ${status.gaps.length} gaps${running ? '; totals as of the last finished slice' : ''})`);
    }));
  capture.command('stop')
    .description('stop the cluster\'s change capture (it flushes what it holds first)')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--no-wait', 'only ask; do not wait for the capture to end')
    .action((opts: { cluster?: string; wait: boolean }) => withClient(async (client) => {
      const handle = client.workflow.getHandle(changeCaptureId(clusterOf(opts.cluster, false)));
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING') {
        // Already over: what the operator asked for holds, so this is no failure.
        const closed = `${description.status.name === 'COMPLETED' ? 'stopped' : description.status.name.toLowerCase()} at ${description.closeTime?.toISOString() ?? '?'}`;
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, state: description.status.name.toLowerCase(), alreadyStopped: true }));
        else out(`capture already ${closed}: nothing to stop`);
        return;
      }
      await handle.signal(stopCaptureSignal);
      if (!opts.wait) {
        if (!json()) out('stop requested: the running slice flushes and returns (within a few seconds)');
        return;
      }
      const final = await handle.result() as CaptureStatus;
      if (json()) out(JSON.stringify(final, null, 2));
      else out(`capture stopped: durable up to revision ${final.lastDurable ?? '-'} (${final.segments} segments, ${final.events} events)`);
    }));

  const backups = program.command('backups').description('the catalog of backup sets');
  /** A catalog command: `--cluster` and `--target` narrow which sets it reads. */
  const catalogCommand = (name: string, description: string) => backups.command(name).description(description)
    .option('--cluster <name>', 'only this cluster')
    .option('--target <name...>', 'only these storage targets');
  const catalogScope = (opts: { cluster?: string; target?: string[] }) => ({
    cluster: opts.cluster === undefined ? undefined : clusterOf(opts.cluster, false), targets: chooseTargets(config(), opts.target),
  });
  catalogCommand('list', 'list backup sets from the manifests in the stores, newest first')
    .action(async (opts: { cluster?: string; target?: string[] }) => {
      const sets = await listBackupSets(config(), catalogScope(opts));
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
      const cluster = opts.cluster === undefined ? undefined : clusterOf(opts.cluster, false);
      const handle = await startPrune(client, cfg, { cluster, targets: chooseTargets(cfg, opts.target), dryRun: opts.dryRun === true });
      if (!json()) {
        for (const c of cfg.clusters.filter((c) => cluster === undefined || c.name === cluster)) out(`retention in force for ${c.name}: ${describeRetention(retentionInForce(cfg, c.name))}`);
      }
      const result = await follow<PruneResult>(handle, printStep);
      if (json()) { out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2)); return; }
      for (const set of result.expire) out(`${result.dryRun ? 'would delete' : 'deleted'} ${set.setId}: ${set.reason}`);
      for (const set of result.keep) out(`keep ${set.setId}: ${set.reasons.join('; ')}`);
      const segments = result.segments ? `, ${result.segments.objects} change-capture segments ${result.dryRun ? 'to delete' : 'deleted'}` : '';
      out(`${result.dryRun ? 'dry run: ' : ''}${result.expire.length} expired, ${result.keep.length} kept${segments}, ${result.abortedUploads.length} stale uploads/partial files ${result.dryRun ? 'to remove' : 'removed'}`);
    }));

  catalogCommand('rekey', 're-encrypt retained sets to the configured recipients (old identities must still be held); exit 1 when a set is refused, e.g. under Object Lock')
    .option('--set <id>', 'only this set')
    .option('--dry-run', 'list what would be rekeyed, change nothing')
    .action((opts: { cluster?: string; target?: string[]; set?: string; dryRun?: boolean }) => withClient(async (client, cfg) => {
      const handle = await startRekey(client, cfg, { ...catalogScope(opts), setId: opts.set, dryRun: opts.dryRun === true });
      const result = await follow<RekeyResult>(handle, printStep);
      if (json()) { out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2)); return; }
      for (const set of result.rekeyed) out(`${result.dryRun ? 'would rekey' : 'rekeyed'} ${set.setId}`);
      out(`${result.dryRun ? 'dry run: ' : ''}${result.rekeyed.length} sets ${result.dryRun ? 'to rekey' : 'rekeyed'}, ${result.current.length} already current`);
    }));

  catalogCommand('keys', 'which age recipients each set was encrypted to, and whether the configured keys still open it (exit 1 on a set at risk)')
    .action(async (opts: { cluster?: string; target?: string[] }) => {
      const inventory = await keyInventory(config(), catalogScope(opts));
      if (json()) out(JSON.stringify(inventory, null, 2));
      else printKeyInventory(inventory, out);
      if (!inventory.ok) outcome.exitCode = 1;
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

  registerAgentCommands(program, { withClient, config, json, out, outcome, printStep });
  registerStatusCommand(program, { withClient, config, json, out, outcome, printStep });
  return { program, outcome };
}

/** Runs the CLI; returns the exit code instead of exiting so it is callable from code and tests. */
export async function main(argv: string[], out: (line: string) => void = console.log, err: (line: string) => void = console.error): Promise<number> {
  const { program, outcome } = buildCli(out);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return outcome.exitCode;
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith('commander.')) {
      // Help and version exit 0; every other commander error is bad usage (commander says 1).
      return (error as { exitCode?: number }).exitCode === 0 ? 0 : 2;
    }
    if (error instanceof ConfigError || error instanceof UsageError) { err(error.message); return 2; }
    if (error instanceof BackupSetNotFoundError) { err(error.message); return 1; }
    if (error instanceof RunFailedError) { err(`run ${error.workflowId} failed: ${error.message}`); return 1; }
    err(`nnoe-dr: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
