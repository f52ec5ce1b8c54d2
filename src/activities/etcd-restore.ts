/**
 * Cluster-wide steps of the etcd restore runbook, run by the management worker: choose and check
 * the backup set (plan), add members (first-node-then-add), and verify a cluster after a restore
 * or a rollback (health, membership, revision, hashKV agreement, critical keys).
 */
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { ClusterConfig, Config, EtcdMemberConfig } from '../config/schema';
import { findCluster } from '../config/load';
import { FailureType } from '../common/failures';
import { initialClusterOf, peerEntry } from '../common/etcd-topology';
import type { ArtefactRecord, EtcdComponentRecord, EtcdSnapshotFacts } from '../common/manifest';
import { chooseRestoreSet } from '../catalog/choose-set';
import { connectMember, hashKVAt } from '../etcd/connect';
import { keyspaceDigest, keyspaceDigestDifference, type KeyspaceDigest } from '../etcd/keyspace-digest';
import { DomainError, errorMessage } from '../common/domain-errors';

export interface RestoreMember {
  name: string;
  node: string;
  clientUrl: string;
  peerUrl: string;
}

/** Learners (`member add --learner`, `member promote`) exist from etcd 3.4. */
export function supportsLearners(etcdVersion: string): boolean {
  const [major = 0, minor = 0] = etcdVersion.split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 4);
}

/** The restored content's digest equalled the snapshot's. */
export interface RestoredContentCheck {
  member: string;
  revision: number;
  keys: number;
  sha256: string;
}

export interface EtcdRestorePlan {
  cluster: string;
  setId: string;
  setCreatedAt: string;
  setStatus: 'complete' | 'partial';
  artefact: ArtefactRecord;
  snapshot: EtcdSnapshotFacts;
  members: RestoreMember[];
  /** `name=peerUrl,...` of every member: the restored cluster's topology. */
  initialCluster: string;
  /** Fresh per restore, so restored members can never join members of the old cluster. */
  initialClusterToken: string;
  criticalKeys: Array<{ key: string; value?: string }>;
  agentNodes: string[];
  /** The cluster's `approvers` from the config (absent: any name may approve): the approve Update's validator holds approvals to it. */
  approvers?: string[];
}

export interface ClusterCheck {
  healthy: boolean;
  members: Array<{ name: string; revision?: number; hashKV?: number; error?: string }>;
  memberList: string[];
  revision: number;
  /** The etcd cluster ID the members answer with (absent in older runs' results). */
  clusterId?: string;
  hashRevision: number;
  problems: string[];
}

export interface QuorumAssessment {
  /** Members other than the failed one that answer. */
  healthy: string[];
  size: number;
  quorum: number;
  hasQuorum: boolean;
  members: Array<{ id: string; name: string; peerURLs: string[]; isLearner: boolean }>;
  /** The failed member as configured: where its replacement runs. */
  failed: { name: string; node: string; peerUrl: string };
  /** The "failed" member answers and is in the member list: replacing it would remove a working member. */
  failedIsHealthy?: boolean;
  /** The cluster's `approvers` from the config (absent: any name may approve): the approve Update's validator holds approvals to it. */
  approvers?: string[];
}

export function createEtcdRestoreActivities(deps: { config: Config }) {
  const { config } = deps;

  async function withMember<T>(cluster: ClusterConfig, member: EtcdMemberConfig, fn: (client: Etcd3) => Promise<T>): Promise<T> {
    const client = await connectMember(cluster, member);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  }

  async function planEtcdRestore(input: { cluster: string; setId?: string }): Promise<EtcdRestorePlan> {
    const cluster = findCluster(config, input.cluster);
    const { entry, component: etcd } = await chooseRestoreSet(config, {
      cluster: cluster.name,
      setId: input.setId,
      what: 'an etcd snapshot',
      pick: (m) => m.components.find((c): c is EtcdComponentRecord => c.component === 'etcd'),
    });
    if (!cluster.etcd.members.some((m) => m.name === etcd.facts.member)) {
      throw DomainError.nonRetryable(
        `the snapshot of set ${entry.setId} was taken from member ${etcd.facts.member}, which is not a member of ${cluster.name} (${cluster.etcd.members.map((m) => m.name).join(', ')})`,
        FailureType.RestoreRefused,
      );
    }
    const members = cluster.etcd.members.map(({ name, node, clientUrl, peerUrl }) => ({ name, node, clientUrl, peerUrl }));
    return {
      cluster: cluster.name,
      setId: entry.setId,
      setCreatedAt: entry.createdAt,
      setStatus: entry.status,
      artefact: etcd.artefacts[0]!,
      snapshot: etcd.facts,
      members,
      initialCluster: initialClusterOf(members),
      initialClusterToken: `${cluster.name}-restore-${randomBytes(4).toString('hex')}`,
      criticalKeys: cluster.restore.criticalKeys,
      agentNodes: cluster.agents.map((a) => a.node),
      approvers: cluster.approvers,
    };
  }

  /**
   * Health, membership, revision, hashKV agreement and critical keys of the members named (all by
   * default). Returns the facts; with `require`, fails (retryably: a cluster settles) unless clean.
   */
  async function checkEtcdCluster(input: {
    cluster: string;
    members?: string[];
    minRevision?: number;
    criticalKeys?: Array<{ key: string; value?: string }>;
    require?: boolean;
  }): Promise<ClusterCheck> {
    const cluster = findCluster(config, input.cluster);
    const members = cluster.etcd.members.filter((m) => !input.members || input.members.includes(m.name));
    const problems: string[] = [];
    const clusterIds = new Set<string>();
    const statuses = await Promise.all(
      members.map(async (member): Promise<ClusterCheck['members'][number]> => {
        try {
          return await withMember(cluster, member, async (client) => {
            const { header } = await client.maintenance.status();
            clusterIds.add(String(header.cluster_id));
            return { name: member.name, revision: Number(header.revision) };
          });
        } catch (err) {
          problems.push(`${member.name} unhealthy: ${errorMessage(err)}`);
          return { name: member.name, error: errorMessage(err) };
        }
      }),
    );
    const healthy = statuses.filter((s) => s.revision !== undefined);
    let memberList: string[] = [];
    let hashRevision = 0;
    if (healthy.length > 0) {
      const first = members.find((m) => m.name === healthy[0]!.name)!;
      await withMember(cluster, first, async (client) => {
        const listed = (await client.cluster.memberList({})).members ?? [];
        memberList = listed.map((m) => `${m.name || '(unstarted)'}=${(m.peerURLs ?? []).join('|')}`).sort();
        const learners = listed.filter((m) => m.isLearner).map((m) => m.name || (m.peerURLs ?? []).join('|'));
        if (learners.length > 0) problems.push(`${learners.join(', ')} still a learner (not promoted to a voting member)`);
        for (const { key, value } of input.criticalKeys ?? []) {
          const actual = await client.get(key).string();
          if (actual === null) problems.push(`critical key ${key} is missing`);
          else if (value !== undefined && actual !== value) problems.push(`critical key ${key} has another value than expected`);
        }
      });
      const expected = members.map(peerEntry).sort();
      if (JSON.stringify(memberList) !== JSON.stringify(expected))
        problems.push(`member list is ${memberList.join(', ')}; expected ${expected.join(', ')}`);
      // Every member hashes the same revision: equal hashes mean equal keyspaces. That revision may be
      // the compaction point (a restore of a snapshot taken after a compaction at the head): hashKVAt
      // answers there without waiting for a write.
      hashRevision = Math.min(...healthy.map((s) => s.revision!));
      for (const status of healthy) {
        const member = members.find((m) => m.name === status.name)!;
        try {
          status.hashKV = (await withMember(cluster, member, (client) => hashKVAt(client, hashRevision))).hash;
        } catch (err) {
          problems.push(`hashKV of ${status.name} at ${hashRevision} failed: ${errorMessage(err)}`);
        }
      }
      const hashes = new Set(healthy.map((s) => s.hashKV));
      if (hashes.size > 1)
        problems.push(`members disagree on hashKV at revision ${hashRevision}: ${healthy.map((s) => `${s.name}=${s.hashKV}`).join(', ')}`);
    }
    const revision = Math.max(0, ...healthy.map((s) => s.revision!));
    if (input.minRevision !== undefined && revision < input.minRevision)
      problems.push(`revision ${revision} is below the snapshot's ${input.minRevision}`);
    if (clusterIds.size > 1) problems.push(`members answer with different cluster IDs: ${[...clusterIds].join(', ')}`);
    const check: ClusterCheck = {
      healthy: problems.length === 0,
      members: statuses,
      memberList,
      revision,
      hashRevision,
      problems,
      ...(clusterIds.size === 1 ? { clusterId: [...clusterIds][0]! } : {}),
    };
    if (input.require && problems.length > 0) {
      throw DomainError.retryable(
        `cluster ${cluster.name} is not healthy yet: ${problems.join('; ')}`,
        FailureType.RestoreVerificationFailed,
      );
    }
    return check;
  }

  /** The member that leads now, by name, from the first member that answers; null when none does. */
  async function findEtcdLeader(input: { cluster: string }): Promise<{ leader: string | null }> {
    const cluster = findCluster(config, input.cluster);
    for (const member of cluster.etcd.members) {
      try {
        const client = await connectMember(cluster, member, 2000);
        try {
          const status = await client.maintenance.status();
          const leader = ((await client.cluster.memberList({})).members ?? []).find((m) => String(m.ID) === String(status.leader));
          if (leader?.name) return { leader: leader.name };
        } finally {
          client.close();
        }
      } catch {
        // this member does not answer: ask the next
      }
    }
    return { leader: null };
  }

  /** `member add` through the members already running; idempotent (an existing peer URL is not added twice). */
  /**
   * `member add` through `via`; with `asLearner`, as a raft learner (non-voting until promoted, so a
   * member still catching up never counts toward the quorum) where the cluster runs etcd 3.4+.
   */
  async function addEtcdMember(input: {
    cluster: string;
    member: string;
    via: string[];
    asLearner?: boolean;
  }): Promise<{ id: string; alreadyMember: boolean; isLearner?: boolean }> {
    const cluster = findCluster(config, input.cluster);
    const member = cluster.etcd.members.find((m) => m.name === input.member);
    const via = cluster.etcd.members.find((m) => m.name === input.via[0]);
    if (!member || !via)
      throw DomainError.nonRetryable(`cluster ${cluster.name} has no member ${input.member} or ${input.via[0]}`, FailureType.InvalidInput);
    return withMember(cluster, via, async (client) => {
      const existing = ((await client.cluster.memberList({})).members ?? []).find((m) => (m.peerURLs ?? []).includes(member.peerUrl));
      if (existing) return { id: String(existing.ID), alreadyMember: true, isLearner: Boolean(existing.isLearner) };
      const isLearner = input.asLearner === true && supportsLearners((await client.maintenance.status()).version);
      const added = await client.cluster.memberAdd({ peerURLs: [member.peerUrl], ...(isLearner ? { isLearner } : {}) });
      return { id: String(added.member.ID), alreadyMember: false, isLearner };
    });
  }

  /**
   * Promotes the learner at `member`'s peer URL to a voting member. etcd refuses until the learner
   * has caught up with the leader: that refusal is retried (the workflow's verify timeout bounds it).
   */
  async function promoteEtcdLearner(input: { cluster: string; member: string; via: string[] }): Promise<{ promoted: boolean }> {
    const cluster = findCluster(config, input.cluster);
    const member = cluster.etcd.members.find((m) => m.name === input.member);
    const via = cluster.etcd.members.find((m) => m.name === input.via[0]);
    if (!member || !via)
      throw DomainError.nonRetryable(`cluster ${cluster.name} has no member ${input.member} or ${input.via[0]}`, FailureType.InvalidInput);
    return withMember(cluster, via, async (client) => {
      const listed = ((await client.cluster.memberList({})).members ?? []).find((m) => (m.peerURLs ?? []).includes(member.peerUrl));
      if (!listed)
        throw DomainError.nonRetryable(
          `${member.name} (${member.peerUrl}) is not in the member list of ${cluster.name}: nothing to promote`,
          FailureType.RestoreVerificationFailed,
        );
      if (!listed.isLearner) return { promoted: false }; // a retry after the promotion went through
      try {
        await client.cluster.memberPromote({ ID: String(listed.ID) });
      } catch (err) {
        throw DomainError.retryable(`learner ${member.name} not promoted yet: ${errorMessage(err)}`, FailureType.RestoreVerificationFailed);
      }
      return { promoted: true };
    });
  }

  /**
   * Which members answer, out of the cluster's own member list: a replacement needs a quorum of
   * the others, or it must not touch membership at all.
   */
  async function assessQuorum(input: { cluster: string; failed: string }): Promise<QuorumAssessment> {
    const cluster = findCluster(config, input.cluster);
    const others = cluster.etcd.members.filter((m) => m.name !== input.failed);
    const healthy: string[] = [];
    let listed: Array<{ id: string; name: string; peerURLs: string[]; isLearner: boolean }> = [];
    for (const member of others) {
      try {
        const members = await withMember(cluster, member, async (client) => {
          await client.maintenance.status();
          return (await client.cluster.memberList({})).members ?? [];
        });
        healthy.push(member.name);
        if (listed.length === 0)
          listed = members.map((m) => ({
            id: String(m.ID),
            name: m.name,
            peerURLs: m.peerURLs ?? [],
            isLearner: Boolean((m as { isLearner?: boolean }).isLearner),
          }));
      } catch {
        // not answering: counts against the quorum
      }
    }
    const failed = cluster.etcd.members.find((m) => m.name === input.failed);
    if (!failed)
      throw DomainError.nonRetryable(`cluster ${cluster.name} has no member ${input.failed} in the config`, FailureType.InvalidInput);
    const size = Math.max(listed.length, cluster.etcd.members.length);
    const quorum = Math.floor(size / 2) + 1;
    const failedIsHealthy = await withMember(cluster, failed, async (client) => {
      const status = await client.maintenance.status();
      return listed.some((m) => m.id === String(status.header?.member_id) && m.name === failed.name);
    }).catch(() => false);
    return {
      healthy,
      size,
      quorum,
      hasQuorum: healthy.length >= quorum,
      members: listed,
      failed: { name: failed.name, node: failed.node, peerUrl: failed.peerUrl },
      failedIsHealthy,
      approvers: cluster.approvers,
    };
  }

  /** `member remove` of a dead member (by name or peer URL) through a healthy one; idempotent. */
  async function removeEtcdMember(input: { cluster: string; member: string; via: string }): Promise<{ removedId: string | null }> {
    const cluster = findCluster(config, input.cluster);
    const member = cluster.etcd.members.find((m) => m.name === input.member);
    const via = cluster.etcd.members.find((m) => m.name === input.via);
    if (!member || !via)
      throw DomainError.nonRetryable(`cluster ${cluster.name} has no member ${input.member} or ${input.via}`, FailureType.InvalidInput);
    return withMember(cluster, via, async (client) => {
      const listed = ((await client.cluster.memberList({})).members ?? []).find(
        (m) => m.name === member.name || (m.peerURLs ?? []).includes(member.peerUrl),
      );
      if (!listed) return { removedId: null };
      await client.cluster.memberRemove({ ID: listed.ID });
      return { removedId: String(listed.ID) };
    });
  }

  /** The keys a restored cluster must hold (config `restore.criticalKeys`). */
  async function restoreCriticalKeys(input: { cluster: string }): Promise<Array<{ key: string; value?: string }>> {
    return findCluster(config, input.cluster).restore.criticalKeys;
  }

  /**
   * The restored content equals the snapshot's key for key: the digest of every key, value and
   * lease the backup read at the snapshot revision, against the restored cluster's at the revision
   * the restore put that content at (the snapshot's, plus the bump when used). A member that does
   * not answer is the cluster check's business: any healthy member will do here.
   */
  async function verifyRestoredContent(input: {
    cluster: string;
    revision: number;
    expected: KeyspaceDigest;
  }): Promise<RestoredContentCheck> {
    const cluster = findCluster(config, input.cluster);
    let lastError: unknown;
    for (const member of cluster.etcd.members) {
      let actual: KeyspaceDigest;
      try {
        actual = await withMember(cluster, member, (client) => keyspaceDigest(client, input.revision));
      } catch (err) {
        lastError = err;
        continue;
      }
      const difference = keyspaceDigestDifference(input.expected, actual);
      if (difference) {
        throw DomainError.nonRetryable(
          `restored etcd ${cluster.name} at revision ${input.revision} (read on ${member.name}): ${difference}`,
          FailureType.RestoreVerificationFailed,
        );
      }
      return { member: member.name, revision: input.revision, keys: actual.keys, sha256: actual.sha256 };
    }
    throw new Error(`no member of ${cluster.name} could be read at revision ${input.revision}: ${errorMessage(lastError)}`);
  }

  return {
    verifyRestoredContent: verifyRestoredContent,
    restoreCriticalKeys: restoreCriticalKeys,
    assessQuorum: assessQuorum,
    removeEtcdMember: removeEtcdMember,
    planEtcdRestore: planEtcdRestore,
    checkEtcdCluster: checkEtcdCluster,
    addEtcdMember: addEtcdMember,
    promoteEtcdLearner: promoteEtcdLearner,
    findEtcdLeader: findEtcdLeader,
  };
}
