/**
 * The nnoe-dr config of a world (written to world.configPath): its cluster, TLS material, service
 * driver, phpIPAM database and both storage targets (local directory, moto S3).
 */
import { mariadbLayout, PHPIPAM_RESTORE_USER } from './mariadb';
import { LOOPBACK } from './ports';
import { PREFERRED_TEMPORAL_PORTS, type World } from './world-types';

/** The nnoe-dr config (as written to world.configPath) for this world. */
export function renderWorldConfig(world: World): Record<string, unknown> {
  return {
    temporal: {
      address: world.temporal?.address ?? `${LOOPBACK}:${PREFERRED_TEMPORAL_PORTS.frontend}`,
      namespace: 'default',
      taskQueue: 'nnoe-dr',
    },
    workDir: world.workDir,
    etcdBinDir: world.etcd.binDir,
    clusters: [
      {
        name: world.etcd.clusterName,
        etcd: {
          members: world.etcd.members.map(({ name, node, clientUrl, peerUrl }) => ({ name, node, clientUrl, peerUrl })),
          tls: {
            caFile: world.certs.ca,
            certFile: world.certs.clientCert,
            keyFile: { file: world.certs.clientKey },
          },
        },
        service: { driver: 'supervisor', supervisorConf: world.supervisorConf },
        ...(world.mariadb
          ? {
              phpipam: {
                host: LOOPBACK,
                port: world.mariadb.port,
                database: world.mariadb.database,
                user: world.mariadb.user,
                password: { file: world.mariadb.passwordFile },
                restore: { user: PHPIPAM_RESTORE_USER, password: { file: mariadbLayout(world.mariadb.dir).restorePasswordFile } },
              },
            }
          : {}),
      },
    ],
    storage: [
      { name: 'local', type: 'local', path: world.localStoreDir },
      {
        name: 's3',
        type: 's3',
        bucket: world.s3.bucket,
        prefix: '',
        endpoint: world.s3.endpoint,
        region: world.s3.region,
        forcePathStyle: true,
        accessKeyId: { file: world.s3.accessKeyFile },
        secretAccessKey: { file: world.s3.secretKeyFile },
      },
    ],
  };
}
