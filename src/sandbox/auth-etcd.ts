/**
 * An etcd cluster with auth on, beside the world's main cluster and under the same supervisord:
 * one member with the world's mTLS (client-cert TLS kept), a `root` user, and nnoe-dr's own user
 * holding the `root` role (etcd lets only root-role users call Snapshot, HashKV and the member
 * APIs: README "etcd permissions"), plus a read-only user for negative tests. Passwords are
 * random, in files under <world>/secrets: the config refers to them, they never reach a command
 * line. No user is named like the client certificate's CN (nnoe-dr): etcd would take that CN as
 * the user of any call that carries no token, and hide a call that forgot to send one.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Range } from 'etcd3';
import type { ClusterConfig } from '../config/schema';
import { connectMember } from '../etcd/connect';
import { freePorts, LOOPBACK, waitUntil } from './ports';
import { etcdProgram, type EtcdMemberInfo, type World } from './world';
import { programConfPath, supervisorctl, supervisorLayout, writeProgramConfig } from './supervisor';

export interface AuthEtcdUser {
  username: string;
  passwordFile: string;
}

export interface AuthEtcd {
  /** The cluster entry for nnoe-dr's config, with `etcd.auth` naming nnoe-dr's user. */
  cluster: ClusterConfig & Record<string, unknown>;
  member: EtcdMemberInfo;
  users: { root: AuthEtcdUser; nnoeDr: AuthEtcdUser; readOnly: AuthEtcdUser };
}

const QUOTA_BACKEND_BYTES = 1024 ** 3;

function writePassword(world: World, file: string): AuthEtcdUser['passwordFile'] {
  const passwordFile = path.join(world.dir, 'secrets', file);
  fs.mkdirSync(path.dirname(passwordFile), { recursive: true, mode: 0o700 });
  fs.writeFileSync(passwordFile, crypto.randomBytes(18).toString('base64url'), { mode: 0o600 });
  return passwordFile;
}

/** Starts the member (name `<name>-1` on `node`), waits until it answers, creates the users and enables auth. */
export async function startAuthEtcd(world: World, options: { name: string; node: string; username: string }): Promise<AuthEtcd> {
  const [clientPort, peerPort] = await freePorts(2);
  const program = `${options.name}-1`;
  const layout = supervisorLayout(world.dir);
  const member: EtcdMemberInfo = {
    name: program,
    node: options.node,
    program,
    programConf: programConfPath(layout, program),
    clientUrl: `https://${LOOPBACK}:${clientPort}`,
    peerUrl: `https://${LOOPBACK}:${peerPort}`,
    dataDir: path.join(world.dir, 'etcd', program, 'data'),
  };
  fs.mkdirSync(path.dirname(member.dataDir), { recursive: true });
  const ownCluster: World = {
    ...world,
    etcd: {
      ...world.etcd,
      members: [member],
      initialCluster: `${program}=${member.peerUrl}`,
      initialClusterToken: `${options.name}-${crypto.randomBytes(6).toString('hex')}`,
    },
  };
  writeProgramConfig(layout, etcdProgram(ownCluster, member, QUOTA_BACKEND_BYTES));
  await supervisorctl(world.supervisorConf, 'reread');
  await supervisorctl(world.supervisorConf, 'update', program);

  const users = {
    root: { username: 'root', passwordFile: writePassword(world, `${options.name}-root-password`) },
    nnoeDr: { username: options.username, passwordFile: writePassword(world, `${options.name}-${options.username}-password`) },
    readOnly: { username: `${options.username}-read-only`, passwordFile: writePassword(world, `${options.name}-read-only-password`) },
  };
  const cluster = {
    name: options.name,
    etcd: {
      members: [{ name: member.name, node: member.node, clientUrl: member.clientUrl, peerUrl: member.peerUrl }],
      tls: { caFile: world.certs.ca, certFile: world.certs.clientCert, keyFile: { file: world.certs.clientKey } },
      auth: { username: users.nnoeDr.username, password: { file: users.nnoeDr.passwordFile } },
    },
    service: { driver: 'supervisor' as const, supervisorConf: world.supervisorConf },
    agents: [],
    nebula: [],
    restore: { criticalKeys: [], revisionBump: 1_000_000_000 },
    checks: { dns: [], dhcp: [], metrics: [] },
  } as unknown as AuthEtcd['cluster'];
  await enableAuth(cluster, users);
  return { cluster, member, users };
}

async function enableAuth(cluster: ClusterConfig, users: AuthEtcd['users']): Promise<void> {
  const { auth: _withoutAuth, ...etcd } = cluster.etcd; // auth is still off: the client cert alone is enough
  const password = (user: AuthEtcdUser) => fs.readFileSync(user.passwordFile, 'utf8');
  let client = await connectMember({ ...cluster, etcd }, cluster.etcd.members[0]!);
  try {
    await waitUntil(
      async () => {
        try {
          await client.maintenance.status();
          return true;
        } catch {
          client.close();
          client = await connectMember({ ...cluster, etcd }, cluster.etcd.members[0]!);
          return false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 300, describeFailure: () => `auth-enabled etcd ${cluster.name} did not answer within 60 s` },
    );
    await client.role('root').create();
    await client.user(users.root.username).create(password(users.root));
    await client.user(users.root.username).addRole('root');
    await client.user(users.nnoeDr.username).create(password(users.nnoeDr));
    await client.user(users.nnoeDr.username).addRole('root');
    const reader = `${users.readOnly.username}-role`;
    await client.role(reader).create();
    await client.role(reader).grant({ permission: 'Read', range: Range.prefix('') });
    await client.user(users.readOnly.username).create(password(users.readOnly));
    await client.user(users.readOnly.username).addRole(reader);
    await client.auth.authEnable();
  } finally {
    client.close();
  }
}
