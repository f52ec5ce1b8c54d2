/**
 * Choosing the backup set a restore (etcd, phpIPAM, host state, DR) or a drill reads: one rule for
 * every runbook, so they agree on which set "the newest" is and on what they refuse.
 *   - every target is listed; one that cannot be read is skipped and named (a restore must work
 *     with a target down: that may be why we restore); none readable: retryable StorageUnavailable;
 *   - no set asked for: the newest (createdAt) complete set of the cluster that holds what the
 *     caller restores (`pick`); none: BackupSetNotFound;
 *   - a set asked for: it must exist in a readable target (else BackupSetNotFound), belong to the
 *     cluster and hold what the caller restores (else RestoreRefused). A partial set may be asked
 *     for by id (the component that is there restores); callers with a stricter rule check after.
 */
import type { Config } from '../config/schema';
import type { BackupManifest, ComponentRecord } from '../common/manifest';
import { DomainError, errorMessage } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { listBackupSets, type CatalogEntry } from './catalog';

export interface SetChoice<C extends ComponentRecord> {
  entry: CatalogEntry;
  /** What `pick` found in the set. */
  component: C;
  /** `<target> (<error>)` for each target that could not be listed. */
  unreachableTargets: string[];
}

export interface SetRequest<C extends ComponentRecord> {
  cluster: string;
  /** The set asked for; absent: the newest complete one. */
  setId?: string;
  /** The component the caller restores, or undefined when the set lacks it. */
  pick: (manifest: BackupManifest) => C | undefined;
  /** How messages name what `pick` looks for: "an etcd snapshot". */
  what: string;
}

export async function chooseRestoreSet<C extends ComponentRecord>(config: Config, request: SetRequest<C>): Promise<SetChoice<C>> {
  const { cluster, setId, pick, what } = request;
  const unreachableTargets: string[] = [];
  const listed = await listBackupSets(config, {
    onUnreadableTarget: (target, err) => {
      unreachableTargets.push(`${target} (${errorMessage(err)})`);
    },
  });
  if (unreachableTargets.length === config.storage.length) {
    throw DomainError.retryable(`no storage target could be listed: ${unreachableTargets.join('; ')}`, FailureType.StorageUnavailable);
  }
  const unreachableNote = unreachableTargets.length > 0 ? ` (unreachable: ${unreachableTargets.join('; ')})` : '';
  if (!setId) {
    const newest = listed.find((e) => e.cluster === cluster && e.status === 'complete' && pick(e.manifest)); // listed newest first
    if (!newest)
      throw DomainError.nonRetryable(
        `no complete backup set with ${what} for cluster ${cluster}${unreachableNote}`,
        FailureType.BackupSetNotFound,
      );
    return { entry: newest, component: pick(newest.manifest)!, unreachableTargets };
  }
  const chosen = listed.find((e) => e.setId === setId);
  if (!chosen)
    throw DomainError.nonRetryable(
      `backup set ${setId} was not found in any reachable target${unreachableNote}`,
      FailureType.BackupSetNotFound,
    );
  if (chosen.cluster !== cluster) {
    throw DomainError.nonRetryable(
      `backup set ${setId} belongs to cluster ${chosen.cluster}, not ${cluster}: refusing to restore another cluster's data`,
      FailureType.RestoreRefused,
    );
  }
  const component = pick(chosen.manifest);
  if (!component) throw DomainError.nonRetryable(`backup set ${setId} does not hold ${what}`, FailureType.RestoreRefused);
  return { entry: chosen, component, unreachableTargets };
}
