/**
 * The management worker's concurrency limits (src/worker.ts workerLimits, README "Running
 * workers"): a slot per cluster for its change capture on top of the fixed ones, flags override.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load';
import { MANAGEMENT_ACTIVITY_SLOTS, slotCount, workerLimits } from '../../src/worker';

const member = { name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' };
const config = (clusters: number) =>
  parseConfig({
    workDir: '/tmp/nnoe-dr-worker-limits',
    clusters: Array.from({ length: clusters }, (_, i) => ({ name: `c${i}`, etcd: { members: [member] } })),
    storage: [{ name: 'local', type: 'local', path: '/tmp/nnoe-dr-worker-limits/backups' }],
  });

describe('worker limits', () => {
  it('gives a management worker its fixed activity slots plus one per cluster (its capture), 40 workflow tasks', () => {
    expect(workerLimits(config(1), undefined)).toEqual({
      maxConcurrentActivityTaskExecutions: MANAGEMENT_ACTIVITY_SLOTS + 1,
      maxConcurrentWorkflowTaskExecutions: 40,
    });
    expect(workerLimits(config(50), undefined).maxConcurrentActivityTaskExecutions).toBe(MANAGEMENT_ACTIVITY_SLOTS + 50);
  });

  it('leaves node workers at the SDK defaults, and takes the flags over the defaults', () => {
    expect(workerLimits(config(3), 'node-1')).toEqual({});
    expect(workerLimits(config(3), undefined, { maxConcurrentActivityTaskExecutions: 8 })).toEqual({
      maxConcurrentActivityTaskExecutions: 8,
      maxConcurrentWorkflowTaskExecutions: 40,
    });
  });

  it('refuses a flag value that is no number of slots, naming the flag', () => {
    expect(slotCount('--max-concurrent-activities', '12')).toBe(12);
    expect(() => slotCount('--max-concurrent-activities', 'many')).toThrow(
      '--max-concurrent-activities expects a whole number of at least 1, got "many"',
    );
    expect(() => slotCount('--max-concurrent-workflow-tasks', '1', 2)).toThrow(/at least 2/);
  });
});
