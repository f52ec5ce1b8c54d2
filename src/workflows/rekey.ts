/**
 * Key rotation as a workflow (`nnoe-dr backups rekey`): plan which retained sets hold artefacts not
 * encrypted to the configured recipients, then rekey them one set at a time (src/activities/rekey.ts:
 * new copies verified, manifests last, old objects after). A set under an Object Lock this tool may
 * not lift is refused and named; a dry run only plans. A crashed worker's set is retried and resumes.
 */
import { ApplicationFailure, proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { createRekeyActivities, RekeyedSet, RekeyPlanSet } from '../activities/rekey';
import { FailureType, NON_RETRYABLE } from '../common/failures';
import { NnoeCluster, NnoeRunbook } from '../common/search-attributes';
import { ProgressTracker, rootMessage } from './progress';
import { runFailure } from './approval';
import { rejectBadInput } from './input';
import { flagProblem } from '../common/input-checks';

export interface RekeyInput {
  cluster?: string;
  setId?: string;
  /** Targets whose sets are rekeyed (every target holding a set is written); all when omitted. */
  targets?: string[];
  dryRun?: boolean;
}

export interface RekeyResult {
  dryRun: boolean;
  recipients: string[];
  /** Sets whose artefacts were (or in a dry run would be) rekeyed. */
  rekeyed: Array<RekeyedSet | RekeyPlanSet>;
  /** Sets left as they are, each with why. */
  refused: Array<{ setId: string; reason: string }>;
  /** Sets already encrypted to the configured recipients. */
  current: string[];
}

const { planRekey } = proxyActivities<ReturnType<typeof createRekeyActivities>>({
  startToCloseTimeout: '10m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NON_RETRYABLE },
});
/** Streams whole artefacts: heartbeats per artefact, so a dead worker is noticed and the set resumes on another attempt. */
const { rekeySet } = proxyActivities<ReturnType<typeof createRekeyActivities>>({
  startToCloseTimeout: '4h',
  heartbeatTimeout: '10m',
  retry: { maximumAttempts: 5, initialInterval: '5s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function rekeyWorkflow(input: RekeyInput = {}): Promise<RekeyResult> {
  rejectBadInput('rekey', [
    flagProblem('dryRun', input.dryRun),
    input.setId === undefined || (typeof input.setId === 'string' && input.setId !== '')
      ? null
      : `setId: expected a backup set id, got ${JSON.stringify(input.setId)}`,
  ]);
  const dryRun = input.dryRun === true;
  const tracker = new ProgressTracker('rekey', input.cluster ?? '*', ['plan', 'rekey sets']);
  upsertSearchAttributes([{ key: NnoeRunbook, value: 'rekey' }, ...(input.cluster ? [{ key: NnoeCluster, value: input.cluster }] : [])]);
  try {
    const plan = await tracker.step(
      'plan',
      () => planRekey({ cluster: input.cluster, setId: input.setId, targets: input.targets }),
      (p) =>
        `${p.sets.filter((s) => s.artefacts.length > 0 && !s.refused).length} of ${p.sets.length} sets to rekey, ${p.sets.filter((s) => s.artefacts.length === 0 && s.leftovers > 0).length} to finish, ${p.sets.filter((s) => s.refused).length} refused`,
    );
    // A set with old objects left by an interrupted rekey runs again too: that finishes its removal.
    const todo = plan.sets.filter((s) => (s.artefacts.length > 0 || (s.leftovers ?? 0) > 0) && !s.refused);
    const result: RekeyResult = {
      dryRun,
      recipients: plan.recipients,
      rekeyed: [],
      current: plan.sets.filter((s) => s.artefacts.length === 0 && !((s.leftovers ?? 0) > 0)).map((s) => s.setId),
      refused: plan.sets.flatMap((s) => (s.refused ? [{ setId: s.setId, reason: s.refused }] : [])),
    };
    await tracker.step(
      'rekey sets',
      async () => {
        for (const set of todo) {
          if (dryRun) {
            result.rekeyed.push(set);
            continue;
          }
          try {
            result.rekeyed.push(await rekeySet({ setId: set.setId, targets: set.targets }));
          } catch (err) {
            // A lock found only now, a check that failed: this set keeps its old objects; the others go on.
            result.refused.push({ setId: set.setId, reason: err instanceof Error ? rootMessage(err) : String(err) });
          }
        }
      },
      () =>
        `${dryRun ? 'would rekey' : 'rekeyed'} ${result.rekeyed.length} sets${result.refused.length ? `; refused ${result.refused.map((r) => r.setId).join(', ')}` : ''}`,
    );
    if (result.refused.length) {
      throw ApplicationFailure.nonRetryable(
        `rekey left ${result.refused.length} sets as they were: ${result.refused.map((r) => `${r.setId}: ${r.reason}`).join('; ')}`,
        FailureType.RestoreRefused,
        result,
      );
    }
    tracker.finish('completed');
    return result;
  } catch (err) {
    tracker.finish('failed');
    throw runFailure('rekey failed', err);
  }
}
