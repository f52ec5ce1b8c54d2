/**
 * `restore plan <id>` for any run with a `plan` query: the etcd restore (and the one inside a PITR
 * or DR), the phpIPAM restore and DR expose views of different shapes under the same query name,
 * so the lines are chosen by what the view holds, and anything else still prints its set.
 * Also shown in the Temporal UI while a run waits for its approval (workflow code: no Node built-ins).
 */
import type { RestorePlanView } from '../workflows/etcd-restore';
import { describeKeyCount } from './manifest';
import type { PhpipamRestorePlanView } from '../workflows/phpipam-restore';
import type { DisasterRecoveryPlan } from '../activities/disaster-recovery';
import type { MemberReplacePlanView } from '../workflows/etcd-member-replace';

type AnyPlanView = { state: string; plan: Record<string, unknown> | null; [more: string]: unknown };

export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function describePlanView(workflowId: string, view: AnyPlanView, bytes: (n: number) => string = humanBytes): string[] {
  const plan = view.plan;
  if (!plan) return [`${workflowId}: planning`];
  if (isEtcd(view)) {
    const p = view.plan!;
    return [
      `restore plan (${view.strategy}) for cluster ${p.cluster}: set ${p.setId} taken ${p.setCreatedAt}, revision ${p.snapshot.revision}, ${describeKeyCount(p.snapshot)}`,
      ...(view.staged ?? []).map((s) => `  ${s.member}: ${s.dataDir} -> ${s.restoredDataDir} (snapshot checked; ${bytes(s.freeBytes)} free before the new dir)`),
      ...revisionBumpLines(view.restored, p.snapshot.revision),
    ];
  }
  if (isPhpipam(view)) {
    const p = view.plan!;
    return [
      `phpIPAM restore plan for cluster ${p.cluster}: set ${p.setId} taken ${p.setCreatedAt} into ${p.database}: load into ${p.staging}, swap with ${p.live} (old tables kept as ${p.keepAs}), ${p.facts.tables.length} tables`,
      ...(view.staged ? [`  dump fetched from ${view.staged.target} (${bytes(view.staged.bytes)}), server ${view.staged.server.flavour} ${view.staged.server.version}`] : []),
    ];
  }
  if (isDisasterRecovery(plan)) {
    return [
      `disaster recovery plan for cluster ${plan.cluster}: set ${plan.setId} taken ${plan.setCreatedAt}; etcd${plan.phpipam ? ', phpIPAM' : ''}, `
      + `agents ${plan.agentNodes.join(', ') || 'none'}, checks: ${plan.checks.dns} DNS, ${plan.checks.dhcp} DHCP, ${plan.checks.metrics} metrics`,
    ];
  }
  if (isMemberReplacement(plan)) {
    return [`replacement plan for cluster ${plan.cluster}: ${plan.member} on ${plan.node}${plan.memberIsHealthy ? ' (HEALTHY, forced)' : ''} is removed and re-added empty; ` +
      `it syncs from ${plan.healthyOthers.join(', ')}`];
  }
  return [`${workflowId}: set ${String(plan.setId ?? '?')}`];
}

/** Whether the new data dirs were revision-bumped, once they are restored (before the approval). */
function revisionBumpLines(restored: RestorePlanView['restored'], snapshotRevision: number): string[] {
  const bump = restored?.[0]?.revisionBump;
  if (!bump) return [];
  return [`  revision bump: ${bump.used ? `the restored cluster starts at revision ${snapshotRevision + bump.by}, ` : ''}${bump.detail}`];
}

function isEtcd(view: AnyPlanView): view is AnyPlanView & RestorePlanView {
  return typeof (view.plan as { snapshot?: { revision?: unknown } }).snapshot?.revision === 'number';
}

function isPhpipam(view: AnyPlanView): view is AnyPlanView & PhpipamRestorePlanView {
  const plan = view.plan as { staging?: unknown; facts?: { tables?: unknown } };
  return typeof plan.staging === 'string' && Array.isArray(plan.facts?.tables);
}

function isMemberReplacement(plan: Record<string, unknown>): plan is Record<string, unknown> & NonNullable<MemberReplacePlanView['plan']> {
  return typeof plan.member === 'string' && Array.isArray(plan.healthyOthers);
}

function isDisasterRecovery(plan: Record<string, unknown>): plan is Record<string, unknown> & DisasterRecoveryPlan {
  return Array.isArray(plan.agentNodes) && typeof plan.checks === 'object' && plan.checks !== null;
}
