/**
 * The workflow lint rule (eslint.config.mjs) lets into src/workflows only what the workflow bundle
 * may hold: a value import of any other module (../retention pulls the AWS SDK) fails lint, its
 * types still pass. Linted as a file of src/workflows with the project's own config.
 */
import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..');

/** The import-rule messages ESLint gives `code` as if it were src/workflows/<name>. */
async function importProblems(code: string): Promise<string[]> {
  const eslint = new ESLint({
    cwd: root,
    // The type-aware rules need the file in the TypeScript project; this one is not on disk.
    overrideConfig: {
      files: ['src/workflows/**/*.ts'],
      languageOptions: { parserOptions: { projectService: false } },
      rules: {
        '@typescript-eslint/no-floating-promises': 'off',
        '@typescript-eslint/no-misused-promises': 'off',
      },
    },
  });
  const [result] = await eslint.lintText(code, { filePath: resolve(root, 'src/workflows/lint-fixture.ts') });
  return result!.messages.filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports').map((m) => m.message);
}

describe('the workflow lint rule', () => {
  it('refuses a value import of a module outside the bundle allow-list', async () => {
    const problems = await importProblems(
      [
        "import { deleteBackupSet } from '../retention';",
        "import { openStore } from '../storage';",
        "import { S3Client } from '@aws-sdk/client-s3';",
        "import { createPruneActivities } from '../activities/prune';",
        'export const used = [deleteBackupSet, openStore, S3Client, createPruneActivities];',
      ].join('\n'),
    );
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/'\.\.\/retention' import is restricted.*not allowed in the workflow bundle/);
  });

  it("lets through the SDK, the workflows' own modules, the allowed pure modules and type imports", async () => {
    const problems = await importProblems(
      [
        "import { proxyActivities } from '@temporalio/workflow';",
        "import { StepTracker } from './progress';",
        "import { planRetention } from '../retention/policy';",
        "import { describePlanView } from '../common/plan-view';",
        "import type { DeletedSet } from '../retention';",
        "import type { createPruneActivities } from '../activities/prune';",
        'export const used = [proxyActivities, StepTracker, planRetention, describePlanView];',
        'export type Used = [DeletedSet, typeof createPruneActivities];',
      ].join('\n'),
    );
    expect(problems).toEqual([]);
  });
});
