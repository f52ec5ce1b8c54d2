/**
 * `npm run build` step: bundle the workflow code once, next to the compiled worker, so a worker
 * starts without webpack (faster, and ~75 MiB less resident memory for the life of the process).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

export const WORKFLOW_BUNDLE_FILE = 'workflow-bundle.js';

async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') });
  const out = join(__dirname, '..', WORKFLOW_BUNDLE_FILE);
  await writeFile(out, code);
  console.log(`workflow bundle: ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err: unknown) => {
  console.error(`building the workflow bundle failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
