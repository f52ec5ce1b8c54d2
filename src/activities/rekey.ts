/**
 * Key rotation (`backups rekey`): each retained artefact not encrypted to exactly the configured
 * recipients is streamed from a store, decrypted with the held identities and encrypted to the
 * configured recipients (never plaintext on disk), written under a new key to every target that
 * holds the set, read back and checked against the manifest's hashes; only then is each target's
 * manifest rewritten to point at the new objects, and only after that are the old objects deleted.
 * A crash anywhere leaves the manifest pointing at objects that exist: the set stays readable, and
 * running again finishes (artefacts already current are skipped, leftovers removed).
 */
import { createHash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Context } from '@temporalio/activity';
import type { Config } from '../config/schema';
import { findTargets } from '../config/load';
import { checkArtefact, listBackupSets, readManifest } from '../catalog/catalog';
import { createDecryptStream, createEncryptStream, readDecryptionIdentity } from '../crypto';
import { artefactKey, MANIFEST_FILE, openStore, publishToStores, type BackupStore } from '../storage';
import { HashingStream } from '../storage/hashing';
import { createDecompressStream } from '../compression';
import type { ArtefactRecord, BackupManifest } from '../common/manifest';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';
import { failpoint } from '../common/failpoints';

export interface RekeyPlanSet {
  setId: string;
  cluster: string;
  targets: string[];
  /** Artefacts not encrypted to exactly the configured recipients. */
  artefacts: string[];
  /** Old objects an interrupted rekey left after the manifest moved on (removed by running the set again). */
  leftovers: number;
  /** Why this set is left as it is (an Object Lock this tool may not lift); absent: it can be rekeyed. */
  refused?: string;
}

export interface RekeyPlan {
  recipients: string[];
  sets: RekeyPlanSet[];
}

export interface RekeyedSet {
  setId: string;
  rekeyed: string[];
  /** Old objects removed after the manifests pointed at the new ones. */
  removed: number;
}

const sameRecipients = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((r, i) => r === [...b].sort()[i]);

/** The key of an artefact re-encrypted to `recipients`: beside the set's files, named by the recipients so a retry writes the same key. */
export function rekeyedKey(setId: string, file: string, recipients: string[]): string {
  const tag = createHash('sha256')
    .update([...recipients].sort().join('\n'))
    .digest('hex')
    .slice(0, 12);
  return `${setId}/rekey-${tag}/${file}`;
}

export function createRekeyActivities(deps: { config: Config }) {
  const { config } = deps;

  function recipientsOrRefuse(): string[] {
    if (!config.encryption)
      throw DomainError.nonRetryable(
        'rekey needs encryption.recipients in the config: there is nothing to encrypt to',
        FailureType.ConfigError,
      );
    return config.encryption.recipients;
  }

  /** Why a set cannot be rekeyed in these stores: an object under a lock this tool may not lift (null: none). */
  async function lockProblem(stores: BackupStore[], setId: string, keys: string[]): Promise<string | null> {
    for (const store of stores) {
      if (!store.retention) continue;
      for (const key of keys) {
        const retention = await store.retention(key).catch(() => null);
        if (retention && !retention.bypassable && Date.parse(retention.until) > Date.now()) {
          return `${store.location(key)} is under Object Lock (${retention.mode}) until ${retention.until}: its old objects cannot be replaced before then, so set ${setId} keeps its recipients`;
        }
      }
    }
    return null;
  }

  async function planRekey(input: { cluster?: string; setId?: string; targets?: string[] }): Promise<RekeyPlan> {
    const recipients = recipientsOrRefuse();
    const sets = (await listBackupSets(config, { cluster: input.cluster, targets: input.targets })).filter(
      (s) => input.setId === undefined || s.setId === input.setId,
    );
    if (input.setId !== undefined && sets.length === 0) {
      throw DomainError.nonRetryable(
        `backup set ${input.setId} has no manifest in ${findTargets(config, input.targets)
          .map((t) => t.name)
          .join(', ')}`,
        FailureType.BackupSetNotFound,
      );
    }
    const planned: RekeyPlanSet[] = [];
    for (const set of sets) {
      const stale = set.manifest.components
        .flatMap((c) => c.artefacts)
        .filter((a) => a.encryption && !sameRecipients(a.encryption.recipients, recipients));
      const stores = await Promise.all(findTargets(config, set.targets).map(openStore));
      const refused =
        stale.length > 0
          ? await lockProblem(
              stores,
              set.setId,
              stale.map((a) => a.key),
            )
          : null;
      // A rekey that crashed after the manifests and before the removal left the old objects: the set is current but not done.
      const leftovers =
        stale.length > 0
          ? 0
          : (
              await Promise.all(
                stores.map(async (store) => (await unreferencedObjects(store, set.setId, await readManifest(store, set.setId))).length),
              )
            ).reduce((sum, n) => sum + n, 0);
      planned.push({
        setId: set.setId,
        cluster: set.cluster,
        targets: set.targets,
        artefacts: stale.map((a) => a.file),
        leftovers,
        ...(refused ? { refused } : {}),
      });
    }
    return { recipients, sets: planned };
  }

  async function rekeySet(input: { setId: string; targets: string[] }): Promise<RekeyedSet> {
    const recipients = recipientsOrRefuse();
    if (!config.encryption?.identity)
      throw DomainError.nonRetryable('rekey needs encryption.identity: the old artefacts must be decrypted', FailureType.ConfigError);
    const identity = await readDecryptionIdentity(config.encryption.identity);
    const ctx = Context.current();
    const stores = await Promise.all(findTargets(config, input.targets).map(openStore));
    const manifests = await Promise.all(stores.map((store) => readManifest(store, input.setId)));
    const reference = manifests[0]!;
    const stale = reference.components
      .flatMap((c) => c.artefacts.map((a) => ({ artefact: a, kind: c.component })))
      .filter(({ artefact }) => artefact.encryption && !sameRecipients(artefact.encryption.recipients, recipients));
    const refused = await lockProblem(
      stores,
      input.setId,
      stale.map((s) => s.artefact.key),
    );
    if (refused) throw DomainError.nonRetryable(refused, FailureType.RestoreRefused);

    // 1. New copies under new keys, in every store, each read back and checked against the manifest.
    const replaced = new Map<string, ArtefactRecord>();
    for (const { artefact, kind } of stale) {
      const key = rekeyedKey(input.setId, artefact.file, recipients);
      const { result: raw, copies } = await publishToStores(stores, key, (sink) => reencrypt(stores, artefact, identity, recipients, sink));
      if (raw.bytes !== artefact.raw.bytes || raw.sha256 !== artefact.raw.sha256) {
        throw DomainError.nonRetryable(
          `${artefact.file} of ${input.setId} decrypted to ${raw.bytes} bytes with sha256 ${raw.sha256}, the manifest says ${artefact.raw.bytes} and ${artefact.raw.sha256}: not rekeyed`,
          FailureType.ChecksumMismatch,
        );
      }
      const record: ArtefactRecord = {
        ...artefact,
        key,
        encryption: { format: 'age', recipients },
        bytes: copies[0]!.bytes,
        sha256: copies[0]!.sha256,
        copies,
      };
      for (const store of stores) {
        const check = await checkArtefact(store, record, kind, async () => identity);
        if (!check.ok) {
          throw DomainError.nonRetryable(
            `the rekeyed copy of ${artefact.file} in ${store.name} does not check (the identities held may not include the new recipients'): ${check.problems.join('; ')}; the old objects are untouched`,
            FailureType.ChecksumMismatch,
          );
        }
      }
      replaced.set(artefact.key, record);
      ctx.heartbeat({ rekeyed: replaced.size });
    }

    // 2. The manifests last: until here every manifest points at the old, untouched objects.
    await failpoint(`rekey-before-manifests:${input.setId}`);
    for (const [index, store] of stores.entries()) {
      if (replaced.size > 0) await writeManifest(store, withArtefacts(manifests[index]!, replaced));
    }

    // 3. Old objects (and leftovers of an earlier, interrupted rekey) no manifest points at any more.
    await failpoint(`rekey-before-removal:${input.setId}`);
    let removed = 0;
    for (const [index, store] of stores.entries()) {
      const current = replaced.size > 0 ? withArtefacts(manifests[index]!, replaced) : manifests[index]!;
      for (const key of await unreferencedObjects(store, input.setId, current)) {
        await store.delete(key);
        removed += 1;
      }
    }
    return { setId: input.setId, rekeyed: [...replaced.values()].map((a) => a.file), removed };
  }

  /** Artefact objects of the set (an old copy, a rekey-* copy) that its manifest no longer points at. */
  async function unreferencedObjects(store: BackupStore, setId: string, manifest: BackupManifest): Promise<string[]> {
    const referenced = new Set(manifest.components.flatMap((c) => c.artefacts.map((a) => a.key)));
    const files = new Set(manifest.components.flatMap((c) => c.artefacts.map((a) => a.file)));
    return (await store.list(`${setId}/`)).filter((key) => {
      const ours = files.has(key.slice(setId.length + 1)) || /^[^/]+\/rekey-[0-9a-f]{12}\//.test(key);
      return key !== artefactKey(setId, MANIFEST_FILE) && !referenced.has(key) && ours;
    });
  }

  return { planRekey: planRekey, rekeySet: rekeySet };
}

/** Old ciphertext -> age -d -> age -r (new recipients) -> sink; the gzip bytes in between are also unpacked and hashed, in memory, to check against the manifest's raw sha256. */
async function reencrypt(
  stores: BackupStore[],
  artefact: ArtefactRecord,
  identity: string,
  recipients: string[],
  sink: Writable,
): Promise<{ bytes: number; sha256: string }> {
  const source = await readFromAny(stores, artefact.key);
  const raw = new HashingStream();
  const unpacked = createDecompressStream(artefact.compression);
  const rawDone = pipeline(unpacked, raw, new Writable({ write: (_c, _e, done) => done() }));
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (unpacked.write(chunk)) done(null, chunk);
      else unpacked.once('drain', () => done(null, chunk));
    },
    flush(done) {
      unpacked.end();
      done();
    },
  });
  await Promise.all([pipeline(source, createDecryptStream(identity), tee, createEncryptStream(recipients), sink), rawDone]);
  return { bytes: raw.bytes, sha256: raw.digestHex() };
}

async function readFromAny(stores: BackupStore[], key: string) {
  let lastError: unknown;
  for (const store of stores) {
    try {
      return await store.read(key);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

function withArtefacts(manifest: BackupManifest, replaced: Map<string, ArtefactRecord>): BackupManifest {
  return {
    ...manifest,
    components: manifest.components.map((c) => ({ ...c, artefacts: c.artefacts.map((a) => replaced.get(a.key) ?? a) })),
  } as BackupManifest;
}

async function writeManifest(store: BackupStore, manifest: BackupManifest): Promise<void> {
  const writer = await store.createWriter(artefactKey(manifest.setId, MANIFEST_FILE));
  writer.stream.end(Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  await writer.commit();
}
