/**
 * The layers stay apart: an activity file never imports another activity file (shared code lives
 * in a helper module or a domain folder), and no code outside the Temporal layer imports Temporal.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ACTIVITIES = join(__dirname, '../../src/activities');
const text = (file: string) => readFileSync(join(ACTIVITIES, file), 'utf8');
/** The two files that assemble the workers' activities may import every activity file. */
const ASSEMBLY = new Set(['index.ts', 'node.ts']);

describe('layering', () => {
  it('no activity file imports a sibling activity file', () => {
    const files = readdirSync(ACTIVITIES).filter((f) => f.endsWith('.ts'));
    const activityFiles = new Set(files.filter((f) => /export function create\w+Activities\b/.test(text(f))));
    expect(activityFiles.size).toBeGreaterThan(15);
    const offending = [...activityFiles]
      .filter((f) => !ASSEMBLY.has(f))
      .flatMap((f) =>
        [...text(f).matchAll(/from '\.\/([\w-]+)'/g)]
          .map((m) => `${m[1]!}.ts`)
          .filter((imported) => activityFiles.has(imported))
          .map((imported) => `${f} -> ${imported}`),
      );
    expect(offending).toEqual([]);
  });
});
