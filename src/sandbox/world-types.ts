/**
 * What a local world is (world.json's shape, read back by loadWorld) and the names every part of
 * the sandbox shares: the cluster, the bucket, the program names, the world marker.
 */
import type { EtcdVersion } from './etcd-version';

export interface EtcdMemberInfo {
  name: string;
  node: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  program: string;
  programConf: string;
}

export interface World {
  dir: string;
  configPath: string;
  supervisorConf: string;
  certs: {
    dir: string;
    ca: string;
    serverCert: string;
    serverKey: string;
    clientCert: string;
    clientKey: string;
    rogueCa: string;
    rogueClientCert: string;
    rogueClientKey: string;
  };
  etcd: {
    clusterName: string;
    members: EtcdMemberInfo[];
    initialCluster: string;
    initialClusterToken: string;
    /** The etcd series the members run (NNOE_ETCD_VERSION), its exact release, and the dir of its etcd/etcdctl/etcdutl. */
    version: EtcdVersion;
    release: string;
    binDir: string;
  };
  s3: { endpoint: string; bucket: string; region: string; accessKeyFile: string; secretKeyFile: string };
  localStoreDir: string;
  workDir: string;
  temporal?: { address: string; uiUrl: string; namespace: 'default' };
  /** phpIPAM's MariaDB (binlog on). Optional only so that a world started before it existed still loads. */
  mariadb?: { dir: string; port: number; socket: string; database: string; user: string; passwordFile: string; rootOptionFile: string };
}

export interface WorldOptions {
  dir: string;
  /** Number of etcd members. Default 3. */
  members?: number;
  /** Also run `temporal server start-dev` under supervisord. Default false. */
  temporal?: boolean;
  /** etcd --quota-backend-bytes. Default 8 GiB. */
  quotaBackendBytes?: number;
  /** How long to wait for every service to become ready. Default 180 s (the machine has 2 cores). */
  startTimeoutMs?: number;
  /** The etcd the members run. Default: NNOE_ETCD_VERSION, else 3.5. */
  etcdVersion?: EtcdVersion;
}

export const SEARCH_ATTRIBUTES = { NnoeCluster: 'Keyword', NnoeRunbook: 'Keyword', NnoeBackupSet: 'Keyword' } as const;

export const CLUSTER_NAME = 'nnoe-local';
export const S3_BUCKET = 'nnoe-backups';
export const S3_REGION = 'us-east-1';
export const MOTO_PROGRAM = 'moto';
export const TEMPORAL_PROGRAM = 'temporal';
/** The Temporal dev server's ports when they are free (a second world takes free ones). */
export const PREFERRED_TEMPORAL_PORTS = { frontend: 7233, ui: 8233 };
/** Every process of a world inherits this variable (via supervisord), so stopWorld can find orphans. */
export const WORLD_MARKER_ENV = 'NNOE_DR_WORLD';
