/**
 * Loopback port helpers for the local world: find free ports, and wait for a
 * port to open (a service came up) or to close (a service is really gone).
 */
import * as net from 'node:net';
import { waitUntil, sleep } from '../common/poll';

export { waitUntil, sleep };

export const LOOPBACK = '127.0.0.1';

function listenOn(port: number, host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function boundPort(server: net.Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new Error(`expected a TCP address from the probe listener, got ${String(address)}`);
  }
  return address.port;
}

/** One port that was free a moment ago (the kernel picks it when binding port 0). */
export async function freePort(host: string = LOOPBACK): Promise<number> {
  const [port] = await freePorts(1, host);
  return port as number;
}

/**
 * `count` distinct free ports. All probe listeners stay open until every port is
 * chosen, so the kernel cannot hand out the same port twice within one call.
 */
export async function freePorts(count: number, host: string = LOOPBACK): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOn(0, host));
    return servers.map(boundPort);
  } finally {
    await Promise.all(servers.map(closeServer));
  }
}

/** True if nothing listens on host:port (we can bind it ourselves). */
export async function isPortFree(port: number, host: string = LOOPBACK): Promise<boolean> {
  try {
    await closeServer(await listenOn(port, host));
    return true;
  } catch {
    return false;
  }
}

/** True if a TCP connection to host:port succeeds. */
export function canConnect(port: number, host: string = LOOPBACK, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

export async function waitForPortOpen(port: number, what: string, timeoutMs: number, host: string = LOOPBACK): Promise<void> {
  await waitUntil(() => canConnect(port, host), {
    timeoutMs,
    describeFailure: () => `${what} did not accept connections on ${host}:${port} within ${timeoutMs} ms`,
  });
}

export async function waitForPortsFree(ports: number[], timeoutMs: number, host: string = LOOPBACK): Promise<void> {
  let busy: number[] = [];
  await waitUntil(
    async () => {
      const free = await Promise.all(ports.map((port) => isPortFree(port, host)));
      busy = ports.filter((_, i) => !free[i]);
      return busy.length === 0;
    },
    { timeoutMs, describeFailure: () => `ports still in use after ${timeoutMs} ms: ${busy.join(', ')}` },
  );
}
