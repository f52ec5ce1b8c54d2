/**
 * `proxyActivities`, `executeChild` and `startChild` as our workflows use them: the same calls,
 * each carrying the one line the Temporal UI shows for it (an activity's `summary`: "stop etcd-2
 * on node-2"; a child's `staticSummary` and `staticDetails`), built by src/common/run-metadata.ts.
 *
 * The summary travels as user metadata beside the command; replay does not compare it, so recorded
 * histories without summaries still replay (test/replay.test.ts).
 */
import * as wf from '@temporalio/workflow';
import type { ActivityOptions, Workflow } from '@temporalio/workflow';
import { activitySummary, runDetails, runSummary } from '../common/run-metadata';

type ActivityProxyOptions<A> = Parameters<typeof wf.proxyActivities<A>>[0];

/** Like `proxyActivities`, with a summary naming each call's target (a summary given with `executeWithOptions` wins). */
export function proxyActivities<A = wf.UntypedActivities>(options: ActivityProxyOptions<A>): wf.ActivityInterfaceFor<A> {
  const inner = wf.proxyActivities<A>(options) as Record<string, wf.ActivityFunctionWithOptions<(...args: unknown[]) => Promise<unknown>>>;
  return new Proxy(
    {},
    {
      get(_, name) {
        if (typeof name !== 'string') return undefined;
        const activity = inner[name]!;
        const call = (...args: unknown[]) => activity.executeWithOptions({ summary: activitySummary(name, args, options.taskQueue) }, args);
        call.executeWithOptions = (override: ActivityOptions, args: unknown[]) =>
          activity.executeWithOptions({ summary: activitySummary(name, args, override.taskQueue ?? options.taskQueue), ...override }, args);
        return call;
      },
    },
  ) as wf.ActivityInterfaceFor<A>;
}

type ChildOptions<T extends Workflow> = wf.WithWorkflowArgs<T, Omit<wf.ChildWorkflowOptions, 'typeInfo'>> & { typeInfo?: undefined };

function withRunMetadata<T extends Workflow>(workflow: T, options: ChildOptions<T>): ChildOptions<T> {
  const input = (options.args as unknown[] | undefined)?.[0];
  return { staticSummary: runSummary(workflow.name, input), staticDetails: runDetails(workflow.name, input), ...options };
}

/** Like `executeChild(workflowFunc, options)`, with the child's summary and details for the UI. */
export function executeChild<T extends Workflow>(workflow: T, options: ChildOptions<T>): Promise<wf.WorkflowResultType<T>> {
  return wf.executeChild(workflow, withRunMetadata(workflow, options));
}

/** Like `startChild(workflowFunc, options)`, with the child's summary and details for the UI. */
export function startChild<T extends Workflow>(workflow: T, options: ChildOptions<T>): Promise<wf.ChildWorkflowHandle<T>> {
  return wf.startChild(workflow, withRunMetadata(workflow, options));
}
