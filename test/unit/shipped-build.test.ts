/**
 * The shipped build (`npm run build` -> dist/) is the product only: the worker, the CLI, the client
 * and the workflows. The sandbox (src/sandbox) and the build scripts (src/scripts) are dev tooling
 * run from source with tsx: tsconfig.json leaves them out, and no product file imports them (tsc
 * would compile an imported file into dist/ whatever `exclude` says).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..');
const DEV_TOOLING = ['src/sandbox/', 'src/scripts/'];
const isDevTooling = (file: string) => DEV_TOOLING.some((dir) => file.startsWith(dir));

/** The repository-relative .ts files tsconfig.json compiles into dist/. */
function builtFiles(): string[] {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), (file) => readFileSync(file, 'utf8'));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  return parsed.fileNames.map((file) => relative(root, file).split(sep).join('/'));
}

describe('the shipped build', () => {
  it('leaves the sandbox and the build scripts out of dist/', () => {
    const built = builtFiles();
    expect(built).toContain('src/worker.ts');
    expect(built).toContain('src/client/cli.ts');
    expect(built).toContain('src/workflows/index.ts');
    expect(built.filter(isDevTooling)).toEqual([]);
  });

  it('holds no product file that imports dev tooling', () => {
    const importers: string[] = [];
    for (const file of readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })) {
      const path = `src/${file.split(sep).join('/')}`;
      if (!path.endsWith('.ts') || isDevTooling(path)) continue;
      const { importedFiles } = ts.preProcessFile(readFileSync(join(root, path), 'utf8'), true, true);
      for (const { fileName } of importedFiles) {
        if (!fileName.startsWith('.')) continue;
        const target = `${relative(root, resolve(root, dirname(path), fileName))
          .split(sep)
          .join('/')}/`;
        if (isDevTooling(target)) importers.push(`${path} imports ${fileName}`);
      }
    }
    expect(importers).toEqual([]);
  });
});
