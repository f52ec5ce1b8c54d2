/**
 * Runbook "Disaster Recovery" (full cluster recovery), one approval for the whole of it, then in
 * the runbook's order: etcd restore -> phpIPAM restore -> agents (restart, wait until healthy)
 * -> service checks (DNS answers, DHCP leases, metrics). The `report` query shows every step and
 * check as it goes; the result is the same report. Children run pre-approved under this run's approval.
 */
import { ApplicationFailure, defineQuery, executeChild, patched, proxyActivities, setHandler, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { createDisasterRecoveryActivities, DisasterRecoveryPlan } from '../activities/disaster-recovery';
import type { createServiceCheckActivities, createDhcpCheckActivities, ServiceCheck } from '../activities/service-checks';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { ProgressTracker, type RunProgress } from './progress';
import { approvalGate, type ApprovalState } from './approval';
import { etcdRestoreWorkflow } from './etcd-restore';
import { phpipamRestoreWorkflow } from './phpipam-restore';
import { agentsNotServing, agentsOnNode, describeRecovery, REAL_AGENT_RECOVERY, recoverAgents, type AgentRecovery } from './agent-recovery';

export interface DisasterRecoveryInput {
  cluster: string;
  setId?: string;
  approved?: boolean;
  approvalTimeout?: Duration;
}

export interface DisasterRecoveryReport {
  cluster: string;
  plan: DisasterRecoveryPlan | null;
  approvedBy: string | null;
  progress: RunProgress;
  checks: ServiceCheck[];
  /** Each agent after its restart + republish. */
  agents?: AgentRecovery[];
  ok: boolean;
}

export const reportQuery = defineQuery<DisasterRecoveryReport>('report');

const { planDisasterRecovery } = proxyActivities<ReturnType<typeof createDisasterRecoveryActivities>>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

const { checkDns, checkMetrics } = proxyActivities<ReturnType<typeof createServiceCheckActivities>>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

const dhcpOnNode = (node: string) => proxyActivities<ReturnType<typeof createDhcpCheckActivities>>({
  taskQueue: nodeTaskQueue(workflowInfo().taskQueue, node),
  scheduleToCloseTimeout: '5m',
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Services need a moment after the agents report healthy (DNS servers reread their files): checks are retried for a while. */
async function settle(run: () => Promise<ServiceCheck[]>, attempts = 10): Promise<ServiceCheck[]> {
  let checks = await run();
  for (let i = 1; i < attempts && checks.some((c) => !c.ok); i++) {
    await sleep(2000);
    checks = await run();
  }
  return checks;
}

export async function disasterRecoveryWorkflow(input: DisasterRecoveryInput): Promise<DisasterRecoveryReport> {
  if (!input?.cluster) throw ApplicationFailure.nonRetryable('a disaster recovery needs { cluster }', FailureType.InvalidInput);
  upsertSearchAttributes([{ key: NnoeCluster, value: input.cluster }, { key: NnoeRunbook, value: 'disaster-recovery' }]);
  const tracker = new ProgressTracker('disaster-recovery', input.cluster, ['plan', 'approval', 'restore etcd', 'restore phpIPAM', 'restart agents', 'check services']);
  const view: { state: ApprovalState; plan: DisasterRecoveryPlan | null } = { state: 'planning', plan: null };
  const approval = approvalGate(view);
  const report: DisasterRecoveryReport = { cluster: input.cluster, plan: null, approvedBy: null, progress: tracker.progress, checks: [], ok: false };
  setHandler(reportQuery, () => report);

  try {
    const plan = await tracker.step('plan', () => planDisasterRecovery({ cluster: input.cluster, setId: input.setId }),
      (p) => `set ${p.setId}: etcd${p.phpipam ? ' + phpIPAM' : ''}, ${p.agentNodes.length} agents, ${p.checks.dns + p.checks.dhcp + p.checks.metrics} service checks`);
    view.plan = plan;
    report.plan = plan;
    tracker.progress.setId = plan.setId;
    upsertSearchAttributes([{ key: NnoeBackupSet, value: plan.setId }]);

    await tracker.step('approval', async () => {
      if (!(await approval.await(input))) {
        throw ApplicationFailure.nonRetryable(`disaster recovery from ${plan.setId} was not approved within ${String(input.approvalTimeout ?? '1h')}; nothing was changed`, FailureType.ApprovalTimedOut);
      }
    }, () => `approved by ${approval.approvedBy()}`);
    report.approvedBy = approval.approvedBy();
    const id = workflowInfo().workflowId;

    await tracker.step('restore etcd', () => executeChild(etcdRestoreWorkflow, {
      workflowId: `${id}/etcd-restore`, args: [{ cluster: plan.cluster, setId: plan.setId, approved: true, restartAgents: false }],
    }), (r) => `revision ${r.check?.revision}, ${r.check?.members.length} members healthy`);

    await tracker.step('restore phpIPAM', async () => {
      if (!plan.phpipam) return 'no phpIPAM in this set or cluster';
      const r = await executeChild(phpipamRestoreWorkflow, { workflowId: `${id}/phpipam-restore`, args: [{ cluster: plan.cluster, setId: plan.setId, approved: true }] });
      return `${r.verified.length} tables verified and swapped in (old kept as ${r.keepAs})`;
    }, (d) => d);

    if (patched(REAL_AGENT_RECOVERY)) {
      report.agents = await tracker.step('restart agents', () => recoverAgents(plan.cluster, plan.agentNodes), describeRecovery);
      const problem = agentsNotServing(report.agents);
      if (problem) {
        throw ApplicationFailure.nonRetryable(`disaster recovery restored ${plan.setId}, but ${problem}`, FailureType.AgentsNotServing);
      }
    } else await tracker.step('restart agents', async () => {
      const ready: string[] = [];
      for (const node of plan.agentNodes) {
        const health = await agentsOnNode(node).restartAgentAndWait({ cluster: plan.cluster });
        ready.push(`${node} healthy after ${health.readyAfterMs} ms`);
      }
      return ready.join(', ') || 'no agents configured';
    }, (d) => d);

    report.checks = await tracker.step('check services', () => settle(async () => [
      ...(await checkDns({ cluster: plan.cluster })),
      ...(await Promise.all(plan.dhcpNodes.map((node) => dhcpOnNode(node).checkDhcpLeases({ cluster: plan.cluster })))).flat(),
      ...(await checkMetrics({ cluster: plan.cluster })),
    ]), (checks) => `${checks.filter((c) => c.ok).length}/${checks.length} checks pass`);
    report.ok = report.checks.every((c) => c.ok);
    if (!report.ok) {
      throw ApplicationFailure.nonRetryable(
        `disaster recovery restored ${plan.setId} but service checks fail: ${report.checks.filter((c) => !c.ok).map((c) => `${c.kind} ${c.target}: ${c.detail}`).join('; ')}`,
        FailureType.ServiceChecksFailed);
    }
    tracker.finish('completed');
    return report;
  } catch (err) {
    tracker.finish('failed');
    throw err;
  }
}
