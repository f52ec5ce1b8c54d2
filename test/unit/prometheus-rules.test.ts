/**
 * deploy/prometheus/alerts.yml: valid rules, every alert tested by alerts.test.yml with
 * `promtool test rules` (Debian's `prometheus` package, installed by scripts/install-deps.sh), and
 * every series it uses is one the management worker exports (src/metrics/derive.ts).
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { METRICS } from '../../src/metrics/derive';

const dir = join(__dirname, '..', '..', 'deploy', 'prometheus');
const rules = parse(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
const tests = parse(readFileSync(join(dir, 'alerts.test.yml'), 'utf8')) as {
  tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
};
const alerts = rules.groups.flatMap((g) => g.rules);

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('promtool', args, { cwd: dir });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error("promtool not found: install Debian's prometheus package (scripts/install-deps.sh does)");
    return { code: Number(e.code), out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('Prometheus alerts', () => {
  it('are valid rules and pass their promtool unit tests', async () => {
    const check = await promtool('check', 'rules', 'alerts.yml');
    expect(check.code, check.out).toBe(0);
    const run = await promtool('test', 'rules', 'alerts.test.yml');
    expect(run.code, run.out).toBe(0);
    expect(run.out).toContain('SUCCESS');
  });

  it('every alert is tested firing and quiet', () => {
    for (const { alert } of alerts) {
      const cases = tests.tests.flatMap((t) => t.alert_rule_test).filter((c) => c.alertname === alert);
      expect(
        cases.some((c) => c.exp_alerts.length > 0),
        `${alert} fires in a test`,
      ).toBe(true);
      expect(
        cases.some((c) => c.exp_alerts.length === 0),
        `${alert} stays quiet in a test`,
      ).toBe(true);
    }
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'NnoeDrBackupStale',
        'NnoeDrDrillFailing',
        'NnoeDrVerificationOld',
        'NnoeDrCaptureLagging',
        'NnoeDrPruneFailing',
        'NnoeDrNodeQueueUnpolled',
      ]),
    );
  });

  it('uses only series the management worker exports', () => {
    const used = new Set(alerts.flatMap((a) => a.expr.match(/\bnnoe_dr_[a-z_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(Object.keys(METRICS), name).toContain(name);
  });
});
