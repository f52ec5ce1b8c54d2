/**
 * Retention and restore drills: the newest set a drill verified is kept above all (whatever the
 * window and GFS say), next to the newest complete set; a newer verification supersedes an older
 * one; a verification on a partial set counts for nothing.
 */
import { describe, expect, it } from 'vitest';
import { planRetention, type RetentionSet } from '../../src/retention/policy';

const NOW = new Date('2026-11-27T12:00:00Z');
const DAY = 24 * 3600_000;
const set = (id: string, daysAgo: number, extra: Partial<RetentionSet> = {}): RetentionSet => ({
  setId: id,
  cluster: 'prod',
  createdAt: new Date(NOW.getTime() - daysAgo * DAY).toISOString(),
  status: 'complete',
  ...extra,
});
const kept = (sets: RetentionSet[], policy: Parameters<typeof planRetention>[0]['policy']) => {
  const plan = planRetention({ sets, policy, now: NOW });
  return { ids: plan.keep.map((k) => k.setId), reasons: Object.fromEntries(plan.keep.map((k) => [k.setId, k.reasons])) };
};

describe('retention of verified sets', () => {
  it('keeps the newest verified set however old, beside the newest complete one', () => {
    const sets = [set('new', 0), set('mid', 20), set('verified', 40, { verifiedAt: '2026-10-18T05:00:00Z' }), set('old', 50)];
    const { ids, reasons } = kept(sets, { keepDays: 1 });
    expect(ids).toEqual(['new', 'verified']);
    expect(reasons.verified).toEqual(['newest verified set of prod (verified 2026-10-18T05:00:00Z)']);
    expect(reasons.new).toEqual(['newest complete set of prod', 'within 1 days (0h old)']);
  });

  it('keeps it under a GFS policy that would not', () => {
    const sets = [set('new', 0), set('verified', 100, { verifiedAt: '2026-08-20T05:00:00Z' }), set('older', 101)];
    expect(kept(sets, { gfs: { daily: 1 } }).ids).toEqual(['new', 'verified']);
  });

  it('keeps only the newest verified set for that reason: an older verification no longer counts', () => {
    const sets = [
      set('new', 0),
      set('v2', 10, { verifiedAt: '2026-11-17T05:00:00Z' }),
      set('v1', 20, { verifiedAt: '2026-11-07T05:00:00Z' }),
    ];
    expect(kept(sets, { keepDays: 1 }).ids).toEqual(['new', 'v2']);
  });

  it('is one set with both reasons when the newest complete set is the verified one', () => {
    const sets = [set('new', 0, { verifiedAt: '2026-11-27T12:30:00Z' }), set('old', 30)];
    const { ids, reasons } = kept(sets, { keepDays: 1 });
    expect(ids).toEqual(['new']);
    expect(reasons.new?.slice(0, 2)).toEqual([
      'newest verified set of prod (verified 2026-11-27T12:30:00Z)',
      'newest complete set of prod',
    ]);
  });

  it('ignores a verification on a partial set, and keeps each cluster its own verified set', () => {
    const sets = [
      set('new', 0),
      set('partial-verified', 30, { status: 'partial', verifiedAt: '2026-10-28T05:00:00Z' }),
      { ...set('lab-new', 0), cluster: 'lab' },
      { ...set('lab-verified', 30, { verifiedAt: '2026-10-28T05:00:00Z' }), cluster: 'lab' },
    ];
    expect(kept(sets, { keepDays: 1 }).ids.sort()).toEqual(['lab-new', 'lab-verified', 'new']);
  });
});
