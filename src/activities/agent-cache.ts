/**
 * Runbook "sled Cache Backup" on an agent node (node worker): stop the agent, tar.gz the cache
 * dir into every target, start the agent again whatever happened. With `online` the agent keeps
 * running (the cache is copied live; sled tolerates it, and the agent rebuilds from etcd anyway).
 */
import { stat } from 'node:fs/promises';
import type { Config } from '../config/schema';
import { findCluster, findTargets } from '../config/load';
import { artefactKey, openStore } from '../storage';
import { createArchiveStream } from '../archive/create';
import { publishCompressed } from './archive-artefact';
import { artefactEncryption } from './artefact-encryption';
import { serviceDriver } from '../services/driver';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { ArtefactRecord } from '../common/manifest';
import { agentLayout, agentOn } from '../agent/node-agent';

export interface AgentCacheBackupInput {
  cluster: string;
  setId: string;
  fileName: string;
  targets: string[];
  online: boolean;
}

export interface AgentCacheOutcome {
  artefact: ArtefactRecord;
  facts: { node: string; cacheDir: string; entries: number; online: boolean; agentRestarted: boolean };
}

export function createAgentCacheActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  const agentOf = (clusterName: string) => agentOn(findCluster(config, clusterName), node);

  async function backupAgentCache(input: AgentCacheBackupInput): Promise<AgentCacheOutcome> {
    const agent = agentOf(input.cluster);
    const cacheDir = (await agentLayout(agent)).cachePath; // [cache].path of agent.toml, never assumed
    const isDir = await stat(cacheDir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) {
      throw DomainError.nonRetryable(
        `agent cache dir ${cacheDir} (${agent.cacheDir ? 'agents[].cacheDir' : `[cache].path of ${agent.agentToml}`}) does not exist on node ${node}`,
        FailureType.InvalidInput,
      );
    }
    const service = serviceDriver(agent.service);
    const encryption = artefactEncryption(config);
    const fileName = encryption ? encryption.fileName(input.fileName) : input.fileName;
    const key = artefactKey(input.setId, fileName);
    const stores = await Promise.all(findTargets(config, input.targets).map(openStore));
    let entries = 0;

    if (!input.online) await service.stop();
    try {
      const source = createArchiveStream([cacheDir], () => {
        entries += 1;
      });
      const artefact = await publishCompressed({ source, stores, key, fileName, encryption });
      return {
        artefact,
        facts: { node, cacheDir, entries, online: input.online, agentRestarted: !input.online },
      };
    } finally {
      // Whatever happened (error, cancellation, timeout noticed through the heartbeat): the agent runs again.
      if (!input.online) await service.start();
    }
  }

  /** Idempotent: starts the agent if it is not running. The workflow calls it after any failure. */
  async function ensureAgentRunning(input: { cluster: string }): Promise<{ node: string; wasRunning: boolean }> {
    const service = serviceDriver(agentOf(input.cluster).service);
    const wasRunning = await service.isRunning();
    if (!wasRunning) await service.start();
    return { node, wasRunning };
  }

  return {
    backupAgentCache: backupAgentCache,
    ensureAgentRunning: ensureAgentRunning,
  };
}
