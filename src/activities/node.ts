/**
 * Host-local activities, run by a node worker (`--node NAME`) on its own task queue. Restores,
 * service stop/start and unit-file edits join these in the restore runbooks.
 */
import { hostname } from 'node:os';
import { mkdir, statfs } from 'node:fs/promises';
import type { Config } from '../config/schema';
import { snapshotTool } from '../etcd/snapshot-file';
import { createAgentCacheActivities } from './agent-cache';
import { createHostFileActivities } from './host-files';
import { createEtcdMemberActivities } from './etcd-member';
import { createAgentServiceActivities } from './agent-service';
import { createChangeCaptureActivities } from './change-capture';
import { createDhcpCheckActivities } from './service-checks';
import { createHostRestoreActivities } from './host-restore';
import { createAgentHostRestoreActivities } from './agent-host-restore';

export interface NodeDescription {
  node: string;
  hostname: string;
  workDir: string;
  freeBytes: number;
  snapshotTool: string;
}

/** The node worker's activities, before the error seam (./index.ts createNodeActivities adds it). */
export function nodeActivities(deps: { config: Config; node: string }) {
  /** What a restore preflight needs to know about this host: free disk and the offline snapshot tool. */
  async function describeNode(): Promise<NodeDescription> {
    await mkdir(deps.config.workDir, { recursive: true });
    const fs = await statfs(deps.config.workDir);
    return {
      node: deps.node,
      hostname: hostname(),
      workDir: deps.config.workDir,
      freeBytes: fs.bavail * fs.bsize,
      snapshotTool: snapshotTool(deps.config.etcdBinDir).command,
    };
  }
  return {
    describeNode,
    ...createAgentCacheActivities(deps),
    ...createHostFileActivities(deps),
    ...createEtcdMemberActivities(deps),
    ...createAgentServiceActivities(deps),
    // Change capture may run next to etcd, on a node worker (input `node`).
    ...createChangeCaptureActivities(deps),
    ...createDhcpCheckActivities(deps),
    ...createHostRestoreActivities(deps),
    ...createAgentHostRestoreActivities(deps),
  };
}
