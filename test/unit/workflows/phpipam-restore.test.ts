/**
 * Every branch of the phpIPAM restore workflow (src/workflows/phpipam-restore.ts) with stubbed
 * activities on the time-skipping test server: the live schema is only touched by the swap, a
 * failure before it drops the staging schema (never the live one), a failed swap keeps the staging
 * schema for inspection, and the app is started again whatever happened once it was stopped.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { PhpipamRestoreInput, PhpipamRestoreResult } from '../../../src/workflows/phpipam-restore';
import {
  awaitingApproval,
  heartbeatUntilCancelled,
  runFailure,
  startStubbedWorkflowWorld,
  type StubbedWorkflowWorld,
} from '../support/stubbed-workers';
import { CLUSTER, fails, SET_ID } from './etcd-fakes';
import { healthyPhpipamStubs, phpipamRestorePlan } from './phpipam-fakes';

let world: StubbedWorkflowWorld;
beforeAll(async () => {
  world = await startStubbedWorkflowWorld([]);
}, 120_000);
afterAll(async () => {
  await world?.stop();
});
beforeEach(() => world.activities.reset(healthyPhpipamStubs(CLUSTER, SET_ID)));
afterEach(async () => {
  await world.afterTest();
}, 60_000);

const a = () => world.activities;
/** Steps that change the database or the app. */
const CHANGING = ['stopPhpipamApp', 'loadPhpipamDump', 'swapPhpipamSchema', 'dropPhpipamStaging', 'startPhpipamApp'];
const changingSteps = () => a().sequence((c) => CHANGING.includes(c.name));

function start(input: Partial<PhpipamRestoreInput>): Promise<WorkflowHandle> {
  return world.start('phpipamRestoreWorkflow', { cluster: CLUSTER, ...input });
}

async function run(input: Partial<PhpipamRestoreInput>): Promise<PhpipamRestoreResult> {
  return (await start(input)).result();
}

describe('phpIPAM restore', () => {
  it('checks the dump before the approval, then stops the app, loads and verifies the staging schema, swaps it in and starts the app', async () => {
    const handle = await start({});
    await awaitingApproval(handle);
    expect(a().sequence()).toEqual(['planPhpipamRestore', 'stagePhpipamDump']);
    await expect(
      handle.executeUpdate('approve', { args: [{ setId: 'nnoe-test-another-set', approvedBy: 'alice' }] }),
    ).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    expect(changingSteps()).toEqual([]);
    await handle.executeUpdate('approve', { args: [{ setId: SET_ID, approvedBy: 'alice' }] });
    const result: PhpipamRestoreResult = await handle.result();
    expect(result).toMatchObject({
      approvedBy: 'alice',
      app: { stopped: true, started: true },
      verified: [
        { name: 'ipaddresses', rows: 2000 },
        { name: 'subnets', rows: 10 },
      ],
    });
    expect(a().sequence()).toEqual([
      'planPhpipamRestore',
      'stagePhpipamDump',
      'stopPhpipamApp',
      'loadPhpipamDump',
      'verifyPhpipamStaging',
      'swapPhpipamSchema',
      'startPhpipamApp',
      'discardStagedDump',
    ]);
    expect(a().of('swapPhpipamSchema')[0]!.input).toMatchObject({
      staging: 'phpipam_restore_20261204',
      keepAs: 'phpipam_pre_restore_20261204',
    });
  });

  it('works without an app service: nothing to stop or start, and that is no failure', async () => {
    a().set({
      planPhpipamRestore: () => phpipamRestorePlan(CLUSTER, SET_ID, { appService: null }),
      stopPhpipamApp: () => ({ service: null, wasRunning: false }),
      startPhpipamApp: () => ({ service: null, running: false }),
    });
    const result = await run({ approved: true });
    expect(result.app).toEqual({ service: null, stopped: false, started: false });
    expect(a().of('swapPhpipamSchema').length).toBe(1);
  });
});

describe('ending before the swap leaves the live schema untouched', () => {
  it('a preflight refusal removes the staged dump and stops nothing', async () => {
    a().set({ stagePhpipamDump: () => fails('stored sha256 of the dump differs', 'ChecksumMismatch') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'ChecksumMismatch' });
    expect(failure.message).toContain('refused in the preflight');
    expect(a().sequence()).toEqual(['planPhpipamRestore', 'stagePhpipamDump', 'discardStagedDump']);
  });

  it('a dry run checks the dump and stops nothing', async () => {
    const result = await run({ dryRun: true });
    expect(result).toMatchObject({ dryRun: true, loaded: null, swap: null, app: { stopped: false, started: false } });
    expect(a().sequence()).toEqual(['planPhpipamRestore', 'stagePhpipamDump', 'discardStagedDump']);
  });

  it('an approval timeout removes the staged dump and stops nothing', async () => {
    const failure = await runFailure(run({ approvalTimeout: '30m' }));
    expect(failure).toMatchObject({ type: 'ApprovalTimedOut' });
    expect(failure.message).toContain('was not approved within 30m; nothing was changed');
    expect(a().sequence()).toEqual(['planPhpipamRestore', 'stagePhpipamDump', 'discardStagedDump']);
  });

  it('a failed load drops the staging schema and starts the app again', async () => {
    a().set({ loadPhpipamDump: () => fails('ERROR 1064 at line 12', 'DumpLoadFailed') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'DumpLoadFailed' });
    expect(failure.message).toContain('phpipam was not touched, staging schema phpipam_restore_20261204 dropped');
    expect(changingSteps()).toEqual(['stopPhpipamApp', 'loadPhpipamDump', 'dropPhpipamStaging', 'startPhpipamApp']);
    expect(a().of('dropPhpipamStaging')[0]!.input.staging).toBe('phpipam_restore_20261204');
  });

  it('a failed verification drops the staging schema, never swaps, and starts the app again', async () => {
    a().set({ verifyPhpipamStaging: () => fails('ipaddresses: 1999 rows, expected 2000', 'RestoreVerificationFailed') });
    expect(await runFailure(run({ approved: true }))).toMatchObject({ type: 'RestoreVerificationFailed' });
    expect(changingSteps()).toEqual(['stopPhpipamApp', 'loadPhpipamDump', 'dropPhpipamStaging', 'startPhpipamApp']);
  });

  it('says so when the staging schema could not be dropped', async () => {
    a().set({ loadPhpipamDump: () => fails('lost connection'), dropPhpipamStaging: () => fails('lost connection') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure.message).toContain('staging schema phpipam_restore_20261204 could NOT be dropped');
    expect(a().of('startPhpipamApp').length).toBe(1);
  });

  it('a failed stop of the app starts it again and loads nothing', async () => {
    a().set({ stopPhpipamApp: () => fails('systemctl stop phpipam-web.service: timed out') });
    await runFailure(run({ approved: true }));
    expect(changingSteps()).toEqual(['stopPhpipamApp', 'startPhpipamApp']);
  });
});

describe('the swap and after', () => {
  it('a failed swap keeps the staging schema for inspection and starts the app again', async () => {
    a().set({ swapPhpipamSchema: () => fails('RENAME TABLE failed: lock wait timeout', 'SwapFailed') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'SwapFailed' });
    expect(failure.message).toContain(
      'the swap failed (phpipam is as before unless the message says otherwise; phpipam_restore_20261204 is kept for inspection)',
    );
    expect(a().of('dropPhpipamStaging')).toEqual([]);
    expect(changingSteps()).toEqual(['stopPhpipamApp', 'loadPhpipamDump', 'swapPhpipamSchema', 'startPhpipamApp']);
  });

  it('an app that cannot be started after the swap fails the run, naming where the old tables are', async () => {
    a().set({ startPhpipamApp: () => fails('unit phpipam-web.service not found', 'ConfigError') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'RestoreFailed' });
    expect(failure.message).toContain(
      'was restored into phpipam (old tables in phpipam_pre_restore_20261204) but phpipam-web.service could not be started',
    );
    expect(a().of('dropPhpipamStaging')).toEqual([]);
  });

  it('a cancel during the load drops the staging schema, starts the app again and ends cancelled', async () => {
    // A run cancelled with an activity in flight leaves the Java test server's clock locked: a server of its own.
    const own = await startStubbedWorkflowWorld([]);
    try {
      const run = { handle: undefined as WorkflowHandle | undefined };
      own.activities.reset({
        ...healthyPhpipamStubs(CLUSTER, SET_ID),
        loadPhpipamDump: async () => {
          await run.handle!.cancel();
          return heartbeatUntilCancelled();
        },
      });
      const handle = (run.handle = await own.start('phpipamRestoreWorkflow', { cluster: CLUSTER, approved: true }));
      const err = await handle.result().catch((e: unknown) => e);
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      expect(own.activities.sequence((c) => CHANGING.includes(c.name))).toEqual([
        'stopPhpipamApp',
        'loadPhpipamDump',
        'dropPhpipamStaging',
        'startPhpipamApp',
      ]);
      expect(own.activities.of('discardStagedDump').length).toBe(1);
    } finally {
      await own.stop();
    }
  });
});
