/**
 * Failpoints, in the spirit of etcd's gofail: named points in host-local steps where a chaos test
 * can make a worker fail or pause. Off unless the worker runs with NNOE_DR_FAILPOINTS=<file>; the
 * file (JSON: { "<point>": "error" | "pause" }) is re-read at every point, so a test arms, holds
 * and releases points while a run is in flight. Nothing in a normal deployment sets the variable.
 */
import { readFile } from 'node:fs/promises';
import { DomainError } from './domain-errors';

export type FailpointAction = 'error' | 'pause';

async function armed(): Promise<Record<string, FailpointAction>> {
  const file = process.env.NNOE_DR_FAILPOINTS;
  if (!file) return {};
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, FailpointAction>;
  } catch {
    return {};
  }
}

export class InjectedFault extends DomainError {
  override readonly name = 'InjectedFault';
  constructor(message: string) {
    super(message, 'InjectedFault', true);
  }
}

/** `name` is e.g. `before-repoint:etcd-3`. A pause holds (calling `onWait` every second) until the point is disarmed. */
export async function failpoint(name: string, onWait?: () => void): Promise<void> {
  for (;;) {
    const action = (await armed())[name];
    if (action === 'error') throw new InjectedFault(`injected fault at failpoint ${name}`);
    if (action !== 'pause') return;
    onWait?.();
    await new Promise((done) => setTimeout(done, 1000));
  }
}
