/**
 * `nnoe-dr backups list|prune|rekey|keys|verify`: the catalog of backup sets in the stores, its
 * retention and its encryption keys.
 */
import type { Command } from 'commander';
import { listBackupSets, verifyBackupSet } from '../catalog/catalog';
import { keyInventory } from '../catalog/keys';
import { printKeyInventory } from './key-view';
import type { RekeyResult } from '../workflows/rekey';
import { startPrune, startRekey, type PruneResult } from './temporal';
import { humanBytes } from '../common/plan-view';
import { chooseTargets } from './cli-input';
import { describeRetention, retentionInForce } from '../retention/in-force';
import type { CliContext } from './cli-context';

export function registerBackupsCommands(program: Command, ctx: CliContext): void {
  const { withClient, config, clusterOf, json, out, outcome, follow, printStep } = ctx;

  const backups = program.command('backups').description('the catalog of backup sets');
  /** A catalog command: `--cluster` and `--target` narrow which sets it reads. */
  const catalogCommand = (name: string, description: string) =>
    backups
      .command(name)
      .description(description)
      .option('--cluster <name>', 'only this cluster')
      .option('--target <name...>', 'only these storage targets');
  const catalogScope = (opts: { cluster?: string; target?: string[] }) => ({
    cluster: opts.cluster === undefined ? undefined : clusterOf(opts.cluster, false),
    targets: chooseTargets(config(), opts.target),
  });
  catalogCommand('list', 'list backup sets from the manifests in the stores, newest first').action(
    async (opts: { cluster?: string; target?: string[] }) => {
      const sets = await listBackupSets(config(), catalogScope(opts));
      if (json()) {
        out(
          JSON.stringify(
            sets.map(({ manifest: _m, ...entry }) => entry),
            null,
            2,
          ),
        );
        return;
      }
      if (sets.length === 0) {
        out('no backup sets');
        return;
      }
      out(['SET', 'STATUS', 'CREATED', 'COMPONENTS', 'SIZE', 'TARGETS'].join('\t'));
      for (const s of sets)
        out([s.setId, s.status, s.createdAt, s.components.join(','), humanBytes(s.bytes), s.targets.join(',')].join('\t'));
    },
  );

  backups
    .command('prune')
    .description('delete expired backup sets (retention policy from the config) and stale multipart uploads')
    .option('--cluster <name>', 'only this cluster')
    .option('--target <name...>', 'only these storage targets (default: all)')
    .option('--dry-run', 'list what would go, delete nothing')
    .action((opts: { cluster?: string; target?: string[]; dryRun?: boolean }) =>
      withClient(async (client, cfg) => {
        const cluster = opts.cluster === undefined ? undefined : clusterOf(opts.cluster, false);
        const handle = await startPrune(client, cfg, { cluster, targets: chooseTargets(cfg, opts.target), dryRun: opts.dryRun === true });
        if (!json()) {
          for (const c of cfg.clusters.filter((c) => cluster === undefined || c.name === cluster))
            out(`retention in force for ${c.name}: ${describeRetention(retentionInForce(cfg, c.name))}`);
        }
        const result = await follow<PruneResult>(handle, printStep);
        if (json()) {
          out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
          return;
        }
        for (const set of result.expire) out(`${result.dryRun ? 'would delete' : 'deleted'} ${set.setId}: ${set.reason}`);
        for (const set of result.keep) out(`keep ${set.setId}: ${set.reasons.join('; ')}`);
        const segments = result.segments
          ? `, ${result.segments.objects} change-capture segments ${result.dryRun ? 'to delete' : 'deleted'}`
          : '';
        out(
          `${result.dryRun ? 'dry run: ' : ''}${result.expire.length} expired, ${result.keep.length} kept${segments}, ${result.abortedUploads.length} stale uploads/partial files ${result.dryRun ? 'to remove' : 'removed'}`,
        );
      }),
    );

  catalogCommand(
    'rekey',
    're-encrypt retained sets to the configured recipients (old identities must still be held); exit 1 when a set is refused, e.g. under Object Lock',
  )
    .option('--set <id>', 'only this set')
    .option('--dry-run', 'list what would be rekeyed, change nothing')
    .action((opts: { cluster?: string; target?: string[]; set?: string; dryRun?: boolean }) =>
      withClient(async (client, cfg) => {
        const handle = await startRekey(client, cfg, { ...catalogScope(opts), setId: opts.set, dryRun: opts.dryRun === true });
        const result = await follow<RekeyResult>(handle, printStep);
        if (json()) {
          out(JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2));
          return;
        }
        for (const set of result.rekeyed) out(`${result.dryRun ? 'would rekey' : 'rekeyed'} ${set.setId}`);
        out(
          `${result.dryRun ? 'dry run: ' : ''}${result.rekeyed.length} sets ${result.dryRun ? 'to rekey' : 'rekeyed'}, ${result.current.length} already current`,
        );
      }),
    );

  catalogCommand(
    'keys',
    'which age recipients each set was encrypted to, and whether the configured keys still open it (exit 1 on a set at risk)',
  ).action(async (opts: { cluster?: string; target?: string[] }) => {
    const inventory = await keyInventory(config(), catalogScope(opts));
    if (json()) out(JSON.stringify(inventory, null, 2));
    else printKeyInventory(inventory, out);
    if (!inventory.ok) outcome.exitCode = 1;
  });

  backups
    .command('verify')
    .description('read a set back from storage and check every artefact against its manifest')
    .argument('<set-id>', 'backup set id, as printed by `backups list`')
    .option('--target <name...>', 'only these storage targets')
    .action(async (setId: string, opts: { target?: string[] }) => {
      const report = await verifyBackupSet(config(), setId, { targets: opts.target });
      if (json()) {
        out(JSON.stringify(report, null, 2));
      } else {
        for (const check of report.checks) {
          out(
            `${check.ok ? 'ok  ' : 'FAIL'} ${check.target} ${check.file}${check.problems.length ? `: ${check.problems.join('; ')}` : ''}`,
          );
        }
        out(report.ok ? `backup set ${setId} verified` : `backup set ${setId} FAILED verification`);
      }
      if (!report.ok) outcome.exitCode = 1;
    });
}
