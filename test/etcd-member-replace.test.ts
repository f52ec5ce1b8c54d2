/**
 * Partial recovery on the real cluster: a failed member replaced while the others keep quorum
 * ends with 3 healthy voters holding the same keys; without quorum the run refuses and names the
 * cluster restore runbook.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupSet } from '../src/client/temporal';
import { supervisorctl } from '../src/sandbox/supervisor';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { approveRestoreUpdate } from '../src/workflows/approval';
import type { RunProgress } from '../src/workflows/progress';
import { readKeyspace } from '../src/etcd/scratch';
import type { BackupSetResult } from '../src/workflows/backup-set';
import type { ReplaceMemberResult } from '../src/workflows/etcd-member-replace';
import type { AgentNodeRecoveryResult } from '../src/workflows/agent-node-recovery';
import { agentCacheDir, CLUSTER, memberClient, openHarness, pollUntil, startMembers, stopMember, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

const startReplace = (member: string, id: string, extra: Record<string, unknown> = { approved: true }) =>
  h.client.workflow.start('replaceEtcdMemberWorkflow', {
    taskQueue: h.config.temporal.taskQueue,
    workflowId: `etcd-member-replace-${id}-${Date.now()}`,
    args: [{ cluster: CLUSTER, member, verifyTimeout: '2m', ...extra }],
  });
/** Names of the members the cluster still lists as learners, asked through one member. */
async function learnersOf(via: string): Promise<string[]> {
  const client = await memberClient(h.config, via);
  try {
    return ((await client.cluster.memberList({})).members ?? []).filter((m) => m.isLearner).map((m) => m.name);
  } finally {
    client.close();
  }
}

const stepsOf = async (handle: WorkflowHandle) => (await handle.query<RunProgress>('progress')).steps.map((s) => `${s.name}:${s.state}`);

async function keyspaceOf(member: string): Promise<Map<string, string>> {
  const client = await memberClient(h.config, member);
  try {
    return await readKeyspace(client);
  } finally {
    client.close();
  }
}

describe('etcd member replacement', () => {
  it('replaces a dead member: removed, added back on an empty data dir, a healthy voter with the same keys', async () => {
    const writer = await memberClient(h.config, 'etcd-1');
    await writer.put('/replace-test/before').value('written before the failure');
    await stopMember(h.world, 'etcd-3', 'KILL');
    // If etcd-3 led, the others elect a new leader first: retry the write until they have.
    await pollUntil(
      async () => {
        await writer.put('/replace-test/during').value('written while etcd-3 was down');
        return true;
      },
      30_000,
      'a write with etcd-3 down',
    );
    writer.close();

    // Like every restore it waits for an approval (no set to name: the member is the plan).
    const handle = await startReplace('etcd-3', 'ok', {});
    await pollUntil(
      async () => (await handle.query<{ state: string }>('plan')).state === 'awaiting-approval',
      60_000,
      'the replacement waiting for approval',
    );
    expect(await stepsOf(handle)).toEqual([
      'assess quorum:done',
      'approval:running',
      'remove member:pending',
      'add replacement:pending',
      'start replacement:pending',
      'promote replacement:pending',
      'verify cluster:pending',
    ]);
    expect((await handle.query<{ plan: unknown }>('plan')).plan).toMatchObject({
      member: 'etcd-3',
      memberIsHealthy: false,
      healthyOthers: ['etcd-1', 'etcd-2'],
    });
    await handle.executeUpdate(approveRestoreUpdate, { args: [{ approvedBy: 'on-call' }] });
    const result = (await handle.result()) as ReplaceMemberResult;
    expect(result.check.healthy).toBe(true);
    expect(result.check.memberList).toHaveLength(3);
    expect(result.removedId).not.toBeNull();
    expect(result.addedId).not.toBe(result.removedId); // a new identity, not the dead one
    // It joined as a learner (no vote while catching up) and was promoted: no learner is left.
    expect(await stepsOf(handle)).toContain('promote replacement:done');
    expect((await handle.query<RunProgress>('progress')).steps.find((s) => s.name === 'add replacement')?.detail).toMatch(
      /a learner until promoted/,
    );
    expect(await learnersOf('etcd-1')).toEqual([]);
    const conf = readFileSync(h.world.etcd.members.find((m) => m.name === 'etcd-3')!.programConf, 'utf8');
    expect(conf).toContain(`--data-dir=${result.newDataDir}`);
    expect(existsSync(result.oldDataDir)).toBe(true); // kept for the operator
    // Every agent restarted and republished to after the member change, serving etcd's state.
    expect(result.agents?.map((a) => [a.node, a.check.serving])).toEqual([
      ['node-1', true],
      ['node-2', true],
    ]);
    const reference = await keyspaceOf('etcd-1');
    expect(reference.get('/replace-test/during')).toBe('written while etcd-3 was down');
    expect(await keyspaceOf('etcd-3')).toEqual(reference);
  });

  it('refuses without quorum and names the cluster restore runbook', async () => {
    await stopMember(h.world, 'etcd-2');
    await stopMember(h.world, 'etcd-3');
    try {
      const handle = await startReplace('etcd-3', 'no-quorum');
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect((err as WorkflowFailedError).cause?.message).toMatch(
        /^cluster nnoe-local has lost quorum: 1 of 3 members answer, 2 needed; .*Use the cluster restore runbook instead: nnoe-dr restore etcd --cluster nnoe-local/,
      );
      expect((await stepsOf(handle))[0]).toBe('assess quorum:failed'); // not "ok assess quorum" before the refusal
    } finally {
      await startMembers(h.world, h.config, ['etcd-2', 'etcd-3']);
    }
  });
});

describe('etcd member replacement refusals', () => {
  it('refuses a healthy member unless forced, having changed nothing', async () => {
    const memberIds = async () => {
      const client = await memberClient(h.config, 'etcd-1');
      try {
        return (await client.cluster.memberList({})).members?.map((m) => m.ID).sort();
      } finally {
        client.close();
      }
    };
    const before = await memberIds();
    const handle = await startReplace('etcd-2', 'healthy');
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toMatchObject({ type: 'RestoreRefused' });
    expect((err as WorkflowFailedError).cause?.message).toMatch(
      /^etcd-2 is a healthy member of nnoe-local: .*nothing was changed\. Replace it anyway with --force/,
    );
    expect(await stepsOf(handle)).toEqual([
      'assess quorum:failed',
      'approval:skipped',
      'remove member:skipped',
      'add replacement:skipped',
      'start replacement:skipped',
      'promote replacement:skipped',
      'verify cluster:skipped',
    ]);
    expect(await memberIds()).toEqual(before);
  });

  it('fails a bad duration at once, non-retryably, naming it', async () => {
    const err = await (await startReplace('etcd-3', 'bad-input', { verifyTimeout: 'banana' })).result().catch((e: unknown) => e);
    expect((err as WorkflowFailedError).cause).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    expect((err as WorkflowFailedError).cause?.message).toContain(
      'verifyTimeout: "banana" is not a positive duration like 30s, 5m, 1h or 2d',
    );
  });
});

describe('agent node recovery', () => {
  it('brings a stopped agent back, its cache restored from the newest set, healthy', async () => {
    const cacheDir = await agentCacheDir(h.config, 'node-2');
    const etcd = await memberClient(h.config, 'etcd-1');
    await etcd
      .put('/nnoe/dns/zones/recovery.test')
      .value(JSON.stringify({ domain: 'recovery.test', records: [{ name: 'a', type: 'A', value: '10.8.0.1' }] }));
    etcd.close();
    // A file only the archive can bring back (the agent never reads its cache back at all).
    const marker = join(cacheDir, 'recovery-marker.txt');
    writeFileSync(marker, 'in the archived cache\n');
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['agent-cache'], targets: ['local'] })
    ).result()) as BackupSetResult;
    // The node "failed": agent down, cache gone.
    await supervisorctl(h.world.supervisorConf, 'stop', 'nnoe-agent-node-2');
    await rm(cacheDir, { recursive: true, force: true });

    const handle = await h.client.workflow.start('recoverAgentNodeWorkflow', {
      taskQueue: h.config.temporal.taskQueue,
      workflowId: `agent-node-recovery-test-${Date.now()}`,
      args: [{ cluster: CLUSTER, node: 'node-2', restoreCache: true }],
    });
    const result = (await handle.result()) as AgentNodeRecoveryResult;
    expect(result.cacheRestore?.setId).toBe(set.setId);
    // The agent runs, holds its etcd connection and renders what etcd holds (republished after its start).
    expect(result.agent?.check).toMatchObject({ node: 'node-2', serving: true, running: true, differences: [] });
    expect(result.agent?.republish?.prefixes.find((p) => p.prefix === '/nnoe/dns/zones')?.put).toBeGreaterThan(0);
    expect(readFileSync(marker, 'utf8')).toBe('in the archived cache\n');
    await rm(marker); // other test files archive this cache and expect only the agent's entries
    expect(await supervisorctl(h.world.supervisorConf, 'status', 'nnoe-agent-node-2')).toMatch(/RUNNING/);
  });
});
