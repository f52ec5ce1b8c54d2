/**
 * Runbook "Disaster Recovery" (full cluster recovery): plan -> every component's preflight (the
 * etcd and phpIPAM restores as dry-run children, side by side) -> one approval for the whole of it,
 * then in the runbook's order: etcd restore -> phpIPAM restore -> agents (restart, wait until
 * healthy) -> service checks (DNS answers, DHCP leases, metrics). A set lacking a configured
 * component is refused in the plan unless `components` chooses what to restore; the report lists
 * what was left as it was, and a failure says what had already changed. The `report` query shows
 * every step and check as it goes; the result is the same report. Children run pre-approved under
 * this run's approval. Runs started before the preflight existed (no `dr-preflight-before-approval`
 * marker) keep the old order.
 */
import { ApplicationFailure, defineQuery, patched, setHandler, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { executeChild, proxyActivities } from './ui-metadata';
import type { Duration } from '@temporalio/common';
import type { createDisasterRecoveryActivities, DisasterRecoveryComponent, DisasterRecoveryPlan } from '../activities/disaster-recovery';
import type { createServiceCheckActivities, createDhcpCheckActivities, ServiceCheck } from '../activities/service-checks';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeBackupSet, NnoeCluster, NnoeRunbook, nodeTaskQueue } from '../common/search-attributes';
import { ProgressTracker, rootMessage, type RunProgress } from './progress';
import { approvalGate, approvalStep, failureTypeOf, runFailure, type ApprovalState } from './approval';
import { rejectBadInput } from './input';
import { togetherBehind } from './settle';
import { durationProblem, flagProblem } from '../common/input-checks';
import { describeRevisionBump, etcdRestoreWorkflow, restoreRevisionReport, type RestoreRevisionReport } from './etcd-restore';
import { phpipamRestoreWorkflow } from './phpipam-restore';
import {
  agentsNotServing,
  describeRecovery,
  restartAgentsAndWait,
  REAL_AGENT_RECOVERY,
  recoverAgents,
  type AgentRecovery,
} from './agent-recovery';

export interface DisasterRecoveryInput {
  cluster: string;
  setId?: string;
  /** What to restore (default: every configured component, which the set must then hold). */
  components?: DisasterRecoveryComponent[];
  /** Plan and every component's preflight only: nothing is stopped or written. */
  dryRun?: boolean;
  approved?: boolean;
  approvalTimeout?: Duration;
}

export interface DisasterRecoveryReport {
  cluster: string;
  plan: DisasterRecoveryPlan | null;
  approvedBy: string | null;
  /** The approving client's Temporal identity as it sent it with the approval (null: up front, or not sent). */
  approverIdentity?: string | null;
  progress: RunProgress;
  checks: ServiceCheck[];
  /** Each agent after its restart + republish. */
  agents?: AgentRecovery[];
  ok: boolean;
  dryRun: boolean;
  /** The etcd restore: whether it bumped the revision and where the restored content sits (absent until etcd is restored, and in older runs). */
  etcdRestore?: RestoreRevisionReport;
  /** What this run changed so far, in order ("etcd restored from <set>"). */
  changed: string[];
  /** Configured components left as they were, each with why. */
  unchanged: string[];
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

const dhcpOnNode = (node: string) =>
  proxyActivities<ReturnType<typeof createDhcpCheckActivities>>({
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
  rejectBadInput('disaster recovery', [
    durationProblem('approvalTimeout', input.approvalTimeout),
    flagProblem('approved', input.approved),
    flagProblem('dryRun', input.dryRun),
    input.components === undefined ||
    (Array.isArray(input.components) && input.components.length > 0 && input.components.every((c) => DR_COMPONENT_NAMES.includes(c)))
      ? null
      : `components: expected a non-empty list of ${DR_COMPONENT_NAMES.join(', ')}, got ${JSON.stringify(input.components)}`,
  ]);
  upsertSearchAttributes([
    { key: NnoeCluster, value: input.cluster },
    { key: NnoeRunbook, value: 'disaster-recovery' },
  ]);
  const preflightFirst = patched('dr-preflight-before-approval');
  const dryRun = input.dryRun === true;
  const tracker = new ProgressTracker('disaster-recovery', input.cluster, [
    ...(preflightFirst ? ['plan', 'preflight'] : ['plan']),
    'approval',
    'restore etcd',
    'restore phpIPAM',
    'restart agents',
    'check services',
  ]);
  const view: { state: ApprovalState; plan: DisasterRecoveryPlan | null } = { state: 'planning', plan: null };
  const approval = approvalGate(view);
  const report: DisasterRecoveryReport = {
    cluster: input.cluster,
    plan: null,
    approvedBy: null,
    progress: tracker.progress,
    checks: [],
    ok: false,
    dryRun,
    changed: [],
    unchanged: [],
  };
  setHandler(reportQuery, () => report);

  try {
    const plan = await tracker.step(
      'plan',
      () => planDisasterRecovery({ cluster: input.cluster, setId: input.setId, components: input.components }),
      (p) =>
        `set ${p.setId}: ${componentsOf(p).join(' + ')}, ${p.agentNodes.length} agents, ${p.checks.dns + p.checks.dhcp + p.checks.metrics} service checks` +
        `${p.unchanged?.length ? `; left as it is: ${p.unchanged.join(', ')}` : ''}`,
    );
    view.plan = plan;
    report.plan = plan;
    report.unchanged = [...(plan.unchanged ?? [])];
    tracker.progress.setId = plan.setId;
    upsertSearchAttributes([{ key: NnoeBackupSet, value: plan.setId }]);
    const restores = componentsOf(plan);
    const id = workflowInfo().workflowId;

    if (preflightFirst) {
      // Every component's preflight before anyone approves: a refusal here has changed nothing. Both
      // settle before a refusal ends the run (which would end the other one before its clean-up).
      await tracker.step(
        'preflight',
        () =>
          togetherBehind('dr-preflights-settle')([
            restores.includes('etcd')
              ? executeChild(etcdRestoreWorkflow, {
                  workflowId: `${id}/etcd-preflight`,
                  args: [{ cluster: plan.cluster, setId: plan.setId, dryRun: true, restartAgents: false }],
                }).then(() => 'etcd snapshot checked on every member')
              : null,
            restores.includes('phpipam')
              ? executeChild(phpipamRestoreWorkflow, {
                  workflowId: `${id}/phpipam-preflight`,
                  args: [{ cluster: plan.cluster, setId: plan.setId, dryRun: true }],
                }).then(() => 'phpIPAM dump and database checked')
              : null,
          ]),
        (done) => done.filter(Boolean).join('; '),
      );
      if (dryRun) {
        tracker.note('approval', 'dry run: nothing stopped, nothing written');
        report.unchanged = ['everything (dry run)'];
        tracker.finish('completed');
        return report;
      }
    }

    await approvalStep(tracker, approval, input, `disaster recovery from ${plan.setId}`);
    report.approvedBy = approval.approvedBy();
    report.approverIdentity = approval.identity();

    await tracker.step(
      'restore etcd',
      async () => {
        if (!restores.includes('etcd')) return 'left as it was (not chosen)';
        const r = await executeChild(etcdRestoreWorkflow, {
          workflowId: `${id}/etcd-restore`,
          args: [{ cluster: plan.cluster, setId: plan.setId, approved: true, restartAgents: false }],
        });
        report.changed.push(`etcd restored from ${plan.setId}`);
        report.etcdRestore = restoreRevisionReport(r);
        return `revision ${r.check?.revision}, ${r.check?.members.length} members healthy; ${describeRevisionBump(report.etcdRestore)}`;
      },
      (d) => d,
    );

    await tracker.step(
      'restore phpIPAM',
      async () => {
        if (!restores.includes('phpipam'))
          return plan.unchanged?.find((u) => u.startsWith('phpIPAM'))
            ? 'left as it was (not chosen)'
            : 'no phpIPAM configured for this cluster';
        const r = await executeChild(phpipamRestoreWorkflow, {
          workflowId: `${id}/phpipam-restore`,
          args: [{ cluster: plan.cluster, setId: plan.setId, approved: true }],
        });
        report.changed.push(`phpIPAM restored from ${plan.setId} (old tables kept as ${r.keepAs})`);
        return `${r.verified.length} tables verified and swapped in (old kept as ${r.keepAs})`;
      },
      (d) => d,
    );

    if (patched(REAL_AGENT_RECOVERY)) {
      report.agents = await tracker.step('restart agents', () => recoverAgents(plan.cluster, plan.agentNodes), describeRecovery);
      const problem = agentsNotServing(report.agents);
      if (problem) {
        throw ApplicationFailure.nonRetryable(`disaster recovery restored ${plan.setId}, but ${problem}`, FailureType.AgentsNotServing);
      }
    } else
      await tracker.step(
        'restart agents',
        async () =>
          (await restartAgentsAndWait(plan.cluster, plan.agentNodes))
            .map((r) => `${r.node} healthy after ${r.readyAfterMs} ms`)
            .join(', ') || 'no agents configured',
        (d) => d,
      );

    report.checks = await tracker.step(
      'check services',
      () =>
        settle(async () => [
          ...(await checkDns({ cluster: plan.cluster })),
          ...(await Promise.all(plan.dhcpNodes.map((node) => dhcpOnNode(node).checkDhcpLeases({ cluster: plan.cluster })))).flat(),
          ...(await checkMetrics({ cluster: plan.cluster })),
        ]),
      (checks) => `${checks.filter((c) => c.ok).length}/${checks.length} checks pass`,
    );
    report.ok = report.checks.every((c) => c.ok);
    if (!report.ok) {
      throw ApplicationFailure.nonRetryable(
        `disaster recovery restored ${plan.setId} but service checks fail: ${report.checks
          .filter((c) => !c.ok)
          .map((c) => `${c.kind} ${c.target}: ${c.detail}`)
          .join('; ')}`,
        FailureType.ServiceChecksFailed,
      );
    }
    tracker.finish('completed');
    return report;
  } catch (err) {
    tracker.finish('failed');
    if (!preflightFirst || report.changed.length === 0 || !(err instanceof Error)) throw runFailure('disaster recovery failed', err);
    // Say exactly what had changed before the failure: the children's own messages only know their part.
    throw ApplicationFailure.nonRetryable(
      `disaster recovery failed: ${rootMessage(err)}; already changed: ${report.changed.join('; ')}`,
      failureTypeOf(err) ?? FailureType.RestoreFailed,
    );
  }
}

const DR_COMPONENT_NAMES: string[] = ['etcd', 'phpipam'];

/** What the plan restores; plans of runs started before `components` existed restore etcd and, when present, phpIPAM. */
function componentsOf(plan: DisasterRecoveryPlan): DisasterRecoveryComponent[] {
  return plan.components ?? (plan.phpipam ? ['etcd', 'phpipam'] : ['etcd']);
}
