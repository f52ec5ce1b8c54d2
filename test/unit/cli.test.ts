/**
 * The CLI's own behaviour, without a world: usage errors exit 2 before anything connects or starts,
 * destructive commands never guess a cluster, refusals print the run's reason, Ctrl-C says the run
 * goes on. The Temporal client is a stand-in that records what the CLI asked of it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ApplicationFailure } from '@temporalio/common';
import { ScheduleNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { main } from '../../src/client/cli'; // vi.mock below is hoisted above this import

/** What the CLI asked Temporal for; `pending` handles never finish (a run being followed). */
const calls: string[] = [];
const pendingHandle = (workflowId: string) => ({
  workflowId,
  firstExecutionRunId: 'run-1',
  result: () => new Promise(() => undefined),
  query: async () => ({ runbook: 'x', cluster: 'x', state: 'running', steps: [] }),
});
let updateFailure: Error | null = null;
/** Schedules the stand-in server holds. */
const existingSchedules = new Set<string>();
const fakeClient = {
  connection: { close: async () => undefined },
  workflow: {
    getHandle: (workflowId: string) => ({
      workflowId,
      result: () => new Promise(() => undefined),
      /** A restore waiting for its approval (the etcd restore inside a PITR). */
      query: async () => ({
        state: 'awaiting-approval',
        strategy: 'all-members',
        staged: [],
        plan: { cluster: 'prod', setId: 'set-7', setCreatedAt: '2026-12-04T00:00:00Z', snapshot: { revision: 9, totalKey: 30 } },
      }),
      executeUpdate: async () => {
        calls.push(`update ${workflowId}`);
        if (updateFailure) throw updateFailure;
        return { approvedBy: 'me' };
      },
    }),
  },
  schedule: {
    getHandle: (scheduleId: string) => ({
      scheduleId,
      describe: async () => {
        if (!existingSchedules.has(scheduleId)) throw new ScheduleNotFoundError('not found', scheduleId);
        return {};
      },
      delete: async () => {
        calls.push(`delete schedule ${scheduleId}`);
        existingSchedules.delete(scheduleId);
      },
    }),
    list: async function* list() {
      for (const scheduleId of existingSchedules) yield { scheduleId };
    },
    create: async (options: { scheduleId: string }) => {
      calls.push(`create schedule ${options.scheduleId}`);
    },
  },
};

vi.mock('../../src/client/temporal', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/client/temporal')>();
  const starter = (runbook: string) => async (_client: unknown, _config: unknown, input: { cluster?: string }) => {
    calls.push(`start ${runbook} ${input.cluster ?? '*'}`);
    return pendingHandle(`${runbook}-${input.cluster}`);
  };
  return {
    ...original,
    connectClient: async () => {
      calls.push('connect');
      return fakeClient;
    },
    startEtcdBackup: starter('etcd-backup'),
    startBackupSet: starter('backup-set'),
    startEtcdRestore: starter('etcd-restore'),
    startReplaceMember: starter('etcd-member-replace'),
    startPointInTimeRestore: starter('pitr'),
    startDisasterRecovery: starter('disaster-recovery'),
    startDrill: starter('drill'),
    startPrune: starter('prune'),
    startChangeCapture: starter('change-capture'),
  };
});

const member = (name: string, n: number) => ({
  name,
  node: `node-${n}`,
  clientUrl: `https://10.0.0.${n}:2379`,
  peerUrl: `https://10.0.0.${n}:2380`,
});
const cluster = (name: string) => ({
  name,
  etcd: {
    members: [member('etcd-1', 1), member('etcd-2', 2)],
    tls: { caFile: '/ca.crt', certFile: '/client.crt', keyFile: { file: '/client.key' } },
  },
});
let dir: string;
let oneCluster: string;
let twoClusters: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-cli-'));
  const base = { workDir: join(dir, 'work'), storage: [{ name: 'local', type: 'local', path: join(dir, 'backups') }] };
  oneCluster = join(dir, 'one.yaml');
  twoClusters = join(dir, 'two.yaml');
  await writeFile(oneCluster, stringify({ ...base, clusters: [cluster('prod')] }));
  await writeFile(twoClusters, stringify({ ...base, clusters: [cluster('prod'), cluster('lab')] }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  calls.length = 0;
  updateFailure = null;
  existingSchedules.clear();
  vi.restoreAllMocks();
});

async function run(config: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true); // commander's help
  const code = await main(
    ['-c', config, ...args],
    (line) => out.push(line),
    (line) => err.push(line),
  );
  vi.mocked(process.stderr.write).mockRestore();
  vi.mocked(process.stdout.write).mockRestore();
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('CLI usage errors exit 2 and start nothing', () => {
  it('an unknown command, a missing argument or an unknown option', async () => {
    expect((await run(oneCluster, 'restroe')).code).toBe(2);
    expect((await run(oneCluster, 'backups', 'verify')).code).toBe(2);
    expect((await run(oneCluster, 'backups', 'list', '--bogus')).code).toBe(2);
    expect(calls).toEqual([]);
  });

  it('help is not an error', async () => {
    expect((await run(oneCluster, '--help')).code).toBe(0);
  });

  it('an unknown --strategy is refused before a workflow starts', async () => {
    const result = await run(oneCluster, 'restore', 'etcd', '--strategy', 'bogus');
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/Allowed choices are all-members, first-node-then-add/);
    expect(calls).toEqual([]);
  });

  it.each(['5x', 'banana', '0', '-1h'])('--approval-timeout %s is refused naming what a duration looks like', async (bad) => {
    for (const command of [['restore', 'etcd'], ['dr'], ['restore', 'member', 'etcd-2']]) {
      const result = await run(oneCluster, ...command, `--approval-timeout=${bad}`);
      expect(result.code).toBe(2);
      expect(result.err).toContain('a positive duration like 30s, 5m, 1h or 2d');
    }
    expect(calls).toEqual([]);
  });

  it('status: an unknown --cluster or a bad --watch is refused before anything connects', async () => {
    const unknown = await run(twoClusters, 'status', '--cluster', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--cluster: no cluster named "nope" in the config; configured: prod, lab/);
    const watch = await run(oneCluster, 'status', '--watch', '0');
    expect(watch.code).toBe(2);
    expect(watch.err).toMatch(/expected whole seconds, at least 1, got "0"/);
    expect(calls).toEqual([]);
  });

  it('dr --components names only etcd and phpipam', async () => {
    const result = await run(oneCluster, 'dr', '--components', 'agents');
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/--components: unknown component "agents"; expected etcd and\/or phpipam/);
    expect(calls).toEqual([]);
  });
});

describe('clusters', () => {
  it.each([
    ['restore', 'etcd', '--yes'],
    ['dr', '--yes'],
    ['restore', 'member', 'etcd-2'],
    ['restore', 'pitr', '--revision', '5', '--yes'],
  ])('%s %s refuses to pick one of several clusters', async (...command) => {
    const result = await run(twoClusters, ...command);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/--cluster is required: this command changes a cluster and the config has 2 \(prod, lab\)/);
    expect(calls.filter((c) => c.startsWith('start'))).toEqual([]);
  });

  it('with one cluster configured a destructive command uses it', async () => {
    vi.spyOn(process, 'once'); // the Ctrl-C handler of the follow
    const result = run(oneCluster, 'restore', 'etcd', '--dry-run', '--no-follow');
    expect((await result).code).toBe(0);
    expect(calls).toContain('start etcd-restore prod');
  });

  it.each([['backups', 'list'], ['backups', 'prune', '--dry-run'], ['capture', 'status'], ['drill']])(
    '%s %s rejects an unknown --cluster listing the configured ones',
    async (...command) => {
      const result = await run(twoClusters, ...command, '--cluster', 'nope');
      expect(result.code).toBe(2);
      expect(result.err).toMatch(/--cluster: no cluster named "nope" in the config; configured: prod, lab/);
      expect(calls.filter((c) => c.startsWith('start'))).toEqual([]);
    },
  );
});

describe('schedules apply', () => {
  it('validates --cluster and --target against the config before creating anything', async () => {
    expect((await run(oneCluster, 'schedules', 'apply', '--profile', 'production', '--cluster', 'nope')).err).toMatch(
      /no cluster named "nope"/,
    );
    const badTarget = await run(oneCluster, 'schedules', 'apply', '--profile', 'production', '--target', 'nope');
    expect(badTarget.code).toBe(2);
    expect(badTarget.err).toMatch(/--target: storage: no target named "nope" \(known: local\)/);
    expect(calls).toEqual([]);
  });

  it("shows the retention in force (the config's), not the profile's cadence as if it were", async () => {
    const result = await run(oneCluster, 'schedules', 'apply', '--profile', 'development');
    expect(result.code).toBe(0);
    expect(result.out).toContain('backup set of prod daily at 03:00 UTC (cron 0 3 * * *');
    expect(result.out).toContain("daily prune by the config's retention (prod: keep 7 days)");
    expect(result.out).not.toMatch(/retain 3 days/);
    expect(calls).toEqual([
      'connect',
      'create schedule nnoe-dr-backup-set-prod',
      'create schedule nnoe-dr-prune',
      'create schedule nnoe-dr-drill-prod',
    ]);
  });
});

describe('restore approve', () => {
  it("prints the run's reason when it refuses the approval", async () => {
    updateFailure = new WorkflowUpdateFailedError(
      'Workflow Update failed',
      ApplicationFailure.create({ message: 'this restore would restore set A, not B: approve the set the plan shows' }),
    );
    const result = await run(oneCluster, 'restore', 'approve', 'etcd-restore-x', '--set', 'B', '--by', 'me');
    expect(result.code).toBe(2);
    expect(result.err).toBe('approval of etcd-restore-x refused: this restore would restore set A, not B: approve the set the plan shows');
  });

  it('refuses an empty --by before asking the run', async () => {
    const result = await run(oneCluster, 'restore', 'approve', 'etcd-restore-x', '--set', 'A', '--by', ' ');
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/--by: name who approves/);
    expect(calls).toEqual([]);
  });
});

describe('Ctrl-C while following', () => {
  it('says the run goes on in Temporal and how to follow it again, and exits 130', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    void main(
      ['-c', oneCluster, 'backup', 'etcd'],
      () => undefined,
      () => undefined,
    );
    await vi.waitFor(() => expect(calls).toContain('start etcd-backup prod'));
    await new Promise((done) => setTimeout(done, 50));
    process.emit('SIGINT');
    expect(exit).toHaveBeenCalledWith(130);
    expect(stderr.join('')).toContain('stopped following etcd-backup-prod: the run goes on in Temporal');
    expect(stderr.join('')).toContain('temporal workflow show --workflow-id etcd-backup-prod --follow');
  });
});

describe('schedules list', () => {
  it("shows each schedule's cluster, targets and profile from its action", async () => {
    const { summarizeSchedule } = await import('../../src/client/schedules');
    const description = (workflowType: string, args: unknown[]) =>
      ({
        action: { type: 'startWorkflow', workflowType, args, memo: { scheduleProfile: 'development' } },
        state: { paused: false, note: 'n' },
        info: { nextActionTimes: [], recentActions: [] },
      }) as unknown as Parameters<typeof summarizeSchedule>[1];
    expect(
      summarizeSchedule('nnoe-dr-backup-set-prod', description('backupSetWorkflow', [{ cluster: 'prod', targets: ['s3'] }])),
    ).toMatchObject({ cluster: 'prod', targets: ['s3'], profile: 'development', cron: '0 3 * * *' });
    expect(summarizeSchedule('nnoe-dr-prune', description('pruneBackupSetsWorkflow', [{}]))).toMatchObject({
      cluster: undefined,
      targets: undefined,
    });
  });
});

describe('schedules delete', () => {
  it('deletes what apply created for a cluster: its backup and drill, and the shared prune with the last cluster', async () => {
    for (const id of ['nnoe-dr-backup-set-prod', 'nnoe-dr-drill-prod', 'nnoe-dr-backup-set-lab', 'nnoe-dr-drill-lab', 'nnoe-dr-prune'])
      existingSchedules.add(id);
    expect((await run(twoClusters, 'schedules', 'delete', 'prod')).code).toBe(0);
    expect(calls.filter((c) => c.startsWith('delete'))).toEqual([
      'delete schedule nnoe-dr-backup-set-prod',
      'delete schedule nnoe-dr-drill-prod',
    ]);
    calls.length = 0;
    expect((await run(twoClusters, 'schedules', 'delete', 'lab')).code).toBe(0);
    expect(calls.filter((c) => c.startsWith('delete'))).toEqual([
      'delete schedule nnoe-dr-backup-set-lab',
      'delete schedule nnoe-dr-drill-lab',
      'delete schedule nnoe-dr-prune',
    ]);
  });

  it('needs its argument (the README shows it required)', async () => {
    expect((await run(oneCluster, 'schedules', 'delete')).code).toBe(2);
  });
});

describe('help', () => {
  it('every capture command says what it does', async () => {
    const { buildCli } = await import('../../src/client/cli');
    const capture = buildCli(() => undefined).program.commands.find((c) => c.name() === 'capture')!;
    for (const name of ['start', 'status', 'stop']) expect(capture.commands.find((c) => c.name() === name)?.description()).not.toBe('');
  });
});

describe('restore pitr without --yes', () => {
  it('says it waits for approval and prints the approve command of its etcd restore', async () => {
    vi.spyOn(process, 'once'); // the Ctrl-C handler of the follow
    const out: string[] = [];
    void main(
      ['-c', oneCluster, 'restore', 'pitr', '--revision', '9'],
      (line) => out.push(line),
      () => undefined,
    );
    await vi.waitFor(() =>
      expect(out.join('\n')).toContain('waiting for approval: nnoe-dr restore approve pitr-prod/etcd-restore --set set-7 --by <your name>'),
    );
    expect(out[0]).toBe('started pitr-prod (runbook pitr, cluster prod)');
  });
});

describe('--json keeps its documented shape (README "--json")', () => {
  it('a run started with --no-follow prints exactly { workflowId, runId } and nothing else', async () => {
    for (const args of [
      ['backup', 'etcd'],
      ['backup', 'set'],
      ['restore', 'etcd', '--dry-run'],
    ]) {
      const result = await run(oneCluster, '--json', ...args, '--no-follow');
      expect(result.code, args.join(' ')).toBe(0);
      expect(JSON.parse(result.out), args.join(' ')).toEqual({ workflowId: expect.any(String), runId: 'run-1' });
    }
  });

  it('an approval prints { workflowId, approvedBy }', async () => {
    const result = await run(oneCluster, '--json', 'restore', 'approve', 'etcd-restore-prod-x', '--set', 'set-7', '--by', 'me');
    expect(JSON.parse(result.out)).toEqual({ workflowId: 'etcd-restore-prod-x', approvedBy: 'me' });
  });
});
