/** How etcd names a cluster's members on the command line: `name=peerUrl`, comma-joined for `--initial-cluster`. */
export interface PeerMember {
  name: string;
  peerUrl: string;
}

export const peerEntry = (member: PeerMember): string => `${member.name}=${member.peerUrl}`;

export const initialClusterOf = (members: PeerMember[]): string => members.map(peerEntry).join(',');
