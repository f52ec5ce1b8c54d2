/**
 * The phpIPAM restore runbook on the world's MariaDB (the phpIPAM-like fixture, binlog on), from
 * sets the backup set workflow really made: an approved restore loads the dump into a staging
 * schema, verifies it against the manifest and swaps it in keeping the old tables; a set whose
 * manifest facts the dump does not reproduce is refused with the live schema untouched and the
 * staging schema dropped; the phpIPAM app (a supervisord program) is stopped and started around it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startBackupSet, startPhpipamRestore } from '../src/client/temporal';
import { createManagementActivities } from '../src/activities';
import type { Config } from '../src/config/schema';
import type { PhpipamComponentRecord } from '../src/common/manifest';
import type { BackupSetResult } from '../src/workflows/backup-set';
import {
  approvePhpipamRestoreUpdate,
  phpipamRestorePlanQuery,
  type PhpipamRestoreInput,
  type PhpipamRestoreResult,
} from '../src/workflows/phpipam-restore';
import { progressQuery, type RunProgress } from '../src/workflows/progress';
import { tableFacts, type TableFact } from '../src/phpipam';
import { connectAsRoot, mariadbLayout } from '../src/sandbox/mariadb';
import { FIXTURE_EVENT, FIXTURE_FUNCTION, FIXTURE_TRIGGER } from '../src/sandbox/phpipam-fixture';
import { supervisorctl, supervisorLayout, writeProgramConfig, programConfPath } from '../src/sandbox/supervisor';
import { CLUSTER, openHarness, pollUntil, recordHistory, type Harness } from './support/harness';
import { WORLD_APPROVERS } from './support/shared';

let h: Harness;
let root: Connection;
const LIVE = 'phpipam';

beforeAll(async () => {
  h = await openHarness();
  root = await connectAsRoot(mariadbLayout(h.world.mariadb!.dir));
  // No grant here: the restore connects as the world's restore credential (phpipam.restore), provisioned with the README's grants.
});

afterAll(async () => {
  for (const schema of await restoreSchemas()) await root.query(`DROP DATABASE \`${schema}\``);
  await root.end();
  await h.close();
});

const facts = async (schema: string): Promise<TableFact[]> => (await tableFacts(root, schema, 'mariadb')).tables;
const rowsAndChecksums = (tables: TableFact[]) => tables.map(({ name, rows, checksum }) => ({ name, rows, checksum }));
const steps = (p: RunProgress) => p.steps.map((s) => `${s.name}:${s.state}`);

async function restoreSchemas(): Promise<string[]> {
  const [rows] = await root.query<RowDataPacket[]>(
    "SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'phpipam\\_%restore\\_%' ORDER BY 1",
  );
  return rows.map((r) => String(r.s));
}

async function phpipamSet(targets: string[]): Promise<{ setId: string; record: PhpipamComponentRecord }> {
  const result = (await (
    await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['phpipam'], targets })
  ).result()) as BackupSetResult;
  const record = result.manifest.components.find((c): c is PhpipamComponentRecord => c.component === 'phpipam');
  if (!record) throw new Error(`set ${result.setId} has no phpipam component`);
  return { setId: result.setId, record };
}

/** Writes after the backup, so the restore has something to undo. */
async function changeLiveData(): Promise<void> {
  await root.query("UPDATE phpipam.ipaddresses SET description = 'changed after the backup' WHERE id <= 10");
  await root.query("INSERT INTO phpipam.logs (severity, username, details) VALUES (1, 'restore-test', 'written after the backup')");
}

describe('phpIPAM restore', () => {
  it('waits for approval, loads into a staging schema, verifies against the manifest and swaps it in keeping the old tables', async () => {
    const schemasBefore = await restoreSchemas(); // earlier restores in this world (e.g. the DR test's) keep theirs
    const { setId, record } = await phpipamSet(['local', 's3']);
    expect(rowsAndChecksums(await facts(LIVE))).toEqual(rowsAndChecksums(record.facts.tables));
    await changeLiveData();
    const changed = rowsAndChecksums(await facts(LIVE));
    expect(changed).not.toEqual(rowsAndChecksums(record.facts.tables));

    const handle = await startPhpipamRestore(h.client, h.config, { cluster: CLUSTER, setId });
    const view = await pollUntil(
      async () => {
        const v = await handle.query(phpipamRestorePlanQuery);
        return v.state === 'awaiting-approval' && v;
      },
      60_000,
      'the phpIPAM restore plan awaiting approval',
    );
    const plan = view.plan!;
    expect(plan.setId).toBe(setId);
    expect(plan.staging).toMatch(/^phpipam_restore_\d{8}_\d{6}_\d{3}$/);
    expect(plan.keepAs).toBe(plan.staging.replace('_restore_', '_pre_restore_'));
    expect(view.staged?.bytes).toBe(record.artefacts[0]!.raw.bytes);
    // Nothing changed before the approval: live still holds the later writes, no new schema exists.
    expect(rowsAndChecksums(await facts(LIVE))).toEqual(changed);
    expect(await restoreSchemas()).not.toContain(plan.staging);

    // An approval must name the set the plan shows (the validator rejects it; the run keeps waiting).
    const wrong = await handle
      .executeUpdate(approvePhpipamRestoreUpdate, { args: [{ setId: 'another-set', approvedBy: 'sre' }] })
      .catch((e: unknown) => e);
    expect((wrong as Error & { cause?: Error }).cause?.message).toMatch(/would restore set .+, not another-set/);
    expect((await handle.query(phpipamRestorePlanQuery)).state).toBe('awaiting-approval');
    // Only the cluster's approvers may approve: anyone else is refused naming the list, and nothing
    // changes (the validator refuses before the Update is accepted: not even the history grows).
    const eventsBefore = (await handle.fetchHistory()).events!.length;
    const stranger = await handle
      .executeUpdate(approvePhpipamRestoreUpdate, { args: [{ setId, approvedBy: 'mallory' }] })
      .catch((e: unknown) => e);
    expect((stranger as Error & { cause?: Error }).cause?.message).toBe(
      `"mallory" may not approve runs of this cluster; the config's approvers are: ${WORLD_APPROVERS.map((a) => `"${a}"`).join(', ')}`,
    );
    expect((await handle.query(phpipamRestorePlanQuery)).state).toBe('awaiting-approval');
    expect((await handle.fetchHistory()).events!.length).toBe(eventsBefore);
    expect(rowsAndChecksums(await facts(LIVE))).toEqual(changed);
    await handle.executeUpdate(approvePhpipamRestoreUpdate, {
      args: [{ setId, approvedBy: 'sre on call', identity: 'approver@test-host' }],
    });
    const result = (await handle.result()) as PhpipamRestoreResult;

    expect(result.approvedBy).toBe('sre on call');
    expect(result.approverIdentity).toBe('approver@test-host');
    // Live now equals the backup table by table (rows and CHECKSUM TABLE), as the manifest recorded it.
    expect(rowsAndChecksums(await facts(LIVE))).toEqual(rowsAndChecksums(record.facts.tables));
    expect(result.verified).toEqual(rowsAndChecksums(record.facts.tables));
    // The old tables, with the writes made after the backup, are kept.
    expect(rowsAndChecksums(await facts(plan.keepAs))).toEqual(changed);
    const [kept] = await root.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${plan.keepAs}\`.logs WHERE username = 'restore-test'`);
    expect(Number(kept[0]!.n)).toBe(1);
    expect((await restoreSchemas()).filter((x) => !schemasBefore.includes(x))).toEqual([plan.keepAs]); // staging dropped after the swap
    // Trigger, routine and event are live again (and the trigger fires on the restored tables).
    expect(result.swap?.triggers).toEqual([FIXTURE_TRIGGER]);
    expect(result.swap?.routines).toEqual([`FUNCTION ${FIXTURE_FUNCTION}`]);
    expect(result.swap?.events).toEqual([FIXTURE_EVENT]);
    const [trig] = await root.query<RowDataPacket[]>(
      'SELECT EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?',
      [LIVE, FIXTURE_TRIGGER],
    );
    expect(trig.map((r) => r.t)).toEqual(['ipaddresses']);

    const progress = await handle.query(progressQuery);
    expect(steps(progress)).toEqual([
      'preflight:done',
      'approval:done',
      'stop phpIPAM:done',
      'load dump:done',
      'verify:done',
      'swap schema:done',
      'start phpIPAM:done',
    ]);
    expect(progress.steps.find((s) => s.name === 'approval')?.detail).toBe('approved by sre on call (client identity approver@test-host)');
    expect(progress.steps.find((s) => s.name === 'stop phpIPAM')?.detail).toMatch(/no app service configured/);
    expect(progress.steps.find((s) => s.name === 'swap schema')?.detail).toContain(`old tables kept in ${plan.keepAs}`);
    expect(result.app).toEqual({ service: null, stopped: false, started: false });
    await recordHistory(handle, 'phpipam-restore');
  });

  it('dry run: plans and checks the dump, changes nothing', async () => {
    const before = rowsAndChecksums(await facts(LIVE));
    const schemas = await restoreSchemas();
    const handle = await startPhpipamRestore(h.client, h.config, { cluster: CLUSTER, dryRun: true });
    const result = (await handle.result()) as PhpipamRestoreResult;
    expect(result.dryRun).toBe(true);
    expect(result.loaded).toBeNull();
    expect(steps(await handle.query(progressQuery))).toEqual([
      'preflight:done',
      'approval:skipped',
      'stop phpIPAM:skipped',
      'load dump:skipped',
      'verify:skipped',
      'swap schema:skipped',
      'start phpIPAM:skipped',
    ]);
    expect(rowsAndChecksums(await facts(LIVE))).toEqual(before);
    expect(await restoreSchemas()).toEqual(schemas);
  });

  it('restores a database with views: recreated after the swap on the live tables, definer and SQL SECURITY kept', async () => {
    // Another definer than the restore's user, and INVOKER security: both must survive the restore.
    await root.query(
      `CREATE DEFINER = \`${h.world.mariadb!.user}\`@\`%\` SQL SECURITY INVOKER VIEW ${LIVE}.v_used_addresses AS SELECT id, ip_addr FROM ${LIVE}.ipaddresses`,
    );
    try {
      const { setId } = await phpipamSet(['local']);
      await changeLiveData();
      const handle = await startPhpipamRestore(h.client, h.config, { cluster: CLUSTER, setId, approved: true });
      const result = (await handle.result()) as PhpipamRestoreResult;
      expect(result.swap?.views).toEqual({ live: ['v_used_addresses'], kept: ['v_used_addresses'] });
      const [views] = await root.query<RowDataPacket[]>(
        'SELECT TABLE_SCHEMA AS s, SECURITY_TYPE AS security, DEFINER AS definer, VIEW_DEFINITION AS def FROM information_schema.VIEWS WHERE TABLE_NAME = ? ORDER BY 1',
        ['v_used_addresses'],
      );
      expect(views.map((v) => [v.s, v.security, v.definer])).toEqual([
        [LIVE, 'INVOKER', `${h.world.mariadb!.user}@%`],
        [result.keepAs, 'INVOKER', `${h.world.mariadb!.user}@%`],
      ]);
      expect(String(views[0]!.def)).toContain(`\`${LIVE}\`.\`ipaddresses\``);
      const [counts] = await root.query<RowDataPacket[]>(
        `SELECT (SELECT COUNT(*) FROM ${LIVE}.v_used_addresses) AS viewed, (SELECT COUNT(*) FROM ${LIVE}.ipaddresses) AS base`,
      );
      expect(Number(counts[0]!.viewed)).toBe(Number(counts[0]!.base));
    } finally {
      await root.query(`DROP VIEW IF EXISTS ${LIVE}.v_used_addresses`);
    }
  });

  describe('with the phpIPAM app configured (phpipam.appService)', () => {
    const APP = 'phpipam-app';
    const taskQueue = 'phpipam-restore-with-app';
    let worker: Worker;
    let connection: NativeConnection;
    let running: Promise<void>;

    beforeAll(async () => {
      // The app: a long-running program under the world's supervisord, as phpIPAM's php-fpm would be under systemd.
      const layout = supervisorLayout(h.world.dir);
      writeProgramConfig(layout, { name: APP, command: [process.execPath, '-e', 'setInterval(() => undefined, 1 << 30)'] });
      await supervisorctl(layout.conf, 'reread');
      await supervisorctl(layout.conf, 'update');
      await pollUntil(async () => /RUNNING/.test(await supervisorctl(layout.conf, 'status', APP)), 30_000, `${APP} running`);
      // A management worker of its own, on a config that names the app (the shared worker's config does not).
      const config = structuredClone(h.config) as Config;
      config.clusters.find((c) => c.name === CLUSTER)!.phpipam!.appService = {
        driver: 'supervisor',
        supervisorConf: layout.conf,
        program: APP,
      };
      connection = await NativeConnection.connect({ address: inject('world').temporalAddress });
      worker = await Worker.create({
        connection,
        taskQueue,
        workflowBundle: { codePath: inject('world').workflowBundlePath },
        activities: createManagementActivities({ config }),
      });
      running = worker.run();
    });

    afterAll(async () => {
      worker?.shutdown();
      await running;
      await connection?.close();
      const layout = supervisorLayout(h.world.dir);
      await supervisorctl(layout.conf, 'stop', APP).catch(() => undefined);
      rmSync(programConfPath(layout, APP), { force: true });
      await supervisorctl(layout.conf, 'update');
    });

    const appPid = async () => Number((await supervisorctl(h.world.supervisorConf, 'pid', APP)).trim());

    it('refuses a set whose dump does not reproduce its manifest: live untouched, staging dropped, app running again', async () => {
      const { setId, record } = await phpipamSet(['local']);
      // The manifest in the store now records another checksum for one table than its dump holds.
      const local = h.config.storage.find((t) => t.name === 'local');
      if (local?.type !== 'local') throw new Error('the world has no local target');
      const manifestPath = join(local.path, setId, 'manifest.json');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
      const stored = manifest.components
        .find((c: { component: string }) => c.component === 'phpipam')
        .facts.tables.find((t: TableFact) => t.name === 'ipaddresses');
      const recorded = record.facts.tables.find((t) => t.name === 'ipaddresses')!.checksum;
      expect(stored.checksum).toBe(recorded);
      stored.checksum = '12345';
      writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
      try {
        await changeLiveData();
        const before = rowsAndChecksums(await facts(LIVE));
        const schemas = await restoreSchemas();
        const pidBefore = await appPid();

        const input: PhpipamRestoreInput = { cluster: CLUSTER, setId, approved: true };
        const handle = await h.client.workflow.start('phpipamRestoreWorkflow', {
          taskQueue,
          workflowId: `phpipam-restore-bad-facts-${setId}`,
          args: [input],
        });
        const err = await handle.result().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        const cause = (err as WorkflowFailedError).cause as ApplicationFailure;
        expect(cause.type).toBe('RestoreVerificationFailed');
        expect(cause.message).toContain(`ipaddresses: checksum expected 12345, got ${recorded}`);
        expect(cause.message).toMatch(/phpipam was not touched, staging schema phpipam_restore_\d+_\d+_\d+ dropped/);

        expect(rowsAndChecksums(await facts(LIVE))).toEqual(before);
        expect(await restoreSchemas()).toEqual(schemas); // neither staging nor keep schema left
        const progress = await handle.query(progressQuery);
        expect(steps(progress)).toEqual([
          'preflight:done',
          'approval:done',
          'stop phpIPAM:done',
          'load dump:done',
          'verify:failed',
          'swap schema:skipped',
          'start phpIPAM:done',
        ]);
        expect(progress.steps.find((s) => s.name === 'stop phpIPAM')?.detail).toBe(`supervisor program ${APP} stopped`);
        // The app was really stopped and started again: a new process, running.
        expect(await supervisorctl(h.world.supervisorConf, 'status', APP)).toMatch(/RUNNING/);
        expect(await appPid()).not.toBe(pidBefore);
      } finally {
        rmSync(join(manifestPath, '..'), { recursive: true, force: true }); // a set with a wrong manifest must not linger
      }
    });

    it('stops the app for the swap and starts it again after a restore', async () => {
      const { setId, record } = await phpipamSet(['local']);
      await changeLiveData();
      const pidBefore = await appPid();
      const handle = await h.client.workflow.start('phpipamRestoreWorkflow', {
        taskQueue,
        workflowId: `phpipam-restore-with-app-${setId}`,
        args: [{ cluster: CLUSTER, setId, approved: true } satisfies PhpipamRestoreInput],
      });
      const result = (await handle.result()) as PhpipamRestoreResult;
      expect(result.app).toEqual({ service: `supervisor program ${APP}`, stopped: true, started: true });
      expect(rowsAndChecksums(await facts(LIVE))).toEqual(rowsAndChecksums(record.facts.tables));
      expect(await supervisorctl(h.world.supervisorConf, 'status', APP)).toMatch(/RUNNING/);
      expect(await appPid()).not.toBe(pidBefore);
      const log = readFileSync(join(h.world.dir, 'supervisor', 'supervisord.log'), 'utf8');
      expect(log).toMatch(new RegExp(`stopped: ${APP}`));
    });
  });
});
