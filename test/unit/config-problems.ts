import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load';

/** The problems a rejected config names (fails the test when the config is accepted). */
export function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}
