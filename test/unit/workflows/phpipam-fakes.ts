/** Answers of a reachable phpIPAM database and its app for the stubbed-activity workflow tests (phpIPAM restore, DR). */
import type { ArtefactRecord } from '../../../src/common/manifest';
import type { ResultOf, Stubs } from '../support/stubbed-workers';

export const PHPIPAM_APP = 'phpipam-web.service';
const TABLES = [
  { name: 'ipaddresses', engine: 'InnoDB', rows: 2000, checksum: '1234' },
  { name: 'subnets', engine: 'InnoDB', rows: 10, checksum: '99' },
];

export function phpipamRestorePlan(
  cluster: string,
  setId: string,
  overrides: Partial<ResultOf<'planPhpipamRestore'>> = {},
): ResultOf<'planPhpipamRestore'> {
  return {
    cluster,
    setId,
    setCreatedAt: '2026-12-04T06:00:00.000Z',
    setStatus: 'complete',
    artefact: { key: `${setId}/phpipam-dump.sql.gz` } as unknown as ArtefactRecord,
    database: 'phpipam@127.0.0.1:3306',
    live: 'phpipam',
    staging: 'phpipam_restore_20261204',
    keepAs: 'phpipam_pre_restore_20261204',
    facts: { flavour: 'mariadb', version: '10.11.6', dumpTool: 'mariadb-dump', tables: TABLES },
    appService: PHPIPAM_APP,
    unreachableTargets: [],
    ...overrides,
  };
}

/** Every step of a phpIPAM restore succeeding, for the set the plan names. */
export function healthyPhpipamStubs(cluster: string, setId: string): Stubs {
  return {
    planPhpipamRestore: () => phpipamRestorePlan(cluster, setId),
    stagePhpipamDump: () => ({
      path: '/work/dump.sql',
      bytes: 4096,
      target: 'local',
      server: { flavour: 'mariadb', version: '10.11.6' },
      client: 'mariadb 10.11.6',
      liveTables: 2,
      warnings: [],
    }),
    discardStagedDump: () => undefined,
    stopPhpipamApp: () => ({ service: PHPIPAM_APP, wasRunning: true }),
    loadPhpipamDump: (i) => ({
      schema: i.staging,
      bytes: 4096,
      tables: TABLES.map((t) => t.name),
      triggers: [],
      routines: [],
      events: [],
      neutralised: 0,
      ms: 10,
    }),
    verifyPhpipamStaging: (i) => ({ schema: i.staging, ok: true, mismatches: [], tables: TABLES, ms: 5 }),
    swapPhpipamSchema: (i) => ({
      live: 'phpipam',
      keepAs: i.keepAs,
      tables: TABLES.map((t) => ({ name: t.name, rows: t.rows })),
      keptOnly: [],
      triggers: [],
      routines: [],
      events: [],
      stagingDropped: true,
      warnings: [],
      renameMs: 3,
      resumed: false,
    }),
    dropPhpipamStaging: (i) => ({ dropped: i.staging }),
    startPhpipamApp: () => ({ service: PHPIPAM_APP, running: true }),
  };
}
