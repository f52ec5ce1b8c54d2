/**
 * (Over 500 lines: one factory whose activities share the drill's scratch etcd and schema; its pure parts are in src/drill/.)
 * Activities of the restore drill (management worker): the newest complete set restored where it
 * cannot hurt, compared with what its manifest recorded, timed, and marked verified when it passed.
 *
 *   plan       the set (newest complete one of the cluster, or the one asked for), its manifest read
 *              from every target holding it (they must agree), a scratch schema name;
 *   etcd       snapshot fetched (sha256s, age, gunzip), `snapshot status` of it against the facts,
 *              restored into a one-member etcd on loopback (src/etcd/scratch.ts), then hashKV at the
 *              snapshot revision, the revision, the live key count and the critical keys;
 *   phpipam    dump fetched, loaded into `<db>_drill_<stamp>`, row counts and CHECKSUM TABLE against
 *              the facts, the schema dropped whatever happened;
 *   artefacts  every other artefact (agent caches, Nebula, agent configs) fetched and checked;
 *   mark       manifest.json rewritten with `verification` in every target holding the set;
 *   metrics    a Prometheus textfile replaced atomically; alert: a JSON POST to a webhook.
 * The restores return their comparisons as checks (a mismatch is a finding, not an error); they
 * throw only when they could not compare at all. What the restore measured is the RTO: from the
 * first byte fetched to a ready scratch etcd / a loaded schema.
 *
 * The comparisons are src/drill/checks.ts, the metrics and the alert src/drill/metrics.ts.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Context } from '@temporalio/activity';
import type { Etcd3 } from 'etcd3';
import type { Config, PhpipamConfig } from '../config/schema';
import { findCluster, findTargets } from '../config/load';
import { readSecret } from '../config/secrets';
import { FailureType } from '../common/failures';
import {
  isBackupManifest,
  type ArtefactRecord,
  type BackupManifest,
  type DrillCheck,
  type EtcdComponentRecord,
  type EtcdSnapshotFacts,
  type PhpipamComponentRecord,
  type SetVerification,
} from '../common/manifest';
import { readManifest } from '../catalog/catalog';
import { chooseRestoreSet } from '../catalog/choose-set';
import { artefactKey, MANIFEST_FILE, openStore } from '../storage';
import { fetchArtefact } from '../restore/fetch';
import { readSnapshotStatus } from '../etcd/snapshot-file';
import { startScratchEtcd, type ScratchEtcd } from '../etcd/scratch';
import { keyspaceDigest } from '../etcd/keyspace-digest';
import { hashKVAt } from '../etcd/connect';
import { readSnapshotRevisions } from '../etcd/snapshot-revisions';
import {
  connectPhpipam,
  databaseFailure,
  describeDatabase,
  dropStagingSchema,
  hasDumpTrailer,
  loadDumpIntoSchema,
  requireCreateSchema,
  restoreConnectionOf,
  verifySchemaAgainstFacts,
  type DatabaseFlavour,
  type TableFact,
} from '../phpipam';
import { withHeartbeat } from './heartbeat';
import { DomainError, errorMessage } from '../common/domain-errors';
import { drillSchemaName, etcdChecks, manifestFingerprint, phpipamChecks, type EtcdObservation } from '../drill/checks';
import { renderDrillMetrics, type DrillAlert, type DrillMetrics, type DrillMetricsSample } from '../drill/metrics';

export interface DrillPlan {
  cluster: string;
  setId: string;
  setCreatedAt: string;
  /** Targets holding the set's manifest (the ones marked when the drill passes). */
  targets: string[];
  /** manifestFingerprint of the manifest the drill compares against (equal in every target, else a failed check). */
  fingerprint: string;
  etcd: { artefact: ArtefactRecord; facts: EtcdSnapshotFacts } | null;
  phpipam: {
    artefact: ArtefactRecord;
    facts: { flavour: DatabaseFlavour; version: string; tables: TableFact[] };
    schema: string;
    database: string;
  } | null;
  /** Every other artefact of the set: fetched and checked, not restored. */
  otherArtefacts: ArtefactRecord[];
  checks: DrillCheck[];
  unreachableTargets: string[];
  /** The set was verified by an earlier drill. */
  previouslyVerifiedAt: string | null;
}

export interface EtcdDrillResult {
  /** Fetch + snapshot restore + scratch member ready, in ms: the measured RTO. */
  rtoMs: number;
  fetchMs: number;
  restoreMs: number;
  verifyMs: number;
  /** The copy used. */
  target: string;
  revision: number;
  liveKeys: number;
  checks: DrillCheck[];
}

export interface PhpipamDrillResult {
  /** Fetch + load into the scratch schema, in ms: the measured RTO. */
  rtoMs: number;
  fetchMs: number;
  loadMs: number;
  verifyMs: number;
  target: string;
  schema: string;
  tables: number;
  schemaDropped: boolean;
  checks: DrillCheck[];
}

/** Serialises metrics writes of this worker: two clusters' drills finishing together must not lose each other's series. */
let metricsWrite: Promise<unknown> = Promise.resolve();

export function createDrillActivities(deps: { config: Config }) {
  const { config } = deps;

  /** A drill's own scratch dir, from the run id of the calling workflow (never from a payload). */
  const runDir = () => {
    const runId = Context.current().info.workflowExecution?.runId;
    if (!runId) throw DomainError.nonRetryable('drill activities run inside a drill workflow only', FailureType.InvalidInput);
    return join(config.workDir, 'drill', runId);
  };

  function phpipamOf(clusterName: string): PhpipamConfig {
    const cluster = findCluster(config, clusterName);
    if (!cluster.phpipam) {
      throw DomainError.nonRetryable(
        `cluster ${clusterName} has no phpipam section in the config, so the set's phpIPAM dump cannot be restored`,
        FailureType.ConfigError,
      );
    }
    return restoreConnectionOf(cluster.phpipam);
  }

  /** fetchArtefact heartbeating its progress (ArtefactUnusableError: every copy bad is final, an unreadable store is not). */
  async function fetchChecked(artefact: ArtefactRecord, path: string) {
    const ctx = Context.current();
    return await fetchArtefact(config, artefact, path, {
      onProgress: (bytes) => ctx.heartbeat({ phase: 'fetch', file: artefact.file, bytes, total: artefact.bytes }),
    });
  }

  async function planRestoreDrill(input: { cluster: string; setId?: string; at: string }): Promise<DrillPlan> {
    findCluster(config, input.cluster);
    // A drill restores the set's etcd snapshot and phpIPAM dump: the newest complete set holding either, or the one asked for.
    const { entry, unreachableTargets } = await chooseRestoreSet(config, {
      cluster: input.cluster,
      setId: input.setId,
      what: 'an etcd snapshot or a phpIPAM dump',
      pick: (m) => m.components.find((c) => (c.component === 'etcd' || c.component === 'phpipam') && c.artefacts.length > 0),
    });
    if (entry.status !== 'complete') {
      throw DomainError.nonRetryable(
        `backup set ${entry.setId} is partial (${entry.manifest.failures.map((f) => f.component).join(', ')} failed): a drill verifies complete sets only`,
        FailureType.RestoreRefused,
      );
    }

    // Every copy of the manifest must describe the same set, or "verified" would not say which one.
    const checks: DrillCheck[] = [];
    const fingerprint = manifestFingerprint(entry.manifest);
    const differing: string[] = [];
    for (const target of findTargets(config, entry.targets)) {
      const other = await readManifest(await openStore(target), entry.setId);
      if (manifestFingerprint(other) !== fingerprint) differing.push(target.name);
    }
    checks.push({
      component: 'set',
      name: 'manifest equal in every target',
      ok: differing.length === 0,
      detail:
        differing.length === 0
          ? `${entry.targets.join(', ')}`
          : `the manifest in ${differing.join(', ')} differs from the one in ${entry.targets[0]}`,
    });

    const etcd = entry.manifest.components.find((c): c is EtcdComponentRecord => c.component === 'etcd');
    const phpipam = entry.manifest.components.find((c): c is PhpipamComponentRecord => c.component === 'phpipam');
    if (!etcd)
      checks.push({
        component: 'etcd',
        name: 'etcd snapshot in the set',
        ok: true,
        skipped: true,
        detail: 'the set has no etcd component',
      });
    let phpipamPlan: DrillPlan['phpipam'] = null;
    if (phpipam?.artefacts[0]) {
      const cfg = phpipamOf(input.cluster);
      if (phpipam.facts.tablesMatchDump === false) {
        checks.push({
          component: 'phpipam',
          name: 'table facts taken at the dump',
          ok: false,
          detail: 'the table facts were read at another point than the dump (writes in between): a restore of it cannot be verified',
        });
      }
      const { flavour, version, tables } = phpipam.facts;
      phpipamPlan = {
        artefact: phpipam.artefacts[0],
        facts: { flavour, version, tables },
        schema: drillSchemaName(cfg.database, new Date(input.at)),
        database: describeDatabase(cfg),
      };
    } else {
      checks.push({
        component: 'phpipam',
        name: 'phpIPAM dump in the set',
        ok: true,
        skipped: true,
        detail: 'the set has no phpipam component',
      });
    }
    const restored = new Set([etcd?.artefacts[0], phpipam?.artefacts[0]]);
    return {
      cluster: input.cluster,
      setId: entry.setId,
      setCreatedAt: entry.createdAt,
      targets: entry.targets,
      fingerprint,
      etcd: etcd?.artefacts[0] ? { artefact: etcd.artefacts[0], facts: etcd.facts } : null,
      phpipam: phpipamPlan,
      otherArtefacts: entry.manifest.components.flatMap((c) => c.artefacts).filter((a) => !restored.has(a)),
      checks,
      unreachableTargets,
      previouslyVerifiedAt: entry.manifest.verification?.verifiedAt ?? null,
    };
  }

  /** The snapshot into a scratch etcd on loopback, timed, and compared with the facts; the scratch member and its dir always go. */
  async function drillEtcdRestore(input: {
    cluster: string;
    setId: string;
    artefact: ArtefactRecord;
    facts: EtcdSnapshotFacts;
  }): Promise<EtcdDrillResult> {
    const cluster = findCluster(config, input.cluster);
    const ctx = Context.current();
    const dir = join(runDir(), `etcd-attempt-${ctx.info.attempt}`);
    await rm(dir, { recursive: true, force: true });
    let scratch: ScratchEtcd | undefined;
    try {
      const t0 = performance.now();
      const fetched = await fetchChecked(input.artefact, join(dir, 'snapshot.db'));
      const t1 = performance.now();
      // The snapshot keeps the cluster's users: the configured one reads the scratch member.
      const auth = cluster.etcd.auth
        ? { username: cluster.etcd.auth.username, password: await readSecret(cluster.etcd.auth.password) }
        : undefined;
      scratch = await withHeartbeat({ phase: 'restore' }, () =>
        startScratchEtcd(fetched.path, join(dir, 'scratch'), { binDir: config.etcdBinDir, ...(auth ? { auth } : {}) }),
      );
      const t2 = performance.now();
      const client = scratch.client();
      // Reads at the revision the restored member reports: after a compaction at the head the newest key's is no longer readable.
      const revisions = await readSnapshotRevisions(fetched.path);
      const at = revisions.revision;
      const seen = await withHeartbeat({ phase: 'verify' }, async (): Promise<EtcdObservation> => ({
        status: await readSnapshotStatus(fetched.path, config.etcdBinDir),
        revisions,
        scratchRevision: Number((await client.maintenance.status()).header.revision),
        hashKV: await hashKVAt(client, at),
        keys: await countKeys(client, at),
        ...(input.facts.keyspaceDigest ? { digest: await keyspaceDigest(client, at) } : {}),
        criticalKeys: await Promise.all(
          cluster.restore.criticalKeys.map(async ({ key, value }) => {
            const res = await client.kv.range({ key: Buffer.from(key), revision: String(at) });
            const kv = res.kvs[0];
            return {
              key,
              expectedValue: value,
              found: kv !== undefined,
              valueMatches: kv !== undefined && (value === undefined || kv.value.toString() === value),
            };
          }),
        ),
      }));
      const t3 = performance.now();
      return {
        rtoMs: Math.round(t2 - t0),
        fetchMs: Math.round(t1 - t0),
        restoreMs: Math.round(t2 - t1),
        verifyMs: Math.round(t3 - t2),
        target: fetched.target,
        revision: seen.scratchRevision,
        liveKeys: seen.keys.scanned,
        checks: etcdChecks(input.facts, seen),
      };
    } finally {
      await scratch?.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** The dump into a new scratch schema, timed, verified, and the schema dropped whatever happened. */
  async function drillPhpipamRestore(input: {
    cluster: string;
    setId: string;
    artefact: ArtefactRecord;
    facts: { flavour: DatabaseFlavour; version: string; tables: TableFact[] };
    schema: string;
  }): Promise<PhpipamDrillResult> {
    const cfg = phpipamOf(input.cluster);
    const ctx = Context.current();
    const dir = join(runDir(), 'phpipam');
    const password = await readSecret(cfg.password);
    const withConnection = async <T>(fn: (conn: Awaited<ReturnType<typeof connectPhpipam>>) => Promise<T>): Promise<T> => {
      const conn = await connectPhpipam(cfg, password);
      try {
        return await fn(conn);
      } catch (err) {
        throw databaseFailure(err, cfg, password);
      } finally {
        await conn.end().catch(() => undefined);
      }
    };
    let schemaDropped = false;
    try {
      // An earlier attempt that died mid-load leaves its schema: this run's own name, so it goes.
      await withConnection(async (conn) => {
        await dropStagingSchema(conn, input.schema, cfg.database);
        await requireCreateSchema(conn, cfg, input.schema, 'a drill');
      });
      const t0 = performance.now();
      const fetched = await fetchChecked(input.artefact, join(dir, 'dump.sql'));
      await requireDumpTrailer(fetched.path, fetched.bytes, input.artefact.file);
      const t1 = performance.now();
      const loaded = await loadDumpIntoSchema(cfg, password, {
        dump: createReadStream(fetched.path),
        schema: input.schema,
        workDir: config.workDir,
        signal: ctx.cancellationSignal,
        onProgress: (bytes) => ctx.heartbeat({ phase: 'load', bytes }),
      });
      const t2 = performance.now();
      const verification = await withHeartbeat({ phase: 'verify' }, () =>
        withConnection((conn) => verifySchemaAgainstFacts(conn, loaded.schema, input.facts)),
      );
      const checks = phpipamChecks(verification.tables, verification.mismatches, input.schema);
      await withConnection((conn) => dropStagingSchema(conn, input.schema, cfg.database));
      schemaDropped = true;
      return {
        rtoMs: Math.round(t2 - t0),
        fetchMs: Math.round(t1 - t0),
        loadMs: Math.round(t2 - t1),
        verifyMs: verification.ms,
        target: fetched.target,
        schema: input.schema,
        tables: verification.tables.length,
        schemaDropped,
        checks,
      };
    } finally {
      if (!schemaDropped) await withConnection((conn) => dropStagingSchema(conn, input.schema, cfg.database)).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Every other artefact read back from a good copy (sha256s, age, gunzip); not restored. */
  async function drillCheckArtefacts(input: { artefacts: ArtefactRecord[] }): Promise<DrillCheck[]> {
    const dir = join(runDir(), 'artefacts');
    const checks: DrillCheck[] = [];
    try {
      for (const artefact of input.artefacts) {
        const path = join(dir, artefact.file);
        try {
          const fetched = await fetchChecked(artefact, path);
          checks.push({
            component: 'artefacts',
            name: artefact.file,
            ok: true,
            detail: `read from ${fetched.target}, sha256 and size as recorded`,
          });
        } catch (err) {
          if (!(err instanceof DomainError && err.type === FailureType.ChecksumMismatch)) throw err;
          checks.push({ component: 'artefacts', name: artefact.file, ok: false, detail: err.message });
        } finally {
          await rm(path, { force: true });
        }
      }
      return checks;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Writes `verification` into manifest.json in every target holding the set (each store's writer
   * replaces it atomically: rename, or one S3 PUT). Every copy is read and checked first: a
   * manifest that no longer is the one the drill compared against refuses the whole marking.
   */
  async function markSetVerified(input: {
    setId: string;
    targets: string[];
    fingerprint: string;
    verification: SetVerification;
  }): Promise<Array<{ target: string; location: string }>> {
    const key = artefactKey(input.setId, MANIFEST_FILE);
    const stores = await Promise.all(findTargets(config, input.targets).map((target) => openStore(target)));
    const manifests = await Promise.all(
      stores.map(async (store) => {
        const manifest = await readManifest(store, input.setId);
        if (manifestFingerprint(manifest) !== input.fingerprint) {
          throw DomainError.nonRetryable(
            `${store.location(key)} changed since the drill read it: not marking set ${input.setId} verified`,
            FailureType.DrillFailed,
          );
        }
        return manifest;
      }),
    );
    const marked: Array<{ target: string; location: string }> = [];
    for (const [index, store] of stores.entries()) {
      const manifest: BackupManifest = { ...manifests[index]!, verification: input.verification };
      if (!isBackupManifest(manifest)) throw new Error(`refusing to write an invalid manifest for ${input.setId}`);
      const writer = await store.createWriter(key);
      writer.stream.end(Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
      const copy = await writer.commit();
      marked.push({ target: copy.target, location: copy.location });
    }
    return marked;
  }

  /** Idempotent clean-up after a drill, even one whose activities died: the scratch schema and the run's dir. */
  async function cleanUpDrill(input: { cluster: string; schema: string | null }): Promise<{ schemaDropped: string | null }> {
    await rm(runDir(), { recursive: true, force: true });
    if (!input.schema) return { schemaDropped: null };
    const cfg = phpipamOf(input.cluster);
    if (!input.schema.startsWith(`${cfg.database}_drill_`)) {
      throw DomainError.nonRetryable(`${input.schema} is not a drill schema of ${cfg.database}`, FailureType.InvalidInput);
    }
    const password = await readSecret(cfg.password);
    const conn = await connectPhpipam(cfg, password).catch((err: unknown) => {
      throw databaseFailure(err, cfg, password);
    });
    try {
      await dropStagingSchema(conn, input.schema, cfg.database);
    } finally {
      await conn.end().catch(() => undefined);
    }
    return { schemaDropped: input.schema };
  }

  /** Replaces the textfile (temp file, fsync, rename) when `drills.metricsFile` is set; returns the figures either way. */
  async function recordDrillMetrics(input: DrillMetricsSample): Promise<{ file: string | null; metrics: DrillMetrics }> {
    const file = config.drills?.metricsFile ?? null;
    const run = async () => {
      const existing = file
        ? await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return null;
            throw err;
          })
        : null;
      const { text, metrics } = renderDrillMetrics(existing, input);
      if (file) await replaceFile(file, text);
      return { file, metrics };
    };
    const result = metricsWrite.then(run, run);
    metricsWrite = result.catch(() => undefined);
    return result;
  }

  /** POSTs the alert as JSON; no webhook configured: not sent. A non-2xx answer fails (retryably). */
  async function sendDrillAlert(input: { alert: DrillAlert }): Promise<{ sent: boolean; status: number | null; webhook: string | null }> {
    const ref = config.drills?.alertWebhook;
    if (!ref) return { sent: false, status: null, webhook: null };
    const url = typeof ref === 'string' ? ref : await readSecret(ref);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw DomainError.nonRetryable('drills.alertWebhook does not hold a URL', FailureType.ConfigError);
    }
    // Only scheme, host and port in messages and results: the path and query may carry a token.
    const where = `${parsed.protocol}//${parsed.host}`;
    let response: Response;
    try {
      response = await fetch(parsed, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'nnoe-dr' },
        body: JSON.stringify(input.alert),
        signal: AbortSignal.timeout((config.drills?.alertTimeoutSeconds ?? 10) * 1000),
        redirect: 'error',
      });
    } catch (err) {
      const cause =
        (err as Error).name === 'TimeoutError'
          ? `no answer within ${config.drills?.alertTimeoutSeconds ?? 10} s`
          : errorMessage((err as { cause?: unknown }).cause ?? err);
      throw DomainError.retryable(`drill alert to ${where} failed: ${cause}`, FailureType.DrillAlertFailed);
    }
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw DomainError.retryable(`drill alert to ${where} answered HTTP ${response.status}`, FailureType.DrillAlertFailed);
    return { sent: true, status: response.status, webhook: where };
  }

  return {
    planRestoreDrill: planRestoreDrill,
    drillEtcdRestore: drillEtcdRestore,
    drillPhpipamRestore: drillPhpipamRestore,
    drillCheckArtefacts: drillCheckArtefacts,
    markSetVerified: markSetVerified,
    cleanUpDrill: cleanUpDrill,
    recordDrillMetrics: recordDrillMetrics,
    sendDrillAlert: sendDrillAlert,
  };
}

/** Live keys at a revision: a count-only range, and a keys-only scan page by page (no values held). */
async function countKeys(client: Etcd3, revision: number): Promise<{ counted: number; scanned: number }> {
  const all = { key: Buffer.from([0]), range_end: Buffer.from([0]), revision: String(revision) };
  const counted = Number((await client.kv.range({ ...all, count_only: true })).count);
  let scanned = 0;
  let from = all.key;
  for (;;) {
    const page = await client.kv.range({ ...all, key: from, keys_only: true, limit: '1000' });
    scanned += page.kvs.length;
    if (!page.more || page.kvs.length === 0) return { counted, scanned };
    from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

async function requireDumpTrailer(path: string, bytes: number, file: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    const tail = Buffer.alloc(Math.min(512, bytes));
    await handle.read(tail, 0, tail.length, bytes - tail.length);
    if (!hasDumpTrailer(tail.toString('utf8'))) {
      throw DomainError.nonRetryable(`dump ${file} does not end with "-- Dump completed": it is truncated`, FailureType.ChecksumMismatch);
    }
  } finally {
    await handle.close();
  }
}

/** Temp file beside the target, fsync, rename: a collector never reads half a file. */
async function replaceFile(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { mode: 0o644 });
    const handle = await open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
