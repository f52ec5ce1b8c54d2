/**
 * Ending a cluster's change capture from a destructive runbook: a restore replaces the cluster by
 * a new incarnation (new cluster ID), and a capture left running would watch it under the old
 * chain. The capture is a workflow, so this activity talks to Temporal like the CLI does.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { withHeartbeat } from './heartbeat';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { changeCaptureId } from '../client/temporal';
import type { CaptureStatus } from '../workflows/change-capture';

export interface CaptureStopOutcome {
  workflowId: string;
  /** False when no capture of the cluster was running: nothing was done. */
  wasRunning: boolean;
  /** The capture's chain and how far it is durable, when one was stopped. */
  clusterId?: string | null;
  lastDurable?: number | null;
}

/** The capture's stop signal by name: a workflow module is not imported into an activity at run time. */
const STOP_SIGNAL = 'stop';

export function createCaptureControlActivities(deps: { config: Config }) {
  const { config } = deps;
  let temporal: Promise<Client> | undefined;
  const temporalClient = () =>
    (temporal ??= Connection.connect({ address: config.temporal.address }).then(
      (connection) => new Client({ connection, namespace: config.temporal.namespace }),
    ));

  /** Signals the cluster's capture to stop and waits for it to end (it flushes what it holds first). */
  async function stopChangeCapture(input: { cluster: string }): Promise<CaptureStopOutcome> {
    const cluster = findCluster(config, input.cluster);
    const workflowId = changeCaptureId(cluster.name);
    const handle = (await temporalClient()).workflow.getHandle(workflowId);
    try {
      if ((await handle.describe()).status.name !== 'RUNNING') return { workflowId, wasRunning: false };
      await handle.signal(STOP_SIGNAL);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { workflowId, wasRunning: false };
      throw err;
    }
    // A capture ended by the restore's own incarnation check fails instead: stopped all the same.
    const final = await withHeartbeat(
      undefined,
      () =>
        handle.result().then(
          (status: CaptureStatus) => status,
          () => null,
        ),
      1000,
    );
    return { workflowId, wasRunning: true, clusterId: final?.clusterId ?? null, lastDurable: final?.lastDurable ?? null };
  }

  return { stopChangeCapture: stopChangeCapture };
}
