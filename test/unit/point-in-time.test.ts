/**
 * Point-in-time restore planning without a world (src/capture/point-in-time.ts) and the CLI's
 * refusals of bad targets and capture settings, which exit 2 before anything connects.
 */
import { describe, expect, it } from 'vitest';
import { chooseBaseSnapshot, chooseIncarnation, targetProblem, type PitrSnapshot } from '../../src/capture/point-in-time';
import { main } from '../../src/client/cli';

const ms = (iso: string) => Date.parse(iso);
// An earlier cluster (a big set at revision 428), then the live one restored under a new ID.
const snapshots: PitrSnapshot[] = [
  { setId: 'old-1', createdMs: ms('2026-12-01T10:00:00Z'), revision: 300, clusterId: 'old' },
  { setId: 'old-2', createdMs: ms('2026-12-02T10:00:00Z'), revision: 428, clusterId: 'old' },
  { setId: 'live-1', createdMs: ms('2026-12-04T10:00:00Z'), revision: 7, clusterId: 'live' },
  { setId: 'live-2', createdMs: ms('2026-12-04T11:00:00Z'), revision: 9, clusterId: 'live' },
];

describe('choosing the snapshot of a point-in-time restore', () => {
  it('by time: the incarnation and snapshot taken at or before it, never a higher revision of another cluster', () => {
    const target = { timeMs: ms('2026-12-04T10:30:00Z') };
    const id = chooseIncarnation(snapshots, target, undefined, 'live');
    expect(id).toBe('live');
    expect(chooseBaseSnapshot(snapshots, target, id!)?.setId).toBe('live-1');
    // Before the live cluster's first snapshot: the earlier incarnation's history.
    const early = { timeMs: ms('2026-12-03T00:00:00Z') };
    expect(chooseBaseSnapshot(snapshots, early, chooseIncarnation(snapshots, early, undefined, 'live')!)?.setId).toBe('old-2');
  });

  it('by revision: the live incarnation, unless one is named', () => {
    expect(chooseBaseSnapshot(snapshots, { revision: 11 }, chooseIncarnation(snapshots, { revision: 11 }, undefined, 'live')!)?.setId).toBe(
      'live-2',
    );
    expect(chooseBaseSnapshot(snapshots, { revision: 99999 }, 'live')?.setId).toBe('live-2');
    expect(chooseBaseSnapshot(snapshots, { revision: 350 }, chooseIncarnation(snapshots, { revision: 350 }, 'old', 'live')!)?.setId).toBe(
      'old-1',
    );
    expect(chooseBaseSnapshot(snapshots, { revision: 5 }, 'live')).toBeNull();
    // etcd down: the newest snapshot's incarnation.
    expect(chooseIncarnation(snapshots, { revision: 11 }, undefined, null)).toBe('live');
  });

  it('refuses targets that are none: not a revision, in the future, not a time, both or neither', () => {
    const now = ms('2026-12-04T12:00:00Z');
    expect(targetProblem({ targetRevision: 11 }, now)).toBeNull();
    expect(targetProblem({ targetTime: '2026-12-04T11:59:59Z' }, now)).toBeNull();
    for (const bad of ['abc', 0, -3, 1.5, Number.NaN])
      expect(targetProblem({ targetRevision: bad }, now)).toMatch(/is not a revision: expected a whole number of at least 1/);
    expect(targetProblem({ targetTime: '2026-12-04T12:00:01Z' }, now)).toMatch(/is in the future/);
    expect(targetProblem({ targetTime: 'yesterday' }, now)).toMatch(/is not a time: expected ISO-8601/);
    expect(targetProblem({}, now)).toMatch(/exactly one target/);
    expect(targetProblem({ targetRevision: 3, targetTime: '2026-12-04T11:00:00Z' }, now)).toMatch(/exactly one target/);
  });
});

describe('CLI refusals (exit 2, before connecting)', () => {
  const run = async (...args: string[]) => {
    const lines: string[] = [];
    const code = await main(
      ['-c', '/nonexistent/nnoe-dr.yaml', ...args],
      (l) => lines.push(l),
      (l) => lines.push(l),
    );
    return { code, text: lines.join('\n') };
  };

  it('restore pitr with a bad revision or a future time', async () => {
    for (const revision of ['abc', '0', '-3']) {
      const { code, text } = await run('restore', 'pitr', `--revision=${revision}`, '--yes');
      expect(code).toBe(2);
      expect(text).toMatch(new RegExp(`revision "${revision}" is not a revision`));
    }
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const { code, text } = await run('restore', 'pitr', '--time', future, '--yes');
    expect(code).toBe(2);
    expect(text).toMatch(/is in the future/);
  });

  it('capture start with a bad --flush-ms', async () => {
    for (const flush of ['abc', '0', '-5']) {
      const { code, text } = await run('capture', 'start', `--flush-ms=${flush}`);
      expect(code).toBe(2);
      expect(text).toMatch(/--flush-ms .*expected whole milliseconds, at least 20/);
    }
  });
});
