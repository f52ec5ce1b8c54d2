/**
 * Temporal's time-skipping test server for workflow tests in the unit project: the Java server
 * scripts/install-temporal-test-server.sh puts into the cache (the SDK's own download of the native
 * build comes from temporal.download, which CI cannot reach). Timers and retry backoffs pass at once
 * while a test waits for a result, so an approval timeout of an hour takes milliseconds.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTE_KEYS } from '../../../src/common/search-attributes';

const INSTALL_SCRIPT = resolve(__dirname, '../../../scripts/install-temporal-test-server.sh');

/** Where the install script puts the launcher: its version is read from the script, the one place it is written. */
export function testServerPath(): string {
  const version = /^TEST_SERVER_VERSION=(\S+)$/m.exec(readFileSync(INSTALL_SCRIPT, 'utf8'))?.[1];
  if (!version) throw new Error(`no TEST_SERVER_VERSION=... line in ${INSTALL_SCRIPT}`);
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'nnoe-dr', 'temporal-test-server', version, 'bin', 'temporal-test-server');
}

/** The environment on the installed test server, with our search attributes registered. */
export async function startTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const path = testServerPath();
  if (!existsSync(path)) {
    throw new Error(
      `Temporal's time-skipping test server is not installed (expected ${path}): run bash scripts/install-temporal-test-server.sh (scripts/install-deps.sh runs it)`,
    );
  }
  const start = () => TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
  // The SDK gives the server 5 s to answer; on a loaded machine a JVM start can miss that once.
  const env = await start().catch((err: unknown) => {
    if (!String(err).includes('did not start within')) throw err;
    return start();
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTE_KEYS.map((k) => [k.name, 1 /* INDEXED_VALUE_TYPE_KEYWORD */])),
  });
  return env;
}
