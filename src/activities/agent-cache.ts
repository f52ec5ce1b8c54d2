/**
 * Runbook "sled Cache Backup" on an agent node (node worker): stop the agent, tar.gz the cache
 * dir into every target, start the agent again whatever happened. With `online` the agent keeps
 * running (the cache is copied live; sled tolerates it, and the agent rebuilds from etcd anyway).
 */
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { create as createTar } from 'tar';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentConfig, Config } from '../config/schema';
import { findCluster, findTargets } from '../config/load';
import { artefactKey, openStore, type ArtefactWriter, type BackupStore, type StoredObject } from '../storage';
import { HashingStream } from '../storage/hashing';
import { fanOut } from '../storage/fan-out';
import { artefactEncryption } from './artefact-encryption';
import { serviceDriver } from '../services/driver';
import { FailureType } from '../common/failures';
import type { ArtefactRecord } from '../common/manifest';
import { typedFailures } from './failures';

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

  function agentOf(clusterName: string): AgentConfig {
    const agent = findCluster(config, clusterName).agents.find((a) => a.node === node);
    if (!agent) throw ApplicationFailure.nonRetryable(`cluster ${clusterName} configures no agent on node ${node}`, FailureType.InvalidInput);
    return agent;
  }

  async function backupAgentCache(input: AgentCacheBackupInput): Promise<AgentCacheOutcome> {
    const agent = agentOf(input.cluster);
    const isDir = await stat(agent.cacheDir).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      throw ApplicationFailure.nonRetryable(`agent cache dir ${agent.cacheDir} does not exist on node ${node}`, FailureType.InvalidInput);
    }
    const service = serviceDriver(agent.service);
    const encryption = artefactEncryption(config);
    const fileName = encryption ? encryption.fileName(input.fileName) : input.fileName;
    const key = artefactKey(input.setId, fileName);
    const stores = await Promise.all(findTargets(config, input.targets).map(openStore));
    const writers: ArtefactWriter[] = [];
    const committed: Array<{ store: BackupStore; copy: StoredObject }> = [];
    let entries = 0;

    if (!input.online) await service.stop();
    try {
      for (const store of stores) writers.push(await store.createWriter(key));
      // Paths relative to / as in the runbook's `tar -czf ... /var/nnoe/cache`: `tar -xzf -C /` restores them.
      const tar = createTar({
        cwd: '/', portable: false, strict: true,
        // Only what a cache holds: a FIFO would block the archive forever, sockets mean nothing.
        filter: (_path, entry) => {
          // While creating, entries are fs.Stats.
          const stats = entry as Stats;
          const keep = stats.isFile() || stats.isDirectory() || stats.isSymbolicLink();
          if (keep) entries += 1;
          return keep;
        },
      }, [agent.cacheDir.replace(/^\/+/, '')]);
      // node-tar's stream is a Minipass: bridge it into a Node stream so errors reach the pipeline.
      const archive = new PassThrough();
      tar.on('error', (err: unknown) => archive.destroy(err as Error));
      tar.pipe(archive);
      const raw = new HashingStream();
      const ctx = Context.current();
      const heartbeat = setInterval(() => ctx.heartbeat({ bytes: raw.bytes }), 5000);
      try {
        await pipeline([archive, raw, createGzip(), ...(encryption ? [encryption.createStream()] : []), fanOut(writers.map((w) => w.stream))]);
      } finally {
        clearInterval(heartbeat);
      }
      for (const [index, writer] of writers.entries()) committed.push({ store: stores[index]!, copy: await writer.commit() });
      const copies = committed.map(({ copy }) => ({ target: copy.target, location: copy.location, bytes: copy.bytes, sha256: copy.sha256 }));
      return {
        artefact: { file: fileName, key, compression: 'gzip', encryption: encryption?.record ?? null, bytes: copies[0]!.bytes, sha256: copies[0]!.sha256, raw: { bytes: raw.bytes, sha256: raw.digestHex() }, copies },
        facts: { node, cacheDir: agent.cacheDir, entries, online: input.online, agentRestarted: !input.online },
      };
    } catch (err) {
      await Promise.allSettled(writers.map((w) => w.abort()));
      await Promise.allSettled(committed.map(({ store, copy }) => store.delete(copy.key)));
      throw err;
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
    backupAgentCache: typedFailures(backupAgentCache),
    ensureAgentRunning: typedFailures(ensureAgentRunning),
  };
}
