/**
 * vitest's order (failed first, then the longest, unknown files first), except that `*.last.test.ts`
 * files run after every other file: the secrets scan reads the histories the others left.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export class LastFilesSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const isLast = (spec: TestSpecification) => spec.moduleId.endsWith('.last.test.ts');
    return [...sorted.filter((s) => !isLast(s)), ...sorted.filter(isLast)];
  }
}
