/** The `phpipam` section of a cluster (defined in src/config/schema.ts, re-exported for src/phpipam). */
export { PhpipamSchema, type PhpipamConfig } from '../config/schema';
