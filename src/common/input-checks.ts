/**
 * Checks of runbook inputs shared by the CLI (before it starts anything) and the workflows (a run
 * started from the `temporal` CLI or another service gets the same answer). Pure and deterministic:
 * safe inside the workflow sandbox.
 */
import { msToNumber } from '@temporalio/common';

/** What a duration input is, said the way Temporal parses it (the `ms` format). */
export const DURATION_EXPECTED = 'a positive duration like 30s, 5m, 1h or 2d (or milliseconds as a number)';

/** A problem with an optional duration input, or null when it is absent or valid. */
export function durationProblem(field: string, value: unknown): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'string' && typeof value !== 'number') return `${field}: ${JSON.stringify(value)} is not ${DURATION_EXPECTED}`;
  let ms: number;
  try {
    ms = msToNumber(value as Parameters<typeof msToNumber>[0]);
  } catch {
    return `${field}: "${String(value)}" is not ${DURATION_EXPECTED}`;
  }
  return Number.isFinite(ms) && ms > 0 ? null : `${field}: "${String(value)}" is not ${DURATION_EXPECTED}`;
}

/** Problems with every optional duration field of an input. */
export function durationProblems(fields: Record<string, unknown>): string[] {
  return Object.entries(fields)
    .map(([field, value]) => durationProblem(field, value))
    .filter((p): p is string => p !== null);
}

/** A problem with a required name (cluster, member, node), or null. */
export function nameProblem(field: string, value: unknown, what: string): string | null {
  return typeof value === 'string' && value.trim() !== '' ? null : `${field}: expected ${what}, got ${JSON.stringify(value)}`;
}

/** A problem with an optional boolean flag (approved, dryRun), or null. */
export function flagProblem(field: string, value: unknown): string | null {
  return value === undefined || typeof value === 'boolean' ? null : `${field}: expected true or false, got ${JSON.stringify(value)}`;
}
