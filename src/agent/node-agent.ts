/**
 * The agent configured on a node, as the activities that touch it need it: which entry of the
 * config, its layout (agent.toml with our overrides) and the host state a recovery restores.
 * Free of Temporal: AgentNotConfiguredError is a DomainError (InvalidInput), mapped by the activity error seam.
 */
import type { AgentConfig, ClusterConfig } from '../config/schema';
import { readAgentToml, type AgentLayout } from './agent-toml';
import { DomainError } from '../common/domain-errors';
import { FailureType } from '../common/failures';

/** The config names no agent on that node: retrying cannot help. */
export class AgentNotConfiguredError extends DomainError {
  override readonly name = 'AgentNotConfiguredError';
  constructor(message: string) {
    super(message, FailureType.InvalidInput, true);
  }
}

export function agentOn(cluster: ClusterConfig, node: string): AgentConfig {
  const agent = cluster.agents.find((a) => a.node === node);
  if (!agent) {
    throw new AgentNotConfiguredError(
      `cluster ${cluster.name} configures no agent on node ${node} (agents on: ${cluster.agents.map((a) => a.node).join(', ') || 'none'})`,
    );
  }
  return agent;
}

/** The agent's layout: its agent.toml, with the paths our config overrides. */
export function agentLayout(agent: AgentConfig): Promise<AgentLayout> {
  return readAgentToml(agent.agentToml, {
    cacheDir: agent.cacheDir,
    prefix: agent.prefix,
    dnsConfigPath: agent.dnsConfigPath,
    zoneDir: agent.zoneDir,
    dhcpConfigPath: agent.dhcpConfigPath,
  });
}

/** The host state of an agent node (component `agent-config`), in restore order; `secret` paths hold private keys. */
export function agentHostState(agent: AgentConfig): Array<{ path: string; secret: boolean }> {
  return [
    { path: agent.agentToml, secret: false },
    { path: agent.configDir, secret: false },
    { path: agent.tlsDir, secret: true },
    { path: agent.dnssecKeyDir, secret: true },
    { path: agent.keaLeaseFile, secret: false },
    ...(agent.nebulaCaKey ? [{ path: agent.nebulaCaKey, secret: true }] : []),
  ];
}
