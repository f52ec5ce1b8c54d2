// Lint rules. The strict part is src/workflows: workflow code is replayed from history, so it must
// be deterministic: no Node built-ins (I/O, clocks, randomness belong in activities), value imports
// only of what the workflow bundle may hold (WORKFLOW_BUNDLE_ALLOWED; activities and the rest: types
// only, through proxyActivities), and every promise awaited. test/unit/workflow-lint.test.ts checks it.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/**
 * What the workflow bundle may hold, as imported from src/workflows: the SDK's workflow side, the
 * workflows' own modules, and these pure modules (no I/O, no Node built-ins, nothing that pulls a
 * client library in: each imports only types or another module of this list). Anything else
 * (../activities, ../retention, ../storage, ...) may be imported with `import type` only: a value
 * import would put it, and what it imports (the AWS SDK, etcd3, mysql2), into the bundle.
 * Add a module here only when it is pure in that sense.
 */
export const WORKFLOW_BUNDLE_ALLOWED = [
  '@temporalio/workflow',
  '@temporalio/common',
  '../common/etcd-topology',
  '../common/failures',
  '../common/input-checks',
  '../common/manifest',
  '../common/plan-view',
  '../common/run-metadata',
  '../common/search-attributes',
  '../retention/policy',
];
const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Any import but the allowed modules and the workflows' own (`./x`, never leaving the folder). */
const outsideTheBundle = `^(?!(${WORKFLOW_BUNDLE_ALLOWED.map(escapeRegExp).join('|')}|\\./(?:(?!\\.\\.).)+)$)`;

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', '.world/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-unsafe-function-type': 'off',
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflow code must be deterministic: do I/O in an activity' })),
          patterns: [
            {
              regex: outsideTheBundle,
              allowTypeImports: true,
              message:
                'not allowed in the workflow bundle (WORKFLOW_BUNDLE_ALLOWED in eslint.config.mjs): import its types only (`import type`), reach its I/O through activities (proxyActivities)',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'no process state in workflows' },
        { name: 'setInterval', message: 'use workflow sleep/condition' },
      ],
    },
  },
);
