/** Approvals by allowed people: the config's `approvers` list and the rule the approve Update's validator applies. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load';
import { approverProblem, describeApproval } from '../../src/workflows/approval';
import { problemsOf } from './config-problems';

const cluster = (extra: object) => ({
  workDir: '/var/lib/nnoe-dr/work',
  clusters: [
    {
      name: 'prod',
      etcd: { members: [{ name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
      ...extra,
    },
  ],
  storage: [{ name: 'local', type: 'local', path: '/backup/nnoe' }],
});

describe('approvers', () => {
  it('absent: any name may approve (and is recorded); present: only the listed names', () => {
    expect(parseConfig(cluster({})).clusters[0]!.approvers).toBeUndefined();
    expect(approverProblem('anyone', undefined)).toBeNull();
    const approvers = parseConfig(cluster({ approvers: [' alice ', 'bob'] })).clusters[0]!.approvers;
    expect(approvers).toEqual(['alice', 'bob']);
    expect(approverProblem('alice', approvers)).toBeNull();
    expect(approverProblem(' bob ', approvers)).toBeNull();
    expect(approverProblem('mallory', approvers)).toBe(
      '"mallory" may not approve runs of this cluster; the config\'s approvers are: "alice", "bob"',
    );
  });

  it('refuses an empty list or an empty name in the config', () => {
    expect(problemsOf(cluster({ approvers: [] }))).toEqual([
      expect.stringMatching(/^clusters\[0\]\.approvers: expected at least one name, or leave approvers out/),
    ]);
    expect(problemsOf(cluster({ approvers: ['alice', ' '] }))).toEqual([
      expect.stringMatching(/^clusters\[0\]\.approvers\[1\]: expected an approver's name/),
    ]);
  });

  it('records the client identity beside the name when the client sent one', () => {
    expect(describeApproval('alice', 'alice@laptop')).toBe('approved by alice (client identity alice@laptop)');
    expect(describeApproval('input of run-1', null)).toBe('approved by input of run-1');
  });
});
