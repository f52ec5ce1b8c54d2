/** What the world's real agents serve, read from the files they rendered. */
import { existsSync, readFileSync } from 'node:fs';
import type { Config } from '../../src/config/schema';
import { readAgentToml } from '../../src/agent/agent-toml';
import { parseKeaConf, parseKnotConf, parseZoneFileRecords } from '../../src/agent/rendering';
import { CLUSTER } from './harness';

export interface Served {
  zones: Record<string, string[]>;
  subnets: string[];
}

/** One agent's knot.conf zones with their zone files' records (`name TYPE value`), and kea's subnets. */
export async function servedBy(config: Config, node: string): Promise<Served> {
  const agent = config.clusters.find((c) => c.name === CLUSTER)!.agents.find((a) => a.node === node)!;
  const layout = await readAgentToml(agent.agentToml);
  const zones: Record<string, string[]> = {};
  for (const z of parseKnotConf(readFileSync(layout.dns!.configPath, 'utf8')) ?? []) {
    zones[z.domain] = existsSync(z.file)
      ? parseZoneFileRecords(readFileSync(z.file, 'utf8'))
          .map((r) => `${r.name} ${r.type} ${r.value}`)
          .sort()
      : ['(no zone file)'];
  }
  const subnets = (parseKeaConf(readFileSync(layout.dhcp!.configPath, 'utf8')) ?? []).map((s) => s.subnet).sort();
  return { zones, subnets };
}
