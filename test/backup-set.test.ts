/**
 * Backup sets and their schedules on the real Temporal server: a set run through its child
 * workflows, a schedule applied from a profile, seen by the `temporal` CLI, triggered, paused and
 * deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { startBackupSet, startDrill, startEtcdBackup, startRekey } from '../src/client/temporal';
import type { DrillReport } from '../src/workflows/drill';
import { backupScheduleId, drillScheduleId } from '../src/client/schedules';
import { temporalBinary } from '../src/sandbox/world';
import type { BackupSetResult } from '../src/workflows/backup-set';
import type { EtcdBackupResult } from '../src/workflows/etcd-backup';
import { readManifest, verifyBackupSet } from '../src/catalog/catalog';
import { openStore, s3ClientFor } from '../src/storage';
import {
  agentCacheDir,
  CLUSTER,
  memberClient,
  openHarness,
  pollUntil,
  recordHistory,
  runCli,
  tempDir,
  type Harness,
} from './support/harness';
import { keyInventory, type KeyInventory } from '../src/catalog/keys';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createManagementActivities } from '../src/activities';
import type { RekeyResult } from '../src/workflows/rekey';
import { deleteBackupSet } from '../src/retention';
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Config, S3TargetConfig } from '../src/config/schema';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser } from 'tar';
import { findCluster } from '../src/config/load';
import { supervisorctl } from '../src/sandbox/supervisor';
import { createDecryptStream, generateIdentity, readDecryptionIdentity } from '../src/crypto';
import type { ArtefactRecord, NebulaComponentRecord } from '../src/common/manifest';
import { VARIANTS } from './support/shared';
import { inject } from 'vitest';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

const temporalCli = async (...args: string[]) =>
  (await promisify(execFile)(temporalBinary(), [...args, '--address', inject('world').temporalAddress])).stdout;

/** Entries (path, mode) of a stored (encrypted, gzipped) tar artefact, read back from the local target. */
async function archiveEntries(artefact: ArtefactRecord): Promise<Array<{ path: string; mode: number }>> {
  const store = await openStore(h.config.storage.find((t) => t.name === 'local')!);
  const entries: Array<{ path: string; mode: number }> = [];
  const parser = new Parser({
    onReadEntry: (entry) => {
      entries.push({ path: entry.path, mode: (entry.mode ?? 0) & 0o7777 });
      entry.resume();
    },
  });
  await pipeline([
    await store.read(artefact.key),
    createDecryptStream(await readDecryptionIdentity(h.config.encryption!.identity!)),
    createGunzip(),
    parser as unknown as NodeJS.WritableStream,
  ]);
  return entries;
}
const listArchive = async (artefact: ArtefactRecord) => (await archiveEntries(artefact)).map((e) => e.path);

describe('backup set', () => {
  it('runs each component as a child and writes one manifest for the set', async () => {
    const handle = await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] });
    const result = (await handle.result()) as BackupSetResult;
    expect(result.manifest.status).toBe('complete');
    expect(result.manifest.components.map((c) => ('node' in c ? `${c.component} ${c.node}` : c.component))).toEqual([
      'etcd',
      'phpipam',
      'agent-cache node-1',
      'agent-cache node-2',
      'nebula node-1',
      'nebula node-2',
      'agent-config node-1',
      'agent-config node-2',
    ]);
    const phpipam = result.manifest.components.find((c) => c.component === 'phpipam');
    expect(phpipam?.component === 'phpipam' && phpipam.facts.tables.find((t) => t.name === 'ipaddresses')?.rows).toBe(2000);
    expect(phpipam?.component === 'phpipam' && phpipam.facts.binlog?.file).toMatch(/\S+/);
    expect(result.manifest.workflow.workflowId).toBe(handle.workflowId);
    for (const target of ['local', 's3']) {
      const stored = await readManifest(await openStore(h.config.storage.find((t) => t.name === target)!), result.setId);
      expect(stored).toEqual(result.manifest);
    }
    const children = await h.client.workflow.list({ query: `NnoeBackupSet = '${result.setId}' AND NnoeRunbook = 'etcd-backup'` });
    const ids: string[] = [];
    for await (const w of children) ids.push(w.workflowId);
    expect(ids).toEqual([`${result.setId}/etcd`]);
    await recordHistory(handle, 'backup-set-full');
    // Every artefact is age-encrypted; the S3 copies also carry server-side encryption.
    const s3 = await s3ClientFor(h.config.storage.find((t) => t.name === 's3' && t.type === 's3') as S3TargetConfig);
    for (const artefact of result.manifest.components.flatMap((c) => c.artefacts)) {
      expect(artefact.encryption?.format).toBe('age');
      const copy = artefact.copies.find((c) => c.target === 's3')!;
      const [, bucket, ...key] = copy.location.replace('s3://', '/').split('/');
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key.join('/') }))).ServerSideEncryption).toBe('AES256');
    }

    // Each agent was stopped for its copy and runs again; its archive holds its cache entries.
    for (const node of ['node-1', 'node-2']) {
      const record = result.manifest.components.find((c) => c.component === 'agent-cache' && c.node === node);
      expect(record?.component === 'agent-cache' && record.facts.agentRestarted).toBe(true);
      const cacheDir = await agentCacheDir(h.config, node);
      expect(record?.component === 'agent-cache' && record.facts.cacheDir).toBe(cacheDir); // [cache].path of agent.toml
      expect(await supervisorctl(h.world.supervisorConf, 'status', `nnoe-agent-${node}`)).toMatch(/RUNNING/);
      const entries = await listArchive(record!.artefacts[0]!);
      // The sled database's own files, under the cache path relative to /, like the runbook's tar.
      const inCache = entries
        .filter((e) => !e.endsWith('/'))
        .map((e) => `/${e}`)
        .filter((e) => e.startsWith(`${cacheDir}/`))
        .map((e) => e.slice(cacheDir.length + 1));
      expect(inCache).toEqual(expect.arrayContaining(['conf', 'db']));
      expect(inCache.every((f) => existsSync(join(cacheDir, f)) || f.startsWith('snap.'))).toBe(true);
      expect(entries.every((e) => !e.startsWith('/'))).toBe(true);
    }
  });

  it("archives each node's Nebula files and the agent config dir with their modes", async () => {
    const handle = await startBackupSet(h.client, h.config, {
      cluster: CLUSTER,
      components: ['nebula', 'agent-config'],
      targets: ['local'],
    });
    const result = (await handle.result()) as BackupSetResult;
    expect(result.manifest.status).toBe('complete');
    const cluster = findCluster(h.config, CLUSTER);
    for (const { node, dir } of cluster.nebula) {
      const record = result.manifest.components.find((c): c is NebulaComponentRecord => c.component === 'nebula' && c.node === node)!;
      expect(record.artefacts[0]!.file).toMatch(new RegExp(`^nebula-${node}-\\d{8}-\\d{6}\\.tar\\.gz\\.age$`));
      const entries = await archiveEntries(record.artefacts[0]!);
      const byName = Object.fromEntries(entries.map((e) => [e.path.split('/').pop(), e.mode]));
      expect(Object.keys(byName).sort()).toEqual(['ca.crt', 'config.yml', 'host.crt', 'host.key']);
      for (const [file, mode] of Object.entries(byName)) expect(mode).toBe(statSync(join(dir, file!)).mode & 0o7777);
      expect(byName['host.key']).toBe(0o600);
      expect(record.facts.files.find((f) => f.path === join(dir, 'host.key'))?.mode).toBe(0o600);
    }
    // Each agent node's host state; node-2's agent has no agent.d dir: left out, not a failure.
    const configs = result.manifest.components.filter((c) => c.component === 'agent-config');
    expect(configs.map((c) => c.component === 'agent-config' && c.node)).toEqual(['node-1', 'node-2']);
    const configEntries = await archiveEntries(configs[0]!.artefacts[0]!);
    expect(configEntries.find((e) => e.path.endsWith('agent.d/10-zones.yaml'))?.mode).toBe(0o640);
    expect(configEntries.find((e) => e.path.endsWith('etc/nnoe/certs/client.key'))?.mode).toBe(0o600);
    const node2 = cluster.agents.find((a) => a.node === 'node-2')!;
    expect(configs[1]!.facts.roots).toEqual([node2.agentToml, node2.tlsDir, node2.dnssecKeyDir, node2.keaLeaseFile]);
  });

  it('starts the agent again after a cache backup that fails mid-way', async () => {
    const handle = await startBackupSet(h.client, h.config, {
      cluster: CLUSTER,
      components: ['agent-cache'],
      targets: ['local', VARIANTS.deadS3Target],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toMatch(/has no component: agent-cache node-1: .+; agent-cache node-2: .+/);
    for (const node of ['node-1', 'node-2']) {
      expect(await supervisorctl(h.world.supervisorConf, 'status', `nnoe-agent-${node}`)).toMatch(/RUNNING/);
    }
    // The agent really went down and came back: supervisord logged a stop and a start of it.
    const log = readFileSync(join(h.world.dir, 'supervisor', 'supervisord.log'), 'utf8');
    expect(log).toMatch(/stopped: nnoe-agent-node-1/);
  });

  it('refuses an unknown component without running anything', async () => {
    const handle = await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['etcd', 'floppy'] });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toBe(
      'unknown backup component(s) floppy; available: etcd, phpipam, agent-cache, nebula, agent-config',
    );
  });

  it('backups keys: a set opens with the configured keys; a retired recipient or a lost identity is warned about, exit 1', async () => {
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local'], components: ['etcd'] })
    ).result()) as BackupSetResult;
    const keysOf = async (configPath: string) => {
      const { code, out } = await runCli(configPath, 'backups', 'keys', '--cluster', CLUSTER, '--target', 'local', '--json');
      const inventory = JSON.parse(out) as KeyInventory;
      expect(code).toBe(inventory.ok ? 0 : 1);
      return { code, ours: inventory.sets.find((s) => s.setId === set.setId)! };
    };
    const [recipient] = h.config.encryption!.recipients;
    expect((await keysOf(h.configPath)).ours).toMatchObject({
      encrypted: 1,
      recipients: [recipient],
      retiredRecipients: [],
      openable: true,
      problems: [],
    });

    // The recipient rotated in the config (the old identity still held): the set needs a rekey.
    const scratch = await tempDir('keys');
    try {
      const other = await generateIdentity();
      const variant = async (name: string, encryption: object) => {
        const path = join(scratch.path, `${name}.yaml`);
        await writeFile(path, stringify({ ...parse(await readFile(h.configPath, 'utf8')), encryption }));
        return path;
      };
      const rotated = await keysOf(await variant('rotated', { recipients: [other.recipient], identity: h.config.encryption!.identity }));
      expect(rotated.code).toBe(1);
      expect(rotated.ours).toMatchObject({ retiredRecipients: [recipient], openable: true });
      expect(rotated.ours.problems).toEqual([
        expect.stringMatching(/^\S+\.age is encrypted only to recipients no longer configured \(age1.*\): rekey it/),
      ]);
      // The identity replaced by one that is not the set's: nobody here can open it.
      const identityFile = join(scratch.path, 'other-identity.txt');
      await writeFile(identityFile, other.identity, { mode: 0o600 });
      const lost = await keysOf(await variant('lost', { recipients: [recipient], identity: { file: identityFile } }));
      expect(lost.code).toBe(1);
      expect(lost.ours.openable).toBe(false);
      expect(lost.ours.problems).toEqual([expect.stringMatching(/^no identity held here opens \S+\.age \(encrypted to age1/)]);
    } finally {
      await scratch.remove();
    }
  });
});

describe('set ids', () => {
  it('a backup whose set id another backup already wrote (two in one second) takes the next free one, leaving that set as it was', async () => {
    const targets = ['local', 's3'];
    await new Promise((r) => setTimeout(r, 1100)); // set ids are stamped to the second (the test before made one too)
    const first = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets, components: ['etcd'] })
    ).result()) as BackupSetResult;
    // The same second's id, as a second backup started in that second would compute it.
    const second = (await (
      await startEtcdBackup(h.client, h.config, { cluster: CLUSTER, targets, setId: first.setId })
    ).result()) as EtcdBackupResult;
    expect(second.setId).toBe(`${first.setId}-2`);
    expect(second.manifest.setId).toBe(`${first.setId}-2`);
    expect(await readManifest(await openStore(h.config.storage[0]!), first.setId)).toEqual(first.manifest);
    for (const id of [first.setId, second.setId]) expect((await verifyBackupSet(h.config, id, { targets })).ok, id).toBe(true);
  });
});

describe('backups rekey', () => {
  it('re-encrypts a 3-set catalog in local + S3 to a new recipient, through crashes: every set readable throughout, verifies and restores with the new identity alone', async () => {
    const targets = ['local', 's3'];
    // NNOE's zone, the key the drill below checks for (any real set holds it).
    const etcd = await memberClient(h.config, 'etcd-1');
    try {
      await etcd.put('/nnoe/dns/zones/example.com').value(JSON.stringify({ domain: 'example.com', tag: 'rekey' }));
    } finally {
      etcd.close();
    }
    const sets: BackupSetResult[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1100)); // set ids are stamped to the second (the test before made one too)
      sets.push(
        (await (await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets, components: ['etcd'] })).result()) as BackupSetResult,
      );
    }
    expect(new Set(sets.map((s) => s.setId)).size).toBe(3);
    const oldRecipient = h.config.encryption!.recipients[0]!;
    const oldIdentity = await readDecryptionIdentity(h.config.encryption!.identity!);
    const next = await generateIdentity();
    const scratch = await tempDir('rekey');
    // A worker of its own, on the rotated config: the new recipient only, the old and the new identity held.
    const taskQueue = 'rekey-test';
    const bothFile = join(scratch.path, 'both-identities.txt');
    const newFile = join(scratch.path, 'new-identity.txt');
    await writeFile(bothFile, `${oldIdentity.trim()}\n${next.identity}\n`, { mode: 0o600 });
    await writeFile(newFile, `${next.identity}\n`, { mode: 0o600 });
    const rotated = structuredClone(h.config) as Config;
    rotated.temporal.taskQueue = taskQueue;
    rotated.encryption = { recipients: [next.recipient], identity: { file: bothFile } };
    const connection = await NativeConnection.connect({ address: inject('world').temporalAddress });
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: { codePath: inject('world').workflowBundlePath },
      activities: createManagementActivities({ config: rotated }),
    });
    const running = worker.run();
    try {
      const dry = (await (await startRekey(h.client, rotated, { setId: sets[0]!.setId, targets, dryRun: true })).result()) as RekeyResult;
      expect(dry.rekeyed).toEqual([
        expect.objectContaining({ setId: sets[0]!.setId, artefacts: [sets[0]!.manifest.components[0]!.artefacts[0]!.file] }),
      ]);
      expect(
        (await readManifest(await openStore(h.config.storage[0]!), sets[0]!.setId)).components[0]!.artefacts[0]!.encryption?.recipients,
      ).toEqual([oldRecipient]);

      // Crashes (failpoints in this worker): before the manifests are rewritten (set 2), and after,
      // before the old objects go (set 3). Each leaves its set readable; running again finishes it.
      const failpoints = join(scratch.path, 'failpoints.json');
      process.env.NNOE_DR_FAILPOINTS = failpoints;
      const crashes = [`rekey-before-manifests:${sets[1]!.setId}`, `rekey-before-removal:${sets[2]!.setId}`];
      for (const [index, point] of crashes.entries()) {
        const set = sets[index + 1]!;
        await writeFile(failpoints, JSON.stringify({ [point]: 'error' }));
        const crashed = await (await startRekey(h.client, rotated, { setId: set.setId, targets })).result().catch((e: unknown) => e);
        expect((crashed as WorkflowFailedError).cause?.message).toContain(`injected fault at failpoint ${point}`);
        const readable = await verifyBackupSet(rotated, set.setId, { targets });
        expect(
          readable.checks.map((c) => `${c.target} ${c.ok ? 'ok' : c.problems.join('; ')}`),
          `${set.setId} after a crash at ${point}`,
        ).toEqual(['local ok', 's3 ok']);
      }
      await writeFile(failpoints, '{}');
      for (const set of sets) {
        const result = (await (await startRekey(h.client, rotated, { setId: set.setId, targets })).result()) as RekeyResult;
        expect(result.refused, set.setId).toEqual([]);
        // Set 1 in one go; sets 2 and 3 finish what their crashed runs began (the listing below shows the old objects gone).
        if (set === sets[0])
          expect(result.rekeyed).toEqual([{ setId: set.setId, rekeyed: [set.manifest.components[0]!.artefacts[0]!.file], removed: 2 }]);
      }
      // The old identity gone: every set verifies (hashes, snapshot trailer) with the new one alone, in both targets.
      const newOnly = { ...rotated, encryption: { recipients: [next.recipient], identity: { file: newFile } } } as Config;
      for (const set of sets) {
        const report = await verifyBackupSet(newOnly, set.setId, { targets });
        expect(report.checks.map((c) => `${c.target} ${c.ok ? 'ok' : c.problems.join('; ')}`)).toEqual(['local ok', 's3 ok']);
        for (const target of h.config.storage.filter((t) => targets.includes(t.name))) {
          const keys = (await (await openStore(target)).list(`${set.setId}/`)).sort();
          expect(keys).toEqual(
            [
              expect.stringMatching(new RegExp(`^${set.setId}/manifest\\.json$`)),
              expect.stringMatching(new RegExp(`^${set.setId}/rekey-[0-9a-f]{12}/`)),
            ].sort(),
          );
        }
      }
      const inventory = await keyInventory(newOnly, { cluster: CLUSTER, targets });
      expect(inventory.sets.filter((s) => sets.some((x) => x.setId === s.setId)).map((s) => [s.openable, s.problems])).toEqual([
        [true, []],
        [true, []],
        [true, []],
      ]);

      // And every set restores: a drill (scratch etcd from the snapshot, compared with the manifest) on a worker holding the new identity alone.
      const drillQueue = 'rekey-test-new-identity';
      const drillWorker = await Worker.create({
        connection,
        taskQueue: drillQueue,
        workflowBundle: { codePath: inject('world').workflowBundlePath },
        activities: createManagementActivities({ config: newOnly }),
      });
      const drillRunning = drillWorker.run();
      try {
        for (const set of sets) {
          const drill = (await (
            await startDrill(
              h.client,
              { ...newOnly, temporal: { ...newOnly.temporal, taskQueue: drillQueue } },
              { cluster: CLUSTER, setId: set.setId },
            )
          ).result()) as DrillReport;
          expect(drill.ok, set.setId).toBe(true);
        }
      } finally {
        drillWorker.shutdown();
        await drillRunning;
      }
      // Run again: nothing left to do.
      const again = (await (await startRekey(h.client, rotated, { setId: sets[1]!.setId, targets })).result()) as RekeyResult;
      expect(again).toMatchObject({ rekeyed: [], current: [sets[1]!.setId] });

      // A set under an Object Lock it may not lift is refused, named, and left as it was (a synthetic
      // cluster's set in the locked bucket: no later test picks it).
      const locked = await openStore(h.config.storage.find((t) => t.name === VARIANTS.lockedS3Target)!);
      const lockedId = `${VARIANTS.syntheticCluster}-rekey-${Date.now()}`;
      const artefact = { ...sets[0]!.manifest.components[0]!.artefacts[0]!, key: `${lockedId}/etcd-snapshot.db.gz.age`, copies: [] };
      const lockedManifest = {
        ...sets[0]!.manifest,
        setId: lockedId,
        cluster: VARIANTS.syntheticCluster,
        components: [{ ...sets[0]!.manifest.components[0]!, artefacts: [artefact] }],
      };
      for (const [key, body] of [
        [artefact.key, 'ciphertext'],
        [`${lockedId}/manifest.json`, JSON.stringify(lockedManifest)],
      ]) {
        const writer = await locked.createWriter(key!);
        writer.stream.end(body);
        await writer.commit();
      }
      const refused = await (
        await startRekey(h.client, rotated, { setId: lockedId, targets: [VARIANTS.lockedS3Target] })
      )
        .result()
        .catch((e: unknown) => e);
      expect((refused as WorkflowFailedError).cause?.message).toMatch(
        new RegExp(
          `^rekey left 1 sets as they were: ${lockedId}: s3://\\S+/${lockedId}/etcd-snapshot\\.db\\.gz\\.age is under Object Lock \\(GOVERNANCE\\) until \\S+: its old objects cannot be replaced before then`,
        ),
      );
      expect((await readManifest(locked, lockedId)).components[0]!.artefacts[0]!.encryption?.recipients).toEqual([oldRecipient]);
    } finally {
      delete process.env.NNOE_DR_FAILPOINTS;
      worker.shutdown();
      await running;
      await connection.close();
      await scratch.remove();
      // The world's worker holds only the old identity: these sets must not be chosen by later tests.
      for (const target of h.config.storage.filter((t) => targets.includes(t.name))) {
        for (const set of sets) await deleteBackupSet(await openStore(target), set.setId);
      }
    }
  });
});

describe('backup schedules', () => {
  const scheduleId = backupScheduleId(CLUSTER);

  it('applies a profile, is visible to the temporal CLI, triggers a set, pauses and deletes', async () => {
    const created = await runCli(h.configPath, '--json', 'schedules', 'apply', '--profile', 'production', '--target', 'local', 's3');
    expect(created.err).toBe('');
    expect(JSON.parse(created.out)).toEqual({
      scheduleId,
      outcome: 'created',
      profile: 'production',
      cron: '0 */6 * * *',
      prune: { scheduleId: 'nnoe-dr-prune', outcome: 'created' },
      drill: { scheduleId: drillScheduleId(CLUSTER), outcome: 'created' },
      retention: { keepDays: 7 }, // the config's retention in force (one source), shown by apply and prune alike
    });
    // Applying again converges instead of failing.
    const updated = await runCli(h.configPath, '--json', 'schedules', 'apply', '--profile', 'development', '--target', 'local', 's3');
    expect(JSON.parse(updated.out).outcome).toBe('updated');

    const listed = JSON.parse((await runCli(h.configPath, '--json', 'schedules', 'list')).out);
    expect(listed).toHaveLength(3);
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          scheduleId,
          profile: 'development',
          cron: '0 3 * * *',
          paused: false,
          workflowType: 'backupSetWorkflow',
        }),
        expect.objectContaining({
          scheduleId: 'nnoe-dr-prune',
          cron: '30 4 * * *',
          paused: false,
          workflowType: 'pruneBackupSetsWorkflow',
        }),
        expect.objectContaining({ scheduleId: drillScheduleId(CLUSTER), paused: false, workflowType: 'restoreDrillWorkflow' }),
      ]),
    );
    expect(await temporalCli('schedule', 'list')).toContain(scheduleId);
    const described = JSON.parse(await temporalCli('schedule', 'describe', '--schedule-id', scheduleId, '--output', 'json'));
    expect(JSON.stringify(described)).toContain('SCHEDULE_OVERLAP_POLICY_SKIP');

    expect((await runCli(h.configPath, 'schedules', 'trigger', CLUSTER)).out).toBe(`triggered ${scheduleId}`);
    const run = await pollUntil(
      async () => {
        for await (const w of h.client.workflow.list({
          query: `WorkflowType = 'backupSetWorkflow' AND TemporalScheduledById = '${scheduleId}'`,
        }))
          return w;
        return undefined;
      },
      60_000,
      'the scheduled backup set to start',
    );
    const result = (await h.client.workflow.getHandle(run.workflowId).result()) as BackupSetResult;
    expect(result.manifest.status).toBe('complete');

    expect((await runCli(h.configPath, 'schedules', 'pause', CLUSTER, '--note', 'maintenance')).code).toBe(0);
    const afterPause = JSON.parse((await runCli(h.configPath, '--json', 'schedules', 'list')).out) as Array<{
      scheduleId: string;
      paused: boolean;
    }>;
    expect(afterPause.find((s) => s.scheduleId === scheduleId)?.paused).toBe(true);
    expect((await runCli(h.configPath, 'schedules', 'unpause', CLUSTER)).code).toBe(0);
    // Deleting a cluster's schedules takes its drill too, and the shared prune once no cluster has a backup schedule left.
    expect((await runCli(h.configPath, 'schedules', 'delete', CLUSTER)).out).toBe(
      `deleted ${scheduleId}\ndeleted ${drillScheduleId(CLUSTER)}\ndeleted nnoe-dr-prune`,
    );
    expect((await runCli(h.configPath, 'schedules', 'list')).out).toBe('no schedules');
    const missing = await runCli(h.configPath, 'schedules', 'trigger', CLUSTER);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(`no schedule ${scheduleId}`);
  });

  it('rejects an unknown profile naming the choices', async () => {
    const bad = await runCli(h.configPath, 'schedules', 'apply', '--profile', 'hourly');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('unknown profile "hourly"; expected one of production, development');
  });
});
