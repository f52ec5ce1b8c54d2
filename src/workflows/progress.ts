/**
 * Progress of a runbook run, readable at any time with the `progress` query (CLI, UI, other
 * services). Each step is named in the runbook's words.
 */
import { defineQuery, setHandler } from '@temporalio/workflow';
import { showSteps } from './current-details';

export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

export interface StepProgress {
  name: string;
  state: StepState;
  startedAt?: string;
  finishedAt?: string;
  /** One line a person can read: which member, how many bytes, why it failed. */
  detail?: string;
}

export interface RunProgress {
  runbook: string;
  cluster: string;
  setId?: string;
  state: 'running' | 'completed' | 'failed';
  steps: StepProgress[];
}

export const progressQuery = defineQuery<RunProgress>('progress');

export class ProgressTracker {
  readonly progress: RunProgress;

  constructor(runbook: string, cluster: string, plannedSteps: string[]) {
    this.progress = { runbook, cluster, state: 'running', steps: plannedSteps.map((name) => ({ name, state: 'pending' })) };
    setHandler(progressQuery, () => this.progress);
    this.show();
  }

  /** The UI's current details follow the step table (no command: replay is unaffected). */
  private show(): void {
    showSteps(this.progress);
  }

  private stepNamed(name: string): StepProgress {
    let step = this.progress.steps.find((s) => s.name === name);
    if (!step) {
      step = { name, state: 'pending' };
      this.progress.steps.push(step);
    }
    return step;
  }

  /** Runs one step, recording its state, timing and a detail line derived from its result. */
  async step<T>(name: string, run: () => Promise<T>, describe?: (result: T) => string): Promise<T> {
    const step = this.stepNamed(name);
    step.state = 'running';
    step.startedAt = new Date().toISOString();
    this.show();
    try {
      const result = await run();
      step.state = 'done';
      if (describe) step.detail = describe(result);
      return result;
    } catch (err) {
      step.state = 'failed';
      step.detail = err instanceof Error ? rootMessage(err) : String(err);
      throw err;
    } finally {
      step.finishedAt = new Date().toISOString();
      this.show();
    }
  }

  note(name: string, detail: string): void {
    this.stepNamed(name).detail = detail;
    this.show();
  }

  finish(state: 'completed' | 'failed'): void {
    this.progress.state = state;
    for (const step of this.progress.steps) if (step.state === 'pending') step.state = 'skipped';
    this.show();
  }
}

/** The innermost cause's message: an ActivityFailure wraps the ApplicationFailure that says what happened. */
export function rootMessage(err: Error): string {
  let current: Error = err;
  while ((current as { cause?: unknown }).cause instanceof Error) current = (current as { cause: Error }).cause;
  return current.message;
}
