/**
 * No secrets anywhere: the history of every workflow run in the namespace (visibility list +
 * fetchHistory) and the worker logs hold none of the secrets the world uses (age identity,
 * MariaDB passwords, S3 secret key, PEM private keys). Runs last in the world suite (the
 * `.last.test.ts` files, test/support/sequencer.ts), so it scans the runs of every file before
 * it; it also runs a few representative runbooks itself (a whole encrypted set to local + S3,
 * the restores' preflights), so run alone it still scans something that touched every secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackupSet, startEtcdRestore, startPhpipamRestore } from '../src/client/temporal';
import type { BackupSetResult } from '../src/workflows/backup-set';
import { CLUSTER, openHarness, pollUntil, type Harness } from './support/harness';
import { findSecrets, historyText, scanFiles, scanHistories, workerLogs, worldSecrets, type WorldSecret } from './support/secrets-scan';

let h: Harness;
let secrets: WorldSecret[];
beforeAll(async () => {
  h = await openHarness();
  secrets = worldSecrets(h.world, h.config);
});
afterAll(async () => {
  await h.close();
});

describe('no secrets anywhere', () => {
  it("knows the world's secrets and finds one by value or by shape", () => {
    const names = secrets.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'age identity',
        'S3 secret access key',
        'MariaDB root password',
        'MariaDB phpipam password',
        'MariaDB phpipam_restore password',
      ]),
    );
    expect(names.filter((n) => n.startsWith('private key '))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/client\.key$/),
        expect.stringMatching(/ca\.key$/),
        expect.stringMatching(/host\.key$/),
      ]),
    );
    const password = secrets.find((s) => s.name === 'MariaDB phpipam password')!.probes[0]!;
    expect(findSecrets('text', `{"args":[${JSON.stringify({ password })}]}`, secrets)).toEqual([
      { secret: 'MariaDB phpipam password', where: 'text' },
    ]);
    expect(findSecrets('text', 'key: -----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC', [])).toEqual([
      { secret: 'a PEM private key block', where: 'text' },
    ]);
    expect(findSecrets('text', 'identity: { file: /etc/nnoe-dr/age-identity.txt }, AGE-SECRET-KEY-1... lines', secrets)).toEqual([]);
  });

  it("no workflow history and no worker log holds a secret, after a whole set and the restores' preflights", async () => {
    const set = (await (
      await startBackupSet(h.client, h.config, { cluster: CLUSTER, targets: ['local', 's3'] })
    ).result()) as BackupSetResult;
    await Promise.all([
      (await startEtcdRestore(h.client, h.config, { cluster: CLUSTER, setId: set.setId, dryRun: true, restartAgents: false })).result(),
      (await startPhpipamRestore(h.client, h.config, { cluster: CLUSTER, setId: set.setId, dryRun: true })).result(),
    ]);
    const { runs, findings } = await scanHistories(h.client, secrets);
    expect(runs).toBeGreaterThanOrEqual(3);
    expect(findings).toEqual([]);
    const logs = workerLogs(h.world);
    // The management workers and the three node workers.
    expect(logs.filter((l) => /nnoe-dr-worker-management/.test(l)).length).toBeGreaterThan(0);
    expect(logs.filter((l) => /nnoe-dr-worker-node-\d\.log$/.test(l))).toHaveLength(3);
    expect(scanFiles(logs, secrets)).toEqual([]);
  });

  it('fails on a planted secret: a run whose input carries the age identity is found', async () => {
    const identity = secrets.find((s) => s.name === 'age identity')!.probes[0]!;
    // A run nobody picks up (no worker polls this queue): its input sits in its history.
    const planted = await h.client.workflow.start('secretsScanPlantedRun', {
      taskQueue: 'secrets-scan-planted',
      workflowId: `secrets-scan-planted-${Date.now()}`,
      args: [{ note: 'planted', identity }],
    });
    try {
      const found = await pollUntil(
        async () => {
          const { findings } = await scanHistories(h.client, secrets);
          return findings.length > 0 && findings;
        },
        30_000,
        'the scan to see the planted run (visibility lags a little)',
      );
      expect(found).toEqual([
        { secret: 'age identity', where: `history of ${planted.workflowId} (secretsScanPlantedRun)` },
        { secret: 'an age identity (AGE-SECRET-KEY-1...)', where: `history of ${planted.workflowId} (secretsScanPlantedRun)` },
      ]);
      expect(historyText(await planted.fetchHistory())).toContain(identity);
    } finally {
      await planted.terminate('planted for the secrets scan');
    }
  });
});
