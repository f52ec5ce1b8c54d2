/**
 * What the Temporal UI shows for a run (issue 14 item 2): the start's summary and details, each
 * activity call's summary, the step table and the approval details. Pure functions, shared by the
 * client (starts, schedules) and the workflows (activities, children, current details).
 */
import { describe, expect, it } from 'vitest';
import {
  activitySummary,
  approvalDetails,
  fitSummary,
  nodeOfTaskQueue,
  runDetails,
  runSummary,
  stepTable,
  SUMMARY_MAX_BYTES,
} from '../../src/common/run-metadata';
import { backupScheduleOptions, drillScheduleOptions, pruneScheduleOptions } from '../../src/client/schedules';
import type { Config } from '../../src/config/schema';

describe('run summaries', () => {
  it('says what a restore restores, from which set, how', () => {
    expect(runSummary('etcdRestoreWorkflow', { cluster: 'nnoe-prod', setId: 'nnoe-prod-20261204-060000', strategy: 'all-members' })).toBe(
      'restore nnoe-prod from nnoe-prod-20261204-060000, all-members',
    );
    expect(runSummary('etcdRestoreWorkflow', { cluster: 'nnoe-prod', dryRun: true })).toBe(
      'dry run: restore nnoe-prod from the newest complete set, all-members',
    );
    expect(runSummary('pointInTimeRestoreWorkflow', { cluster: 'c', targetRevision: 42, strategy: 'first-node-then-add' })).toBe(
      'point-in-time restore of c to revision 42, first-node-then-add',
    );
    expect(runSummary('backupSetWorkflow', { cluster: 'c', targets: ['local', 's3'] })).toBe('backup set of c to local, s3');
    expect(runSummary('pruneBackupSetsWorkflow', {})).toBe('prune backup sets of every cluster');
    expect(runSummary('agentCacheBackupWorkflow', { cluster: 'c', node: 'node-1', setId: 's' })).toBe(
      'agent cache backup of node-1 (c) for set s',
    );
  });

  it('names an unknown workflow type in words rather than failing', () => {
    expect(runSummary('someNewThingWorkflow', { cluster: 'c' })).toBe('some new thing of c');
  });

  it('details show the inputs that matter as Markdown, and nothing else of the input', () => {
    const details = runDetails('etcdRestoreWorkflow', {
      cluster: 'nnoe-prod',
      setId: 'set-1',
      strategy: 'all-members',
      approved: false,
      approvalTimeout: '30m',
      password: 'hunter2',
      carried: { big: 1 },
    });
    expect(details).toBe(
      [
        '| input | value |',
        '| --- | --- |',
        '| runbook | `etcdRestoreWorkflow` |',
        '| cluster | nnoe-prod |',
        '| set | set-1 |',
        '| strategy | all-members |',
        '| approved up front | false |',
        '| approval timeout | 30m |',
      ].join('\n'),
    );
    expect(details).not.toContain('hunter2');
  });
});

describe('activity summaries', () => {
  it('name the member and the node of a node task queue', () => {
    expect(activitySummary('stopEtcdMember', [{ cluster: 'c', member: 'etcd-2' }], 'nnoe-dr.node.node-2')).toBe('stop etcd-2 on node-2');
    expect(activitySummary('restoreEtcdMemberData', [{ cluster: 'c', member: 'etcd-1', setId: 's1' }], 'q.node.node-1')).toBe(
      'restore the data dir of etcd-1 on node-1 (set s1)',
    );
  });

  it('fall back to the activity name in words and the cluster, set and targets', () => {
    expect(activitySummary('planEtcdRestore', [{ cluster: 'c', setId: 's1' }])).toBe('plan etcd restore of c (set s1)');
    expect(activitySummary('publishManifest', [{ cluster: 'c', targets: ['local', 's3'] }], 'nnoe-dr')).toBe(
      'publish manifest of c to local, s3',
    );
    expect(activitySummary('checkEtcdCluster', [{ cluster: 'c', members: ['etcd-1'] }])).toBe('check etcd etcd-1');
    expect(activitySummary('noArgs', [])).toBe('no args');
  });

  it('read the node from a node task queue only', () => {
    expect(nodeOfTaskQueue('nnoe-dr.node.node-3')).toBe('node-3');
    expect(nodeOfTaskQueue('nnoe-dr')).toBeUndefined();
    expect(nodeOfTaskQueue(undefined)).toBeUndefined();
  });
});

describe('summary length', () => {
  it("keeps every summary within Temporal's documented 200 bytes of UTF-8", () => {
    const members = Array.from({ length: 40 }, (_, n) => `etcd-member-${n}`);
    const long = activitySummary('checkEtcdCluster', [{ cluster: 'c', members }]);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(long.endsWith('…')).toBe(true);
    expect(Buffer.byteLength(runSummary('backupSetWorkflow', { cluster: 'c', targets: members }))).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(Buffer.byteLength(fitSummary('ü'.repeat(150)))).toBeLessThanOrEqual(SUMMARY_MAX_BYTES);
    expect(fitSummary('short')).toBe('short');
  });
});

describe('current details', () => {
  it("render the step table with each step's state and detail", () => {
    expect(
      stepTable(
        'etcd-restore',
        'running',
        [
          { name: 'preflight', state: 'done', detail: 'set s checked on node-1 | node-2' },
          { name: 'approval', state: 'running' },
          { name: 'stop etcd', state: 'pending' },
        ],
        's',
      ),
    ).toBe(
      [
        '**etcd-restore**: running, set `s`',
        '',
        '| step | state | detail |',
        '| --- | --- | --- |',
        '| ✔ preflight | done | set s checked on node-1 \\| node-2 |',
        '| ▶ approval | running |  |',
        '| · stop etcd | pending |  |',
      ].join('\n'),
    );
  });

  it('while waiting for approval: the plan and the exact approve commands', () => {
    const details = approvalDetails('etcd-restore-c-20261204', 's1', [
      'restore plan (all-members) for cluster c',
      '  etcd-1: /old -> /new',
    ]);
    expect(details).toContain('- restore plan (all-members) for cluster c');
    expect(details).toContain('nnoe-dr restore approve etcd-restore-c-20261204 --set s1 --by "<your name>"');
    expect(details).toContain(
      `temporal workflow update execute --workflow-id etcd-restore-c-20261204 --name approve --input '{"setId":"s1","approvedBy":"<your name>"}'`,
    );
  });
});

describe('scheduled runs', () => {
  const config = { temporal: { address: 'x', namespace: 'default', taskQueue: 'nnoe-dr' } } as Config;
  it('carry a summary and details naming their schedule', () => {
    const backup = backupScheduleOptions(config, 'c', 'production', ['s3']).action;
    expect(backup.staticSummary).toBe('backup set of c to s3 (scheduled, production)');
    expect(backup.staticDetails).toContain('| schedule | nnoe-dr-backup-set-c |');
    expect(drillScheduleOptions(config, 'c', 'development').action.staticSummary).toBe(
      'restore drill of c from the newest complete set (scheduled, development)',
    );
    expect(pruneScheduleOptions(config, 'production').action.staticSummary).toBe(
      'prune backup sets of every cluster (scheduled, production)',
    );
  });
});
