/**
 * Where a workflow run's time went, from its Temporal history: every activity's scheduled, started
 * and closed times, the critical path (walking back from the end, each time to the activity that
 * closed last before the current one was scheduled: the longest activity of a parallel step, the
 * whole chain of a sequential one), and what is left over: the orchestration overhead.
 * Pure: no I/O, only history events in.
 */
import type { History } from '@temporalio/common/lib/proto-utils';

type HistoryEvent = NonNullable<History['events']>[number];
type Timestamp = { seconds?: { toNumber(): number } | number | string | null; nanos?: number | null } | null | undefined;

interface ActivityRun {
  activityId: string;
  type: string;
  taskQueue: string;
  scheduledMs: number;
  /** Start of the attempt that closed it (earlier attempts and their backoff lie before it). */
  startedMs: number;
  closedMs: number;
  attempt: number;
  outcome: 'completed' | 'failed' | 'timed-out' | 'canceled';
}

interface StepSpan {
  name: string;
  startedMs: number;
  finishedMs: number;
}

export interface StepTiming {
  name: string;
  wallSeconds: number;
  /** Execution time (started to closed) of this step's activities on the critical path. */
  criticalActivitySeconds: number;
  /** The longest single activity execution in the step, and which one. */
  longest?: { type: string; taskQueue: string; seconds: number };
  activities: number;
}

interface Timeline {
  workflowStartedMs: number;
  workflowClosedMs: number;
  activities: ActivityRun[];
  criticalPath: ActivityRun[];
  /** Σ execution time of the critical path's activities. */
  criticalActivitySeconds: number;
  /** Between an activity closing and the next one on the path being scheduled: workflow tasks. */
  workflowTaskSeconds: number;
  /** Between scheduled and started on the path: task dispatch, plus failed attempts and retry backoff. */
  dispatchSeconds: number;
  /** The part of dispatchSeconds spent on activities that needed more than one attempt. */
  retrySeconds: number;
  /** From the start event to the first path activity being scheduled, and from the last one closing to the close event. */
  edgeSeconds: number;
}

function tsMs(ts: Timestamp): number {
  if (!ts) return Number.NaN;
  const seconds = ts.seconds;
  const whole = typeof seconds === 'object' && seconds !== null ? seconds.toNumber() : Number(seconds ?? 0);
  return whole * 1000 + (ts.nanos ?? 0) / 1e6;
}

/** Every activity of the run, in the order they were scheduled. */
function activityRuns(events: HistoryEvent[]): ActivityRun[] {
  const byScheduledId = new Map<string, Partial<ActivityRun>>();
  const id = (value: unknown) => String(value);
  for (const event of events) {
    const at = tsMs(event.eventTime as Timestamp);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      byScheduledId.set(id(event.eventId), {
        activityId: scheduled.activityId ?? '',
        type: scheduled.activityType?.name ?? '?',
        taskQueue: scheduled.taskQueue?.name ?? '?',
        scheduledMs: at,
      });
      continue;
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) {
      const run = byScheduledId.get(id(started.scheduledEventId));
      if (run) {
        run.startedMs = at;
        run.attempt = started.attempt ?? 1;
      }
      continue;
    }
    const closed: Array<[ActivityRun['outcome'], { scheduledEventId?: unknown } | null | undefined]> = [
      ['completed', event.activityTaskCompletedEventAttributes],
      ['failed', event.activityTaskFailedEventAttributes],
      ['timed-out', event.activityTaskTimedOutEventAttributes],
      ['canceled', event.activityTaskCanceledEventAttributes],
    ];
    for (const [outcome, attributes] of closed) {
      if (!attributes) continue;
      const run = byScheduledId.get(id(attributes.scheduledEventId));
      if (run) {
        run.closedMs = at;
        run.outcome = outcome;
      }
    }
  }
  return [...byScheduledId.values()]
    .filter((run): run is ActivityRun => run.closedMs !== undefined)
    .map((run) => ({ ...run, startedMs: run.startedMs ?? run.scheduledMs, attempt: run.attempt ?? 1 }))
    .sort((a, b) => a.scheduledMs - b.scheduledMs);
}

/** Walks back from `endMs`: each step to the activity that closed last before the current one was scheduled. */
function criticalPath(activities: ActivityRun[], endMs: number): ActivityRun[] {
  const path: ActivityRun[] = [];
  let cursor = endMs;
  for (;;) {
    let pick: ActivityRun | undefined;
    for (const run of activities) {
      if (run.closedMs <= cursor && !path.includes(run) && (!pick || run.closedMs > pick.closedMs)) pick = run;
    }
    if (!pick) break;
    path.push(pick);
    cursor = pick.scheduledMs;
  }
  return path.reverse();
}

const seconds = (ms: number) => ms / 1000;

export function timeline(events: HistoryEvent[]): Timeline {
  const started = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const closed = [...events]
    .reverse()
    .find(
      (e) =>
        e.workflowExecutionCompletedEventAttributes ||
        e.workflowExecutionFailedEventAttributes ||
        e.workflowExecutionCanceledEventAttributes ||
        e.workflowExecutionTerminatedEventAttributes ||
        e.workflowExecutionTimedOutEventAttributes,
    );
  if (!started || !closed) throw new Error('the history has no start or no close event: the run is not over');
  const workflowStartedMs = tsMs(started.eventTime as Timestamp);
  const workflowClosedMs = tsMs(closed.eventTime as Timestamp);
  const activities = activityRuns(events);
  const path = criticalPath(activities, workflowClosedMs);
  let workflowTask = 0;
  let dispatch = 0;
  let retry = 0;
  path.forEach((run, i) => {
    if (i > 0) workflowTask += run.scheduledMs - path[i - 1]!.closedMs;
    dispatch += run.startedMs - run.scheduledMs;
    if (run.attempt > 1) retry += run.startedMs - run.scheduledMs;
  });
  const edges =
    path.length === 0
      ? workflowClosedMs - workflowStartedMs
      : path[0]!.scheduledMs - workflowStartedMs + (workflowClosedMs - path[path.length - 1]!.closedMs);
  return {
    workflowStartedMs,
    workflowClosedMs,
    activities,
    criticalPath: path,
    criticalActivitySeconds: seconds(path.reduce((sum, run) => sum + run.closedMs - run.startedMs, 0)),
    workflowTaskSeconds: seconds(workflowTask),
    dispatchSeconds: seconds(dispatch),
    retrySeconds: seconds(retry),
    edgeSeconds: seconds(edges),
  };
}

/**
 * The step an activity belongs to: the one that started last at or before it was scheduled; an
 * activity scheduled after that step finished belongs to `afterSteps` (cleanup at the end).
 */
export function stepOf(run: ActivityRun, steps: StepSpan[], afterSteps = 'cleanup'): string {
  let owner: StepSpan | undefined;
  for (const step of steps) if (step.startedMs <= run.scheduledMs && (!owner || step.startedMs >= owner.startedMs)) owner = step;
  if (!owner) return 'before the steps';
  return run.scheduledMs > owner.finishedMs ? afterSteps : owner.name;
}

/** Per step: its wall time (from the progress query) and the activity time on the critical path within it. */
export function stepTimings(tl: Timeline, steps: StepSpan[], afterSteps = 'cleanup'): StepTiming[] {
  const names = [...steps.map((s) => s.name)];
  const owners = new Map(tl.activities.map((run) => [run, stepOf(run, steps, afterSteps)]));
  if ([...owners.values()].includes(afterSteps)) names.push(afterSteps);
  return names.map((name) => {
    const step = steps.find((s) => s.name === name);
    const mine = tl.activities.filter((run) => owners.get(run) === name);
    const onPath = tl.criticalPath.filter((run) => owners.get(run) === name);
    const longest = mine.reduce<ActivityRun | undefined>(
      (best, run) => (!best || run.closedMs - run.startedMs > best.closedMs - best.startedMs ? run : best),
      undefined,
    );
    const wallMs = step
      ? step.finishedMs - step.startedMs
      : mine.length > 0
        ? Math.max(...mine.map((r) => r.closedMs)) - Math.min(...mine.map((r) => r.scheduledMs))
        : 0;
    return {
      name,
      wallSeconds: seconds(wallMs),
      criticalActivitySeconds: seconds(onPath.reduce((sum, run) => sum + run.closedMs - run.startedMs, 0)),
      ...(longest
        ? { longest: { type: longest.type, taskQueue: longest.taskQueue, seconds: seconds(longest.closedMs - longest.startedMs) } }
        : {}),
      activities: mine.length,
    };
  });
}
