/** How database errors are told to the operator: a missing GRANT is not a rejected password. */
import { describe, expect, it } from 'vitest';
import { databaseFailure, dumpFailure, PhpipamSchema, restoreConnectionOf } from '../../src/phpipam';

const cfg = PhpipamSchema.parse({ host: '10.0.0.5', port: 3306, database: 'phpipam', user: 'phpipam_restore', password: { env: 'PW' } });

describe('phpIPAM database failures', () => {
  it('a database the user may not use (1044) names the missing GRANT, not the credentials', () => {
    const failure = databaseFailure(
      { errno: 1044, sqlMessage: "Access denied for user 'phpipam_restore'@'%' to database 'phpipam_drill_20261204'" },
      cfg,
    );
    expect(failure.type).toBe('DatabasePrivilegeMissing');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('user phpipam_restore may not use database phpipam_drill_20261204 on 10.0.0.5:3306');
    expect(failure.message).toContain("missing: GRANT ALL PRIVILEGES ON `phpipam\\_%`.* TO 'phpipam_restore'@'<host>'");
    expect(failure.message).not.toMatch(/rejected the credentials/);
    const dump = dumpFailure(
      cfg,
      'mariadb-dump',
      'exit 2',
      "mariadb-dump: Got error: 1044: \"Access denied for user 'phpipam_restore'@'%' to database 'phpipam'\" when selecting the database",
    );
    expect(dump.message).toContain("missing: GRANT ALL PRIVILEGES ON `phpipam`.* TO 'phpipam_restore'@'<host>'");
  });

  it('a wrong password (1045) is still rejected credentials', () => {
    expect(databaseFailure({ errno: 1045, sqlMessage: 'Access denied' }, cfg).type).toBe('DatabaseAuthFailed');
  });

  it('restores and drills connect as the restore credential when one is configured', () => {
    expect(restoreConnectionOf(cfg)).toBe(cfg);
    const withRestore = PhpipamSchema.parse({
      ...cfg,
      user: 'phpipam',
      restore: { user: 'phpipam_restore', password: { file: '/etc/nnoe-dr/restore-pw' } },
    });
    expect(restoreConnectionOf(withRestore)).toMatchObject({
      user: 'phpipam_restore',
      password: { file: '/etc/nnoe-dr/restore-pw' },
      database: 'phpipam',
      host: '10.0.0.5',
    });
  });
});
