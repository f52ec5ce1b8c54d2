import type { Config } from '../config/schema';
import { ConfigError, findCluster, findTargets } from '../config/load';
import { artefactEncryption } from './artefact-encryption';
import { artefactCompression } from '../compression';
import { openStore } from '../storage';
import { createPhpipamBackupActivities, type PhpipamBackupDeps } from './phpipam-backup';
import { createEtcdBackupActivities } from './etcd-backup';
import { createPruneActivities } from './prune';
import { createRekeyActivities } from './rekey';
import { createBackupPlanActivities } from './backup-plan';
import { createEtcdRestoreActivities } from './etcd-restore';
import { createChangeCaptureActivities } from './change-capture';
import { createCaptureControlActivities } from './capture-control';
import { createPitrActivities } from './pitr';
import { createServiceCheckActivities } from './service-checks';
import { createDisasterRecoveryActivities } from './disaster-recovery';
import { createPhpipamRestoreActivities } from './phpipam-restore';
import { createHostRestorePlanActivities } from './host-restore';
import { createDrillActivities } from './drill';
import { createAgentRepublishActivities } from './agent-republish';
import { createAgentHostRestorePlanActivities } from './agent-host-restore';
import { nodeActivities } from './node';
import { withErrorSeam } from './error-seam';

/** The phpIPAM backup's narrow view of the config. */
function phpipamDeps(config: Config): PhpipamBackupDeps {
  return {
    phpipam: (clusterName) => {
      const cluster = findCluster(config, clusterName);
      if (!cluster.phpipam) throw new ConfigError('config', [`clusters: cluster "${clusterName}" has no phpipam section`]);
      return cluster.phpipam;
    },
    stores: (targets) => Promise.all(findTargets(config, targets).map(openStore)),
    workDir: config.workDir,
    encryption: artefactEncryption(config) ?? undefined,
    compression: (clusterName) => artefactCompression(config, clusterName),
  };
}

/** Activities of the management worker: everything that works over the network; errors mapped by the error seam. */
export function createManagementActivities(deps: { config: Config }) {
  return withErrorSeam({
    ...createEtcdBackupActivities(deps),
    ...createPruneActivities(deps),
    ...createRekeyActivities(deps),
    ...createBackupPlanActivities(deps),
    ...createPhpipamBackupActivities(phpipamDeps(deps.config)),
    ...createEtcdRestoreActivities(deps),
    ...createChangeCaptureActivities(deps),
    ...createCaptureControlActivities(deps),
    ...createPitrActivities(deps),
    ...createServiceCheckActivities(deps),
    ...createDisasterRecoveryActivities(deps),
    ...createPhpipamRestoreActivities(deps),
    ...createHostRestorePlanActivities(deps),
    ...createDrillActivities(deps),
    ...createAgentRepublishActivities(deps),
    ...createAgentHostRestorePlanActivities(deps),
  });
}

/** Activities of a node worker (`--node NAME`): host-local work; errors mapped by the error seam. */
export function createNodeActivities(deps: { config: Config; node: string }) {
  return withErrorSeam(nodeActivities(deps));
}
