/**
 * Runbook "Backup Schedule" as Temporal Schedules: the backup set on the profile's cron, with an
 * explicit overlap policy (SKIP: never two sets of one cluster at once) and catch-up window (a
 * worker outage shorter than it still gets its backup, a longer one does not pile up runs).
 * Schedules are plain Temporal objects: `temporal schedule list|describe|trigger` work on them too.
 */
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
} from '@temporalio/client';
import type { Config } from '../config/schema';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import type { BackupSetInput } from '../workflows/backup-set';
import type { PruneInput } from '../workflows/prune';
import type { DrillInput } from '../workflows/drill';
import { RETENTION_PROFILES } from '../retention/policy';
import { fitSummary, runDetails, runSummary } from '../common/run-metadata';

/** What each scheduled run shows in the UI: its runbook's summary, and the schedule it came from. */
function scheduledRunMetadata(workflowType: string, input: unknown, scheduleId: string, profile: ScheduleProfile, cron: string) {
  return {
    staticSummary: fitSummary(`${runSummary(workflowType, input)} (scheduled, ${profile})`),
    staticDetails: runDetails(workflowType, input, [
      ['schedule', scheduleId],
      ['profile', profile],
      ['cron', `\`${cron}\``],
    ]),
  };
}

/** The runbook's recommended cadences (the crons live with the retention profiles they go with). */
export const SCHEDULE_PROFILES = {
  // Cadence only: the retention in force is the config's (src/retention/in-force.ts), shown beside it.
  production: { cron: RETENTION_PROFILES.production.schedule, description: 'every 6 hours' },
  development: { cron: RETENTION_PROFILES.development.schedule, description: 'daily at 03:00 UTC' },
} as const;
/** Prune runs daily whatever the profile: expired sets go, and debris of crashed uploads. */
export const PRUNE_CRON = '30 4 * * *';
export type ScheduleProfile = keyof typeof SCHEDULE_PROFILES;

export const SCHEDULE_ID_PREFIX = 'nnoe-dr-';
export const CATCHUP_WINDOW = '1h';

export function backupScheduleId(cluster: string): string {
  return `${SCHEDULE_ID_PREFIX}backup-set-${cluster}`;
}

export function isScheduleProfile(name: string): name is ScheduleProfile {
  return Object.hasOwn(SCHEDULE_PROFILES, name);
}

/** The full desired state of a cluster's backup schedule (pure: tested without a server). */
export function backupScheduleOptions(config: Config, cluster: string, profile: ScheduleProfile, targets?: string[]): ScheduleOptions {
  const input: BackupSetInput = { cluster, ...(targets && targets.length > 0 ? { targets } : {}) };
  return {
    scheduleId: backupScheduleId(cluster),
    spec: { cronExpressions: [SCHEDULE_PROFILES[profile].cron] },
    action: {
      type: 'startWorkflow',
      workflowType: 'backupSetWorkflow',
      workflowId: `backup-set-${cluster}`, // the server appends the scheduled time
      taskQueue: config.temporal.taskQueue,
      args: [input],
      typedSearchAttributes: [
        { key: NnoeCluster, value: cluster },
        { key: NnoeRunbook, value: 'backup-set' },
      ],
      ...scheduledRunMetadata('backupSetWorkflow', input, backupScheduleId(cluster), profile, SCHEDULE_PROFILES[profile].cron),
      // On the action, not the schedule: a schedule's own memo cannot be updated, the action can.
      memo: { scheduleProfile: profile },
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false },
    state: { note: `nnoe-dr profile ${profile}: ${SCHEDULE_PROFILES[profile].description}` },
  };
}

export function pruneScheduleId(): string {
  return `${SCHEDULE_ID_PREFIX}prune`;
}

/** The daily prune of every target (or the chosen ones), same overlap policy as backups. */
export function pruneScheduleOptions(config: Config, profile: ScheduleProfile, targets?: string[]): ScheduleOptions {
  const input: PruneInput = targets && targets.length > 0 ? { targets } : {};
  return {
    scheduleId: pruneScheduleId(),
    spec: { cronExpressions: [PRUNE_CRON] },
    action: {
      type: 'startWorkflow',
      workflowType: 'pruneBackupSetsWorkflow',
      workflowId: 'prune-backup-sets',
      taskQueue: config.temporal.taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: NnoeRunbook, value: 'prune' }],
      ...scheduledRunMetadata('pruneBackupSetsWorkflow', input, pruneScheduleId(), profile, PRUNE_CRON),
      memo: { scheduleProfile: profile },
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false },
    state: { note: `nnoe-dr profile ${profile}: daily prune (${PRUNE_CRON})` },
  };
}

/** The restore drill runs daily, after the prune (04:30) and a night's backups, whatever the profile. */
export const DRILL_CRON = '0 5 * * *';

export function drillScheduleId(cluster: string): string {
  return `${SCHEDULE_ID_PREFIX}drill-${cluster}`;
}

/** The daily restore drill of a cluster's newest complete set; SKIP: never two drills of one cluster at once. */
export function drillScheduleOptions(config: Config, cluster: string, profile: ScheduleProfile): ScheduleOptions {
  const input: DrillInput = { cluster };
  return {
    scheduleId: drillScheduleId(cluster),
    spec: { cronExpressions: [DRILL_CRON] },
    action: {
      type: 'startWorkflow',
      workflowType: 'restoreDrillWorkflow',
      workflowId: `drill-${cluster}`, // the server appends the scheduled time
      taskQueue: config.temporal.taskQueue,
      args: [input],
      typedSearchAttributes: [
        { key: NnoeCluster, value: cluster },
        { key: NnoeRunbook, value: 'drill' },
      ],
      ...scheduledRunMetadata('restoreDrillWorkflow', input, drillScheduleId(cluster), profile, DRILL_CRON),
      memo: { scheduleProfile: profile },
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false },
    state: { note: `nnoe-dr profile ${profile}: daily restore drill of ${cluster} (${DRILL_CRON})` },
  };
}

/** Creates the schedule, or brings an existing one to the desired state. Returns what it did. */
export async function applyBackupSchedule(client: Client, options: ScheduleOptions): Promise<'created' | 'updated'> {
  const handle = client.schedule.getHandle(options.scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create(options);
    return 'created';
  }
  await handle.update(
    (previous) =>
      ({
        ...previous,
        spec: options.spec,
        action: options.action,
        policies: { ...previous.policies, ...options.policies },
        state: { ...previous.state, note: options.state?.note },
      }) as typeof previous,
  );
  return 'updated';
}

export interface ScheduleSummary {
  scheduleId: string;
  workflowType?: string;
  /** The cluster its runs work on; undefined for the shared prune (every cluster). */
  cluster?: string;
  /** The storage targets its runs use; undefined for all. */
  targets?: string[];
  profile?: string;
  cron?: string;
  paused: boolean;
  note?: string;
  nextActionTimes: string[];
  recentActions: number;
}

export async function listNnoeSchedules(client: Client): Promise<ScheduleSummary[]> {
  const out: ScheduleSummary[] = [];
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(SCHEDULE_ID_PREFIX)) continue;
    out.push(summarizeSchedule(s.scheduleId, await client.schedule.getHandle(s.scheduleId).describe()));
  }
  return out.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

export function summarizeSchedule(scheduleId: string, d: ScheduleDescription): ScheduleSummary {
  const action = d.action.type === 'startWorkflow' ? d.action : undefined;
  const profile = action?.memo?.scheduleProfile;
  const input = (action?.args?.[0] ?? {}) as { cluster?: unknown; targets?: unknown };
  return {
    scheduleId,
    workflowType: action?.workflowType,
    cluster: typeof input.cluster === 'string' ? input.cluster : undefined,
    targets: Array.isArray(input.targets) && input.targets.length > 0 ? input.targets.map(String) : undefined,
    // The server stores cron strings as calendar specs; the profile names the cron.
    profile: typeof profile === 'string' ? profile : undefined,
    cron:
      action?.workflowType === 'pruneBackupSetsWorkflow'
        ? PRUNE_CRON
        : action?.workflowType === 'restoreDrillWorkflow'
          ? DRILL_CRON
          : typeof profile === 'string' && isScheduleProfile(profile)
            ? SCHEDULE_PROFILES[profile].cron
            : undefined,
    paused: d.state.paused,
    note: d.state.note,
    nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentActions: d.info.recentActions.length,
  };
}

/**
 * Our schedules named by a full id (that one) or by a cluster: its backup schedule, and with `all`
 * also its drill and, once no other cluster has a backup schedule, the shared prune (what `apply`
 * created for it). A clear error when none exists.
 */
export async function nnoeScheduleHandles(client: Client, idOrCluster: string, which: 'backup' | 'all') {
  const exists = async (scheduleId: string) => {
    const handle = client.schedule.getHandle(scheduleId);
    try {
      await handle.describe();
      return handle;
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return null;
      throw err;
    }
  };
  if (idOrCluster.startsWith(SCHEDULE_ID_PREFIX)) {
    const handle = await exists(idOrCluster);
    if (!handle) throw new Error(`no schedule ${idOrCluster} (see \`nnoe-dr schedules list\`)`);
    return [handle];
  }
  const backup = await exists(backupScheduleId(idOrCluster));
  if (!backup) throw new Error(`no schedule ${backupScheduleId(idOrCluster)} (see \`nnoe-dr schedules list\`)`);
  if (which === 'backup') return [backup];
  const others: string[] = [];
  for await (const s of client.schedule.list()) {
    if (s.scheduleId.startsWith(`${SCHEDULE_ID_PREFIX}backup-set-`) && s.scheduleId !== backup.scheduleId) others.push(s.scheduleId);
  }
  const drill = await exists(drillScheduleId(idOrCluster));
  const prune = others.length === 0 ? await exists(pruneScheduleId()) : null;
  return [backup, ...(drill ? [drill] : []), ...(prune ? [prune] : [])];
}
