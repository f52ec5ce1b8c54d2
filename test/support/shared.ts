/** What the global setup hands to every test file (via vitest's provide/inject). */
export interface TestWorldInfo {
  /** The sandbox world's directory (world.json, supervisord, certs). */
  worldDir: string;
  /** nnoe-dr config used by the test worker: the world's plus the negative-test variants. */
  configPath: string;
  temporalAddress: string;
  /** The dev server's web UI (http://127.0.0.1:<port>). */
  temporalUiUrl: string;
  workflowBundlePath: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    world: TestWorldInfo;
  }
}

/** Cluster and target names the global setup adds to the config for negative tests. */
export const VARIANTS = {
  /** Same members, client certificate signed by a CA etcd does not trust. */
  rogueCertCluster: 'nnoe-rogue-cert',
  /** Same members, client certificate file that does not exist. */
  missingCertCluster: 'nnoe-missing-cert',
  /** A cluster whose catalog the prune tests write by hand (no backup of it ever runs). */
  syntheticCluster: 'nnoe-synthetic',
  /** An S3 target whose endpoint has nothing listening. */
  deadS3Target: 's3-unreachable',
  /** An S3 target on a bucket with Object Lock enabled, asking for GOVERNANCE retention of 1 day. */
  lockedS3Target: 's3-locked',
} as const;

/** Who may approve the world's restores (config `approvers` of its main cluster); any other name is refused. */
export const WORLD_APPROVERS = ['sre on call', 'incident commander', 'on-call', 'cli test'];
