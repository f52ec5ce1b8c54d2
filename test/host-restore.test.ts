/**
 * The sled cache and Nebula restore runbooks on the world's nodes (a node worker each), from sets
 * the backup set workflow really made: the archived cache comes back and the agent is healthy; the
 * Nebula files come back with the runbook's modes; a host.crt from another CA is refused before
 * anything is stopped or swapped; an archive entry with `..` is refused in the preflight.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { Header } from 'tar';
import { startAgentCacheRestore, startAgentHostRestore, startBackupSet, startNebulaRestore } from '../src/client/temporal';
import type { AgentHostRestoreResult } from '../src/workflows/agent-host-restore';
import type { AgentConfigComponentRecord } from '../src/common/manifest';
import { findCluster } from '../src/config/load';
import type { AgentCacheComponentRecord, ArtefactRecord, BackupManifest, NebulaComponentRecord } from '../src/common/manifest';
import { MANIFEST_FORMAT_VERSION } from '../src/common/manifest';
import type { BackupSetResult } from '../src/workflows/backup-set';
import type { HostRestoreResult } from '../src/workflows/host-restore';
import { progressQuery, type RunProgress } from '../src/workflows/progress';
import { generateNebulaNode } from '../src/sandbox/nebula';
import { supervisorctl } from '../src/sandbox/supervisor';
import { agentCacheDir, CLUSTER, openHarness, recordHistory, tempDir, type Harness } from './support/harness';

let h: Harness;
beforeAll(async () => {
  h = await openHarness();
});
afterAll(async () => {
  await h.close();
});

const steps = (p: RunProgress) => p.steps.map((s) => `${s.name}:${s.state}`);
const mode = (path: string) => statSync(path).mode & 0o7777;
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const siblings = (dir: string) =>
  readdirSync(dirname(dir))
    .filter((n) => n.startsWith(`${basename(dir)}.`))
    .sort();
const failureOf = async (promise: Promise<unknown>): Promise<ApplicationFailure> => {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
};
const localPath = () => {
  const local = h.config.storage.find((t) => t.name === 'local');
  if (local?.type !== 'local') throw new Error('the world has no local target');
  return local.path;
};

async function backupSet(components: string[]): Promise<BackupSetResult> {
  const result = (await (
    await startBackupSet(h.client, h.config, { cluster: CLUSTER, components, targets: ['local'] })
  ).result()) as BackupSetResult;
  expect(result.manifest.status).toBe('complete');
  return result;
}

/** The files of a node's Nebula dir: content hash and mode. */
function nebulaState(dir: string): Record<string, { sha: string; mode: number }> {
  return Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, { sha: sha(join(dir, f)), mode: mode(join(dir, f)) }]),
  );
}

describe('agent cache restore', () => {
  it('puts the archived cache back beside the old one and starts the agent healthy', async () => {
    const cacheDir = await agentCacheDir(h.config, 'node-1');
    const marker = join(cacheDir, 'restore-marker.txt');
    writeFileSync(marker, 'before the backup\n', { mode: 0o640 });
    chmodSync(marker, 0o640);
    const set = await backupSet(['agent-cache']);
    const record = set.manifest.components.find(
      (c): c is AgentCacheComponentRecord => c.component === 'agent-cache' && c.node === 'node-1',
    )!;
    // After the backup: the marker changes and a file appears; the restore must undo both.
    writeFileSync(marker, 'after the backup\n');
    writeFileSync(join(cacheDir, 'added-after-backup.txt'), 'x');

    const handle = await startAgentCacheRestore(h.client, h.config, { cluster: CLUSTER, node: 'node-1', setId: set.setId });
    const result = (await handle.result()) as HostRestoreResult;
    try {
      expect(result.dir).toBe(cacheDir);
      expect(readFileSync(marker, 'utf8')).toBe('before the backup\n');
      expect(mode(marker)).toBe(0o640);
      expect(existsSync(join(cacheDir, 'added-after-backup.txt'))).toBe(false);
      // The old dir is kept beside, as it was just before the restore.
      expect(result.previousDir).toMatch(new RegExp(`^${cacheDir}\\.pre-restore-\\d{8}T\\d+Z$`));
      expect(readFileSync(join(result.previousDir!, 'restore-marker.txt'), 'utf8')).toBe('after the backup\n');
      expect(existsSync(join(result.previousDir!, 'added-after-backup.txt'))).toBe(true);
      expect(siblings(cacheDir)).toEqual([basename(result.previousDir!)]); // no .restoring-* left
      // Every archived entry is back, and the agent (which never reads its cache back) was started,
      // republished to and found serving etcd's state.
      expect(result.entries).toBe(record.facts.entries);
      expect(await supervisorctl(h.world.supervisorConf, 'status', 'nnoe-agent-node-1')).toMatch(/RUNNING/);
      expect(result.agent?.check).toMatchObject({ node: 'node-1', serving: true, differences: [] });
      const progress = await handle.query(progressQuery);
      expect(steps(progress)).toEqual([
        'preflight:done',
        'prepare cache dir:done',
        'stop agent:done',
        'swap cache dir:done',
        'start agent:done',
      ]);
      expect(progress.steps.find((s) => s.name === 'stop agent')?.detail).toBe('supervisor program nnoe-agent-node-1 stopped');
      // The staged archive is gone from the node's workDir.
      expect(existsSync(join(h.config.workDir, 'restore', set.setId, 'agent-cache-node-1'))).toBe(false);
      await recordHistory(handle, 'agent-cache-restore-real-agent');
    } finally {
      rmSync(marker, { force: true });
      if (result.previousDir) rmSync(result.previousDir, { recursive: true, force: true });
    }
  });
});

describe('agent host state', () => {
  it('backs up agent.toml, the TLS dir, DNSSEC keys and the Kea lease file encrypted to local + S3, and restores them with their modes', async () => {
    const agent = findCluster(h.config, CLUSTER).agents.find((a) => a.node === 'node-1')!;
    const clientKey = join(agent.tlsDir, 'client.key');
    const keyBefore = sha(clientKey);
    const leasesBefore = readFileSync(agent.keaLeaseFile, 'utf8');
    const tomlBefore = sha(agent.agentToml);
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, components: ['agent-config'], targets: ['local', 's3'] })
    ).result()) as BackupSetResult;
    const record = set.manifest.components.find(
      (c): c is AgentConfigComponentRecord => c.component === 'agent-config' && c.node === 'node-1',
    )!;
    expect(record.facts.roots).toEqual([
      agent.agentToml,
      agent.configDir,
      agent.tlsDir,
      agent.dnssecKeyDir,
      agent.keaLeaseFile,
      agent.nebulaCaKey,
    ]);
    expect(record.facts.files.find((f) => f.path === agent.nebulaCaKey)?.mode).toBe(0o600);
    expect(record.facts.skipped).toEqual([]);
    expect(record.artefacts[0]!.encryption?.format).toBe('age'); // it holds the etcd client key and DNSSEC keys
    expect(record.artefacts[0]!.copies.map((c) => c.target).sort()).toEqual(['local', 's3']);
    expect(record.facts.files.find((f) => f.path === clientKey)?.mode).toBe(0o600);

    // A bad day on node-1: the client key overwritten and readable by all, the lease file gone, a stray key file.
    writeFileSync(clientKey, 'garbage');
    chmodSync(clientKey, 0o644);
    rmSync(agent.keaLeaseFile);
    writeFileSync(join(agent.dnssecKeyDir, 'stray.key'), 'x');

    const dry = (await (
      await startAgentHostRestore(h.client, h.config, { cluster: CLUSTER, node: 'node-1', setId: set.setId, dryRun: true })
    ).result()) as AgentHostRestoreResult;
    expect(dry.outcome).toMatchObject({ dryRun: true, restored: [], notInArchive: [] });
    expect(readFileSync(clientKey, 'utf8')).toBe('garbage'); // a dry run changes nothing

    const result = (await (
      await startAgentHostRestore(h.client, h.config, { cluster: CLUSTER, node: 'node-1', setId: set.setId })
    ).result()) as AgentHostRestoreResult;
    expect(result.outcome.restored.map((r) => r.path)).toEqual(record.facts.roots);
    expect(sha(clientKey)).toBe(keyBefore);
    expect(mode(clientKey)).toBe(0o600);
    expect(readFileSync(agent.keaLeaseFile, 'utf8')).toBe(leasesBefore);
    expect(sha(agent.agentToml)).toBe(tomlBefore);
    expect(existsSync(join(agent.dnssecKeyDir, 'stray.key'))).toBe(false);
    const oldKeys = result.outcome.restored.find((r) => r.path === agent.dnssecKeyDir)!.previous!;
    expect(readFileSync(join(oldKeys, 'stray.key'), 'utf8')).toBe('x'); // the old dir is kept beside
    expect(result.agent?.check).toMatchObject({ node: 'node-1', serving: true });
    for (const r of result.outcome.restored) if (r.previous) rmSync(r.previous, { recursive: true, force: true });
  });
});

describe('Nebula restore', () => {
  const cluster = () => findCluster(h.config, CLUSTER);
  const nebulaDir = (node: string) => cluster().nebula.find((n) => n.node === node)!.dir;

  it('puts the archived files back with the runbook modes (key and config 0600, certificates 0644)', async () => {
    const dir = nebulaDir('node-1');
    const original = nebulaState(dir);
    // Wrong modes on disk when the backup is taken: the archive keeps them, the restore must not.
    for (const [file, bad] of Object.entries({ 'host.key': 0o644, 'config.yml': 0o666, 'ca.crt': 0o600, 'host.crt': 0o777 }))
      chmodSync(join(dir, file), bad);
    const set = await backupSet(['nebula']);
    const record = set.manifest.components.find((c): c is NebulaComponentRecord => c.component === 'nebula' && c.node === 'node-1')!;
    expect(record.facts.files.find((f) => f.path === join(dir, 'host.key'))?.mode).toBe(0o644);
    writeFileSync(join(dir, 'config.yml'), `${readFileSync(join(dir, 'config.yml'), 'utf8')}# changed after the backup\n`);

    const handle = await startNebulaRestore(h.client, h.config, { cluster: CLUSTER, node: 'node-1', setId: set.setId });
    const result = (await handle.result()) as HostRestoreResult;
    try {
      const restored = nebulaState(dir);
      expect(Object.keys(restored)).toEqual(['ca.crt', 'config.yml', 'host.crt', 'host.key']);
      for (const file of Object.keys(original)) expect(restored[file]!.sha).toBe(original[file]!.sha); // content as backed up
      expect(Object.fromEntries(Object.entries(restored).map(([f, s]) => [f, s.mode.toString(8)]))).toEqual({
        'ca.crt': '644',
        'config.yml': '600',
        'host.crt': '644',
        'host.key': '600',
      });
      expect(result.modeChanges.map((c) => `${basename(c.file)} ${c.from.toString(8)}->${c.to.toString(8)}`)).toEqual([
        'ca.crt 600->644',
        'config.yml 666->600',
        'host.crt 777->644',
        'host.key 644->600',
      ]);
      expect(result.hostCert?.name).toBe('node-1');
      expect(readFileSync(join(result.previousDir!, 'config.yml'), 'utf8')).toContain('# changed after the backup');
      const progress = await handle.query(progressQuery);
      expect(steps(progress)).toEqual([
        'preflight:done',
        'prepare Nebula dir:done',
        'stop Nebula:done',
        'swap Nebula dir:done',
        'start Nebula:done',
      ]);
      expect(progress.steps.find((s) => s.name === 'stop Nebula')?.detail).toBe('no Nebula service configured: nothing to stop');
      expect(progress.steps.find((s) => s.name === 'prepare Nebula dir')?.detail).toMatch(
        /host\.crt \(node-1\) issued by ca\.crt, valid until .+; config loads/,
      );
      await recordHistory(handle, 'nebula-restore');
    } finally {
      if (result.previousDir) rmSync(result.previousDir, { recursive: true, force: true });
    }
  });

  it('refuses a host.crt issued by another CA before stopping or swapping anything', async () => {
    const dir = nebulaDir('node-2');
    const rogue = await tempDir('rogue-nebula');
    const saved = await tempDir('saved-nebula');
    try {
      // The same node signed by another CA, put in place only while the backup is taken.
      const other = await generateNebulaNode(join(rogue.path, 'node-2'), {
        name: 'node-2',
        ip: '192.168.100.2/24',
        caDir: join(rogue.path, 'ca'),
      });
      for (const file of ['host.crt', 'host.key']) copyFileSync(join(dir, file), join(saved.path, file));
      copyFileSync(other.hostCrt, join(dir, 'host.crt'));
      copyFileSync(other.hostKey, join(dir, 'host.key'));
      const set = await backupSet(['nebula']);
      for (const file of ['host.crt', 'host.key']) copyFileSync(join(saved.path, file), join(dir, file));
      const live = nebulaState(dir);
      const inode = statSync(dir).ino;

      const handle = await startNebulaRestore(h.client, h.config, { cluster: CLUSTER, node: 'node-2', setId: set.setId });
      const failure = await failureOf(handle.result());
      expect(failure.type).toBe('NebulaCertInvalid');
      expect(failure.message).toMatch(/host certificate .*host\.crt does not verify against CA .*ca\.crt/);
      expect(failure.message).toContain(`${dir} was not changed`);
      expect(nebulaState(dir)).toEqual(live);
      expect(statSync(dir).ino).toBe(inode);
      expect(siblings(dir)).toEqual([]); // neither a .restoring-* nor a .pre-restore-* dir
      expect(steps(await handle.query(progressQuery))).toEqual([
        'preflight:done',
        'prepare Nebula dir:failed',
        'stop Nebula:skipped',
        'swap Nebula dir:skipped',
        'start Nebula:skipped',
      ]);
    } finally {
      await rogue.remove();
      await saved.remove();
    }
  });

  it("refuses an archive with a '..' entry in the preflight", async () => {
    const dir = nebulaDir('node-1');
    const prefix = dir.replace(/^\/+/, '');
    const escaped = join(dirname(dir), 'escaped-by-restore.txt');
    // A crafted artefact with a manifest pointing at it, stored like a real set (unencrypted).
    const tar = Buffer.concat([
      ...['ca.crt', 'host.crt', 'host.key', 'config.yml'].map((f) => tarFile(`${prefix}/${f}`, readFileSync(join(dir, f)))),
      tarFile(`${prefix}/../escaped-by-restore.txt`, Buffer.from('should never be written\n')),
      Buffer.alloc(1024),
    ]);
    const stored = gzipSync(tar);
    const setId = `${CLUSTER}-20000101-000000`;
    const file = 'nebula-node-1-20000101-000000.tar.gz';
    const setDir = join(localPath(), setId);
    mkdirSync(setDir, { recursive: true });
    try {
      writeFileSync(join(setDir, file), stored);
      const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const artefact: ArtefactRecord = {
        file,
        key: `${setId}/${file}`,
        compression: 'gzip',
        encryption: null,
        bytes: stored.length,
        sha256: digest(stored),
        raw: { bytes: tar.length, sha256: digest(tar) },
        copies: [{ target: 'local', location: join(setDir, file), bytes: stored.length, sha256: digest(stored) }],
      };
      const manifest: BackupManifest = {
        formatVersion: MANIFEST_FORMAT_VERSION,
        tool: 'nnoe-dr',
        setId,
        cluster: CLUSTER,
        status: 'complete',
        createdAt: '2000-01-01T00:00:00.000Z',
        completedAt: '2000-01-01T00:00:01.000Z',
        workflow: { workflowId: 'crafted', runId: 'crafted' },
        components: [
          {
            component: 'nebula',
            node: 'node-1',
            status: 'ok',
            artefacts: [artefact],
            facts: { node: 'node-1', dir, files: [] },
            startedAt: '2000-01-01T00:00:00.000Z',
            finishedAt: '2000-01-01T00:00:01.000Z',
          },
        ],
        failures: [],
      };
      writeFileSync(join(setDir, 'manifest.json'), JSON.stringify(manifest, null, 2));
      const live = nebulaState(dir);

      const handle = await startNebulaRestore(h.client, h.config, { cluster: CLUSTER, node: 'node-1', setId });
      const failure = await failureOf(handle.result());
      expect(failure.type).toBe('UnsafeArchive');
      expect(failure.message).toContain(`unsafe archive entry "${prefix}/../escaped-by-restore.txt": path has a '..' component`);
      expect(existsSync(escaped)).toBe(false);
      expect(nebulaState(dir)).toEqual(live);
      expect(siblings(dir)).toEqual([]);
      expect(steps(await handle.query(progressQuery))).toEqual([
        'preflight:failed',
        'prepare Nebula dir:skipped',
        'stop Nebula:skipped',
        'swap Nebula dir:skipped',
        'start Nebula:skipped',
      ]);
      expect(existsSync(join(h.config.workDir, 'restore', setId, 'nebula-node-1'))).toBe(false); // the staged archive was discarded
    } finally {
      rmSync(setDir, { recursive: true, force: true });
      rmSync(escaped, { force: true });
    }
  });
});

/** One ustar entry (header, data, padding), written as-is: node-tar's Pack would refuse the `..`. */
function tarFile(path: string, body: Buffer): Buffer {
  const block = Buffer.alloc(512);
  new Header({ path, mode: 0o644, size: body.length, type: 'File', mtime: new Date(), uid: 0, gid: 0 }).encode(block, 0);
  return Buffer.concat([block, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}
