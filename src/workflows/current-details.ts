/**
 * The run's "current details" in the Temporal UI: the step table of the progress query and, while
 * the run waits for its approval, the plan and the exact approve commands. Setting them adds no
 * command to the history (the UI reads them through the built-in metadata query), so replay is unaffected.
 */
import { setCurrentDetails } from '@temporalio/workflow';
import { stepTable } from '../common/run-metadata';
import type { RunProgress } from './progress';

// Module state is per run: each workflow run has its own copy of the bundle's modules.
let steps = '';
let awaitingApproval: string | null = null;

function show(): void {
  setCurrentDetails(awaitingApproval ? `${awaitingApproval}\n\n${steps}` : steps);
}

export function showSteps(progress: RunProgress): void {
  steps = stepTable(progress.runbook, progress.state, progress.steps, progress.setId);
  show();
}

/** While waiting for the approval: the plan and how to approve it; null once answered. */
export function showAwaitingApproval(details: string | null): void {
  awaitingApproval = details;
  show();
}
