/**
 * A synthetic catalog for bench/catalog and the catalog's listing tests: manifests as backup sets
 * write them (etcd with its cluster ID and revision, phpIPAM, agent caches), their artefacts as
 * tiny objects, and change-capture segments named as the capture names them. Only names and
 * manifests matter to the catalog and the planners, so the bodies are a few bytes.
 */
import type { ArtefactRecord, BackupManifest, ComponentRecord } from '../../src/common/manifest';
import { backupSetId, MANIFEST_FORMAT_VERSION } from '../../src/common/manifest';
import { artefactKey, MANIFEST_FILE } from '../../src/storage';
import { gapKey, segmentKey } from '../../src/capture/segments';

export type SyntheticComponent = 'etcd' | 'phpipam' | 'agent-cache';

export interface SyntheticSet {
  setId: string;
  manifest: BackupManifest;
  /** Keys of the set's objects, manifest last (as a backup writes them). */
  keys: string[];
}

function artefact(setId: string, file: string): ArtefactRecord {
  return {
    file,
    key: artefactKey(setId, file),
    compression: 'gzip',
    encryption: null,
    bytes: 1000 + file.length,
    sha256: '0'.repeat(64),
    raw: { bytes: 4000, sha256: '1'.repeat(64) },
    copies: [],
  };
}

function component(
  kind: SyntheticComponent,
  setId: string,
  created: string,
  etcd: { revision: number; clusterId: string },
): ComponentRecord {
  const times = { startedAt: created, finishedAt: created };
  if (kind === 'etcd') {
    return {
      component: 'etcd',
      status: 'ok',
      artefacts: [artefact(setId, 'etcd-snapshot.db.gz')],
      ...times,
      facts: {
        member: 'etcd-1',
        memberId: '1',
        clusterId: etcd.clusterId,
        etcdVersion: '3.5.16',
        revision: etcd.revision,
        hash: 1,
        totalKey: 10,
        totalSize: 4000,
        trailerVerified: true,
      },
    };
  }
  if (kind === 'phpipam') {
    return { component: 'phpipam', status: 'ok', artefacts: [artefact(setId, 'phpipam.sql.gz')], ...times, facts: {} as never };
  }
  return {
    component: 'agent-cache',
    node: 'node-1',
    status: 'ok',
    artefacts: [artefact(setId, 'agent-cache-node-1.tar.gz')],
    ...times,
    facts: { node: 'node-1', cacheDir: '/var/lib/nnoe/cache', entries: 3, online: true, agentRestarted: false },
  };
}

/** One set of `cluster` created at `created`, its snapshot at `revision` of incarnation `clusterId`. */
export function syntheticSet(
  cluster: string,
  created: Date,
  opts: {
    revision: number;
    clusterId: string;
    status?: BackupManifest['status'];
    components?: SyntheticComponent[];
  },
): SyntheticSet {
  const setId = backupSetId(cluster, created);
  const createdAt = created.toISOString();
  const components = (opts.components ?? ['etcd', 'phpipam', 'agent-cache']).map((kind) => component(kind, setId, createdAt, opts));
  const manifest: BackupManifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    tool: 'nnoe-dr',
    setId,
    cluster,
    status: opts.status ?? 'complete',
    createdAt,
    completedAt: createdAt,
    workflow: { workflowId: `backup-set-${setId}`, runId: 'synthetic' },
    components,
    failures: [],
  };
  return { setId, manifest, keys: [...components.flatMap((c) => c.artefacts.map((a) => a.key)), artefactKey(setId, MANIFEST_FILE)] };
}

/**
 * `sets` sets of `cluster`, one every `everyMs` back from `newest`, and a change chain of
 * `segments` segments of `revisionsPerSegment` revisions each, the sets' snapshots spread along it
 * (oldest set at revision 1000). Every 97th set is partial.
 */
export function syntheticCatalog(opts: {
  cluster: string;
  clusterId: string;
  sets: number;
  segments: number;
  newest: Date;
  everyMs: number;
  revisionsPerSegment: number;
}): { sets: SyntheticSet[]; segmentKeys: string[]; lastRevision: number } {
  const firstRevision = 1000;
  const lastRevision = firstRevision + opts.segments * opts.revisionsPerSegment;
  const oldestMs = opts.newest.getTime() - (opts.sets - 1) * opts.everyMs;
  const sets = Array.from({ length: opts.sets }, (_, k) => {
    const revision = firstRevision + Math.floor(((lastRevision - firstRevision) * k) / opts.sets);
    return syntheticSet(opts.cluster, new Date(oldestMs + k * opts.everyMs), {
      revision,
      clusterId: opts.clusterId,
      status: k % 97 === 96 ? 'partial' : 'complete',
    });
  });
  // Capture times spread evenly over the sets' span, as a steady capture would write them.
  const msPerSegment = Math.max(1, Math.floor(((opts.sets - 1) * opts.everyMs) / Math.max(opts.segments, 1)));
  const segmentKeys = Array.from({ length: opts.segments }, (_, i) => {
    const from = firstRevision + 1 + i * opts.revisionsPerSegment;
    const firstMs = oldestMs + i * msPerSegment;
    return segmentKey(
      opts.cluster,
      opts.clusterId,
      { from, to: from + opts.revisionsPerSegment - 1, firstMs, lastMs: firstMs + msPerSegment - 1 },
      '',
    );
  });
  return { sets, segmentKeys: [...segmentKeys, gapKey(opts.cluster, opts.clusterId, 1, firstRevision)], lastRevision };
}
