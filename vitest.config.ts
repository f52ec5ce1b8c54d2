import { defineConfig } from 'vitest/config';
import { LastFilesSequencer } from './test/support/sequencer';

export default defineConfig({
  test: {
    // One file at a time: world test files take turns on the shared world (some stop etcd members
    // on purpose), and this 2-core machine gains nothing from running unit files beside them.
    fileParallelism: false,
    teardownTimeout: 120_000,
    // `*.last.test.ts` after every other file (the secrets scan reads the histories they left).
    sequence: { sequencer: LastFilesSequencer },
    projects: [
      {
        // Pure logic and single-tool tests: no shared world, run in seconds (`vitest run --project unit`).
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 60_000 },
      },
      {
        test: {
          name: 'world',
          include: ['test/*.test.ts'],
          // One shared world (etcd cluster, S3, Temporal, workers) per run.
          pool: 'forks',
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          // CI gets one retry of a world test: a flake on a loaded machine should not reject a
          // submission, and scripts/test.sh ends its log listing every test that needed it (FLAKY).
          retry: process.env.CI ? 1 : 0,
        },
      },
    ],
  },
});
