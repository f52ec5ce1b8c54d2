/**
 * Management-side steps of an agent recovery: etcd's revision when a republish begins (recorded in
 * the workflow's history, it makes a retried republish put nothing twice) and the republish itself.
 */
import { Context } from '@temporalio/activity';
import type { Config } from '../config/schema';
import { findCluster } from '../config/load';
import { connectCluster } from '../etcd/connect';
import { currentRevision, republishAgentKeys as republish, type RepublishResult } from '../agent/republish';

export function createAgentRepublishActivities(deps: { config: Config }) {
  async function etcdRevisionNow(input: { cluster: string }): Promise<number> {
    const client = await connectCluster(findCluster(deps.config, input.cluster));
    try {
      return await currentRevision(client);
    } finally {
      client.close();
    }
  }

  async function republishAgentKeys(input: {
    cluster: string;
    prefix: string;
    notAfterRevision: number;
    dryRun?: boolean;
  }): Promise<RepublishResult> {
    const ctx = Context.current();
    const client = await connectCluster(findCluster(deps.config, input.cluster));
    try {
      return await republish(client, {
        rootPrefix: input.prefix,
        notAfterRevision: input.notAfterRevision,
        dryRun: input.dryRun === true,
        onProgress: (done) => ctx.heartbeat(done),
      });
    } finally {
      client.close();
    }
  }

  return { etcdRevisionNow: etcdRevisionNow, republishAgentKeys: republishAgentKeys };
}
