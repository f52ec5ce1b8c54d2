/**
 * `nnoe-dr schedules ...`: a cluster's backup set, drill and the shared prune as Temporal Schedules
 * from a profile; list, pause, unpause, trigger, delete.
 */
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema';
import {
  applyBackupSchedule,
  backupScheduleOptions,
  drillScheduleOptions,
  isScheduleProfile,
  listNnoeSchedules,
  nnoeScheduleHandles,
  pruneScheduleOptions,
  SCHEDULE_PROFILES,
  type ScheduleProfile,
} from './schedules';
import { chooseTargets, UsageError } from './cli-input';
import { describeRetention, retentionInForce } from '../retention/in-force';
import type { CliContext } from './cli-context';

export function registerScheduleCommands(program: Command, ctx: CliContext): void {
  const { withClient, config, clusterOf, json, out } = ctx;

  const schedules = program.command('schedules').description('periodic backup sets as Temporal Schedules');
  schedules
    .command('apply')
    .description(
      `create or update a cluster's backup schedule from a profile (${Object.entries(SCHEDULE_PROFILES)
        .map(([p, v]) => `${p}: ${v.cron}`)
        .join('; ')})`,
    )
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
      out(
        JSON.stringify({
          scheduleId: backupSchedule.scheduleId,
          outcome,
          profile,
          cron,
          retention,
          prune: { scheduleId: prune.scheduleId, outcome: pruneOutcome },
          drill: { scheduleId: drill.scheduleId, outcome: drillOutcome },
        }),
      );
      return;
    }
    out(`${outcome} ${backupSchedule.scheduleId}: backup set of ${cluster} ${description} (cron ${cron}, overlap SKIP, catch-up 1h)`);
    out(`${pruneOutcome} ${prune.scheduleId}: daily prune by the config's retention (${cluster}: ${describeRetention(retention)})`);
    out(`${drillOutcome} ${drill.scheduleId}: daily restore drill of the newest set (marks it verified, metrics, alert on failure)`);
  }

  schedules
    .command('list')
    .description('schedules managed by nnoe-dr')
    .action(() =>
      withClient(async (client) => {
        const list = await listNnoeSchedules(client);
        if (json()) {
          out(JSON.stringify(list, null, 2));
          return;
        }
        if (list.length === 0) {
          out('no schedules');
          return;
        }
        out(['SCHEDULE', 'CLUSTER', 'TARGETS', 'PROFILE', 'CRON', 'PAUSED', 'NEXT RUN'].join('\t'));
        for (const s of list) {
          out(
            [
              s.scheduleId,
              s.cluster ?? 'all',
              s.targets?.join(',') ?? 'all',
              s.profile ?? '-',
              s.cron ?? '-',
              String(s.paused),
              s.nextActionTimes[0] ?? '-',
            ].join('\t'),
          );
        }
      }),
    );

  const scheduleVerb = (verb: 'pause' | 'unpause' | 'trigger' | 'delete', description: string) =>
    schedules
      .command(verb)
      .description(description)
      .argument(
        '<schedule>',
        verb === 'trigger'
          ? 'a cluster name (its backup schedule) or a full schedule id'
          : 'a cluster name (its backup and drill schedules, and the shared prune schedule once no other cluster has a backup schedule) or a full schedule id',
      )
      .option('--note <text>', 'why (shown in the Temporal UI)')
      .action((id: string, opts: { note?: string }) =>
        withClient(async (client) => {
          const handles = await nnoeScheduleHandles(client, id, verb === 'trigger' ? 'backup' : 'all');
          for (const handle of handles) {
            if (verb === 'pause') await handle.pause(opts.note ?? 'paused with nnoe-dr');
            else if (verb === 'unpause') await handle.unpause(opts.note ?? 'unpaused with nnoe-dr');
            else if (verb === 'trigger') await handle.trigger();
            else await handle.delete();
            if (json()) out(JSON.stringify({ scheduleId: handle.scheduleId, done: verb }));
            else out(`${{ pause: 'paused', unpause: 'unpaused', trigger: 'triggered', delete: 'deleted' }[verb]} ${handle.scheduleId}`);
          }
        }),
      );
  scheduleVerb('pause', 'pause a schedule (no runs until unpaused)');
  scheduleVerb('unpause', 'resume a paused schedule');
  scheduleVerb('trigger', 'start one run now (the overlap policy still applies)');
  scheduleVerb('delete', 'delete a schedule (running workflows go on)');
}
