/**
 * Point-in-time recovery on the real cluster: change capture from a snapshot (on node-3's worker,
 * which is killed and restarted mid-capture), then restores to revisions and to a second, each
 * compared with the original cluster's own historical read at that revision.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { WorkflowFailedError } from '@temporalio/client';
import { startEtcdBackup } from '../src/client/temporal';
import { readKeyspace } from '../src/etcd/scratch';
import { programLogPath, supervisorctl, supervisorLayout } from '../src/sandbox/supervisor';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import { captureStatusQuery, stopCaptureSignal, type CaptureStatus } from '../src/workflows/change-capture';
import type { PointInTimeResult } from '../src/workflows/pitr';
import { servedBy } from './support/agents';
import { rootMessage } from '../src/workflows/progress';
import { segmentStore } from '../src/capture/segment-store';
import { chainSegments } from '../src/capture/segments';
import { CLUSTER, etcdComponent, memberClient, openHarness, pollUntil, recordHistory, type Harness } from './support/harness';
import { AGENT_NODES, nodeWorkerProgram, waitForNodeWorker } from './support/global-setup';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

const withoutAgentHealth = (keys: Map<string, string>) => new Map([...keys].filter(([key]) => !key.startsWith('/nnoe/agents/health/')));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function keyspace(revision?: number): Promise<Map<string, string>> {
  const client = await memberClient(h.config, 'etcd-1');
  try {
    return withoutAgentHealth(await readKeyspace(client, revision));
  } finally {
    client.close();
  }
}

const PHASE_ADDRESS: Record<string, string> = { one: '10.50.0.1', two: '10.50.0.2', three: '10.50.0.3' };

/** Every real agent serves pitr.test with this phase's address, and reports serving. */
async function expectAgentsServe(result: PointInTimeResult, phase: string): Promise<void> {
  expect(result.agents?.map((a) => [a.node, a.check.serving])).toEqual(AGENT_NODES.map((n) => [n, true]));
  for (const node of AGENT_NODES) expect((await servedBy(h.config, node)).zones['pitr.test']).toEqual([`www A ${PHASE_ADDRESS[phase]}`]);
}

/** Puts and deletes, one revision each; returns the revision after the last one. */
async function writePhase(phase: string, puts: number, deletes: number): Promise<number> {
  const client = await memberClient(h.config, 'etcd-2');
  try {
    for (let i = 0; i < puts; i++) await client.put(`/pitr/${phase}/key-${i}`).value(`${phase}-${i}`);
    for (let i = 0; i < deletes; i++) await client.delete().key(`/pitr/${phase}/key-${i}`);
    // A zone the agents render, with this phase's address: after a PITR they must serve the target's.
    await client
      .put('/nnoe/dns/zones/pitr.test')
      .value(JSON.stringify({ domain: 'pitr.test', records: [{ name: 'www', type: 'A', value: PHASE_ADDRESS[phase] }] }));
    await client.put('/pitr/last-phase').value(phase);
    return Number((await client.get('/pitr/last-phase').exec()).header.revision);
  } finally {
    client.close();
  }
}

const pitr = (args: Record<string, unknown>) =>
  h.client.workflow.start('pointInTimeRestoreWorkflow', {
    taskQueue: h.config.temporal.taskQueue,
    workflowId: `pitr-test-${Date.now()}`,
    args: [{ cluster: CLUSTER, approved: true, ...args }],
  });

describe('point-in-time recovery', () => {
  it('captures every change exactly once across a worker crash, and restores exactly to revisions and seconds', async () => {
    const seed = await memberClient(h.config, 'etcd-1');
    await seed.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ domain: 'example.com', ttl: 3600 })); // a critical key (config)
    seed.close();
    const base = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] })
    ).result()) as EtcdBackupResult;
    const baseRevision = etcdComponent(base.manifest).facts.revision;
    const capture = await h.client.workflow.start('changeCaptureWorkflow', {
      taskQueue: h.config.temporal.taskQueue,
      workflowId: `change-capture-test-${Date.now()}`,
      args: [
        { cluster: CLUSTER, fromRevision: baseRevision + 1, flushMs: 200, sliceMinutes: 0.25, node: 'node-3', targets: ['local', 's3'] },
      ],
    });

    const r1 = await writePhase('one', 30, 10);
    await sleep(1500);
    const t1 = new Date().toISOString(); // a quiet second between phase one and two
    await sleep(1500);
    const r2 = await writePhase('two', 30, 5);

    // The capturing node worker dies; phase three is written while it is down; it comes back.
    const program = nodeWorkerProgram('node-3');
    await supervisorctl(h.world.supervisorConf, 'signal', 'KILL', program);
    const r3 = await writePhase('three', 20, 20);
    const logBytes = statSync(programLogPath(supervisorLayout(h.world.dir), program)).size;
    await supervisorctl(h.world.supervisorConf, 'start', program);
    await waitForNodeWorker(h.world.dir, 'node-3', logBytes);

    const status = await pollUntil(
      async () => {
        const s = await capture.query(captureStatusQuery);
        return (s.lastDurable ?? 0) >= r3 && s;
      },
      120_000,
      `capture durable up to revision ${r3}`,
    );
    const expected = { r1: await keyspace(r1), r2: await keyspace(r2), r3: await keyspace(r3) };
    await capture.signal(stopCaptureSignal);
    const final = (await capture.result()) as CaptureStatus;
    await recordHistory(capture, 'change-capture-across-worker-crash-stop-cancels-slice');
    expect(final.lastDurable).toBeGreaterThanOrEqual(r3);

    // No event lost, none twice: the chain covers every revision after the snapshot exactly once.
    const store = segmentStore(h.config);
    const chain = chainSegments(await store.listSegments(CLUSTER, status.clusterId!), baseRevision);
    expect(chain.reachable).toBeGreaterThanOrEqual(r3);
    const revisions = (await store.readSegmentEvents(chain.segments)).map((e) => e.rev);
    expect(new Set(revisions).size).toBe(revisions.length);
    expect(revisions[0]).toBe(baseRevision + 1);
    expect(revisions[revisions.length - 1]).toBe(final.lastDurable);
    expect(revisions.length).toBe(final.lastDurable! - baseRevision);

    // Restores: to a revision, to a second, each equal to the original's read at that point.
    const toRevision = await pitr({ targetRevision: r2 });
    const byRevision = (await toRevision.result()) as PointInTimeResult;
    expect(byRevision.plan.targetRevision).toBe(r2);
    expect(byRevision.plan.setId).toBe(base.setId);
    expect(await keyspace()).toEqual(expected.r2);
    await expectAgentsServe(byRevision, 'two');
    await recordHistory(toRevision, 'pitr-to-revision');

    const byTime = (await (await pitr({ targetTime: t1 })).result()) as PointInTimeResult;
    expect(byTime.plan.targetRevision).toBe(r1);
    expect(await keyspace()).toEqual(expected.r1);
    await expectAgentsServe(byTime, 'one');

    // Beyond the captured changes: refused, naming the newest reachable point.
    // (The captured incarnation by name: the live cluster is a restored one by now, with no snapshot of its own.)
    const err = await (
      await pitr({ targetRevision: final.lastDurable! + 1000, clusterId: status.clusterId! })
    )
      .result()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(rootMessage(err as Error)).toMatch(
      new RegExp(`captured changes reach revision ${final.lastDurable}.*newest point this cluster can be restored to`),
    );
  });
});
