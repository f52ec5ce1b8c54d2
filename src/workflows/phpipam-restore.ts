/**
 * Runbook "phpIPAM Database Restore", on the management queue (the database is reached over the network):
 *
 *   preflight -> approval -> stop phpIPAM -> load dump -> verify -> swap schema -> start phpIPAM
 *
 * Nothing is changed before the approval (the preflight only creates and drops the two new, empty
 * schema names to prove the user may). The dump goes into a NEW staging schema; only a staging schema
 * whose row counts and CHECKSUM TABLE equal the manifest's facts is swapped in (one RENAME TABLE), and
 * the old tables are kept in `<db>_pre_restore_<ts>`. A failed load or verification drops the staging
 * schema and leaves the live one untouched. The app is started again whatever happened (non-cancellable).
 */
import { ApplicationFailure, CancellationScope, isCancellation, upsertSearchAttributes } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { Duration } from '@temporalio/common';
import type {
  createPhpipamRestoreActivities,
  LoadedDump,
  PhpipamRestorePlan,
  PhpipamSwapSummary,
  StagedDump,
} from '../activities/phpipam-restore';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { ProgressTracker, rootMessage } from './progress';
import { approvalGate, approvalStep, failureTypeOf, planQuery, type ApprovalState } from './approval';
import { rejectBadInput } from './input';
import { durationProblem, flagProblem } from '../common/input-checks';

export interface PhpipamRestoreInput {
  cluster: string;
  /** A set id; the newest complete set with a phpIPAM dump when omitted. */
  setId?: string;
  /** Preflight and plan only: nothing is stopped or written. */
  dryRun?: boolean;
  /** Approved up front (automation, a DR run approved as a whole). */
  approved?: boolean;
  /** How long to wait for the `approve` update; the run then ends having changed nothing. Default 1h. */
  approvalTimeout?: Duration;
}

export interface PhpipamRestoreResult {
  setId: string;
  dryRun: boolean;
  approvedBy: string | null;
  /** The approving client's Temporal identity as it sent it with the approval (null: up front, or not sent). */
  approverIdentity?: string | null;
  live: string;
  staging: string;
  keepAs: string;
  loaded: LoadedDump | null;
  /** Every table of the restored schema with its rows and checksum, equal to the manifest's. */
  verified: Array<{ name: string; rows: number; checksum: string | null }>;
  swap: PhpipamSwapSummary | null;
  app: { service: string | null; stopped: boolean; started: boolean };
}

export interface PhpipamRestorePlanView {
  state: ApprovalState;
  plan: PhpipamRestorePlan | null;
  staged: StagedDump | null;
}

/** Same names as the etcd restore's (`approve`, `plan`): one way to approve any restore. */
export { approveRestoreUpdate as approvePhpipamRestoreUpdate, type RestoreApproval as PhpipamRestoreApproval } from './approval';
export const phpipamRestorePlanQuery = planQuery<PhpipamRestorePlanView>();

type Activities = ReturnType<typeof createPhpipamRestoreActivities>;

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});
/** Fetching, loading, verifying and swapping stream or scan the whole database: long, heartbeating. */
const long = proxyActivities<Activities>({
  startToCloseTimeout: '4h',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '5s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});
/** The app must come back: retried for as long as it takes. */
const appStart = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '5s', maximumInterval: '1m', nonRetryableErrorTypes: [FailureType.ConfigError, FailureType.InvalidInput] },
});

export async function phpipamRestoreWorkflow(input: PhpipamRestoreInput): Promise<PhpipamRestoreResult> {
  if (!input || typeof input.cluster !== 'string' || input.cluster.length === 0) {
    throw ApplicationFailure.nonRetryable(
      'a phpIPAM restore needs { cluster: "<name>" } naming a cluster from the config',
      FailureType.InvalidInput,
    );
  }
  rejectBadInput('phpIPAM restore', [
    durationProblem('approvalTimeout', input.approvalTimeout),
    flagProblem('approved', input.approved),
    flagProblem('dryRun', input.dryRun),
  ]);
  const dryRun = input.dryRun === true;
  const tracker = new ProgressTracker('phpipam-restore', input.cluster, [
    'preflight',
    'approval',
    'stop phpIPAM',
    'load dump',
    'verify',
    'swap schema',
    'start phpIPAM',
  ]);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'phpipam-restore' },
  ]);

  const view: PhpipamRestorePlanView = { state: 'planning', plan: null, staged: null };
  const approval = approvalGate(view);

  // ---- preflight: the plan, the dump fetched and verified, the database checked.
  const plan = await tracker
    .step(
      'preflight',
      async () => {
        const planned = await quick.planPhpipamRestore({ cluster: input.cluster, setId: input.setId, at: new Date().toISOString() });
        view.plan = planned;
        tracker.progress.setId = planned.setId;
        upsertSearchAttributes([{ key: NnoeBackupSet, value: planned.setId }]);
        view.staged = await long.stagePhpipamDump({
          cluster: planned.cluster,
          setId: planned.setId,
          artefact: planned.artefact,
          facts: planned.facts,
          staging: planned.staging,
          keepAs: planned.keepAs,
        });
        return planned;
      },
      (p) =>
        `set ${p.setId}: ${p.facts.tables.length} tables, ${view.staged?.bytes} bytes of dump verified; ${p.database} (${view.staged?.server.flavour} ${view.staged?.server.version}) reachable` +
        `${view.staged?.warnings.length ? `; ${view.staged.warnings.join('; ')}` : ''}`,
    )
    .catch(async (err: unknown) => {
      const setId = view.plan?.setId;
      if (setId) await CancellationScope.nonCancellable(() => quick.discardStagedDump({ setId }).catch(() => undefined));
      tracker.finish('failed');
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.nonRetryable(
        `phpIPAM restore refused in the preflight: ${err instanceof Error ? rootMessage(err) : String(err)}; nothing was stopped or changed`,
        failureTypeOf(err) ?? FailureType.RestoreRefused,
      );
    });

  const discardDump = () => CancellationScope.nonCancellable(() => quick.discardStagedDump({ setId: plan.setId }).catch(() => undefined));
  const result: PhpipamRestoreResult = {
    setId: plan.setId,
    dryRun,
    approvedBy: null,
    live: plan.live,
    staging: plan.staging,
    keepAs: plan.keepAs,
    loaded: null,
    verified: [],
    swap: null,
    app: { service: plan.appService, stopped: false, started: false },
  };

  // ---- approval
  if (dryRun) {
    view.state = 'dry-run';
    tracker.note('approval', 'dry run: nothing stopped, nothing written');
    await discardDump();
    tracker.finish('completed');
    return result;
  }
  await approvalStep(tracker, approval, input, `restore of ${plan.setId}`).catch(async (err: unknown) => {
    await discardDump();
    tracker.finish('failed');
    throw err;
  });
  result.approvedBy = approval.approvedBy();
  result.approverIdentity = approval.identity();

  // ---- the changing part. `phase` says what a failure must undo.
  let phase: 'before-load' | 'staging' | 'swapping' | 'swapped' = 'before-load';
  let appTouched = false;
  try {
    await tracker.step(
      'stop phpIPAM',
      async () => {
        appTouched = true; // from here on the app is started again, whatever happens
        const stopped = await quick.stopPhpipamApp({ cluster: plan.cluster });
        result.app.stopped = stopped.service !== null;
        return stopped;
      },
      (s) =>
        s.service
          ? `${s.service} stopped${s.wasRunning ? '' : ' (was not running)'}`
          : 'no app service configured (phpipam.appService): nothing to stop',
    );

    phase = 'staging'; // from here on a failure drops the staging schema
    result.loaded = await tracker.step(
      'load dump',
      () => long.loadPhpipamDump({ cluster: plan.cluster, setId: plan.setId, artefact: plan.artefact, staging: plan.staging }),
      (l) =>
        `${l.bytes} bytes into ${l.schema}: ${l.tables.length} tables, ${l.triggers.length} triggers, ${l.routines.length} routines, ${l.events.length} events in ${l.ms} ms`,
    );

    const verification = await tracker.step(
      'verify',
      () => long.verifyPhpipamStaging({ cluster: plan.cluster, staging: plan.staging, facts: plan.facts }),
      (v) => `${v.tables.length} tables of ${v.schema}: row counts and CHECKSUM TABLE equal the manifest's`,
    );
    result.verified = verification.tables.map(({ name, rows, checksum }) => ({ name, rows, checksum }));

    phase = 'swapping'; // a failed swap is undone by swapSchemaIn; the staging schema is kept for inspection
    result.swap = await tracker.step(
      'swap schema',
      () => long.swapPhpipamSchema({ cluster: plan.cluster, staging: plan.staging, keepAs: plan.keepAs, verification }),
      (s) =>
        `${s.tables.length} tables now live in ${s.live}; old tables kept in ${s.keepAs}${s.warnings.length ? `; warnings: ${s.warnings.join('; ')}` : ''}`,
    );
    phase = 'swapped';
  } catch (err) {
    const cause = err instanceof Error ? rootMessage(err) : String(err);
    let stagingDropped = false;
    await CancellationScope.nonCancellable(async () => {
      if (phase === 'staging') {
        stagingDropped = await quick.dropPhpipamStaging({ cluster: plan.cluster, staging: plan.staging }).then(
          () => true,
          () => false,
        );
      }
      if (appTouched) await startApp(plan, tracker, result);
      await discardDump();
    });
    tracker.finish('failed');
    if (isCancellation(err)) throw err;
    const what =
      phase === 'swapping'
        ? `the swap failed (${plan.live} is as before unless the message says otherwise; ${plan.staging} is kept for inspection)`
        : `${plan.live} was not touched${phase === 'staging' ? (stagingDropped ? `, staging schema ${plan.staging} dropped` : `, staging schema ${plan.staging} could NOT be dropped`) : ''}`;
    throw ApplicationFailure.nonRetryable(
      `restore of ${plan.setId} failed: ${cause}; ${what}`,
      failureTypeOf(err) ?? FailureType.RestoreFailed,
    );
  }

  await CancellationScope.nonCancellable(async () => {
    await startApp(plan, tracker, result);
    await discardDump();
  });
  if (plan.appService && !result.app.started) {
    tracker.finish('failed');
    throw ApplicationFailure.nonRetryable(
      `set ${plan.setId} was restored into ${plan.live} (old tables in ${plan.keepAs}) but ${plan.appService} could not be started`,
      FailureType.RestoreFailed,
    );
  }
  tracker.finish('completed');
  return result;
}

/** The app started again (a no-op step when none is configured); retried until it runs. */
async function startApp(plan: PhpipamRestorePlan, tracker: ProgressTracker, result: PhpipamRestoreResult): Promise<void> {
  await tracker
    .step(
      'start phpIPAM',
      () => appStart.startPhpipamApp({ cluster: plan.cluster }),
      (s) => (s.service ? `${s.service} running` : 'no app service configured (phpipam.appService): nothing to start'),
    )
    .then(
      (s) => {
        result.app.started = s.running;
      },
      () => undefined,
    );
}
