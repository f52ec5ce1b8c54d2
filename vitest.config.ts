import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        // Pure logic and single-tool tests: no shared world, run in seconds (`vitest run --project unit`).
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 60_000 },
      },
      {
        test: {
          name: 'world',
          include: ['test/*.test.ts'],
          // One shared world (etcd cluster, S3, Temporal, worker) per run: test files take turns on it,
          // since some stop etcd members on purpose.
          pool: 'forks',
          fileParallelism: false,
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          teardownTimeout: 120_000,
        },
      },
    ],
  },
});
