/**
 * Which TCP connections a process holds, read from /proc as `ss -tp` would: the socket inodes of
 * /proc/<pid>/fd matched against /proc/<pid>/net/tcp{,6}. A running NNOE agent whose etcd watches
 * ended ("deaf") has no established connection to any etcd client URL any more; this is how a
 * deaf agent is told from a listening one without anything the agent itself reports.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';

export interface TcpConnection {
  local: string;
  remote: string;
  state: string;
}

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** `0100007F:0CEB` -> `127.0.0.1:3307`; IPv6 words are little-endian 32-bit groups. */
export function decodeProcAddress(hex: string): string {
  const [addr, portHex] = hex.split(':') as [string, string];
  const port = parseInt(portHex, 16);
  if (addr.length === 8) {
    const bytes = Buffer.from(addr, 'hex').reverse();
    return `${[...bytes].join('.')}:${port}`;
  }
  const words = Buffer.from(addr, 'hex');
  for (let i = 0; i < 16; i += 4) words.subarray(i, i + 4).reverse();
  // An IPv4-mapped address (::ffff:a.b.c.d) is shown as IPv4: that is what a URL names.
  if (words.subarray(0, 10).every((b) => b === 0) && words[10] === 0xff && words[11] === 0xff) {
    return `${[...words.subarray(12)].join('.')}:${port}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(words.readUInt16BE(i).toString(16));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]:${port}`;
}

/** Parses /proc/net/tcp text: inode -> connection. */
export function parseProcNetTcp(text: string): Map<string, TcpConnection> {
  const byInode = new Map<string, TcpConnection>();
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [, local, remote, state] = fields as [string, string, string, string];
    byInode.set(fields[9]!, { local: decodeProcAddress(local), remote: decodeProcAddress(remote), state: TCP_STATES[state] ?? state });
  }
  return byInode;
}

/** The TCP connections held by `pid` (its sockets' inodes looked up in its network namespace). */
export async function tcpConnectionsOf(pid: number): Promise<TcpConnection[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]!);
  }
  const found: TcpConnection[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const [inode, conn] of parseProcNetTcp(text)) if (inodes.has(inode)) found.push(conn);
  }
  return found;
}

/** `https://etcd-1.example:2379` -> every `ip:port` it resolves to. */
export async function endpointAddresses(url: string): Promise<string[]> {
  const parsed = new URL(url);
  const port = parsed.port || (parsed.protocol === 'https:' ? '443' : '80');
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const addresses = await lookup(host, { all: true }).catch(() => [{ address: host, family: host.includes(':') ? 6 : 4 }]);
  return addresses.map((a) => (a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`));
}

/** The first established connection of `pid` to one of `urls` (as `ip:port`), or null. */
export async function establishedConnectionTo(pid: number, urls: string[]): Promise<string | null> {
  const wanted = new Set((await Promise.all(urls.map(endpointAddresses))).flat());
  const conns = await tcpConnectionsOf(pid);
  return conns.find((c) => c.state === 'ESTABLISHED' && wanted.has(c.remote))?.remote ?? null;
}
