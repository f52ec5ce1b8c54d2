/**
 * The workflow bundle of the workflow tests: src/workflows bundled once, with `@temporalio/workflow`
 * replaced by test/unit/support/unpatched-workflow.ts (a run can ask for the branches of runs
 * recorded before a `patched` marker). Webpack takes seconds, so the bundle is kept in the temp dir
 * keyed by a hash of the sources (src/, this support dir, the SDK's version) and shared by every
 * test file and run until a source changes.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

const repoRoot = resolve(__dirname, '../../..');
const SHIM = join(__dirname, 'unpatched-workflow.ts');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return sourceFiles(path);
      return e.name.endsWith('.ts') ? [path] : [];
    })
    .sort();
}

function sourcesHash(): string {
  const hash = createHash('sha256');
  const sdkVersion = JSON.parse(readFileSync(join(repoRoot, 'node_modules/@temporalio/workflow/package.json'), 'utf8')).version as string;
  hash.update(`@temporalio/workflow ${sdkVersion}\n`);
  for (const file of [...sourceFiles(join(repoRoot, 'src')), ...sourceFiles(__dirname)]) {
    hash.update(`${file}\n`).update(readFileSync(file));
  }
  return hash.digest('hex').slice(0, 16);
}

let cached: Promise<string> | null = null;

/** The bundle's code: from the temp dir when the sources are unchanged, else bundled and kept there. */
export function workflowBundleCode(): Promise<string> {
  return (cached ??= (async () => {
    const dir = join(tmpdir(), 'nnoe-dr-workflow-test-bundles');
    const file = join(dir, `workflows-${sourcesHash()}.js`);
    const kept = await readFile(file, 'utf8').catch(() => null);
    if (kept) {
      await utimes(file, new Date(), new Date()).catch(() => undefined); // in use: not stale
      return kept;
    }
    const { code } = await bundleWorkflowCode({
      workflowsPath: join(repoRoot, 'src/workflows/index.ts'),
      // Only the exact request '@temporalio/workflow': the shim itself imports '@temporalio/workflow/lib/index'.
      webpackConfigHook: (config) => ({
        ...config,
        resolve: { ...config.resolve, alias: { ...config.resolve?.alias, '@temporalio/workflow$': SHIM } },
      }),
      logger: quietLogger,
    });
    await mkdir(dir, { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, code);
    await rename(temp, file);
    await removeStaleBundles(dir);
    return code;
  })());
}

/** Bundles of sources older than a day: each source change leaves one behind (a few MiB). */
async function removeStaleBundles(dir: string): Promise<void> {
  const dayAgo = Date.now() - 24 * 3600_000;
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const modified = (await stat(path).catch(() => null))?.mtimeMs;
    if (modified !== undefined && modified < dayAgo) await rm(path, { force: true });
  }
}

const quiet = () => undefined;
const quietLogger = {
  trace: quiet,
  debug: quiet,
  info: quiet,
  warn: quiet,
  error: (message: string, meta?: object) => console.error(message, meta ?? ''),
  log: quiet,
};
