// Prints the failed tests of vitest JSON reports (one per pass of scripts/test.sh), one block per
// test with the first lines of its error, so the end of a long CI log says what failed; and the
// flaky ones: passed on CI's one retry of a world test (vitest keeps the failed attempt's error).
// Usage: node test/support/print-failures.mjs <report.json>...
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

const ERROR_LINES = 6;
for (const reportPath of process.argv.slice(2)) {
  if (!existsSync(reportPath)) {
    console.log(`== ${reportPath}: no report (the pass ended before vitest wrote it)`);
    continue;
  }
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  for (const file of report.testResults ?? []) {
    const failedTests = (file.assertionResults ?? []).filter((test) => test.status === 'failed');
    // A file can fail without a failed test (its hooks or the world's setup threw).
    if (file.status === 'failed' && failedTests.length === 0) {
      console.log(`== FAILED FILE ${relative(process.cwd(), file.name)}\n${firstLines(file.message)}`);
    }
    for (const test of failedTests) {
      console.log(`== FAILED ${relative(process.cwd(), file.name)} > ${test.fullName}`);
      console.log(firstLines((test.failureMessages ?? []).join('\n')));
    }
    const flakyTests = (file.assertionResults ?? []).filter((test) => test.status === 'passed' && (test.failureMessages ?? []).length > 0);
    for (const test of flakyTests) {
      console.log(`== FLAKY (passed on retry) ${relative(process.cwd(), file.name)} > ${test.fullName}`);
      console.log(firstLines(test.failureMessages.join('\n')));
    }
  }
}

function firstLines(text) {
  return (text ?? '')
    .split('\n')
    .slice(0, ERROR_LINES)
    .map((line) => `   ${line}`)
    .join('\n');
}
