/**
 * Answers of a healthy three-member etcd cluster (etcd-1..3 on node-1..3, agents on node-1 and
 * node-2) for the stubbed-activity workflow tests. Each test starts from `healthyEtcdStubs()` and
 * overrides the step it makes fail.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ArtefactRecord, EtcdSnapshotFacts } from '../../../src/common/manifest';
import type { ResultOf, Stubs } from '../support/stubbed-workers';

type EtcdRestorePlan = ResultOf<'planEtcdRestore'>;
type MemberConfigChange = ResultOf<'repointEtcdMemberConfig'>;
type AgentCheck = ResultOf<'checkAgent'>;

export const CLUSTER = 'nnoe-test';
export const SET_ID = 'nnoe-test-20261204-060000';
export const MEMBERS = [
  { name: 'etcd-1', node: 'node-1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' },
  { name: 'etcd-2', node: 'node-2', clientUrl: 'https://10.0.0.2:2379', peerUrl: 'https://10.0.0.2:2380' },
  { name: 'etcd-3', node: 'node-3', clientUrl: 'https://10.0.0.3:2379', peerUrl: 'https://10.0.0.3:2380' },
];
export const NODES = MEMBERS.map((m) => m.node);
export const AGENT_NODES = ['node-1', 'node-2'];
/** The member `findEtcdLeader` names: stopped after the others. */
export const LEADER = 'etcd-2';
export const SNAPSHOT_REVISION = 161;
export const REVISION_BUMP = 1_000_000_000;

export function etcdRestorePlan(overrides: Partial<EtcdRestorePlan> = {}): EtcdRestorePlan {
  return {
    cluster: CLUSTER,
    setId: SET_ID,
    setCreatedAt: '2026-12-04T06:00:00.000Z',
    setStatus: 'complete',
    // Passed through to the node steps only: the workflow reads nothing of it.
    artefact: { key: `${SET_ID}/etcd-snapshot-20261204-060000.db.gz` } as unknown as ArtefactRecord,
    snapshot: {
      member: 'etcd-1',
      memberId: '1',
      clusterId: 'c1',
      etcdVersion: '3.5.16',
      revision: SNAPSHOT_REVISION,
      keyRevision: SNAPSHOT_REVISION,
      hash: 1,
      totalKey: 13,
      totalSize: 20480,
      trailerVerified: true,
      liveKeys: 13,
      keyspaceDigest: { keys: 13, sha256: 'd1' },
    } as unknown as EtcdSnapshotFacts,
    members: MEMBERS,
    initialCluster: MEMBERS.map((m) => `${m.name}=${m.peerUrl}`).join(','),
    initialClusterToken: 'nnoe-test-restore-token',
    criticalKeys: [{ key: '/nnoe/dns/zones/example.com' }],
    agentNodes: AGENT_NODES,
    ...overrides,
  };
}

export const oldDataDir = (member: string) => `/var/lib/etcd/${member}`;
export const restoredDataDir = (member: string) => `/var/lib/etcd/restored-${member}`;

export function memberChange(member: string): MemberConfigChange {
  return {
    driver: 'supervisor',
    member,
    file: `/etc/supervisor/conf.d/${member}.conf`,
    backupFile: `/etc/supervisor/conf.d/${member}.conf.pre-restore`,
    before: 'b',
    after: 'a',
    running: false,
  };
}

export function servingAgent(node: string): AgentCheck {
  return {
    node,
    serving: true,
    running: true,
    pid: 42,
    etcdConnection: '10.0.0.1:2379',
    differences: [],
    zones: 2,
    scopes: 1,
    reason: null,
  };
}

export function deafAgent(node: string): AgentCheck {
  return { ...servingAgent(node), serving: false, etcdConnection: null, reason: 'deaf: pid 42 runs but holds no connection to etcd' };
}

/** A failure as an activity raises it; non-retryable so the test does not wait for retries. */
export function fails(message: string, type = 'TestFault'): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

/** Every step of an etcd restore (and the agent recovery after it) succeeding. */
export function healthyEtcdStubs(): Stubs {
  return {
    planEtcdRestore: () => etcdRestorePlan(),
    stageEtcdSnapshot: (i) => ({
      member: i.member,
      path: `/work/${i.setId}/${i.member}/snapshot.db`,
      bytes: 20480,
      revision: i.revision,
      dataDir: oldDataDir(i.member),
      restoredDataDir: restoredDataDir(i.member),
      freeBytes: 1e9,
      tool: 'etcdutl 3.5.16',
    }),
    discardStagedSnapshot: () => undefined,
    restoreEtcdMemberData: (i) => ({
      member: i.member,
      dataDir: i.restoredDataDir,
      tool: 'etcdutl 3.5.16',
      revisionBump: { used: true, by: REVISION_BUMP, detail: `+${REVISION_BUMP} and compacted` },
    }),
    discardRestoredData: (i) => ({ member: i.member, removed: i.restoredDataDir }),
    stopChangeCapture: () => ({ workflowId: `change-capture-${CLUSTER}`, wasRunning: false }),
    findEtcdLeader: () => ({ leader: LEADER }),
    stopEtcdMember: (i) => ({ member: i.member, wasRunning: true }),
    repointEtcdMemberConfig: (i) => memberChange(i.member),
    startEtcdMember: (i) => ({ member: i.member }),
    revertEtcdMemberConfig: (i) => ({ member: i.member }),
    checkEtcdCluster: (i) => ({
      healthy: true,
      members: (i.members ?? MEMBERS.map((m) => m.name)).map((name) => ({ name, revision: SNAPSHOT_REVISION })),
      memberList: MEMBERS.map((m) => m.name),
      revision: SNAPSHOT_REVISION,
      clusterId: 'c2',
      hashRevision: SNAPSHOT_REVISION,
      problems: [],
    }),
    verifyRestoredContent: (i) => ({ member: 'etcd-1', revision: i.revision, keys: 13, sha256: 'd1' }),
    addEtcdMember: (i) => ({ id: `id-${i.member}`, alreadyMember: false, isLearner: i.asLearner === true }),
    promoteEtcdLearner: () => ({ promoted: true }),
    restoreCriticalKeys: () => [{ key: '/nnoe/dns/zones/example.com' }],
    describeBackupPlan: () => ({ agentNodes: AGENT_NODES, phpipam: true }),
    ...healthyAgentStubs(),
  };
}

/** Agents that restart, listen, take the republish and serve. */
export function healthyAgentStubs(): Stubs {
  return {
    describeAgent: () => ({
      node: 'n',
      agentToml: '/etc/nnoe/agent.toml',
      service: 'nnoe-agent',
      prefix: '/nnoe',
      cachePath: '/var/lib/nnoe/cache',
      dns: null,
      dhcp: null,
    }),
    restartAgent: () => ({ node: 'n', startedAtMs: 0, wasRunning: true }),
    waitAgentListening: () => ({ node: 'n', pid: 42, etcdConnection: '10.0.0.1:2379', readyAfterMs: 10 }),
    etcdRevisionNow: () => SNAPSHOT_REVISION + 5,
    republishAgentKeys: (i) => ({
      dryRun: i.dryRun === true,
      notAfterRevision: i.notAfterRevision,
      revision: i.notAfterRevision + 1,
      prefixes: [{ prefix: `${i.prefix}/dns/zones`, keys: 2, put: 2, skippedNewer: 0, skippedChanged: 0 }],
    }),
    checkAgent: () => servingAgent('n'),
    restartAgentAndWait: () => ({ node: 'n', healthy: true, readyAfterMs: 10 }),
  };
}
