/**
 * A workflow given bad input fails at once, non-retryably, naming every problem: a workflow task
 * that throws a plain error is retried forever (WorkflowTaskFailed). Called before the first command,
 * so it needs no `patched` marker.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { FailureType } from '../common/failures';

export function rejectBadInput(runbook: string, problems: Array<string | null>): void {
  const found = problems.filter((p): p is string => p !== null);
  if (found.length > 0) throw ApplicationFailure.nonRetryable(`bad input for ${runbook}: ${found.join('; ')}`, FailureType.InvalidInput);
}
