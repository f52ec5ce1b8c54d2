/**
 * What every destructive runbook shares: an approval gate (the `approve` Update with a validator,
 * the `plan` query, a timeout that ends the run having changed nothing) and failure typing.
 */
import { ApplicationFailure, condition, defineQuery, defineUpdate, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { rootMessage, type ProgressTracker } from './progress';
import { showAwaitingApproval } from './current-details';
import { approvalDetails } from '../common/run-metadata';
import { FailureType } from '../common/failures';
import { describePlanView } from '../common/plan-view';
import type { Duration } from '@temporalio/common';

export interface RestoreApproval {
  /** Must name the set the plan shows (when it shows one): an approval is for one set, not for whatever the plan becomes. */
  setId?: string;
  /** Must be one of the cluster's `approvers` when the config lists them. */
  approvedBy: string;
  /**
   * The approving client's Temporal identity (the CLI sends its own). Update handlers do not see the
   * caller's identity (SDK 1.x), so it is passed in and recorded as told; the one the server checked
   * is in the history's WorkflowExecutionUpdateAccepted event (acceptedRequest.meta.identity).
   */
  identity?: string;
}

export type ApprovalState = 'planning' | 'awaiting-approval' | 'approved' | 'not-approved' | 'dry-run';

export const approveRestoreUpdate = defineUpdate<{ approvedBy: string; identity?: string | null }, [RestoreApproval]>('approve');

/** The view a restore exposes through its `plan` query. */
export interface PlanView {
  state: ApprovalState;
  /**
   * No setId: a runbook that restores no set (member replacement). `approvers`: the cluster's
   * config list, read by the plan's activity on the worker (never from the run's input, which
   * whoever starts the run writes); absent: any name is accepted and recorded.
   */
  plan: { setId?: string; approvers?: string[] } | null;
}

/** Why `name` may not approve a run of a cluster whose config lists `approvers` (null: it may). */
export function approverProblem(name: string, approvers: string[] | undefined): string | null {
  if (approvers === undefined || approvers.includes(name.trim())) return null;
  return `${JSON.stringify(name)} may not approve runs of this cluster; the config's approvers are: ${approvers.map((a) => JSON.stringify(a)).join(', ')}`;
}

/** "approved by X (client identity Y)": the step detail that records who approved. */
export function describeApproval(approvedBy: string | null, identity: string | null): string {
  return `approved by ${approvedBy}${identity ? ` (client identity ${identity})` : ''}`;
}

export function planQuery<V extends PlanView>() {
  return defineQuery<V>('plan');
}

export interface ApprovalGate {
  approvedBy(): string | null;
  /** The approving client's identity as it sent it (null: up front, or a client that did not say). */
  identity(): string | null;
  /** The step detail recording who approved. */
  describe(): string;
  await(input: ApprovalInput): Promise<boolean>;
}

export interface ApprovalInput {
  approved?: boolean;
  approvalTimeout?: Duration;
}

/**
 * The runbooks' 'approval' step: waits on the gate; when the time runs out it fails
 * `ApprovalTimedOut`: "<what> was not approved within <timeout>; nothing was changed".
 */
export function approvalStep(tracker: ProgressTracker, approval: ApprovalGate, input: ApprovalInput, what: string): Promise<void> {
  return tracker.step(
    'approval',
    async () => {
      if (!(await approval.await(input))) {
        throw ApplicationFailure.nonRetryable(
          `${what} was not approved within ${String(input.approvalTimeout ?? '1h')}; nothing was changed`,
          FailureType.ApprovalTimedOut,
        );
      }
    },
    () => approval.describe(),
  );
}

/** Installs the `plan` query and the `approve` Update over `view`. */
export function approvalGate<V extends PlanView>(view: V): ApprovalGate {
  let approvedBy: string | null = null;
  let identity: string | null = null;
  setHandler(planQuery<V>(), () => view);
  setHandler(
    approveRestoreUpdate,
    (approval) => {
      approvedBy = approval.approvedBy;
      identity = typeof approval.identity === 'string' && approval.identity !== '' ? approval.identity : null;
      view.state = 'approved';
      return { approvedBy: approval.approvedBy, identity };
    },
    {
      validator: (approval) => {
        if (view.state !== 'awaiting-approval') throw new Error(`this restore is not waiting for approval (it is ${view.state})`);
        if (!approval || typeof approval.approvedBy !== 'string' || approval.approvedBy.trim() === '')
          throw new Error('an approval names who approves: { approvedBy: "<name>", setId }');
        if (view.plan?.setId !== undefined && approval.setId !== view.plan.setId) {
          throw new Error(
            `this restore would restore set ${view.plan.setId}, not ${String(approval.setId)}: approve the set the plan shows`,
          );
        }
        // Rejected in the validator: the Update is never accepted, so the run's history does not change.
        const notAllowed = approverProblem(approval.approvedBy, view.plan?.approvers);
        if (notAllowed) throw new Error(notAllowed);
      },
    },
  );
  return {
    approvedBy: () => approvedBy,
    identity: () => identity,
    describe: () => describeApproval(approvedBy, identity),
    /** True once approved (up front by the input, or by the Update); false when the time ran out. */
    await: async (input) => {
      if (input.approved === true) {
        approvedBy = `input of ${workflowInfo().workflowId}`;
        view.state = 'approved';
        return true;
      }
      view.state = 'awaiting-approval';
      const { workflowId } = workflowInfo();
      showAwaitingApproval(
        approvalDetails(
          workflowId,
          view.plan?.setId,
          describePlanView(workflowId, view as unknown as Parameters<typeof describePlanView>[1]),
        ),
      );
      const answered = await condition(() => approvedBy !== null, input.approvalTimeout ?? '1h');
      showAwaitingApproval(null);
      if (!answered) view.state = 'not-approved';
      return answered;
    },
  };
}

/** The type of the first ApplicationFailure in a failure chain (e.g. ChecksumMismatch, UnsafeArchive), for callers matching on it. */
export function failureTypeOf(err: unknown): string | undefined {
  let current: unknown = err;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure && current.type) return current.type;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * The run's own failure names the problem: an activity's or child's failure reaches the top as
 * "Activity task failed" / "Child Workflow execution failed", with the reason in its causes. The
 * reason becomes the message (prefixed with `what`), its type is kept, the chain stays as cause.
 * Cancellations and failures already raised by the workflow itself pass through.
 */
export function runFailure(what: string, err: unknown): unknown {
  if (isCancellation(err) || !(err instanceof Error) || (err instanceof ApplicationFailure && err.type)) return err;
  return ApplicationFailure.create({ message: `${what}: ${rootMessage(err)}`, type: failureTypeOf(err), nonRetryable: true, cause: err });
}
