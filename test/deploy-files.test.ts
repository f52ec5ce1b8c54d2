/**
 * docker-compose.yml cannot run here (no Docker engine), so check what can be checked: it parses,
 * every reference resolves, and the config it mounts is a valid nnoe-dr config naming its services.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/load';

const root = join(__dirname, '..');
const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { image?: string; depends_on?: string[]; volumes?: string[]; secrets?: string[]; command?: string[] }>;
  volumes: Record<string, unknown>;
  secrets: Record<string, { file: string }>;
};

describe('docker-compose.yml', () => {
  it('has Temporal with its UI, three etcd members, an S3 store and the worker', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['etcd-1', 'etcd-2', 'etcd-3', 'minio', 'minio-init', 'temporal', 'worker']);
    for (const [name, service] of Object.entries(compose.services)) expect(service.image, name).toMatch(/:[\w.-]+$/);
    expect(compose.services.temporal!.command).toEqual(
      expect.arrayContaining(['NnoeCluster=Keyword', 'NnoeRunbook=Keyword', 'NnoeBackupSet=Keyword']),
    );
  });

  it('resolves every dependency, named volume and secret', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const dep of service.depends_on ?? []) expect(compose.services, `${name} depends on ${dep}`).toHaveProperty(dep);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) expect(existsSync(join(root, source)), `${name}: ${source}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${source}`).toHaveProperty(source);
      }
      for (const secret of service.secrets ?? []) expect(compose.secrets, `${name}: secret ${secret}`).toHaveProperty(secret);
    }
    for (const secret of Object.values(compose.secrets)) expect(existsSync(join(root, secret.file))).toBe(true);
  });

  it('mounts a valid nnoe-dr config whose members are the compose etcd services', () => {
    const config = loadConfig(join(root, 'deploy', 'nnoe-dr.compose.yaml'));
    expect(config.temporal.address).toBe('temporal:7233');
    expect(config.clusters[0]!.etcd.members.map((m) => new URL(m.clientUrl).hostname)).toEqual(['etcd-1', 'etcd-2', 'etcd-3']);
    const s3 = config.storage.find((t) => t.type === 's3');
    expect(s3 && 'endpoint' in s3 ? new URL(s3.endpoint!).hostname : undefined).toBe('minio');
  });
});
