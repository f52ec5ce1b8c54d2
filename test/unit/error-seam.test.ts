/**
 * The activity error seam (src/activities/error-seam.ts): every activity a worker registers goes
 * through it, every domain error keeps its type, message and retryability, and no error class
 * can be added to src/ without deciding whether it is a DomainError.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createManagementActivities, createNodeActivities } from '../../src/activities';
import { isBehindErrorSeam, toApplicationFailure, withErrorSeam } from '../../src/activities/error-seam';
import { DomainError } from '../../src/common/domain-errors';
import { FailureType, NON_RETRYABLE } from '../../src/common/failures';
import { InjectedFault } from '../../src/common/failpoints';
import { ConfigError, parseConfig } from '../../src/config/load';
import { SecretUnavailableError } from '../../src/config/secrets';
import { EtcdAuthenticationError, EtcdTlsMaterialError } from '../../src/etcd/connect';
import { UnsafeArchiveError } from '../../src/archive/extract';
import { AgentNotConfiguredError } from '../../src/agent/node-agent';
import { AgentConfigError } from '../../src/agent/agent-toml';
import { NebulaCertError } from '../../src/nebula/certs';
import { ArtefactUnusableError } from '../../src/restore/fetch';

const SRC = join(__dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function failureOf(err: unknown): ApplicationFailure {
  const mapped = toApplicationFailure(err);
  expect(mapped).toBeInstanceOf(ApplicationFailure);
  return mapped as ApplicationFailure;
}

describe('the activity error seam', () => {
  it('every activity of the management and node workers goes through it', () => {
    const config = parseConfig({
      workDir: '/tmp/nnoe-seam-test',
      clusters: [
        {
          name: 'prod',
          etcd: { members: [{ name: 'e1', node: 'n1', clientUrl: 'https://10.0.0.1:2379', peerUrl: 'https://10.0.0.1:2380' }] },
        },
      ],
      storage: [{ name: 'a', type: 'local', path: '/tmp/nnoe-seam-test/a' }],
    });
    const registered = { ...createManagementActivities({ config }), ...createNodeActivities({ config, node: 'n1' }) };
    const names = Object.keys(registered);
    expect(names.length).toBeGreaterThan(60);
    expect(names.filter((name) => !isBehindErrorSeam(registered[name as keyof typeof registered]))).toEqual([]);
    expect(names).toContain('describeNode'); // the one the hand-written wraps had missed
  });

  it('maps every failure type with its message and retryability, as thrown', () => {
    for (const type of Object.values(FailureType)) {
      for (const nonRetryable of [true, false]) {
        const failure = failureOf(new DomainError(`it broke (${type})`, type, nonRetryable));
        expect({ message: failure.message, type: failure.type, nonRetryable: failure.nonRetryable }).toEqual({
          message: `it broke (${type})`,
          type,
          nonRetryable,
        });
      }
    }
    expect(failureOf(DomainError.nonRetryable('m', FailureType.RestoreRefused)).nonRetryable).toBe(true);
    expect(failureOf(DomainError.retryable('m', FailureType.StorageUnavailable)).nonRetryable).toBe(false);
  });

  it('keeps the mapping of each domain error class that existed before the seam', () => {
    const cases: Array<[Error, string, boolean]> = [
      [new ConfigError('x.yaml', ['a: bad']), FailureType.ConfigError, true],
      [new SecretUnavailableError('secret env FOO is not set'), FailureType.SecretUnavailable, true],
      [new InjectedFault('injected fault at failpoint p'), 'InjectedFault', true],
      [new EtcdTlsMaterialError('etcd CA /x cannot be read'), FailureType.EtcdTlsMaterialMissing, true],
      [new EtcdAuthenticationError('refused user'), FailureType.EtcdAuthenticationFailed, true],
      [new UnsafeArchiveError('../x', 'leaves the root', 'a relative path'), FailureType.UnsafeArchive, true],
      [new AgentNotConfiguredError('no agent on n9'), FailureType.InvalidInput, true],
      [new AgentConfigError('agent.toml lacks [etcd]'), FailureType.ConfigError, true],
      [new NebulaCertError(['host.crt'], 'not issued by ca.crt'), FailureType.NebulaCertInvalid, true],
      // Written once, in the class: every copy bad is final, an unreadable store is not.
      [new ArtefactUnusableError('every copy is bad'), FailureType.ChecksumMismatch, true],
      [new ArtefactUnusableError('a store could not be read', false), FailureType.StorageUnavailable, false],
    ];
    for (const [err, type, nonRetryable] of cases) {
      const failure = failureOf(err);
      expect({ type: failure.type, nonRetryable: failure.nonRetryable, message: failure.message }, err.name).toEqual({
        type,
        nonRetryable,
        message: err.message,
      });
    }
  });

  it('maps a full disk to InsufficientDisk naming the file', () => {
    const failure = failureOf(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', path: '/work/x.db' }));
    expect(failure).toMatchObject({ type: FailureType.InsufficientDisk, nonRetryable: true });
    expect(failure.message).toMatch(/^no space left on the filesystem of \/work\/x\.db/);
  });

  it('leaves ApplicationFailures and unknown errors as they are (the SDK makes those retryable, typed with the error name)', async () => {
    const failure = ApplicationFailure.nonRetryable('kept', 'Whatever');
    expect(toApplicationFailure(failure)).toBe(failure);
    const unknown = new TypeError('x is undefined');
    expect(toApplicationFailure(unknown)).toBe(unknown);
    const { boom } = withErrorSeam({
      boom: async () => {
        throw DomainError.nonRetryable('refused', FailureType.RestoreRefused);
      },
    });
    await expect(boom()).rejects.toMatchObject({
      constructor: ApplicationFailure,
      type: FailureType.RestoreRefused,
      nonRetryable: true,
      message: 'refused',
    });
    expect(NON_RETRYABLE.length).toBeGreaterThan(0);
  });

  it('every error class in src/ is a DomainError or listed here as never leaving an activity typed', () => {
    // Errors that are caught and turned into a typed DomainError by their caller, or that are
    // generic on purpose (the SDK's retryable failure named after the class). A new error class
    // must be added to one side or the other: no unmapped type slips through unnoticed.
    const notDomain = new Set([
      'BackupSetNotFoundError',
      'ServiceCommandError',
      'RetentionPolicyError',
      'AgeError',
      'InvalidKeyError',
      'AgeUnavailableError',
      'DecryptionFailedError',
      'CiphertextCorruptedError',
      'ArtefactNotFoundError',
      'DumpNotRestorableError',
      'DumpStreamError',
      'SwapRefusal',
      'DumpToolMissingError',
      'IntegrityProblem',
      // CLI and client side: never thrown by an activity.
      'UsageError',
      'RunFailedError',
    ]);
    const found: Array<{ name: string; base: string; file: string }> = [];
    for (const file of sourceFiles(SRC).filter((f) => !f.includes('/sandbox/'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/class (\w+) extends (\w+)/g)) {
        if (/Error$|Fault$|Refusal$|Problem$/.test(m[2]!) || m[2] === 'DomainError')
          found.push({ name: m[1]!, base: m[2]!, file: relative(SRC, file) });
      }
    }
    const domain = new Set(['DomainError', ...found.filter((c) => c.base === 'DomainError').map((c) => c.name)]);
    const unclassified = found.filter(
      (c) => !notDomain.has(c.name) && !domain.has(c.name) && !domain.has(c.base) && !notDomain.has(c.base),
    );
    expect(unclassified).toEqual([]);
    expect([...domain]).toEqual(expect.arrayContaining(['ConfigError', 'ArtefactUnusableError', 'InjectedFault', 'UnsafeArchiveError']));
  });

  it('domain modules never import Temporal; only the seam and workflows make ApplicationFailures', () => {
    const temporalLayers = [
      'activities/',
      'workflows/',
      'client/',
      'status/',
      'metrics/',
      'scripts/',
      'worker.ts',
      'common/input-checks.ts',
      'common/search-attributes.ts',
    ];
    const offenders = sourceFiles(SRC)
      .map((f) => relative(SRC, f))
      .filter((f) => !temporalLayers.some((layer) => f.startsWith(layer)) && !f.startsWith('sandbox/'))
      .filter((f) => /from '@temporalio\//.test(readFileSync(join(SRC, f), 'utf8')));
    expect(offenders).toEqual([]);
    const makers = sourceFiles(join(SRC, 'activities'))
      .filter((f) => /ApplicationFailure/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(makers).toEqual(['activities/error-seam.ts']);
  });
});
