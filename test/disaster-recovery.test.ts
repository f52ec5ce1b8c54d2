/**
 * Full disaster recovery end to end on the real world: etcd and phpIPAM wrecked after a backup
 * set, one approval, then etcd restore -> phpIPAM restore -> the real agents restarted and
 * republished to -> service checks against a real Knot serving what node-1's agent rendered, and
 * Kea lease files counted inside the subnets each agent's kea-dhcp4.conf serves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
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
  await root.query('GRANT ALL PRIVILEGES ON `phpipam\\_%`.* TO ?@?', [h.world.mariadb!.user, '%']); // staging + keep schemas
});
afterAll(async () => {
  await root.query('REVOKE ALL PRIVILEGES ON `phpipam\\_%`.* FROM ?@?', [h.world.mariadb!.user, '%']).catch(() => undefined);
  await root.end();
  await h.close();
});

const addresses = async () => Number(((await root.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM phpipam.ipaddresses'))[0][0] as { n: number }).n);

describe('full disaster recovery', () => {
  it('one approval restores etcd and phpIPAM, the agents serve the restored zones and scopes, and DNS and DHCP answer again', async () => {
    const etcd = await memberClient(h.config, 'etcd-1');
    await etcd.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ domain: 'example.com', ttl: 300, records: [{ name: 'www', type: 'A', value: '10.0.0.1' }] }));
    await etcd.put('/nnoe/dhcp/scopes/lab-v4').value(JSON.stringify({ subnet: '10.10.0.0/24', pool: { start: '10.10.0.100', end: '10.10.0.200' } }));
    const set = await (await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] })).result() as BackupSetResult;
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
      taskQueue: h.config.temporal.taskQueue, workflowId: `disaster-recovery-test-${Date.now()}`, args: [{ cluster: CLUSTER, setId: set.setId }],
    });
    await pollUntil(async () => (await handle.query(reportQuery)).progress.steps.find((s) => s.name === 'approval')?.state === 'running', 60_000, 'the DR waiting for approval');
    await handle.executeUpdate(approveRestoreUpdate, { args: [{ setId: set.setId, approvedBy: 'incident commander' }] });
    const report = await handle.result() as DisasterRecoveryReport;

    expect(report.ok).toBe(true);
    expect(report.approvedBy).toBe('incident commander');
    expect(report.progress.steps.map((s) => `${s.name}:${s.state}`)).toEqual([
      'plan:done', 'approval:done', 'restore etcd:done', 'restore phpIPAM:done', 'restart agents:done', 'check services:done',
    ]);
    const byKind = (kind: string) => report.checks.filter((c) => c.kind === kind);
    expect(byKind('dns')).toEqual([expect.objectContaining({ ok: true, detail: 'answered 10.0.0.1' })]);
    expect(byKind('dhcp')).toEqual([1, 2].map((n) => expect.objectContaining({
      ok: true, detail: expect.stringMatching(new RegExp(`^2 active leases in the subnets .*/nodes/node-${n}/etc/kea/kea-dhcp4\\.conf serves \\(.*10\\.10\\.0\\.0/24`)),
    })));
    expect(report.agents?.map((a) => [a.node, a.check.serving, a.check.differences])).toEqual([['node-1', true, []], ['node-2', true, []]]);
    expect(await addresses()).toBe(rowsBefore);
    await recordHistory(handle, 'disaster-recovery-real-agents');
  }, 600_000);
});
