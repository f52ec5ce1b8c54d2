/**
 * The world's etcd cluster: its members (ports, data dirs, program names), each member's supervisor
 * program (mTLS everywhere), and `etcdctl` against it.
 */
import { execFile } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as path from 'node:path';

import { initialClusterOf } from '../common/etcd-topology';
import { etcdPrograms, type EtcdPrograms } from '../etcd/programs';
import type { InstalledEtcd } from './etcd-version';
import { LOOPBACK } from './ports';
import { programConfPath, type ProgramSpec, supervisorLayout } from './supervisor';
import { CLUSTER_NAME, type EtcdMemberInfo, type World } from './world-types';

/** etcd, etcdctl and (3.5+) etcdutl of the version the world runs. */
export function worldEtcdPrograms(world: World): EtcdPrograms {
  return etcdPrograms(world.etcd.binDir);
}

export function describeEtcdCluster(dir: string, ports: number[], installed: InstalledEtcd): World['etcd'] {
  const layout = supervisorLayout(dir);
  const members: EtcdMemberInfo[] = [];
  for (let i = 0; i < ports.length / 2; i++) {
    const name = `etcd-${i + 1}`;
    members.push({
      name,
      node: `node-${i + 1}`,
      clientUrl: `https://${LOOPBACK}:${ports[2 * i]}`,
      peerUrl: `https://${LOOPBACK}:${ports[2 * i + 1]}`,
      dataDir: path.join(dir, 'etcd', name, 'data'),
      program: name,
      programConf: programConfPath(layout, name),
    });
  }
  return {
    clusterName: CLUSTER_NAME,
    members,
    initialCluster: initialClusterOf(members),
    // Unique per world so members of two worlds can never form one cluster.
    initialClusterToken: `${CLUSTER_NAME}-${crypto.randomBytes(6).toString('hex')}`,
    version: installed.version,
    release: installed.release,
    binDir: installed.binDir,
  };
}

export function etcdProgram(world: World, member: EtcdMemberInfo, quotaBackendBytes: number): ProgramSpec {
  const { certs, etcd } = world;
  return {
    name: member.program,
    directory: path.dirname(member.dataDir),
    command: [
      worldEtcdPrograms(world).etcd,
      `--name=${member.name}`,
      `--data-dir=${member.dataDir}`,
      `--listen-client-urls=${member.clientUrl}`,
      `--advertise-client-urls=${member.clientUrl}`,
      `--listen-peer-urls=${member.peerUrl}`,
      `--initial-advertise-peer-urls=${member.peerUrl}`,
      `--initial-cluster=${etcd.initialCluster}`,
      `--initial-cluster-token=${etcd.initialClusterToken}`,
      '--initial-cluster-state=new',
      '--client-cert-auth',
      `--trusted-ca-file=${certs.ca}`,
      `--cert-file=${certs.serverCert}`,
      `--key-file=${certs.serverKey}`,
      '--peer-client-cert-auth',
      `--peer-trusted-ca-file=${certs.ca}`,
      `--peer-cert-file=${certs.serverCert}`,
      `--peer-key-file=${certs.serverKey}`,
      `--quota-backend-bytes=${quotaBackendBytes}`,
      '--snapshot-count=10000',
      '--heartbeat-interval=100',
      '--election-timeout=1000',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
  };
}

export interface EtcdctlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `etcdctl` (API v3) against the world with mTLS. `identity: 'rogue'`
 * presents the client cert of the untrusted CA (for negative tests).
 */
export function etcdctl(
  world: World,
  args: string[],
  options: { endpoints?: string[]; identity?: 'client' | 'rogue'; timeoutMs?: number } = {},
): Promise<EtcdctlResult> {
  const rogue = options.identity === 'rogue';
  const endpoints = options.endpoints ?? world.etcd.members.map((member) => member.clientUrl);
  const tlsArgs = [
    `--cacert=${world.certs.ca}`,
    `--cert=${rogue ? world.certs.rogueClientCert : world.certs.clientCert}`,
    `--key=${rogue ? world.certs.rogueClientKey : world.certs.clientKey}`,
  ];
  const env = { ...process.env, ETCDCTL_API: '3' };
  const binary = worldEtcdPrograms(world).etcdctl;
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      [`--endpoints=${endpoints.join(',')}`, ...tlsArgs, '--dial-timeout=2s', '--command-timeout=5s', ...args],
      { env, timeout: options.timeoutMs ?? 30_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`could not run ${binary} ${args.join(' ')}: ${error.message}`));
          return;
        }
        resolve({ exitCode: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** Why the member is not healthy, or undefined if `etcdctl endpoint health` says it is. */
export async function etcdMemberProblem(world: World, member: EtcdMemberInfo): Promise<string | undefined> {
  const result = await etcdctl(world, ['endpoint', 'health'], { endpoints: [member.clientUrl] });
  if (result.exitCode === 0) return undefined;
  return `etcdctl endpoint health: ${(result.stdout + result.stderr).trim().split('\n').slice(-1)[0] ?? ''}`;
}
