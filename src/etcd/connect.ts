/**
 * Connections to single etcd members over (m)TLS, plus workarounds for two defects of etcd3 1.1.2.
 */
import { readFile } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { Etcd3, EtcdAuthenticationFailedError, type IOptions } from 'etcd3';
import { noop } from 'cockatiel';
import type { ClusterConfig, EtcdMemberConfig } from '../config/schema';
import { describeSecretRef, readSecret } from '../config/secrets';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/** TLS material named in the config that is not on this worker: retrying cannot help. */
export class EtcdTlsMaterialError extends DomainError {
  override readonly name = 'EtcdTlsMaterialError';
  constructor(message: string) {
    super(message, FailureType.EtcdTlsMaterialMissing, true);
  }
}

async function readTlsFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new EtcdTlsMaterialError(
      `etcd ${what} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); expected a PEM file on this worker`,
    );
  }
}

/** etcd refused the configured user's password (or knows no such user): retrying cannot help. */
export class EtcdAuthenticationError extends DomainError {
  override readonly name = 'EtcdAuthenticationError';
  constructor(message: string) {
    super(message, FailureType.EtcdAuthenticationFailed, true);
  }
}

/**
 * etcd3 authenticates lazily, on a client's first call, and its error names neither the user nor
 * the cluster: this one names both and where the password comes from (never the password).
 */
function nameUserOnAuthFailure(client: Etcd3, cluster: ClusterConfig): Etcd3 {
  const auth = cluster.etcd.auth;
  if (!auth) return client;
  const authenticator = (client as unknown as { pool: { authenticator: { getMetadata(): Promise<unknown> } } }).pool.authenticator;
  const getMetadata = authenticator.getMetadata.bind(authenticator);
  authenticator.getMetadata = () =>
    getMetadata().catch((err: unknown) => {
      if (!(err instanceof EtcdAuthenticationFailedError)) throw err;
      throw new EtcdAuthenticationError(
        `etcd cluster ${cluster.name} refused user "${auth.username}": ${err.message} ` +
          `(expected the password of that etcd user in ${describeSecretRef(auth.password)})`,
      );
    });
  return client;
}

async function credentialsFor(cluster: ClusterConfig, member: EtcdMemberConfig): Promise<Pick<IOptions, 'credentials' | 'auth'>> {
  const options: Pick<IOptions, 'credentials' | 'auth'> = {};
  const tls = cluster.etcd.tls;
  if (tls) {
    options.credentials = {
      rootCertificate: await readTlsFile(tls.caFile, 'CA certificate'),
      certChain: await readTlsFile(tls.certFile, 'client certificate'),
      privateKey: Buffer.from(await readSecret(tls.keyFile)),
    };
  } else if (member.clientUrl.startsWith('https:')) {
    throw new EtcdTlsMaterialError(`cluster ${cluster.name}: member ${member.name} uses https but etcd.tls is not configured`);
  }
  if (cluster.etcd.auth) {
    options.auth = { username: cluster.etcd.auth.username, password: await readSecret(cluster.etcd.auth.password) };
  }
  return options;
}

/** A load-balanced client over every member, with etcd3's default retries: for long-lived readers (agents). */
export async function connectCluster(cluster: ClusterConfig): Promise<Etcd3> {
  return nameUserOnAuthFailure(
    new Etcd3({
      hosts: cluster.etcd.members.map((m) => m.clientUrl),
      ...(await credentialsFor(cluster, cluster.etcd.members[0]!)),
    }),
    cluster,
  );
}

/**
 * A client bound to exactly one member (no load balancing, no client-side retries): callers choose
 * the member and Temporal's retry policies decide what happens on failure.
 */
export async function connectMember(cluster: ClusterConfig, member: EtcdMemberConfig, callTimeoutMs = 5000): Promise<Etcd3> {
  const options: IOptions = {
    hosts: [member.clientUrl],
    // grpc-js keeps a 64 KiB HTTP/2 receive window by default; with it, streaming a snapshot costs
    // etcd about twice the CPU it spends on etcdctl (bench/etcd-backup/README.md).
    grpcOptions: { 'grpc-node.flow_control_window': 4 * 1024 * 1024 },
    dialTimeout: callTimeoutMs,
    faultHandling: { host: () => noop, global: noop },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  };
  return nameUserOnAuthFailure(new Etcd3({ ...options, ...(await credentialsFor(cluster, member)) }), cluster);
}

/** The parts of etcd3's private connection pool the workarounds below need. */
interface PoolInternals {
  withConnection<T>(service: string, fn: (conn: { client: Record<string, Function>; metadata: unknown }) => T | Promise<T>): Promise<T>;
  exec<T>(service: string, method: string, payload: unknown): Promise<T>;
}

function pool(client: Etcd3): PoolInternals {
  return (client as unknown as { pool: PoolInternals }).pool;
}

/**
 * The member's snapshot as a byte stream.
 * etcd3 1.1.2's `maintenance.snapshot()` passes the auth metadata where gRPC expects the request,
 * so no token is sent and the call fails when etcd auth is on: we call the RPC ourselves.
 */
export async function openSnapshotStream(client: Etcd3): Promise<Readable> {
  const messages = await pool(client).withConnection('Maintenance', ({ client: grpc, metadata }) =>
    (grpc.snapshot as (req: object, meta: unknown, opts: object) => Readable)({}, metadata, {}),
  );
  // etcd sends 32 KiB messages; regrouping them into ~1 MiB chunks saves most of the per-chunk
  // cost of every stage downstream (hashing, fan-out, gzip, writers).
  const CHUNK = 1024 * 1024;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const toBytes = new Transform({
    readableObjectMode: false,
    writableObjectMode: true,
    transform(message: { blob: Buffer }, _enc, done) {
      pending.push(message.blob);
      pendingBytes += message.blob.length;
      if (pendingBytes < CHUNK) return done();
      const chunk = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      done(null, chunk);
    },
    flush(done) {
      done(null, pendingBytes > 0 ? Buffer.concat(pending, pendingBytes) : undefined);
    },
  });
  messages.on('error', (err) => toBytes.destroy(err));
  // Cancel the call, not only the stream: closing the client leaves a running call alive, and etcd
  // then holds the snapshot's read transaction (a defragment waits on it) until the process exits.
  toBytes.on('close', () => {
    (messages as Readable & { cancel?: () => void }).cancel?.();
    messages.destroy();
  });
  return messages.pipe(toBytes);
}

export interface HashKVResult {
  hash: number;
  compactRevision: string;
  revision: string;
}

/**
 * HashKV at a revision. etcd3 1.1.2 calls a method named `hashKV` that its gRPC client does not
 * have (proto-loader names it `hashKv`), so we call it through the pool.
 */
export async function hashKV(client: Etcd3, revision: string | number): Promise<HashKVResult> {
  const res = await pool(client).exec<{ hash: number; compact_revision: string; header: { revision: string } }>('Maintenance', 'hashKv', {
    revision: String(revision),
  });
  return { hash: res.hash, compactRevision: String(res.compact_revision), revision: String(res.header.revision) };
}

/**
 * HashKV of the keyspace at `revision`, also when that revision is the compaction point itself
 * (etcd refuses hashKV at or below it, e.g. right after a compaction at the head or on a cluster
 * restored from a snapshot taken then): the member's current revision is hashed instead when it is
 * that revision. Nothing has to be written for the answer to exist.
 */
export async function hashKVAt(client: Etcd3, revision: number): Promise<HashKVResult> {
  try {
    return await hashKV(client, revision);
  } catch (err) {
    if (!/compacted/i.test((err as Error).message ?? '')) throw err;
    const current = await hashKV(client, 0);
    if (Number(current.revision) !== revision) throw err;
    return current;
  }
}
