/**
 * Every branch of the full disaster recovery (src/workflows/disaster-recovery.ts) with stubbed
 * activities on the time-skipping test server: every component's preflight (dry-run children) before
 * the one approval, then the etcd restore, the phpIPAM restore, the agents and the service checks in
 * the runbook's order; a failure says what had already changed, and nothing later runs.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import type { DisasterRecoveryInput, DisasterRecoveryReport } from '../../../src/workflows/disaster-recovery';
import {
  awaitingApproval,
  runFailure,
  startStubbedWorkflowWorld,
  type ResultOf,
  type StubbedWorkflowWorld,
} from '../support/stubbed-workers';
import { AGENT_NODES, CLUSTER, deafAgent, fails, healthyEtcdStubs, NODES, SET_ID } from './etcd-fakes';
import { healthyPhpipamStubs } from './phpipam-fakes';

function drPlan(overrides: Partial<ResultOf<'planDisasterRecovery'>> = {}): ResultOf<'planDisasterRecovery'> {
  return {
    cluster: CLUSTER,
    setId: SET_ID,
    setCreatedAt: '2026-12-04T06:00:00.000Z',
    phpipam: true,
    components: ['etcd', 'phpipam'],
    unchanged: [],
    agentNodes: AGENT_NODES,
    dhcpNodes: ['node-1'],
    checks: { dns: 1, dhcp: 1, metrics: 1 },
    ...overrides,
  };
}

const passing = (kind: 'dns' | 'dhcp' | 'metrics', target: string) => [{ kind, target, ok: true, detail: 'as expected' }];

let world: StubbedWorkflowWorld;
beforeAll(async () => {
  world = await startStubbedWorkflowWorld(NODES);
}, 120_000);
afterAll(async () => {
  await world?.stop();
});
beforeEach(() =>
  world.activities.reset({
    ...healthyEtcdStubs(),
    ...healthyPhpipamStubs(CLUSTER, SET_ID),
    planDisasterRecovery: () => drPlan(),
    checkDns: () => passing('dns', 'www.example.com @127.0.0.1'),
    checkDhcpLeases: () => passing('dhcp', 'node-1 kea-leases4.csv'),
    checkMetrics: () => [],
  }),
);
afterEach(async () => {
  await world.afterTest();
}, 60_000);

const a = () => world.activities;
/** What changes etcd, phpIPAM or the agents. */
const CHANGING = [
  'restoreEtcdMemberData',
  'stopEtcdMember',
  'repointEtcdMemberConfig',
  'startEtcdMember',
  'revertEtcdMemberConfig',
  'stopPhpipamApp',
  'loadPhpipamDump',
  'swapPhpipamSchema',
  'startPhpipamApp',
  'restartAgent',
  'restartAgentAndWait',
];
const changingSteps = () => a().sequence((c) => CHANGING.includes(c.name));

function start(input: Partial<DisasterRecoveryInput>, unpatched: string[] = []): Promise<WorkflowHandle> {
  return world.start('disasterRecoveryWorkflow', { cluster: CLUSTER, ...input }, { unpatched });
}

async function run(input: Partial<DisasterRecoveryInput>, unpatched: string[] = []): Promise<DisasterRecoveryReport> {
  return (await start(input, unpatched)).result();
}

describe('disaster recovery', () => {
  it('runs every preflight before the one approval, then etcd, phpIPAM, the agents and the service checks, in that order', async () => {
    const handle = await start({});
    await awaitingApproval(handle);
    // Both preflights ran as dry runs: the snapshot staged on every node, the dump staged; nothing changed.
    expect(a().of('stageEtcdSnapshot').length).toBe(3);
    expect(a().of('stagePhpipamDump').length).toBe(1);
    expect(changingSteps()).toEqual([]);
    await handle.executeUpdate('approve', { args: [{ setId: SET_ID, approvedBy: 'alice' }] });
    const report: DisasterRecoveryReport = await handle.result();
    expect(report).toMatchObject({ ok: true, approvedBy: 'alice', dryRun: false, unchanged: [] });
    expect(report.changed).toEqual([
      `etcd restored from ${SET_ID}`,
      `phpIPAM restored from ${SET_ID} (old tables kept as phpipam_pre_restore_20261204)`,
    ]);
    expect(report.etcdRestore?.setId).toBe(SET_ID);
    // etcd (restored and verified) -> phpIPAM -> agents (once, after both) -> checks.
    expect(a().first('stopPhpipamApp')).toBeGreaterThan(a().last('verifyRestoredContent'));
    expect(a().first('restartAgent')).toBeGreaterThan(a().last('startPhpipamApp'));
    expect(
      a()
        .of('restartAgent')
        .map((c) => c.node),
    ).toEqual(AGENT_NODES);
    expect(a().first('checkDns')).toBeGreaterThan(a().last('checkAgent'));
    expect(
      a()
        .of('checkDhcpLeases')
        .map((c) => c.node),
    ).toEqual(['node-1']);
    expect(report.checks.map((c) => c.kind)).toEqual(['dns', 'dhcp']);
  });

  it('a dry run runs the preflights and changes nothing', async () => {
    const report = await run({ dryRun: true });
    expect(report).toMatchObject({ dryRun: true, changed: [], unchanged: ['everything (dry run)'] });
    expect(a().of('stageEtcdSnapshot').length).toBe(3);
    expect(a().of('stagePhpipamDump').length).toBe(1);
    expect(changingSteps()).toEqual([]);
  });

  it('a preflight refusal ends the run before the approval, with nothing changed and the other preflight cleaned up', async () => {
    const base = healthyEtcdStubs();
    a().set({
      stagePhpipamDump: () => fails('dump: stored sha256 differs', 'ChecksumMismatch'),
      // The etcd preflight is still staging on node-3 when the phpIPAM preflight refuses.
      stageEtcdSnapshot: async (i) => {
        if (i.member === 'etcd-3') await new Promise((r) => setTimeout(r, 1000));
        return base.stageEtcdSnapshot!(i);
      },
    });
    const failure = await runFailure(run({}));
    expect(failure).toMatchObject({ type: 'ChecksumMismatch' });
    expect(failure.message).toContain('disaster recovery failed');
    expect(changingSteps()).toEqual([]);
    // The etcd preflight ran to its end: its staged copies are removed, not left on the nodes.
    expect(
      a()
        .of('discardStagedSnapshot')
        .map((c) => c.input.member)
        .sort(),
    ).toEqual(['etcd-1', 'etcd-2', 'etcd-3']);
  });

  it('an approval timeout changes nothing', async () => {
    expect(await runFailure(run({ approvalTimeout: '45m' }))).toMatchObject({ type: 'ApprovalTimedOut' });
    expect(changingSteps()).toEqual([]);
  });

  it('a failed etcd restore rolls etcd back and restores nothing else', async () => {
    a().set({ startEtcdMember: () => fails('etcd exited at once') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'RolledBack' });
    expect(failure.message).not.toContain('already changed');
    expect(a().of('revertEtcdMemberConfig').length).toBe(3);
    expect(a().of('stopPhpipamApp')).toEqual([]);
    expect(a().of('checkDns')).toEqual([]);
  });

  it('a failed phpIPAM restore after etcd says etcd was already restored, and neither rolls etcd back nor goes on', async () => {
    a().set({ loadPhpipamDump: () => fails('ERROR 1064 at line 12', 'DumpLoadFailed') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'DumpLoadFailed' });
    expect(failure.message).toContain(`already changed: etcd restored from ${SET_ID}`);
    expect(a().of('revertEtcdMemberConfig')).toEqual([]);
    expect(a().of('dropPhpipamStaging').length).toBe(1);
    expect(a().of('restartAgent')).toEqual([]);
    expect(a().of('checkDns')).toEqual([]);
  });

  it('an agent that does not serve fails the run before the service checks', async () => {
    a().set({ checkAgent: () => deafAgent('node-1') });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'AgentsNotServing' });
    expect(failure.message).toContain('already changed: etcd restored');
    expect(a().of('checkDns')).toEqual([]);
  });

  it('failing service checks are retried while services settle, then fail the run naming each', async () => {
    a().set({ checkDns: () => [{ kind: 'dns', target: 'www.example.com @127.0.0.1', ok: false, detail: 'NXDOMAIN' }] });
    const failure = await runFailure(run({ approved: true }));
    expect(failure).toMatchObject({ type: 'ServiceChecksFailed' });
    expect(failure.message).toContain('dns www.example.com @127.0.0.1: NXDOMAIN');
    expect(a().of('checkDns').length).toBe(10);
  });

  it('restores only the components asked for', async () => {
    a().set({ planDisasterRecovery: () => drPlan({ components: ['etcd'], unchanged: ['phpIPAM (not chosen)'] }) });
    const report = await run({ approved: true, components: ['etcd'] });
    expect(report.changed).toEqual([`etcd restored from ${SET_ID}`]);
    expect(report.unchanged).toEqual(['phpIPAM (not chosen)']);
    expect(a().of('planPhpipamRestore')).toEqual([]);
    expect(a().of('stopPhpipamApp')).toEqual([]);
  });

  it('bad input fails before any step', async () => {
    const failure = await runFailure(run({ components: ['etcd', 'dns'] as never }));
    expect(failure).toMatchObject({ type: 'InvalidInput' });
    expect(a().calls).toEqual([]);
  });
});

describe('runs recorded before a patch marker', () => {
  it('dr-preflight-before-approval: no preflight children, the approval right after the plan', async () => {
    const handle = await start({}, ['dr-preflight-before-approval']);
    await awaitingApproval(handle);
    expect(a().sequence()).toEqual(['planDisasterRecovery']);
    await handle.executeUpdate('approve', { args: [{ setId: SET_ID, approvedBy: 'alice' }] });
    await handle.result();
    expect(a().of('stageEtcdSnapshot').length).toBe(3); // once, by the restore itself
  });

  it('real-agent-recovery: each agent restarted and waited for by its health', async () => {
    await run({ approved: true }, ['real-agent-recovery']);
    expect(
      a()
        .of('restartAgentAndWait')
        .map((c) => c.node),
    ).toEqual(AGENT_NODES);
    expect(a().of('restartAgent')).toEqual([]);
  });
});
