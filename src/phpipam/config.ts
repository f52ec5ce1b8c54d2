/** The `phpipam` section of a cluster (defined in src/config/schema.ts, re-exported for src/phpipam). */
import type { PhpipamConfig } from '../config/schema';
export { PhpipamSchema, type PhpipamConfig } from '../config/schema';

/** The connection restores and drills use: the `restore` credential when configured, else the backup's user. */
export function restoreConnectionOf(cfg: PhpipamConfig): PhpipamConfig {
  return cfg.restore ? { ...cfg, user: cfg.restore.user, password: cfg.restore.password } : cfg;
}
