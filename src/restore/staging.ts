/**
 * Where restores stage what they fetched before using it: `<workDir>/restore/<set>/<part>/`, one
 * part per member, node kind or component. Removing a part also removes the set's directory once
 * it is empty, so finished restores leave no empty `restore/<set>/` behind.
 */
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

export function restoreStagingDir(workDir: string, setId: string, part: string): string {
  return join(workDir, 'restore', setId, part);
}

export async function removeRestoreStaging(workDir: string, setId: string, part: string): Promise<void> {
  await rm(restoreStagingDir(workDir, setId, part), { recursive: true, force: true });
  // Only when empty: other members or components of the same restore may still stage there.
  await rmdir(join(workDir, 'restore', setId)).catch(() => undefined);
}
