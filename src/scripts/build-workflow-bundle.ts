/**
 * `npm run build` step, run from source with tsx (build tooling: not shipped in dist/): bundle the
 * compiled workflow code once, next to the compiled worker, so a worker starts without webpack
 * (faster, and ~75 MiB less resident memory for the life of the process).
 *
 *   tsx src/scripts/build-workflow-bundle.ts [--dist <dir>]   (default: the repository's dist/)
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleWorkflowCode } from '@temporalio/worker';

/** The file the compiled worker (dist/worker.js) loads when it is there. */
export const WORKFLOW_BUNDLE_FILE = 'workflow-bundle.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dist: { type: 'string' } } });
  const dist = resolve(values.dist ?? join(__dirname, '..', '..', 'dist'));
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve(join(dist, 'workflows')) });
  const out = join(dist, WORKFLOW_BUNDLE_FILE);
  await writeFile(out, code);
  console.log(`workflow bundle: ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err: unknown) => {
  console.error(`building the workflow bundle failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
