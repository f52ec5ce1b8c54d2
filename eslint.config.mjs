// Lint rules. The strict part is src/workflows: workflow code is replayed from history, so it must
// be deterministic: no Node built-ins (I/O, clocks, randomness belong in activities), no activity
// implementations (types only, through proxyActivities), and every promise awaited.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

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
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: nodeBuiltins.map((name) => ({ name, message: 'workflow code must be deterministic: do I/O in an activity' })),
        patterns: [
          { group: ['../activities', '../activities/*'], allowTypeImports: true, message: 'workflows import activity types only (proxyActivities)' },
          { group: ['../storage', '../storage/*', '../etcd/*', '../config/*', '../catalog/*', '../sandbox/*'], allowTypeImports: true, message: 'these modules do I/O: reach them through activities' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'process', message: 'no process state in workflows' },
        { name: 'setInterval', message: 'use workflow sleep/condition' },
      ],
    },
  },
);
