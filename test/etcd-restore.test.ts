/**
 * The etcd restore runbook on the real 3-member cluster under supervisord, with a node worker per
 * member: both strategies end with a healthy cluster equal to the snapshot key for key; a fault
 * after "stop" rolls back to the old data dirs; a fault before it, refusals, timeouts and dry runs
 * change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { programLogPath, supervisorLayout } from '../src/sandbox/supervisor';
import { nodeWorkerProgram, waitForNodeWorker } from './support/global-setup';
import { dirname, join } from 'node:path';
import { inject } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { startEtcdBackup, startEtcdRestore } from '../src/client/temporal';
import { readKeyspace } from '../src/etcd/scratch';
import { hashKV } from '../src/etcd/connect';
import { openStore } from '../src/storage';
import { approveRestoreUpdate, restorePlanQuery, type EtcdRestoreResult } from '../src/workflows/etcd-restore';
import { REVISION_BUMP_DEFAULT } from '../src/config/schema';
import { progressQuery } from '../src/workflows/progress';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import { supervisorctl } from '../src/sandbox/supervisor';
import { CLUSTER, etcdComponent, memberClient, openHarness, pollUntil, recordHistory, runCli, type Harness } from './support/harness';
import type { RunProgress } from '../src/workflows/progress';
import { main } from '../src/client/cli';
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkflowHandle } from '@temporalio/client';
import { renderedText, runHistoryUrl, screenshot } from './support/browser';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  armFailpoints({});
  await h.close();
});

const MEMBERS = ['etcd-1', 'etcd-2', 'etcd-3'];
const failpointsFile = () => join(inject('world').worldDir, 'failpoints.json');
function armFailpoints(points: Record<string, 'error' | 'pause'>): void {
  writeFileSync(failpointsFile(), JSON.stringify(points));
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const programFiles = () => Object.fromEntries(h.world.etcd.members.map((m) => [m.name, sha(m.programConf)]));
const dataDirOf = (member: string) =>
  /--data-dir=(\S+)/.exec(readFileSync(h.world.etcd.members.find((m) => m.name === member)!.programConf, 'utf8'))![1]!;

/** supervisord's pid of each member: equal before and after means no member was stopped or restarted. */
async function memberPids(): Promise<Record<string, string>> {
  const pids: Record<string, string> = {};
  for (const m of MEMBERS) pids[m] = /pid (\d+)/.exec(await supervisorctl(h.world.supervisorConf, 'status', m))?.[1] ?? 'not running';
  return pids;
}

/** Data dirs of earlier restores beside the live ones: a run that changed nothing adds none. */
const restoredDirs = () =>
  MEMBERS.flatMap((m) => {
    const parent = dirname(dataDirOf(m));
    return readdirSync(parent)
      .filter((d) => d.startsWith('restored-'))
      .map((d) => join(parent, d));
  }).sort();

async function keyspaceOf(member: string, revision?: number): Promise<Map<string, string>> {
  const client = await memberClient(h.config, member);
  try {
    return await readKeyspace(client, revision);
  } finally {
    client.close();
  }
}

async function hashOf(member: string, revision: number): Promise<number> {
  const client = await memberClient(h.config, member);
  try {
    return (await hashKV(client, revision)).hash;
  } finally {
    client.close();
  }
}

async function put(entries: Record<string, string | null>): Promise<number> {
  const client = await memberClient(h.config, 'etcd-1');
  try {
    for (const [key, value] of Object.entries(entries)) {
      if (value === null) await client.delete().key(key);
      else await client.put(key).value(value);
    }
    return Number((await client.maintenance.status()).header.revision);
  } finally {
    client.close();
  }
}

/** A fresh snapshot set of the live cluster, with the keyspace it holds (read back at its revision). */
async function snapshotSet(tag: string): Promise<{ setId: string; revision: number; keys: Map<string, string> }> {
  await put({
    '/nnoe/dns/zones/example.com': JSON.stringify({ domain: 'example.com', tag }),
    [`/restore-test/${tag}/a`]: 'one',
    [`/restore-test/${tag}/b`]: 'two',
  });
  const result = (await (
    await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] })
  ).result()) as EtcdBackupResult;
  const revision = etcdComponent(result.manifest).facts.revision;
  return { setId: result.setId, revision, keys: await keyspaceOf('etcd-1', revision) };
}

/** The summaries the run's history carries for the UI: the start's, then each activity call's. */
async function summariesOf(handle: WorkflowHandle): Promise<{ run: string | undefined; activities: string[] }> {
  const decode = (p: unknown) =>
    p ? defaultPayloadConverter.fromPayload<string>(p as Parameters<typeof defaultPayloadConverter.fromPayload>[0]) : undefined;
  const events = (await handle.fetchHistory()).events ?? [];
  return {
    run: decode(events[0]?.userMetadata?.summary),
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => decode(e.userMetadata?.summary) ?? '(none)'),
  };
}

/** The all-members restore's run, for the UI test (a dry run is started when that test did not run). */
let restoreRun: { workflowId: string; runId: string; setId: string } | undefined;

/** Agents write their health key when they start, and the restore restarts them: those keys are newer than any snapshot. */
const withoutAgentHealth = (keys: Map<string, string>) => new Map([...keys].filter(([key]) => !key.startsWith('/nnoe/agents/health/')));

async function expectClusterEquals(keys: Map<string, string>): Promise<void> {
  for (const member of MEMBERS) expect(withoutAgentHealth(await keyspaceOf(member))).toEqual(withoutAgentHealth(keys));
}

describe('etcd restore', () => {
  it('a watcher open across a restore gets a compaction error; watching again from the restored revision it sees no revision it saw before', async () => {
    const snap = await snapshotSet('watch');
    const client = await memberClient(h.config, 'etcd-1');
    const revisionsOf = (res: { events: Array<{ kv: { mod_revision: string } }> }) => res.events.map((e) => Number(e.kv.mod_revision));
    try {
      const seen: number[] = [];
      let watchError: Error | undefined;
      const watcher = await client.watch().prefix('/restore-test/watch/').create();
      watcher.on('data', (res) => seen.push(...revisionsOf(res)));
      watcher.on('error', (err: Error) => {
        watchError = err;
      });
      await put({ '/restore-test/watch/after-1': 'gone after the restore', '/restore-test/watch/after-2': 'gone too' });
      await pollUntil(async () => seen.length >= 2, 10_000, 'the watcher seeing the writes after the snapshot');
      const lastSeen = Math.max(...seen);

      const result = (await (
        await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: snap.setId, approved: true })
      ).result()) as EtcdRestoreResult;
      await expectClusterEquals(snap.keys);
      // The run's own proof of that: its content digest (keys, values, leases) equal to the backup's, where the content sits.
      expect(result.content).toMatchObject({
        revision: h.world.etcd.version === '3.4' ? snap.revision : snap.revision + REVISION_BUMP_DEFAULT,
      });
      expect(result.content!.keys).toBeGreaterThan(0);
      if (h.world.etcd.version === '3.4') {
        // etcdctl 3.4 cannot bump: the report says so (and a watcher would silently miss revisions).
        expect(result.revisionBump).toMatchObject({
          used: false,
          by: 0,
          detail: expect.stringMatching(/^etcdctl 3\.4\.\d+ has no --bump-revision/),
        });
        return;
      }
      expect(result.revisionBump).toEqual({
        used: true,
        by: REVISION_BUMP_DEFAULT,
        detail: expect.stringContaining('--bump-revision --mark-compacted'),
      });
      expect(result.check!.revision).toBeGreaterThanOrEqual(snap.revision + REVISION_BUMP_DEFAULT);
      // The watcher reconnects asking for the revisions after the last it saw: compacted, so etcd
      // cancels it. etcd marks that cancel with compact_revision and no reason, and etcd3 1.1.2 passes
      // on only the reason; a read at that revision shows it is the compaction.
      const error = await pollUntil(async () => watchError, 60_000, 'the watcher open across the restore being cancelled');
      expect(error.message).toBe('Watcher canceled: ');
      await expect(
        client
          .get('/restore-test/watch/after-1')
          .revision(String(lastSeen + 1))
          .exec(),
      ).rejects.toThrow(/required revision has been compacted/);

      const again: number[] = [];
      const rewatch = await client.watch().prefix('/restore-test/watch/').startRevision(String(result.check!.revision)).create();
      try {
        rewatch.on('data', (res) => again.push(...revisionsOf(res)));
        await put({ '/restore-test/watch/after-restore': 'new' });
        await pollUntil(async () => again.length >= 1, 10_000, 'the new watcher seeing a write after the restore');
        expect(Math.min(...again)).toBeGreaterThan(lastSeen);
      } finally {
        await rewatch.cancel();
      }
    } finally {
      client.close();
    }
  });

  it('all-members: asks for approval, restores every member in parallel, equals the snapshot key for key', async () => {
    const snap = await snapshotSet('all');
    const after = await put({ '/restore-test/all/after-snapshot': 'must vanish', '/restore-test/all/a': null });
    expect(after).toBeGreaterThan(snap.revision);
    const filesBefore = programFiles();

    const handle = await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: snap.setId, strategy: 'all-members' });
    const view = await pollUntil(
      async () => {
        const v = await handle.query(restorePlanQuery);
        return v.state === 'awaiting-approval' && v;
      },
      60_000,
      'the restore plan awaiting approval',
    );
    expect(view.plan?.setId).toBe(snap.setId);
    expect(view.staged.map((s) => s.member).sort()).toEqual(MEMBERS);
    expect(programFiles()).toEqual(filesBefore); // nothing touched before the approval
    // ...but the new data dirs are ready beside the live ones, so the approval leads straight to the swap.
    for (const s of view.staged) expect(existsSync(join(s.restoredDataDir, 'member', 'snap', 'db'))).toBe(true);
    // The plan says whether the new dirs were revision-bumped: etcdutl (3.5+) does it, etcdctl 3.4 cannot.
    expect(view.restored?.map((r) => r.revisionBump?.used)).toEqual(MEMBERS.map(() => h.world.etcd.version !== '3.4'));
    // The UI's current details: the plan, the exact approve commands, the step table.
    const { currentDetails } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(currentDetails).toContain(`nnoe-dr restore approve ${handle.workflowId} --set ${snap.setId} --by "<your name>"`);
    expect(currentDetails).toContain(`--name approve --input '{"setId":"${snap.setId}","approvedBy":"<your name>"}'`);
    expect(currentDetails).toMatch(new RegExp(`- restore plan \\(all-members\\) for cluster ${CLUSTER}: set ${snap.setId}`));
    expect(currentDetails).toMatch(/\| ▶ approval \| running \|/);

    // An approval must name the set the plan shows.
    const rejected = await handle
      .executeUpdate(approveRestoreUpdate, { args: [{ setId: 'some-other-set', approvedBy: 'sre' }] })
      .catch((e: unknown) => e);
    expect((rejected as Error).cause).toMatchObject({ message: expect.stringMatching(/would restore set .*, not some-other-set/) });
    await handle.executeUpdate(approveRestoreUpdate, { args: [{ setId: snap.setId, approvedBy: 'sre on call' }] });
    const result = (await handle.result()) as EtcdRestoreResult;

    expect(result.approvedBy).toBe('sre on call');
    expect(result.check?.healthy).toBe(true);
    await expectClusterEquals(snap.keys);
    for (const { member, old, restored } of result.dataDirs) {
      expect(dataDirOf(member)).toBe(restored);
      expect(dirname(restored)).toBe(dirname(old)); // beside the old one, which is kept
      expect(existsSync(join(old, 'member'))).toBe(true);
      const conf = h.world.etcd.members.find((m) => m.name === member)!.programConf;
      expect(readdirSync(dirname(conf)).some((f) => f.startsWith(`${member}.conf.pre-restore-${snap.setId}`))).toBe(true);
    }
    const progress = await handle.query(progressQuery);
    expect(progress.steps.map((s) => `${s.name}:${s.state}`)).toEqual([
      'preflight:done',
      'restore data dirs:done',
      'approval:done',
      'stop etcd:done',
      'repoint members:done',
      'verify cluster:done',
      'verify content:done',
      'restart agents:done',
    ]);
    for (const node of ['node-1', 'node-2'])
      expect(await supervisorctl(h.world.supervisorConf, 'status', `nnoe-agent-${node}`)).toMatch(/RUNNING/);
    // Every start and every activity call says what it does to what (issue 14 item 2).
    const summaries = await summariesOf(handle);
    expect(summaries.run).toBe(`restore ${CLUSTER} from ${snap.setId}, all-members`);
    expect(summaries.activities).not.toContain('(none)');
    for (const [i, member] of MEMBERS.entries()) expect(summaries.activities).toContain(`stop ${member} on node-${i + 1}`);
    expect((await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata')).currentDetails).toMatch(
      /^\*\*etcd-restore\*\*: completed/,
    );
    restoreRun = { workflowId: handle.workflowId, runId: handle.firstExecutionRunId, setId: snap.setId };
    await recordHistory(handle, 'etcd-restore-all-members-restored-before-approval');
  });

  it("UI: a real browser finds the restore's summary and its activities' summaries on the run's page (screenshot kept)", async () => {
    // Run alone (-t), it makes its own cheap run: a dry run of a fresh set.
    const run =
      restoreRun ??
      (await (async () => {
        const { setId } = await snapshotSet('ui');
        const handle = await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId, dryRun: true });
        await handle.result();
        return { workflowId: handle.workflowId, runId: handle.firstExecutionRunId, setId };
      })());
    const url = runHistoryUrl(inject('world').temporalUiUrl, run.workflowId, run.runId);
    const activity = restoreRun ? 'stop etcd-2 on node-2' : 'stage the snapshot for etcd-2 on node-2';
    expect(statSync(await screenshot(url, 'etcd-restore-run-history')).size).toBeGreaterThan(10_000);
    const text = await pollUntil(
      async () => {
        const rendered = await renderedText(url);
        return rendered.includes(activity) && rendered;
      },
      120_000,
      `the run's page in the Temporal UI to show "${activity}"`,
    );
    expect(text).toContain(`${restoreRun ? '' : 'dry run: '}restore ${CLUSTER} from ${run.setId}, all-members`);
    expect(text).toContain(`Summary ${activity}`);
  });

  it('first-node-then-add: restores one member, adds the others one at a time, equals the snapshot', async () => {
    const snap = await snapshotSet('first');
    await put({ '/restore-test/first/after-snapshot': 'must vanish' });
    const handle = await startEtcdRestore(h.client, h.config, {
      cluster: CLUSTER,
      setId: snap.setId,
      strategy: 'first-node-then-add',
      approved: true,
    });
    const result = (await handle.result()) as EtcdRestoreResult;
    expect(result.check?.healthy).toBe(true);
    expect(result.check?.memberList).toHaveLength(3);
    await expectClusterEquals(snap.keys);
    expect(result.content?.keys).toBeGreaterThan(0);
    // The added members joined as learners and were promoted once caught up: none is left a learner.
    const promotions = (await handle.fetchHistory()).events!.filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'promoteEtcdLearner',
    );
    expect(promotions).toHaveLength(2);
    expect((await handle.query<RunProgress>('progress')).steps.find((s) => s.name === 'repoint members')?.detail).toMatch(
      /2 as learners, promoted once caught up/,
    );
    const client = await memberClient(h.config, 'etcd-1');
    try {
      expect(((await client.cluster.memberList({})).members ?? []).map((m) => [m.name, m.isLearner])).toEqual(
        expect.arrayContaining(MEMBERS.map((m) => [m, false])),
      );
    } finally {
      client.close();
    }
    await recordHistory(handle, 'etcd-restore-first-node-then-add-restored-before-approval');
  });

  it('CLI: `restore etcd` shows the plan once the run waits, `restore approve` lets it finish', async () => {
    const snap = await snapshotSet('cli');
    const lines: string[] = [];
    const following = main(
      ['--config', h.configPath, 'restore', 'etcd', '--cluster', CLUSTER, '--set', snap.setId],
      (l) => lines.push(l),
      (l) => lines.push(`stderr: ${l}`),
    );
    const waiting = await pollUntil(
      async () => lines.find((l) => l.startsWith('waiting for approval: ')),
      120_000,
      'the CLI to ask for the approval',
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(`^restore plan \\(all-members\\) for cluster ${CLUSTER}: set ${snap.setId} taken .*, revision ${snap.revision}, `),
      ),
    );
    const workflowId = /restore approve (\S+) --set/.exec(waiting)![1]!;
    const approved = await runCli(h.configPath, 'restore', 'approve', workflowId, '--set', snap.setId, '--by', 'cli test');
    expect(approved).toMatchObject({ code: 0, out: `approved ${workflowId} (set ${snap.setId}) by cli test` });
    expect(await following).toBe(0);
    const bumped = h.world.etcd.version === '3.4' ? '' : `, revision bumped by ${REVISION_BUMP_DEFAULT}`;
    expect(lines[lines.length - 1]).toMatch(new RegExp(`^cluster ${CLUSTER} restored from ${snap.setId} \\(revision \\d+${bumped}\\)$`));
    expect(lines).toContainEqual(
      expect.stringMatching(
        h.world.etcd.version === '3.4'
          ? /^ {2}revision bump: etcdctl 3\.4\.\d+ has no --bump-revision/
          : /^ {2}revision bump: the restored content sits at revision \d+, \+1000000000 and compacted/,
      ),
    );
    await expectClusterEquals(snap.keys);
  });

  it('rolls back to the old data dirs when a restored member cannot start', async () => {
    const snap = await snapshotSet('rollback');
    const liveRevision = await put({ '/restore-test/rollback/after-snapshot': 'must survive the rollback' });
    const liveKeys = await keyspaceOf('etcd-1');
    const hashBefore = await hashOf('etcd-1', liveRevision);
    const filesBefore = programFiles();

    armFailpoints({ 'before-repoint:etcd-3': 'pause' });
    const handle = await startEtcdRestore(h.client, h.config, {
      cluster: CLUSTER,
      setId: snap.setId,
      approved: true,
      verifyTimeout: '15s',
    });
    try {
      // While etcd-3's repoint is held, its restored bbolt file is corrupted: etcd-3 will not start on it.
      const restoredDir = await pollUntil(
        async () => {
          const p = await handle.query(progressQuery);
          const v = await handle.query(restorePlanQuery);
          const dir = v.staged.find((s) => s.member === 'etcd-3')?.restoredDataDir;
          return (
            p.steps.find((s) => s.name === 'repoint members')?.state === 'running' &&
            dir &&
            existsSync(join(dir, 'member', 'snap', 'db')) &&
            dir
          );
        },
        60_000,
        'the restore at the repoint step',
      );
      writeFileSync(join(restoredDir, 'member', 'snap', 'db'), 'not a bbolt database');
    } finally {
      armFailpoints({});
    }

    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toMatch(/rolled back to the old data dirs/);
    expect(programFiles()).toEqual(filesBefore);
    await expectClusterEquals(liveKeys);
    for (const member of MEMBERS) expect(await hashOf(member, liveRevision)).toBe(hashBefore);
    const progress = await handle.query(progressQuery);
    expect(progress.steps.find((s) => s.name === 'rollback')?.state).toBe('done');
  });

  it('rolls back when a node worker dies mid-run, once the node worker is back', async () => {
    const snap = await snapshotSet('worker');
    const liveRevision = await put({ '/restore-test/worker/after-snapshot': 'must survive the rollback' });
    const liveKeys = await keyspaceOf('etcd-1');
    const hashBefore = await hashOf('etcd-1', liveRevision);
    const filesBefore = programFiles();
    const program = nodeWorkerProgram('node-2');
    const log = programLogPath(supervisorLayout(h.world.dir), program);

    armFailpoints({ 'before-repoint:etcd-2': 'pause' });
    const handle = await startEtcdRestore(h.client, h.config, {
      cluster: CLUSTER,
      setId: snap.setId,
      approved: true,
      nodeResponseTimeout: '5s',
    });
    let restarted = false;
    try {
      await pollUntil(
        async () => (await handle.query(progressQuery)).steps.find((s) => s.name === 'repoint members')?.state === 'running',
        60_000,
        'the repoint members step',
      );
      await supervisorctl(h.world.supervisorConf, 'signal', 'KILL', program); // node-2's worker dies holding its step
      armFailpoints({});
      // The step times out (heartbeat), finds no worker on node-2's queue, and the rollback waits for it.
      await pollUntil(
        async () => (await handle.query(progressQuery)).steps.find((s) => s.name === 'rollback')?.state === 'running',
        120_000,
        'the rollback to start',
      );
      const logBytes = statSync(log).size;
      await supervisorctl(h.world.supervisorConf, 'start', program);
      await waitForNodeWorker(h.world.dir, 'node-2', logBytes);
      restarted = true;
    } finally {
      armFailpoints({});
      if (!restarted) await supervisorctl(h.world.supervisorConf, 'start', program).catch(() => undefined);
    }
    const err = await handle.result().catch((e: unknown) => e);
    expect((err as WorkflowFailedError).cause?.message).toMatch(/rolled back to the old data dirs/);
    expect(programFiles()).toEqual(filesBefore);
    await expectClusterEquals(liveKeys);
    for (const member of MEMBERS) expect(await hashOf(member, liveRevision)).toBe(hashBefore);
  });

  it('a restore that fails before the stop changes nothing: members never stopped, new dirs removed', async () => {
    const snap = await snapshotSet('early');
    const filesBefore = programFiles();
    const pidsBefore = await memberPids();
    const dirsBefore = restoredDirs();
    armFailpoints({ 'before-restore-data:etcd-2': 'error' });
    try {
      const err = await (
        await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: snap.setId, approved: true })
      )
        .result()
        .catch((e: unknown) => e);
      expect((err as WorkflowFailedError).cause?.message).toMatch(
        /failed before anything was stopped; nothing was changed: .*injected fault at failpoint before-restore-data:etcd-2/,
      );
    } finally {
      armFailpoints({});
    }
    expect(programFiles()).toEqual(filesBefore);
    expect(await memberPids()).toEqual(pidsBefore); // not even restarted
    expect(restoredDirs()).toEqual(dirsBefore);
  });

  it('ends without changing anything when nobody approves in time', async () => {
    const snap = await snapshotSet('timeout');
    const filesBefore = programFiles();
    const dirsBefore = restoredDirs();
    const handle = await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: snap.setId, approvalTimeout: '2s' });
    const err = await handle.result().catch((e: unknown) => e);
    expect((err as WorkflowFailedError).cause?.message).toMatch(/was not approved within 2s; nothing was changed/);
    expect(programFiles()).toEqual(filesBefore);
    expect(restoredDirs()).toEqual(dirsBefore); // the dirs restored while waiting are gone again
    for (const member of MEMBERS) expect(await supervisorctl(h.world.supervisorConf, 'status', member)).toMatch(/RUNNING/);
  });

  it('dry run: checks the snapshot on every node and leaves unit files and data dirs as they were', async () => {
    const snap = await snapshotSet('dry');
    const filesBefore = programFiles();
    const dirsBefore = Object.fromEntries(MEMBERS.map((m) => [m, readdirSync(dirname(dataDirOf(m))).sort()]));
    const result = (await (
      await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: snap.setId, dryRun: true })
    ).result()) as EtcdRestoreResult;
    expect(result.dryRun).toBe(true);
    expect(result.snapshotRevision).toBe(snap.revision);
    expect(programFiles()).toEqual(filesBefore);
    expect(Object.fromEntries(MEMBERS.map((m) => [m, readdirSync(dirname(dataDirOf(m))).sort()]))).toEqual(dirsBefore);

    // The CLI prints the plan, not just "nothing changed" (issue 14 item 5).
    const cli = await runCli(h.configPath, 'restore', 'etcd', '--cluster', CLUSTER, '--set', snap.setId, '--dry-run');
    expect(cli.code).toBe(0);
    expect(cli.out).toContain(
      `dry run of ${snap.setId} for cluster ${CLUSTER} (snapshot revision ${snap.revision}, all-members): nothing was stopped or written`,
    );
    for (const [i, member] of MEMBERS.entries())
      expect(cli.out).toMatch(new RegExp(`^ {7}${member} on node-${i + 1}: ${dataDirOf(member)} -> \\S+restored-`, 'm'));
    expect(cli.out).toContain(`  3. stop ${MEMBERS.join(', ')}: the followers at once, the leader last`);
    expect(cli.out).toMatch(/^ {7}node-1: \S+ \d+ keys/m);
    expect(Object.fromEntries(MEMBERS.map((m) => [m, readdirSync(dirname(dataDirOf(m))).sort()]))).toEqual(dirsBefore);
  });

  it('refuses a tampered snapshot before anything stops', async () => {
    const result = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })
    ).result()) as EtcdBackupResult;
    const artefact = etcdComponent(result.manifest).artefacts[0]!;
    const path = join((h.config.storage.find((t) => t.name === 'local') as { path: string }).path, artefact.key);
    const bytes = readFileSync(path);
    bytes[bytes.length >> 1]! ^= 0xff;
    writeFileSync(path, bytes);
    const filesBefore = programFiles();
    const err = await (
      await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: result.setId, approved: true })
    )
      .result()
      .catch((e: unknown) => e);
    expect((err as WorkflowFailedError).cause?.message).toMatch(
      /^restore refused at preflight, nothing was changed: no good copy of etcd-snapshot-.*stored sha256 differs from the manifest/,
    );
    expect(programFiles()).toEqual(filesBefore);
    for (const member of MEMBERS) expect(await supervisorctl(h.world.supervisorConf, 'status', member)).toMatch(/RUNNING/);
  });

  it('refuses a set that belongs to another cluster, naming both', async () => {
    const result = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets: ['local'] })
    ).result()) as EtcdBackupResult;
    const store = await openStore(h.config.storage.find((t) => t.name === 'local')!);
    const foreignId = `other-cluster-${result.setId.slice(-15)}`;
    const writer = await store.createWriter(`${foreignId}/manifest.json`);
    writer.stream.end(JSON.stringify({ ...result.manifest, setId: foreignId, cluster: 'other-cluster' }));
    await writer.commit();
    const err = await (
      await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: foreignId, approved: true })
    )
      .result()
      .catch((e: unknown) => e);
    expect((err as WorkflowFailedError).cause?.message).toBe(
      `restore refused at preflight, nothing was changed: backup set ${foreignId} belongs to cluster other-cluster, not ${CLUSTER}: refusing to restore another cluster's data`,
    );
    await store.delete(`${foreignId}/manifest.json`);
  });
});
