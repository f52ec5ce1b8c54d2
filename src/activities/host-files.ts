/**
 * Runbook "Nebula Certificate Backup" and the agent configs (`/etc/nnoe/agent.d`), on the node that
 * holds them (node worker): a tar.gz of the files with their modes, encrypted like every artefact.
 * Nebula archives hold the host's private key, so they are never written without encryption.
 */
import { lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema';
import { agentHostState } from '../agent/node-agent';
import { findCluster, findTargets } from '../config/load';
import { artefactKey, openStore } from '../storage';
import { createArchiveStream, type ArchivedEntry } from '../archive/create';
import { NEBULA_FILES } from '../nebula/certs';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import type { ArtefactRecord } from '../common/manifest';
import { artefactEncryption } from './artefact-encryption';
import { publishCompressed } from './archive-artefact';

export interface HostFilesBackupInput {
  cluster: string;
  setId: string;
  fileName: string;
  targets: string[];
}

export interface HostFilesOutcome {
  artefact: ArtefactRecord;
  facts: { node: string; dir: string; files: ArchivedEntry[]; roots?: string[]; skipped?: Array<{ path: string; reason: string }> };
}

export function createHostFileActivities(deps: { config: Config; node: string }) {
  const { config, node } = deps;

  async function archive(
    input: HostFilesBackupInput,
    dir: string,
    paths: string[],
    encryptionRequired: boolean,
  ): Promise<HostFilesOutcome> {
    const encryption = artefactEncryption(config);
    if (!encryption && encryptionRequired) {
      throw DomainError.nonRetryable(
        'Nebula backups hold private keys and are always encrypted: configure encryption.recipients (age1...)',
        FailureType.ConfigError,
      );
    }
    const fileName = encryption ? encryption.fileName(input.fileName) : input.fileName;
    const key = artefactKey(input.setId, fileName);
    const stores = await Promise.all(findTargets(config, input.targets).map(openStore));
    const files: ArchivedEntry[] = [];
    const source = createArchiveStream(paths, (entry) => {
      files.push(entry);
    });
    const artefact = await publishCompressed({ source, stores, key, fileName, encryption });
    return { artefact, facts: { node, dir, files } };
  }

  async function backupNebulaFiles(input: HostFilesBackupInput): Promise<HostFilesOutcome> {
    const nebula = findCluster(config, input.cluster).nebula.find((n) => n.node === node);
    if (!nebula)
      throw DomainError.nonRetryable(`cluster ${input.cluster} configures no Nebula files on node ${node}`, FailureType.InvalidInput);
    const paths = NEBULA_FILES.map((file) => join(nebula.dir, file));
    // lstat: a symlinked host.key would archive the link, not the key.
    const missing = (await Promise.all(paths.map(async (p) => ((await lstat(p).catch(() => null))?.isFile() ? null : p)))).filter(
      (p) => p !== null,
    );
    if (missing.length > 0) {
      throw DomainError.nonRetryable(
        `Nebula files missing or not regular files on node ${node}: ${missing.join(', ')} (expected ${NEBULA_FILES.join(', ')} in ${nebula.dir})`,
        FailureType.InvalidInput,
      );
    }
    return archive(input, nebula.dir, paths, true);
  }

  /**
   * The agent's host state: what a real recovery of the node needs beside etcd. Paths that do not
   * exist on the node are skipped; private keys (TLS dir, DNSSEC keys, the Nebula CA key) only go
   * into an encrypted archive, and are left out, with the reason recorded, when encryption is off.
   * null when none of it exists on this node (nothing to back up, not a failure).
   */
  async function backupAgentConfig(input: HostFilesBackupInput): Promise<HostFilesOutcome | null> {
    const agent = findCluster(config, input.cluster).agents.find((a) => a.node === node);
    if (!agent) throw DomainError.nonRetryable(`cluster ${input.cluster} configures no agent on node ${node}`, FailureType.InvalidInput);
    const encrypted = artefactEncryption(config) !== null;
    const roots: string[] = [];
    const skipped: Array<{ path: string; reason: string }> = [];
    for (const { path, secret } of agentHostState(agent)) {
      if (
        !(await stat(path).then(
          () => true,
          () => false,
        ))
      )
        continue;
      if (secret && !encrypted) skipped.push({ path, reason: 'holds private keys and the config has no encryption.recipients' });
      else roots.push(path);
    }
    if (roots.length === 0) return null;
    const outcome = await archive(input, agent.configDir, roots, false);
    return { ...outcome, facts: { ...outcome.facts, roots, skipped } };
  }

  return {
    backupNebulaFiles: backupNebulaFiles,
    backupAgentConfig: backupAgentConfig,
  };
}
