/**
 * A real browser on the Temporal UI: Debian's `chromium`, headless, renders a page (the UI is a
 * single-page app: the DOM only holds the run once its scripts fetched it) and keeps a screenshot
 * under test-artifacts/ (gitignored; CI keeps it as an artefact).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ARTIFACTS_DIR = join(__dirname, '..', '..', 'test-artifacts');

function chromium(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('chromium', args, { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`chromium ${args.at(-1)} failed: ${error.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

/** Headless chromium with its own profile (several may run on one machine); root needs --no-sandbox. */
async function withProfile<T>(run: (flags: string[]) => Promise<T>): Promise<T> {
  const profile = await mkdtemp(join(tmpdir(), 'nnoe-dr-chromium-'));
  try {
    return await run([
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      // Virtual time runs the page's scripts and fetches until it settles (or the budget ends).
      '--virtual-time-budget=20000',
      '--window-size=1920,1300',
    ]);
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The page's DOM as rendered, reduced to its text (scripts and styles dropped). */
export async function renderedText(url: string): Promise<string> {
  const dom = await withProfile((flags) => chromium([...flags, '--dump-dom', url]));
  return dom
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/\s+/g, ' ');
}

/** A PNG of the page under test-artifacts/<name>.png; returns its path. */
export async function screenshot(url: string, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await withProfile((flags) => chromium([...flags, `--screenshot=${path}`, url]));
  return path;
}

/**
 * A run's event history page in the Temporal UI (where the run's and each activity's summary show),
 * every event on one page (the UI shows the newest 100 by default: a restore has more).
 */
export function runHistoryUrl(uiUrl: string, workflowId: string, runId: string, namespace = 'default'): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history?per-page=500`;
}
