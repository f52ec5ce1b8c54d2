/** S3 Object Lock in the config and in retention's plan (src/retention/policy.ts). */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load';
import { planRetention, type RetentionSet } from '../../src/retention';
import { problemsOf } from './config-problems';

const NOW = new Date('2026-12-04T12:00:00Z');
const set = (setId: string, daysAgo: number, extra: Partial<RetentionSet> = {}): RetentionSet => ({
  setId,
  cluster: 'prod',
  createdAt: new Date(NOW.getTime() - daysAgo * 86_400_000).toISOString(),
  status: 'complete',
  ...extra,
});
const config = (objectLock: unknown) => ({
  workDir: '/w',
  clusters: [
    { name: 'prod', etcd: { members: [{ name: 'e1', node: 'n1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] } },
  ],
  storage: [{ name: 's3', type: 's3', bucket: 'nnoe-backups', objectLock }],
});

describe('object lock', () => {
  it('config: a mode and whole days; bypassGovernance off unless asked', () => {
    const target = parseConfig(config({ mode: 'COMPLIANCE', days: 30 })).storage[0]!;
    expect(target.type === 's3' && target.objectLock).toEqual({ mode: 'COMPLIANCE', days: 30, bypassGovernance: false });
    expect(problemsOf(config({ mode: 'LEGAL', days: 0 }))).toEqual([
      'storage[0].objectLock.mode: expected GOVERNANCE or COMPLIANCE (S3 Object Lock retention modes)',
      'storage[0].objectLock.days: expected at least 1 day',
    ]);
  });

  it('retention keeps an expired set while a lock lasts, with the reason; once it has passed the set expires', () => {
    const until = new Date(NOW.getTime() + 86_400_000).toISOString();
    const plan = planRetention({
      sets: [
        set('new', 0),
        set('locked', 30, { lockedUntil: { target: 's3', mode: 'COMPLIANCE', until } }),
        set('was-locked', 31, { lockedUntil: { target: 's3', mode: 'GOVERNANCE', until: '2026-12-01T00:00:00Z' } }),
      ],
      policy: { keepDays: 7 },
      now: NOW,
    });
    expect(plan.keep.find((k) => k.setId === 'locked')?.reasons).toEqual([
      `object lock (COMPLIANCE) in s3 until ${until}: S3 refuses its deletion before then`,
    ]);
    expect(plan.expire.map((e) => e.setId)).toEqual(['was-locked']);
  });
});
