/**
 * `nnoe-dr restore etcd|plan|approve|member|pitr`, `dr` and `drill`: the destructive runbooks
 * (each waits for its approval unless --yes; the plan is printed once the run waits) and the drill
 * that proves a set restorable.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { ConfigError } from '../config/load';
import { startDisasterRecovery, startDrill, startEtcdRestore, startPointInTimeRestore, startReplaceMember } from './temporal';
import { describeEtcdDryRun, describePlanView, humanBytes } from '../common/plan-view';
import { targetProblem } from '../capture/point-in-time';
import type { PointInTimeResult } from '../workflows/pitr';
import type { DisasterRecoveryReport } from '../workflows/disaster-recovery';
import type { DrillReport } from '../workflows/drill';
import {
  approveRestoreUpdate,
  describeRevisionBump,
  restorePlanQuery,
  type EtcdRestoreResult,
  type RestorePlanView,
  type RestoreStrategy,
} from '../workflows/etcd-restore';
import { planQuery } from '../workflows/approval';
import type { MemberReplacePlanView, ReplaceMemberResult } from '../workflows/etcd-member-replace';
import { durationOption, UsageError } from './cli-input';
import { rootMessage } from '../workflows/progress';
import { printStarted, type CliContext } from './cli-context';

/** Commander's parser for duration options: refused before anything connects or starts. */
function durationArgument(value: string): string {
  try {
    return durationOption('duration', value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^duration: /, ''));
  }
}

export function registerRestoreCommands(program: Command, ctx: CliContext): void {
  const { withClient, clusterOf, json, out, follow, printStep } = ctx;

  const printPlan = (workflowId: string, view: RestorePlanView) => {
    for (const line of describePlanView(workflowId, view as unknown as Parameters<typeof describePlanView>[1], humanBytes)) out(line);
  };

  /** Prints the plan once the run waits for its approval (after the preflight and the new data dirs). */
  const announceApproval = async (handle: WorkflowHandle, runningAs: WorkflowHandle = handle) => {
    const over = runningAs.result();
    let ended = false;
    over.then(
      () => {
        ended = true;
      },
      () => {
        ended = true;
      },
    );
    while (!ended) {
      const view = await handle.query(planQuery<RestorePlanView | MemberReplacePlanView>()).catch(() => null);
      if (view?.state === 'awaiting-approval') {
        printPlan(handle.workflowId, view as RestorePlanView);
        out(
          `waiting for approval: nnoe-dr restore approve ${handle.workflowId}${view.plan?.setId ? ` --set ${view.plan.setId}` : ''} --by <your name>`,
        );
        return;
      }
      if (view && view.state !== 'planning') return; // approved up front or a dry run
      await Promise.race([over.catch(() => undefined), new Promise((done) => setTimeout(done, 1000))]);
    }
  };

  const restore = program.command('restore').description('restore runbooks (destructive: each asks for approval unless --yes)');
  restore
    .command('etcd')
    .description('restore the etcd cluster from a backup set and follow the run')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', 'backup set (default: the newest complete set with an etcd snapshot)')
    .addOption(
      new Option('--strategy <name>', 'how the members are restored')
        .choices(['all-members', 'first-node-then-add'])
        .default('all-members'),
    )
    .option('--dry-run', 'check the snapshot on every node and show the plan; change nothing')
    .option('--yes', 'approve up front (automation); otherwise approve with `restore approve`')
    .option('--approval-timeout <duration>', 'how long to wait for the approval, e.g. 30m', durationArgument, '1h')
    .option(
      '--revision-bump <revisions>',
      "snapshot restore --bump-revision (etcdutl 3.5.10+; default: the config's restore.revisionBump, 1000000000)",
    )
    .option('--no-revision-bump', 'restore without the revision bump (watchers across the restore may then miss revisions silently)')
    .option('--no-follow', 'start the run and print its id without waiting')
    .action(
      (opts: {
        cluster?: string;
        set?: string;
        strategy: string;
        dryRun?: boolean;
        yes?: boolean;
        approvalTimeout: string;
        revisionBump?: string | false;
        follow: boolean;
      }) =>
        withClient(async (client, cfg) => {
          const cluster = clusterOf(opts.cluster, opts.dryRun !== true);
          const revisionBump = opts.revisionBump === false ? 0 : opts.revisionBump === undefined ? undefined : Number(opts.revisionBump);
          if (revisionBump !== undefined && !(Number.isSafeInteger(revisionBump) && revisionBump >= 0)) {
            throw new ConfigError('--revision-bump', [
              `expected a whole number of revisions (0 turns it off), got "${String(opts.revisionBump)}"`,
            ]);
          }
          const handle = await startEtcdRestore(client, cfg, {
            cluster,
            setId: opts.set,
            strategy: opts.strategy as RestoreStrategy,
            dryRun: opts.dryRun === true,
            approved: opts.yes === true,
            approvalTimeout: opts.approvalTimeout as Duration,
            ...(revisionBump !== undefined ? { revisionBump } : {}),
          });
          if (!json()) out(`started ${handle.workflowId} (runbook etcd-restore, cluster ${cluster})`);
          if (!opts.follow) {
            printStarted(ctx, handle);
            return;
          }
          if (!opts.yes && !opts.dryRun && !json()) void announceApproval(handle);
          const result = await follow<EtcdRestoreResult>(handle, printStep);
          if (json()) {
            out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
            return;
          }
          if (result.dryRun) {
            const configured = cfg.clusters.find((c) => c.name === cluster);
            for (const line of describeEtcdDryRun(cluster, result, {
              nodeOf: (member) => configured?.etcd.members.find((m) => m.name === member)?.node,
              revisionBump: revisionBump ?? configured?.restore.revisionBump ?? 0,
            }))
              out(line);
            return;
          }
          const bumped = result.revisionBump?.used ? `, revision bumped by ${result.revisionBump.by}` : '';
          out(`cluster ${cluster} restored from ${result.setId} (revision ${result.check?.revision}${bumped})`);
        }),
    );

  restore
    .command('plan')
    .description('show the plan of a running restore')
    .argument('<workflow-id>', 'the restore run, as printed when it started')
    .action((workflowId: string) =>
      withClient(async (client) => {
        // Any restore-type run: etcd, phpIPAM, DR (their plan views differ in shape).
        const view = await client.workflow.getHandle(workflowId).query(restorePlanQuery);
        if (json()) out(JSON.stringify(view, null, 2));
        else {
          printPlan(workflowId, view);
          out(`state: ${view.state}`);
        }
      }),
    );

  restore
    .command('approve')
    .description('approve a restore that waits for it (the set must be the one its plan shows)')
    .argument('<workflow-id>', 'the restore run, as printed when it started')
    .option('--set <id>', 'the set id the plan shows (every restore of a set; not a member replacement)')
    .requiredOption('--by <name>', 'who approves (recorded in the run)')
    .action((workflowId: string, opts: { set?: string; by: string }) => {
      if (opts.by.trim() === '') throw new UsageError('--by: name who approves (it is recorded in the run)');
      return withClient(async (client) => approve(client, workflowId, opts));
    });

  /** Sends the `approve` Update; a refusal prints the run's own reason (wrong set, not waiting). */
  async function approve(client: Client, workflowId: string, opts: { set?: string; by: string }) {
    // The run records the identity this client reports to Temporal (pid@host unless configured) beside the name.
    const identity = (client as { options?: { identity?: string } }).options?.identity;
    const answer = await client.workflow
      .getHandle(workflowId)
      .executeUpdate(approveRestoreUpdate, { args: [{ setId: opts.set, approvedBy: opts.by, identity }] })
      .catch((err: unknown) => {
        if (err instanceof WorkflowUpdateFailedError) throw new UsageError(`approval of ${workflowId} refused: ${rootMessage(err)}`);
        throw err;
      });
    if (json()) out(JSON.stringify({ workflowId, ...answer }));
    else out(`approved ${workflowId}${opts.set ? ` (set ${opts.set})` : ''} by ${answer.approvedBy}`);
  }

  restore
    .command('member')
    .description(
      'replace a failed etcd member, after approval (refused when quorum is lost: use `restore etcd` then; a healthy member only with --force)',
    )
    .argument('<member>', 'the failed member, by its name in the config')
    .option('--cluster <name>', 'cluster from the config (required when it has several)')
    .option('--force', 'replace the member even though it is healthy (it is removed and re-added empty)')
    .option('--yes', 'approve up front; otherwise approve with `restore approve`')
    .option('--approval-timeout <duration>', 'how long to wait for the approval, e.g. 30m', durationArgument, '1h')
    .action((member: string, opts: { cluster?: string; force?: boolean; yes?: boolean; approvalTimeout: string }) =>
      withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, true);
        const handle = await startReplaceMember(client, cfg, {
          cluster,
          member,
          force: opts.force === true,
          approved: opts.yes === true,
          approvalTimeout: opts.approvalTimeout as Duration,
        });
        if (!json()) out(`started ${handle.workflowId} (runbook etcd-member-replace, cluster ${cluster})`);
        if (!opts.yes && !json()) void announceApproval(handle);
        const result = await follow<ReplaceMemberResult>(handle, printStep);
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
        else out(`${member} replaced: member id ${result.addedId}, data dir ${result.newDataDir} (old ${result.oldDataDir} kept)`);
      }),
    );

  restore
    .command('pitr')
    .description('restore the cluster to a revision or a point in time (snapshot + captured changes)')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--revision <n>', 'target revision (of the live incarnation unless --incarnation)')
    .option('--time <iso>', 'target time, e.g. 2026-11-27T14:35:02Z (not in the future)')
    .option(
      '--incarnation <cluster-id>',
      'the etcd cluster ID whose history to restore (default: by time, the one snapshotted at or before it; by revision, the live one)',
    )
    .option('--yes', 'approve the restore up front; otherwise approve its child <id>/etcd-restore with `restore approve`')
    .action((opts: { cluster?: string; revision?: string; time?: string; incarnation?: string; yes?: boolean }) => {
      // Bad input is refused before anything connects or starts (exit 2).
      const targetRevision = opts.revision === undefined ? undefined : /^\d+$/.test(opts.revision) ? Number(opts.revision) : opts.revision;
      const problem = targetProblem({ targetRevision, targetTime: opts.time }, Date.now());
      if (problem)
        throw new ConfigError('restore pitr', [problem.replace('a revision or a time (ISO-8601)', '--revision N or --time ISO-8601')]);
      return withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, true);
        const handle = await startPointInTimeRestore(client, cfg, {
          cluster,
          targetRevision: targetRevision as number | undefined,
          targetTime: opts.time,
          clusterId: opts.incarnation,
          approved: opts.yes === true,
        });
        if (!json()) out(`started ${handle.workflowId} (runbook pitr, cluster ${cluster})`);
        if (!opts.yes && !json()) void announceApproval(client.workflow.getHandle(`${handle.workflowId}/etcd-restore`), handle);
        const result = await follow<PointInTimeResult>(handle, printStep);
        if (json()) out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
        else {
          const now = result.check.clusterId
            ? `now incarnation ${result.check.clusterId} at its own revision ${result.check.revision}`
            : `now at its own revision ${result.check.revision}`;
          out(
            `cluster ${cluster} restored to the state of revision ${result.plan.targetRevision} of incarnation ${result.plan.clusterId} (set ${result.plan.setId} + ${result.replay.events} replayed events); ${now}`,
          );
          if (result.restore) out(`  ${describeRevisionBump(result.restore)}`);
        }
      });
    });

  /** The set the DR run chose (from its plan step), for the approve command it prints. */
  const tracked: { setId?: string } = {};
  program
    .command('dr')
    .description('full disaster recovery: etcd, phpIPAM, agents, then DNS/DHCP/metrics checks; one approval')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', 'backup set (default: the newest complete one with every component)')
    .option('--components <name...>', 'restore only these (etcd, phpipam); needed when the set lacks a configured component')
    .option('--dry-run', "plan and run every component's preflight; change nothing")
    .option('--yes', 'approve up front; otherwise approve with `restore approve <id> --set <set> --by <name>`')
    .option('--approval-timeout <duration>', 'how long to wait for the approval, e.g. 30m', durationArgument, '1h')
    .action((opts: { cluster?: string; set?: string; components?: string[]; dryRun?: boolean; yes?: boolean; approvalTimeout: string }) => {
      const components = opts.components?.map((c) => {
        if (c !== 'etcd' && c !== 'phpipam') throw new UsageError(`--components: unknown component "${c}"; expected etcd and/or phpipam`);
        return c;
      });
      const cluster = clusterOf(opts.cluster, opts.dryRun !== true);
      return withClient(async (client, cfg) => {
        const handle = await startDisasterRecovery(client, cfg, {
          cluster,
          setId: opts.set,
          components,
          dryRun: opts.dryRun === true,
          approved: opts.yes === true,
          approvalTimeout: opts.approvalTimeout as Duration,
        });
        if (!json()) out(`started ${handle.workflowId} (runbook disaster-recovery, cluster ${cluster})`);
        const report = await follow<DisasterRecoveryReport>(handle, (step) => {
          printStep(step);
          if (step.name === 'preflight' && step.state === 'done' && !opts.yes && !opts.dryRun && !json()) {
            out(
              `waiting for approval: nnoe-dr restore approve ${handle.workflowId} --set ${tracked.setId ?? '<set above>'} --by <your name>`,
            );
          }
          if (step.name === 'plan' && step.state === 'done') tracked.setId = /^set (\S+?):/.exec(step.detail ?? '')?.[1];
        });
        printDisasterRecovery(handle.workflowId, cluster, report);
      });
    });

  const printDisasterRecovery = (workflowId: string, cluster: string, report: DisasterRecoveryReport) => {
    if (json()) {
      out(JSON.stringify({ workflowId, ...report }, null, 2));
      return;
    }
    if (report.dryRun) {
      out(`dry run of the disaster recovery of ${cluster} from ${report.plan?.setId}: every preflight passed; nothing was changed`);
    } else {
      out(`disaster recovery of ${cluster} from ${report.plan?.setId}: ${report.ok ? 'every check passes' : 'CHECKS FAIL'}`);
    }
    if (report.etcdRestore) out(`  etcd: ${describeRevisionBump(report.etcdRestore)}`);
    for (const line of report.unchanged) out(`  left as it was: ${line}`);
    for (const check of report.checks) out(`  ${check.ok ? 'ok  ' : 'FAIL'} ${check.kind} ${check.target}: ${check.detail}`);
  };

  program
    .command('drill')
    .description('restore the newest (or a given) set into a scratch etcd and schema, compare with its manifest, mark it verified')
    .option('--cluster <name>', 'cluster from the config (default: the first one)')
    .option('--set <id>', 'backup set (default: the newest complete one)')
    .action((opts: { cluster?: string; set?: string }) =>
      withClient(async (client, cfg) => {
        const cluster = clusterOf(opts.cluster, false);
        const handle = await startDrill(client, cfg, { cluster, setId: opts.set });
        if (!json()) out(`started ${handle.workflowId} (runbook drill, cluster ${cluster})`);
        const report = await follow<DrillReport>(handle, printStep);
        if (json()) {
          out(JSON.stringify({ workflowId: handle.workflowId, ...report }, null, 2));
          return;
        }
        const rto = [
          `etcd ${report.rto.etcdMs ?? '-'} ms`,
          report.rto.phpipamMs === null || report.rto.phpipamMs === undefined
            ? 'no phpIPAM in the set'
            : `phpIPAM ${report.rto.phpipamMs} ms`,
        ];
        out(`drill of ${report.setId}: passed (RTO ${rto.join(', ')}); set marked verified`);
      }),
    );
}
