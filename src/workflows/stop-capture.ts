/**
 * One line in every runbook that replaces the etcd cluster by a new incarnation: the cluster's
 * change capture is stopped before etcd stops, so it never watches the restored cluster under the
 * old chain. It never fails the restore: a capture that cannot be stopped here ends itself at its
 * next flush, when the cluster answers with the new cluster ID (src/activities/change-capture.ts).
 */
import { ActivityFailure, patched } from '@temporalio/workflow';
import { proxyActivities } from './ui-metadata';
import type { createCaptureControlActivities } from '../activities/capture-control';
import { rootMessage } from './progress';

const { stopChangeCapture } = proxyActivities<ReturnType<typeof createCaptureControlActivities>>({
  startToCloseTimeout: '2m',
  heartbeatTimeout: '20s',
  retry: { maximumAttempts: 3, initialInterval: '2s' },
});

/** What happened to the capture, for the step's summary; null in runs started before this step existed. */
export async function stopCaptureBeforeRestore(cluster: string): Promise<string | null> {
  if (!patched('stop-capture-before-restore')) return null;
  try {
    const stopped = await stopChangeCapture({ cluster });
    if (!stopped.wasRunning) return 'no change capture running';
    return (
      `change capture stopped (incarnation ${stopped.clusterId ?? '?'} durable up to revision ${stopped.lastDurable ?? '-'}); ` +
      'start it again after the next backup set of the restored cluster'
    );
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    return `change capture not stopped (${rootMessage(err)}): it ends itself on the new cluster ID; check \`capture status\``;
  }
}
