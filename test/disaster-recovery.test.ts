/**
 * Full disaster recovery end to end on the real world: etcd and phpIPAM wrecked after a backup
 * set, one approval, then etcd restore -> phpIPAM restore -> the real agents restarted and
 * republished to -> service checks against a real Knot serving what node-1's agent rendered, and
 * Kea lease files counted inside the subnets each agent's kea-dhcp4.conf serves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { startBackupSet } from '../src/client/temporal';
import { connectAsRoot, mariadbLayout } from '../src/sandbox/mariadb';
import type { BackupSetResult } from '../src/workflows/backup-set';
import { approveRestoreUpdate } from '../src/workflows/approval';
import { reportQuery, type DisasterRecoveryReport } from '../src/workflows/disaster-recovery';
import { CLUSTER, memberClient, openHarness, pollUntil, recordHistory, type Harness } from './support/harness';

let h: Harness;
let root: Connection;
beforeAll(async () => {
  h = await openHarness();
  root = await connectAsRoot(mariadbLayout(h.world.mariadb!.dir));
  // The phpIPAM restore connects as the world's restore credential (phpipam.restore) with its grants.
});
afterAll(async () => {
  await root.end();
  await h.close();
});

const addresses = async () =>
  Number(((await root.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM phpipam.ipaddresses'))[0][0] as { n: number }).n);

describe('full disaster recovery', () => {
  it('one approval restores etcd and phpIPAM, the agents serve the restored zones and scopes, and DNS and DHCP answer again', async () => {
    const etcd = await memberClient(h.config, 'etcd-1');
    await etcd
      .put('/nnoe/dns/zones/example.com')
      .value(JSON.stringify({ domain: 'example.com', ttl: 300, records: [{ name: 'www', type: 'A', value: '10.0.0.1' }] }));
    await etcd
      .put('/nnoe/dhcp/scopes/lab-v4')
      .value(JSON.stringify({ subnet: '10.10.0.0/24', pool: { start: '10.10.0.100', end: '10.10.0.200' } }));
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] })
    ).result()) as BackupSetResult;
    const rowsBefore = await addresses();

    // The disaster: zones and scopes gone from etcd (the agents still render them: a delete does not
    // remove a rendering), phpIPAM's addresses wiped.
    await etcd.delete().prefix('/nnoe/dns/zones/');
    await etcd.delete().prefix('/nnoe/dhcp/scopes/');
    etcd.close();
    await root.query('SET FOREIGN_KEY_CHECKS = 0');
    await root.query('DELETE FROM phpipam.ipaddresses');
    await root.query('SET FOREIGN_KEY_CHECKS = 1');
    expect(await addresses()).toBe(0);

    const handle = await h.client.workflow.start('disasterRecoveryWorkflow', {
      taskQueue: h.config.temporal.taskQueue,
      workflowId: `disaster-recovery-test-${Date.now()}`,
      args: [{ cluster: CLUSTER, setId: set.setId }],
    });
    const waiting = await pollUntil(
      async () => {
        const { progress } = await handle.query(reportQuery);
        return (progress.state === 'failed' || progress.steps.find((s) => s.name === 'approval')?.state === 'running') && progress;
      },
      120_000,
      'the DR waiting for approval (after every preflight)',
    );
    expect(waiting.steps.map((s) => `${s.name}:${s.state}${s.state === 'failed' ? ` ${s.detail}` : ''}`).slice(0, 3)).toEqual([
      'plan:done',
      'preflight:done',
      'approval:running',
    ]);
    await handle.executeUpdate(approveRestoreUpdate, { args: [{ setId: set.setId, approvedBy: 'incident commander' }] });
    const report = (await handle.result()) as DisasterRecoveryReport;

    expect(report.ok).toBe(true);
    expect(report.approvedBy).toBe('incident commander');
    expect(report.progress.steps.map((s) => `${s.name}:${s.state}`)).toEqual([
      'plan:done',
      'preflight:done',
      'approval:done',
      'restore etcd:done',
      'restore phpIPAM:done',
      'restart agents:done',
      'check services:done',
    ]);
    const byKind = (kind: string) => report.checks.filter((c) => c.kind === kind);
    expect(byKind('dns')).toEqual([expect.objectContaining({ ok: true, detail: 'answered 10.0.0.1' })]);
    expect(byKind('dhcp')).toEqual(
      [1, 2].map((n) =>
        expect.objectContaining({
          ok: true,
          detail: expect.stringMatching(
            new RegExp(`^2 active leases in the subnets .*/nodes/node-${n}/etc/kea/kea-dhcp4\\.conf serves \\(.*10\\.10\\.0\\.0/24`),
          ),
        }),
      ),
    );
    expect(report.agents?.map((a) => [a.node, a.check.serving, a.check.differences])).toEqual([
      ['node-1', true, []],
      ['node-2', true, []],
    ]);
    expect(await addresses()).toBe(rowsBefore);
    expect(report.changed).toEqual([
      `etcd restored from ${set.setId}`,
      expect.stringMatching(new RegExp(`^phpIPAM restored from ${set.setId} \\(old tables kept as phpipam_pre_restore_`)),
    ]);
    expect(report.unchanged).toEqual([]);
    await recordHistory(handle, 'disaster-recovery-real-agents-with-preflight');
  }, 600_000);
});

const startDr = (id: string, input: Record<string, unknown>) =>
  h.client.workflow.start('disasterRecoveryWorkflow', {
    taskQueue: h.config.temporal.taskQueue,
    workflowId: `disaster-recovery-${id}-${Date.now()}`,
    args: [{ cluster: CLUSTER, ...input }],
  });
const failureOf = async (handle: WorkflowHandle) =>
  ((await handle.result().catch((e: unknown) => e)) as WorkflowFailedError).cause as ApplicationFailure;
const stepsOf = async (handle: WorkflowHandle) => (await handle.query(reportQuery)).progress.steps.map((s) => `${s.name}:${s.state}`);

describe('disaster recovery refusals, before anything changes', () => {
  it('refuses a set without the configured phpIPAM unless components choose, and says what it leaves as it was', async () => {
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['etcd'], targets: ['local'] })
    ).result()) as BackupSetResult;
    const refused = await startDr('etcd-only', { setId: set.setId, approved: true });
    const failure = await failureOf(refused);
    expect(failure.type).toBe('RestoreRefused');
    expect(failure.message).toMatch(
      new RegExp(
        `backup set ${set.setId} does not hold an etcd snapshot and a phpIPAM dump, while cluster nnoe-local has etcd and phpIPAM configured: run with --components`,
      ),
    );
    expect(await stepsOf(refused)).toEqual([
      'plan:failed',
      'preflight:skipped',
      'approval:skipped',
      'restore etcd:skipped',
      'restore phpIPAM:skipped',
      'restart agents:skipped',
      'check services:skipped',
    ]);

    const chosen = await startDr('etcd-only-chosen', { setId: set.setId, components: ['etcd'], dryRun: true });
    const report = (await chosen.result()) as DisasterRecoveryReport;
    expect(report).toMatchObject({ dryRun: true, changed: [], unchanged: ['everything (dry run)'] });
    expect(report.plan).toMatchObject({ components: ['etcd'], unchanged: ['phpIPAM (not chosen with components)'] });
    expect(report.progress.steps.find((s) => s.name === 'plan')?.detail).toContain('left as it is: phpIPAM (not chosen with components)');
  }, 300_000);

  it('runs the phpIPAM preflight before the approval: a refusal there leaves etcd untouched', async () => {
    const set = (await (await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })).result()) as BackupSetResult;
    const restoreUser = h.config.clusters.find((c) => c.name === CLUSTER)!.phpipam!.restore!.user;
    await root.query('REVOKE ALL PRIVILEGES ON `phpipam\\_%`.* FROM ?@?', [restoreUser, '%']);
    try {
      const handle = await startDr('phpipam-preflight', { setId: set.setId, approved: true });
      const failure = await failureOf(handle);
      expect(failure.message).toMatch(
        /^disaster recovery failed: phpIPAM restore refused in the preflight: user phpipam_restore may not create schema .*GRANT ALL ON `phpipam\\_%`\.\* TO .*nothing was stopped or changed/,
      );
      expect(failure.type).toBe('DatabasePrivilegeMissing');
      expect(await stepsOf(handle)).toEqual([
        'plan:done',
        'preflight:failed',
        'approval:skipped',
        'restore etcd:skipped',
        'restore phpIPAM:skipped',
        'restart agents:skipped',
        'check services:skipped',
      ]);
    } finally {
      await root.query('GRANT ALL PRIVILEGES ON `phpipam\\_%`.* TO ?@?', [restoreUser, '%']);
    }
  }, 300_000);

  it('fails a bad input at once, non-retryably, naming it', async () => {
    const failure = await failureOf(await startDr('bad-input', { approvalTimeout: '5x', components: ['agents'] }));
    expect(failure).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect(failure.message).toContain('approvalTimeout: "5x" is not a positive duration');
    expect(failure.message).toContain('components: expected a non-empty list of etcd, phpipam, got ["agents"]');
  });
});
