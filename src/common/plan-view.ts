/**
 * `restore plan <id>` for any run with a `plan` query: the etcd restore (and the one inside a PITR
 * or DR), the phpIPAM restore and DR expose views of different shapes under the same query name,
 * so the lines are chosen by what the view holds, and anything else still prints its set.
 * Also shown in the Temporal UI while a run waits for its approval (workflow code: no Node built-ins).
 */
import type { EtcdRestoreResult, RestorePlanView } from '../workflows/etcd-restore';
import { describeKeyCount } from './manifest';
import type { PhpipamRestorePlanView } from '../workflows/phpipam-restore';
import type { DisasterRecoveryPlan } from '../activities/disaster-recovery';
import type { MemberReplacePlanView } from '../workflows/etcd-member-replace';
import type { RevisionBump } from '../activities/etcd-member';

/**
 * The revision the restored content sits at: the snapshot's or, bumped, etcdutl's: its newest key
 * revision plus the bump (not the compaction point, which a compaction at the head puts above it).
 */
export function restoredContentRevision(snapshot: { revision: number; keyRevision?: number }, bump: RevisionBump | undefined): number {
  return bump?.used ? (snapshot.keyRevision ?? snapshot.revision) + bump.by : snapshot.revision;
}

type AnyPlanView = { state: string; plan: Record<string, unknown> | null; [more: string]: unknown };

export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function describePlanView(workflowId: string, view: AnyPlanView, bytes: (n: number) => string = humanBytes): string[] {
  const plan = view.plan;
  if (!plan) return [`${workflowId}: planning`];
  if (isEtcd(view)) {
    const p = view.plan!;
    return [
      `restore plan (${view.strategy}) for cluster ${p.cluster}: set ${p.setId} taken ${p.setCreatedAt}, revision ${p.snapshot.revision}, ${describeKeyCount(p.snapshot)}`,
      ...(view.staged ?? []).map(
        (s) => `  ${s.member}: ${s.dataDir} -> ${s.restoredDataDir} (snapshot checked; ${bytes(s.freeBytes)} free before the new dir)`,
      ),
      ...revisionBumpLines(view.restored, p.snapshot),
    ];
  }
  if (isPhpipam(view)) {
    const p = view.plan!;
    return [
      `phpIPAM restore plan for cluster ${p.cluster}: set ${p.setId} taken ${p.setCreatedAt} into ${p.database}: load into ${p.staging}, swap with ${p.live} (old tables kept as ${p.keepAs}), ${p.facts.tables.length} tables`,
      ...(view.staged
        ? [
            `  dump fetched from ${view.staged.target} (${bytes(view.staged.bytes)}), server ${view.staged.server.flavour} ${view.staged.server.version}`,
          ]
        : []),
    ];
  }
  if (isDisasterRecovery(plan)) {
    return [
      `disaster recovery plan for cluster ${plan.cluster}: set ${plan.setId} taken ${plan.setCreatedAt}; etcd${plan.phpipam ? ', phpIPAM' : ''}, ` +
        `agents ${plan.agentNodes.join(', ') || 'none'}, checks: ${plan.checks.dns} DNS, ${plan.checks.dhcp} DHCP, ${plan.checks.metrics} metrics`,
    ];
  }
  if (isMemberReplacement(plan)) {
    return [
      `replacement plan for cluster ${plan.cluster}: ${plan.member} on ${plan.node}${plan.memberIsHealthy ? ' (HEALTHY, forced)' : ''} is removed and re-added empty; ` +
        `it syncs from ${plan.healthyOthers.join(', ')}`,
    ];
  }
  return [`${workflowId}: set ${String(plan.setId ?? '?')}`];
}

/** Whether the new data dirs were revision-bumped, once they are restored (before the approval). */
function revisionBumpLines(restored: RestorePlanView['restored'], snapshot: { revision: number; keyRevision?: number }): string[] {
  const bump = restored?.[0]?.revisionBump;
  if (!bump) return [];
  return [
    `  revision bump: ${bump.used ? `the restored content sits at revision ${restoredContentRevision(snapshot, bump)}, ` : ''}${bump.detail}`,
  ];
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

export interface DryRunContext {
  /** Each member's node, from the config (the result names members only). */
  nodeOf: (member: string) => string | undefined;
  /** The bump a real restore would ask for: the input's, else the cluster's restore.revisionBump. */
  revisionBump: number;
}

/**
 * What `restore etcd --dry-run` found and what a real restore would do, step by step, from the dry
 * run's result: each member's old and new data dir, the stop order, the agents to republish, what
 * would change. Nothing of it happened.
 */
export function describeEtcdDryRun(cluster: string, result: EtcdRestoreResult, ctx: DryRunContext): string[] {
  const members = result.dataDirs.map((d) => d.member);
  const on = (member: string) => (ctx.nodeOf(member) ? ` on ${ctx.nodeOf(member)}` : '');
  const [first, ...others] = members;
  const agents = result.agentRepublishPlan ?? [];
  return [
    `dry run of ${result.setId} for cluster ${cluster} (snapshot revision ${result.snapshotRevision}, ${result.strategy}): nothing was stopped or written; a restore would`,
    `  1. restore the snapshot into a new data dir beside each live one (the cluster keeps serving)${result.strategy === 'first-node-then-add' ? `: only ${first ?? '?'} now, the others join empty` : ''}:`,
    ...result.dataDirs.map((d) => `       ${d.member}${on(d.member)}: ${d.old} -> ${d.restored}`),
    '  2. wait for the approval (`restore approve`, or --yes)',
    `  3. stop ${members.join(', ')}: the followers at once, the leader last`,
    result.strategy === 'first-node-then-add'
      ? `  4. start ${first ?? '?'} on its new data dir as a one-member cluster, then \`member add\` ${others.join(', ')} one at a time on empty data dirs`
      : `  4. repoint every member's unit/program to its new data dir with one --initial-cluster and a fresh token, and start them`,
    `  5. verify the cluster (every member healthy, hashKV equal), then restart and republish each agent, one at a time:`,
    ...(agents.length > 0
      ? agents.map((a) => `       ${a.node}: ${a.republish.prefixes.map((p) => `${p.prefix} ${p.keys} keys`).join(', ')}`)
      : ['       (no agents configured, or restartAgents: false)']),
    'what would change:',
    `  - the keyspace goes back to revision ${result.snapshotRevision}: every change after the set is lost (a running change capture is stopped: a restored cluster is a new incarnation)`,
    ctx.revisionBump > 0
      ? `  - revisions jump by ${ctx.revisionBump} and are marked compacted (where etcdutl 3.5.10+ restores; etcd 3.4 cannot): open watches end with a compaction error`
      : '  - no revision bump (restore.revisionBump 0 or --no-revision-bump): watchers across the restore may miss revisions silently',
    "  - each member's unit/program file points at the new data dir (the old file is kept as .pre-restore-<tag>, the old data dir stays for a rollback)",
  ];
}
