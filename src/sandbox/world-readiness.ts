/**
 * Waiting for a world to be ready: every service's probe (etcd health, moto, MariaDB, Temporal)
 * polled until it passes; a program that died, or the deadline, fails with the tail of its log.
 */
import * as fs from 'node:fs';

import { MARIADB_PROGRAM, mariadbLayout, mariadbProblem } from './mariadb';
import { LOOPBACK, sleep } from './ports';
import { programLogPath, programStates, type ProgramState, supervisorLayout } from './supervisor';
import { etcdMemberProblem } from './world-etcd';
import { motoProblem, temporalProblem } from './world-services';
import { MOTO_PROGRAM, TEMPORAL_PROGRAM, type World } from './world-types';

const POLL_INTERVAL_MS = 500;

interface ReadinessCheck {
  program: string;
  what: string;
  /** undefined when ready, else what is still wrong. */
  problem: () => Promise<string | undefined>;
}

function etcdReadiness(world: World): ReadinessCheck[] {
  return world.etcd.members.map((member) => ({
    program: member.program,
    what: `etcd member ${member.name} (${member.clientUrl})`,
    problem: () => etcdMemberProblem(world, member),
  }));
}

/** Waits until every member answers `etcdctl endpoint health` over mTLS (needs quorum). */
export async function waitForEtcdHealthy(world: World, timeoutMs = 60_000): Promise<void> {
  await waitForChecks(world, etcdReadiness(world), timeoutMs);
}

function readinessChecks(world: World): ReadinessCheck[] {
  const checks = etcdReadiness(world);
  checks.push({ program: MOTO_PROGRAM, what: `S3 (moto) at ${world.s3.endpoint}`, problem: () => motoProblem(world) });
  const mariadb = world.mariadb;
  if (mariadb) {
    checks.push({
      program: MARIADB_PROGRAM,
      what: `MariaDB (phpIPAM) on ${LOOPBACK}:${mariadb.port}`,
      problem: () => mariadbProblem(mariadbLayout(mariadb.dir)),
    });
  }
  const temporal = world.temporal;
  if (temporal) {
    checks.push({
      program: TEMPORAL_PROGRAM,
      what: `Temporal dev server at ${temporal.address}`,
      problem: () => temporalProblem(temporal),
    });
  }
  return checks;
}

export async function waitUntilReady(world: World, timeoutMs: number): Promise<void> {
  await waitForChecks(world, readinessChecks(world), timeoutMs);
}

/** States after which a program with autorestart=false will not come back by itself. */
const DEAD_STATES: ReadonlySet<ProgramState> = new Set(['FATAL', 'EXITED']);

/**
 * Polls all checks until each is ready. Fails at once if a program died
 * (no point waiting for it), or at the deadline; both errors carry the tail
 * of the program's log.
 */
async function waitForChecks(world: World, checks: ReadinessCheck[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pending = checks;
  const problems = new Map<ReadinessCheck, string>();
  for (;;) {
    const states = await programStates(world.supervisorConf);
    for (const check of pending) {
      const state = states[check.program];
      if (state && DEAD_STATES.has(state)) {
        throw new Error(`${check.what} died: program ${check.program} is ${state}\n${logTail(world, check.program)}`);
      }
    }
    const results = await Promise.all(pending.map((check) => check.problem()));
    pending.forEach((check, i) => problems.set(check, results[i] ?? ''));
    pending = pending.filter((_, i) => results[i] !== undefined);
    if (pending.length === 0) return;
    if (Date.now() >= deadline) {
      const details = pending.map(
        (check) =>
          `${check.what} not ready after ${timeoutMs} ms (program ${check.program} is ${states[check.program] ?? 'unknown'}): ` +
          `${problems.get(check)}\n${logTail(world, check.program)}`,
      );
      throw new Error(details.join('\n\n'));
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

function logTail(world: World, program: string, lines = 25): string {
  const file = programLogPath(supervisorLayout(world.dir), program);
  try {
    const text = fs.readFileSync(file, 'utf8');
    const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
    return `--- last ${lines} lines of ${file} ---\n${tail}`;
  } catch {
    return `(no log at ${file})`;
  }
}
