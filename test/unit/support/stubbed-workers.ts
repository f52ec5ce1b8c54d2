/**
 * Workflow tests with stubbed activities: the real workflow code (test/unit/support/workflow-bundle.ts)
 * on Temporal's time-skipping test server (test/unit/support/time-skipping.ts), with workers on the
 * management queue and on each node's queue whose activities are plain functions registered under
 * every real activity name (src/activities/index.ts). Each call is recorded in order (name, node,
 * input); a test gives the stubs it needs and asserts which steps ran. An activity without a stub
 * fails non-retryably as `UnexpectedActivity`, so a step the test did not foresee shows up as a failure.
 *
 * One test server and one set of workers per test file; stubs and calls are reset per test.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { createManagementActivities, createNodeActivities } from '../../../src/activities';
import type { Config } from '../../../src/config/schema';
import { nodeTaskQueue } from '../../../src/common/search-attributes';
import { startTimeSkippingEnv } from './time-skipping';
import { workflowBundleCode } from './workflow-bundle';
import { UNPATCHED_MEMO } from './unpatched-memo';

type ManagementActivities = ReturnType<typeof createManagementActivities>;
type NodeActivities = ReturnType<typeof createNodeActivities>;
export type AllActivities = ManagementActivities & NodeActivities;

/** What activity `K` answers (its result type, from the real factories). */
export type ResultOf<K extends keyof AllActivities> = Awaited<ReturnType<AllActivities[K]>>;

/** A stub: the activity's own signature, answering with its result (or throwing). */
export type Stubs = {
  [K in keyof AllActivities]?: (
    ...args: Parameters<AllActivities[K]>
  ) => Promise<Awaited<ReturnType<AllActivities[K]>>> | Awaited<ReturnType<AllActivities[K]>>;
};

export interface ActivityCall {
  name: keyof AllActivities;
  /** The node whose queue ran it; null: the management queue. */
  node: string | null;
  input: any;
}

/** The real activity names, read from the factories themselves (they only build closures; nothing runs). */
function realActivityNames(): { management: string[]; node: string[] } {
  const config = {
    workDir: '/nonexistent',
    clusters: [],
    storage: [],
    temporal: { address: 'unused', namespace: 'default', taskQueue: 'unused' },
  } as unknown as Config;
  return {
    management: Object.keys(createManagementActivities({ config })),
    node: Object.keys(createNodeActivities({ config, node: 'unused' })),
  };
}

export class StubbedActivities {
  readonly calls: ActivityCall[] = [];
  private stubs: Stubs = {};

  /** Replaces the stubs (and forgets the calls): each test starts from its own. */
  reset(stubs: Stubs): void {
    this.stubs = stubs;
    this.calls.length = 0;
  }

  /** Adds or overrides stubs of the current test. */
  set(stubs: Stubs): void {
    this.stubs = { ...this.stubs, ...stubs };
  }

  /** The names of the calls, in the order they were made (`name@node` for node queues). */
  sequence(filter?: (c: ActivityCall) => boolean): string[] {
    return this.calls.filter(filter ?? (() => true)).map((c) => (c.node ? `${c.name}@${c.node}` : c.name));
  }

  /** The calls of one activity. */
  of(name: keyof AllActivities): ActivityCall[] {
    return this.calls.filter((c) => c.name === name);
  }

  /** Index of the first / last call of `name` in the order of calls (-1: none). */
  first(name: keyof AllActivities): number {
    return this.calls.findIndex((c) => c.name === name);
  }

  last(name: keyof AllActivities): number {
    return this.calls.map((c) => c.name).lastIndexOf(name);
  }

  /** Functions under every name in `names`, each recording its call and running the current stub. */
  registered(names: string[]): Record<string, (input: unknown) => Promise<unknown>> {
    return Object.fromEntries(
      names.map((name) => [
        name,
        async (...args: unknown[]) => {
          const queue = Context.current().info.taskQueue;
          const node = queue.includes('.node.') ? queue.slice(queue.indexOf('.node.') + '.node.'.length) : null;
          this.calls.push({ name: name as keyof AllActivities, node, input: args[0] });
          const stub = this.stubs[name as keyof AllActivities] as ((...a: unknown[]) => unknown) | undefined;
          if (!stub)
            throw ApplicationFailure.nonRetryable(
              `unexpected activity ${name}${node ? ` on ${node}` : ''}: the test gave no stub for it`,
              'UnexpectedActivity',
            );
          return stub(...args);
        },
      ]),
    );
  }
}

export interface StubbedWorkflowWorld {
  /** The current test server (replaced after a test that left a run behind: see afterTest). */
  readonly env: TestWorkflowEnvironment;
  readonly taskQueue: string;
  readonly activities: StubbedActivities;
  /**
   * Starts a run of `workflowType` on the management queue; `unpatched` lists the `patched` markers
   * it runs without (the branch of runs recorded before them).
   */
  start(workflowType: string, input: object, opts?: { unpatched?: string[] }): Promise<WorkflowHandle>;
  /**
   * After each test: runs the test left running (it failed, or timed out) are terminated, and then
   * the server and workers are replaced, so the next test starts clean. A run that ended (terminated,
   * cancelled, failed with its parent) with an activity in flight leaves the Java test server's clock
   * locked for good (it keeps waiting for that activity), which would stall every later timer: the
   * clock is checked too.
   */
  afterTest(): Promise<void>;
  stop(): Promise<void>;
}

function installQuietRuntime(): void {
  try {
    // Activity failures are what these tests are about: the worker's warnings about them are noise.
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
  } catch {
    // already installed in this process
  }
}

interface Booted {
  env: TestWorkflowEnvironment;
  taskQueue: string;
  stop(): Promise<void>;
}

/** A test server, and workers on the management queue and on the queue of every node in `nodes`. */
async function boot(code: string, nodes: string[], activities: StubbedActivities): Promise<Booted> {
  const env = await startTimeSkippingEnv();
  const taskQueue = `nnoe-dr-test-${randomUUID().slice(0, 8)}`;
  const names = realActivityNames();
  try {
    const workers = await Promise.all([
      Worker.create({
        connection: env.nativeConnection,
        namespace: env.namespace,
        taskQueue,
        workflowBundle: { code },
        activities: activities.registered(names.management),
      }),
      ...nodes.map((node) =>
        Worker.create({
          connection: env.nativeConnection,
          namespace: env.namespace,
          taskQueue: nodeTaskQueue(taskQueue, node),
          activities: activities.registered(names.node),
        }),
      ),
    ]);
    const running = workers.map((w) => w.run());
    return {
      env,
      taskQueue,
      stop: async () => {
        for (const w of workers) w.shutdown();
        await Promise.allSettled(running);
        await env.teardown();
      },
    };
  } catch (err) {
    await env.teardown();
    throw err;
  }
}

/** The test server with workers on the management queue and on the queue of every node in `nodes`, for one test file. */
export async function startStubbedWorkflowWorld(nodes: string[]): Promise<StubbedWorkflowWorld> {
  installQuietRuntime();
  // The bundle first: webpack's CPU would slow the server's start, which the SDK waits for only 5 s.
  const code = await workflowBundleCode();
  const activities = new StubbedActivities();
  let current = await boot(code, nodes, activities);
  return {
    get env() {
      return current.env;
    },
    get taskQueue() {
      return current.taskQueue;
    },
    activities,
    start: async (workflowType, input, opts = {}) => {
      return current.env.client.workflow.start(workflowType, {
        taskQueue: current.taskQueue,
        workflowId: `${workflowType}-${randomUUID().slice(0, 8)}`,
        args: [input],
        ...(opts.unpatched?.length ? { memo: { [UNPATCHED_MEMO]: opts.unpatched } } : {}),
      });
    },
    afterTest: async () => {
      const { env } = current;
      const open =
        (await env.client.workflowService.listOpenWorkflowExecutions({ namespace: env.namespace ?? 'default', maximumPageSize: 1000 }))
          .executions ?? [];
      for (const execution of open) {
        await env.client.workflow
          .getHandle(execution.execution!.workflowId!)
          .terminate('left running by a test')
          .catch(() => undefined);
      }
      // A child the server terminated with its parent is closed but may still hold the clock: ask it to move.
      // (With a deadline: a call still pending when the server goes would be retried into a closed channel.)
      const clockMoves = await env.connection
        .withDeadline(Date.now() + 5000, () => env.sleep(60_000))
        .then(
          () => true,
          () => false,
        );
      if (open.length === 0 && clockMoves) return;
      console.warn(
        `stubbed workflow world, after "${expect.getState().currentTestName}": ${open.length} run(s) left running${clockMoves ? '' : ', the clock stuck'}: a fresh test server for the next test`,
      );
      await current.stop();
      current = await boot(code, nodes, activities);
    },
    stop: () => current.stop(),
  };
}

/** The type and message of the failure a run ended with (the run's own ApplicationFailure). */
export async function runFailure(result: Promise<unknown>): Promise<{ type: string | undefined; message: string }> {
  const err = await result.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof WorkflowFailedError)) throw new Error(`expected the run to fail, it ${err ? `threw ${String(err)}` : 'completed'}`);
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? undefined, message: cause.message };
  return { type: cause?.name, message: cause?.message ?? err.message };
}

/** Waits until the run's `plan` query says it awaits approval (the steps before it have run). */
export async function awaitingApproval(handle: WorkflowHandle): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    // A child run may not exist yet: then the query fails and is asked again.
    const state = await handle.query<{ state: string }>('plan').then(
      (view) => view.state,
      (err: unknown) => `not answering (${String(err)})`,
    );
    if (state === 'awaiting-approval') return;
    if (Date.now() > deadline) throw new Error(`the run ${handle.workflowId} did not come to its approval within 20 s (state ${state})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * For a stub that is still at work when its run is cancelled: heartbeats (which bring the cancel)
 * until the activity is cancelled, then ends cancelled. The test server keeps time still while an
 * activity is in flight, so a stub must end this way rather than outlive its cancellation.
 */
export async function heartbeatUntilCancelled(): Promise<never> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat(), 50);
  try {
    await ctx.cancelled;
    throw new Error('unreachable: Context.cancelled only rejects');
  } finally {
    clearInterval(beat);
  }
}
