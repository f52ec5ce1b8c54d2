/**
 * Runbook "phpIPAM Database Backup": check the database (credentials, flavour, binlog), then a
 * consistent online dump streamed gzipped (and encrypted) into every target, with per-table row
 * counts, CHECKSUM TABLE values and the binlog position recorded as facts.
 */
import { proxyActivities } from './ui-metadata';
import type { createPhpipamBackupActivities } from '../activities/phpipam-backup';
import { NON_RETRYABLE } from '../common/failures';
import type { PhpipamComponentRecord } from '../common/manifest';

export interface PhpipamBackupInput {
  cluster: string;
  setId: string;
  fileName: string;
  targets: string[];
}

type PhpipamActivities = ReturnType<typeof createPhpipamBackupActivities>;

const { checkPhpipamDatabase } = proxyActivities<PhpipamActivities>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '2s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});
/** The dump heartbeats per table while reading facts and every second while streaming. */
const { dumpPhpipamToStores } = proxyActivities<PhpipamActivities>({
  startToCloseTimeout: '2h',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '5s', backoffCoefficient: 2, nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function phpipamBackupWorkflow(input: PhpipamBackupInput): Promise<PhpipamComponentRecord> {
  const startedAt = new Date().toISOString();
  await checkPhpipamDatabase({ cluster: input.cluster });
  const outcome = await dumpPhpipamToStores({
    cluster: input.cluster,
    setId: input.setId,
    fileName: input.fileName,
    targets: input.targets,
  });
  return {
    component: 'phpipam',
    status: 'ok',
    artefacts: [outcome.artefact],
    facts: outcome.facts,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}
