/**
 * Repointing an etcd member's service (src/etcd/member-service.ts and its pure parts beside it): the pure argv and command-line
 * rewrites (checked against Python's own shlex, which supervisord uses), program-file lookup through
 * [include] globs, the systemd drop-in on a temp dir, and a real private supervisord whose stand-in
 * "etcd" is restarted with the new flags and back.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { sha256 } from '../../src/etcd/durable-file';
import { currentDataDir, restoredDataDir, rewriteEtcdArgs } from '../../src/etcd/etcd-argv';
import { EtcdFlagChanges, MemberConfigChange, currentEtcdArgs, repointEtcdMember, revertEtcdMember } from '../../src/etcd/member-service';
import {
  formatSupervisorCommand,
  locateProgramConfig,
  parseSupervisorCommand,
  replaceProgramCommand,
} from '../../src/etcd/supervisor-program-file';
import { DROP_IN_NAME, parseSystemdExecStart, quoteSystemdArg, renderSystemdDropIn } from '../../src/etcd/systemd-drop-in';
import { waitUntil } from '../../src/sandbox/ports';
import {
  SupervisorLayout,
  processesWithEnvironmentMarker,
  programStates,
  renderProgramConfig,
  shutdownSupervisord,
  startSupervisord,
  supervisorLayout,
  supervisorctl,
  terminateProcesses,
  writeProgramConfig,
  writeSupervisordConfig,
} from '../../src/sandbox/supervisor';

const ETCD = '/usr/bin/etcd';
const CHANGES: EtcdFlagChanges = {
  dataDir: '/var/lib/etcd/restored-set-1',
  initialCluster: 'a=https://10.0.0.1:2380,b=https://10.0.0.2:2380',
  initialClusterState: 'existing',
  initialClusterToken: 'nnoe-restored',
};

/** What supervisord itself makes of a command= value: ConfigParser's %-formatting, then shlex.split. */
function pythonSupervisorSplit(value: string): string[] {
  const script = 'import json, shlex, sys; print(json.dumps(shlex.split(sys.argv[1] % {})))';
  return JSON.parse(execFileSync('python3', ['-c', script, value], { encoding: 'utf8' })) as string[];
}

describe('rewriteEtcdArgs', () => {
  it('replaces --flag=value elements in place', () => {
    const argv = [
      ETCD,
      '--name=a',
      '--data-dir=/var/lib/etcd/a',
      '--initial-cluster=a=https://x:2380',
      '--initial-cluster-state=new',
      '--initial-cluster-token=t1',
      '--logger=zap',
    ];
    expect(rewriteEtcdArgs(argv, CHANGES)).toEqual([
      ETCD,
      '--name=a',
      '--data-dir=/var/lib/etcd/restored-set-1',
      `--initial-cluster=${CHANGES.initialCluster}`,
      '--initial-cluster-state=existing',
      '--initial-cluster-token=nnoe-restored',
      '--logger=zap',
    ]);
    expect(argv[2]).toBe('--data-dir=/var/lib/etcd/a'); // input untouched
  });

  it('replaces the value element of the --flag value form, keeping single-dash spellings', () => {
    const argv = [ETCD, '--data-dir', '/old', '--initial-cluster', 'a=u', '-initial-cluster-state', 'new', '--initial-cluster-token', 't'];
    expect(rewriteEtcdArgs(argv, CHANGES)).toEqual([
      ETCD,
      '--data-dir',
      CHANGES.dataDir,
      '--initial-cluster',
      CHANGES.initialCluster,
      '-initial-cluster-state',
      'existing',
      '--initial-cluster-token',
      'nnoe-restored',
    ]);
  });

  it('appends missing flags, before a -- terminator if there is one', () => {
    expect(rewriteEtcdArgs([ETCD, '--name=a'], CHANGES)).toEqual([
      ETCD,
      '--name=a',
      `--data-dir=${CHANGES.dataDir}`,
      `--initial-cluster=${CHANGES.initialCluster}`,
      '--initial-cluster-state=existing',
      '--initial-cluster-token=nnoe-restored',
    ]);
    expect(rewriteEtcdArgs([ETCD, '--name=a', '--', 'positional'], { dataDir: '/d' })).toEqual([
      ETCD,
      '--name=a',
      '--data-dir=/d',
      '--',
      'positional',
    ]);
  });

  it('touches only the flags it is given and does not mistake one flag for its prefix', () => {
    const argv = [ETCD, '--initial-cluster-state=new', '--initial-cluster-token=t', '--data-dir=/a', '--initial-cluster=a=u'];
    expect(rewriteEtcdArgs(argv, { dataDir: '/b' })).toEqual([
      ETCD,
      '--initial-cluster-state=new',
      '--initial-cluster-token=t',
      '--data-dir=/b',
      '--initial-cluster=a=u',
    ]);
  });

  it('refuses a flag set twice, in any spelling', () => {
    expect(() => rewriteEtcdArgs([ETCD, '--data-dir=/a', '--data-dir', '/b'], CHANGES)).toThrow(/--data-dir twice/);
    expect(() => rewriteEtcdArgs([ETCD, '-initial-cluster-token=x', '--initial-cluster-token=y'], CHANGES)).toThrow(
      /--initial-cluster-token twice/,
    );
  });

  it('refuses argv that does not start with an etcd executable', () => {
    expect(() => rewriteEtcdArgs(['--name=a', '--data-dir=/a'], CHANGES)).toThrow(/starting with the etcd executable.*"--name=a"/);
    expect(() => rewriteEtcdArgs(['bin/etcd', '--data-dir=/a'], CHANGES)).toThrow(/etcd executable/);
    expect(() => rewriteEtcdArgs([], CHANGES)).toThrow(/etcd executable/);
    expect(() => rewriteEtcdArgs(['/bin/sh', '-c', 'exec etcd --data-dir=/a'], CHANGES)).toThrow(/starts with \/bin\/sh/);
    expect(rewriteEtcdArgs(['etcd'], { dataDir: '/d' })).toEqual(['etcd', '--data-dir=/d']);
    expect(rewriteEtcdArgs(['/opt/stand-in/anything'], { dataDir: '/d' })).toEqual(['/opt/stand-in/anything', '--data-dir=/d']);
  });

  it('refuses command lines whose flags etcd would not use as the restore expects', () => {
    expect(() => rewriteEtcdArgs([ETCD, '--config-file=/etc/etcd.yml'], CHANGES)).toThrow(/--config-file/);
    expect(() => rewriteEtcdArgs([ETCD, '--name=a', '--data-dir'], CHANGES)).toThrow(/ends with --data-dir and no value/);
    expect(() => rewriteEtcdArgs([ETCD, '--wal-dir=/wal'], CHANGES)).toThrow(/own --wal-dir/);
    expect(rewriteEtcdArgs([ETCD, '--wal-dir=/wal'], { dataDir: '/d', walDir: '/w' })).toEqual([ETCD, '--wal-dir=/w', '--data-dir=/d']);
    expect(() => rewriteEtcdArgs([ETCD], { dataDir: 'relative/dir' })).toThrow(/absolute --data-dir/);
  });
});

describe('currentDataDir and restoredDataDir', () => {
  it('reads --data-dir in both forms and names the restored dir beside it', () => {
    expect(currentDataDir([ETCD, '--name=a', '--data-dir=/var/lib/etcd/a'])).toBe('/var/lib/etcd/a');
    expect(currentDataDir([ETCD, '--data-dir', '/x=y'])).toBe('/x=y');
    expect(() => currentDataDir([ETCD, '--name=a'])).toThrow(/no --data-dir/);
    expect(restoredDataDir('/var/lib/etcd/a', 'nnoe-20250101T000000Z')).toBe('/var/lib/etcd/restored-nnoe-20250101T000000Z');
  });
});

describe('supervisor command= lines', () => {
  const tricky = [
    '/usr/bin/etcd',
    '--name=a b',
    "it's",
    'say "hi"',
    '100%',
    '',
    'back\\slash',
    '$HOME',
    'tab\there',
    'a;b',
    '#x',
    'mixed \'q\' "Q" %% \\',
  ];

  it('round-trips argv through quoteArg and parseSupervisorCommand, as supervisord itself splits it', () => {
    const value = formatSupervisorCommand(tricky);
    expect(parseSupervisorCommand(value)).toEqual(tricky);
    expect(parseSupervisorCommand(`command=${value}`)).toEqual(tricky);
    expect(pythonSupervisorSplit(value)).toEqual(tricky);
  });

  it('splits plain and hand-quoted lines like Python shlex, inline comment cut', () => {
    const lines = [
      '/usr/bin/etcd  --name=a\t--data-dir /x',
      String.raw`/usr/bin/etcd "a \"b\" \\c \d" a\ b '' x"y"z`,
      '/usr/bin/etcd --a=100%%',
    ];
    for (const line of lines) expect(parseSupervisorCommand(line)).toEqual(pythonSupervisorSplit(line));
    expect(parseSupervisorCommand('command = /usr/bin/etcd --name=a ; the member')).toEqual(['/usr/bin/etcd', '--name=a']);
  });

  it('refuses what it cannot rewrite faithfully', () => {
    expect(() => parseSupervisorCommand('/usr/bin/etcd --data-dir=%(ENV_HOME)s/etcd')).toThrow(/%\(\.\.\.\)s expansion/);
    expect(() => parseSupervisorCommand('/usr/bin/etcd 100%')).toThrow(/lone '%'/);
    expect(() => parseSupervisorCommand("/usr/bin/etcd 'open")).toThrow(/no closing '/);
    expect(() => formatSupervisorCommand(['/usr/bin/etcd', 'a ;b'])).toThrow(/cut this command/);
    expect(() => formatSupervisorCommand(['/usr/bin/etcd', 'two\nlines'])).toThrow(/line break/);
  });

  it('replaces only the command= line of the program file', () => {
    const layout = supervisorLayout('/srv/world');
    const text = renderProgramConfig(layout, { name: 'etcd-1', command: [ETCD, '--data-dir=/a'], directory: '/srv' });
    const next = replaceProgramCommand(text, 'etcd-1', [ETCD, '--data-dir=/b b']);
    const [before, after] = [text.split('\n'), next.split('\n')];
    expect(after.filter((line, i) => line !== before[i])).toEqual([`command=${ETCD} '--data-dir=/b b'`]);
    expect(after).toHaveLength(before.length);
  });
});

describe('locateProgramConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-locate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const program = (name: string) => `[program:${name}]\ncommand=${ETCD} --name=${name}\n`;

  async function layoutWith(files: Record<string, string>): Promise<string> {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    return join(dir, 'supervisord.conf');
  }

  it('finds the program in the main conf or in a file its [include] globs match', async () => {
    const conf = await layoutWith({
      'supervisord.conf': `[supervisord]\n\n${program('main')}\n[include]\nfiles = %(here)s/conf.d/*.conf ; comment\n    extra/prog?.ini\n`,
      'conf.d/a.conf': program('a'),
      'conf.d/.hidden.conf': program('hidden'),
      'conf.d/a.conf.pre-restore-x': program('backup-only'),
      'extra/prog1.ini': program('b'),
      'extra/prog10.ini': program('c'),
    });
    expect(await locateProgramConfig(conf, 'main')).toBe(conf);
    expect(await locateProgramConfig(conf, 'a')).toBe(join(dir, 'conf.d', 'a.conf'));
    expect(await locateProgramConfig(conf, 'b')).toBe(join(dir, 'extra', 'prog1.ini'));
    for (const missing of ['hidden', 'backup-only', 'c', 'nope']) {
      await expect(locateProgramConfig(conf, missing)).rejects.toThrow(`no [program:${missing}] section in ${conf}`);
    }
  });

  it('refuses a program defined in two files', async () => {
    const conf = await layoutWith({
      'supervisord.conf': '[supervisord]\n[include]\nfiles = conf.d/*.conf\n',
      'conf.d/1.conf': program('dup'),
      'conf.d/2.conf': program('dup'),
    });
    await expect(locateProgramConfig(conf, 'dup')).rejects.toThrow(/several files/);
  });

  it('refuses a repoint whose backup file the [include] glob would load', async () => {
    const conf = await layoutWith({
      'supervisord.conf': '[supervisord]\n[include]\nfiles = programs/*\n',
      'programs/etcd-1': program('etcd-1'),
    });
    const repoint = repointEtcdMember({
      service: { driver: 'supervisor', supervisorConf: conf },
      member: 'etcd-1',
      changes: CHANGES,
      backupTag: 'set-1',
    });
    await expect(repoint).rejects.toThrow(/would match \[include\] pattern/);
    expect(existsSync(join(dir, 'programs', 'etcd-1.pre-restore-set-1'))).toBe(false);
    expect(await readFile(join(dir, 'programs', 'etcd-1'), 'utf8')).toBe(program('etcd-1'));
  });
});

// No systemd runs on this machine (no PID 1 systemd, no bus): systemctl is an injected stub that
// answers `show` with recorded output, and drop-ins go to a temp systemdDir.
describe('systemd drop-in', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-systemd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const show = (argv: string, ignore = 'no') =>
    `{ path=/usr/bin/etcd ; argv[]=${argv} ; ignore_errors=${ignore} ; start_time=[Mon 2025-01-06 10:00:00 UTC] ; stop_time=[n/a] ; pid=1234 ; code=(null) ; status=0/0 }\n`;
  const OLD = '/usr/bin/etcd --name=node-1 --data-dir=/var/lib/etcd/default --initial-cluster-state new';

  function stubSystemctl(initial: string) {
    const state = { show: initial, calls: [] as string[][] };
    const systemctl = async (args: string[]): Promise<string> => {
      state.calls.push(args);
      if (args[0] === 'show') return state.show;
      if (args[0] === 'daemon-reload') return '';
      throw new Error(`unexpected systemctl ${args.join(' ')}`);
    };
    return { state, systemctl };
  }

  it('writes a drop-in that clears and resets ExecStart, then reverts by deleting it', async () => {
    const { state, systemctl } = stubSystemctl(show(OLD));
    const service = { driver: 'systemd', unit: 'etcd.service' } as const;
    const options = { systemdDir: dir, systemctl };
    const change = await repointEtcdMember({ service, member: 'node-1', changes: CHANGES, backupTag: 'set-1', ...options });

    const file = join(dir, 'etcd.service.d', DROP_IN_NAME);
    const text = await readFile(file, 'utf8');
    expect(change).toEqual({
      driver: 'systemd',
      member: 'node-1',
      file,
      backupFile: null,
      before: sha256(''),
      after: sha256(text),
      running: null,
    });
    expect(text.split('\n').filter((line) => !line.startsWith('#'))).toEqual([
      '[Service]',
      'ExecStart=',
      `ExecStart=/usr/bin/etcd --name=node-1 --data-dir=${CHANGES.dataDir} --initial-cluster-state existing --initial-cluster=${CHANGES.initialCluster} --initial-cluster-token=nnoe-restored`,
      '',
    ]);
    expect(state.calls).toEqual([['show', 'etcd.service', '-p', 'ExecStart', '--value'], ['daemon-reload']]);
    expect(await currentEtcdArgs(service, 'node-1', options)).toEqual(OLD.split(' '));

    // A retry after daemon-reload (show now answers with the new argv) changes nothing.
    state.show = show(
      text
        .split('\n')
        .find((line) => line.startsWith('ExecStart=/'))!
        .slice('ExecStart='.length),
    );
    expect(await repointEtcdMember({ service, member: 'node-1', changes: CHANGES, backupTag: 'set-1', ...options })).toEqual(change);
    expect(await readFile(file, 'utf8')).toBe(text);

    state.calls.length = 0;
    expect(await revertEtcdMember(change, service, options)).toEqual({ restored: true, running: null });
    expect(existsSync(file)).toBe(false);
    expect(state.calls).toEqual([['daemon-reload']]);
    expect(await revertEtcdMember(change, service, options)).toEqual({ restored: false, running: null });
  });

  it('keeps an existing drop-in as .pre-restore-<tag> and puts it back on revert', async () => {
    const { systemctl } = stubSystemctl(show(OLD, 'yes'));
    const service = { driver: 'systemd', unit: 'etcd.service' } as const;
    const file = join(dir, 'etcd.service.d', DROP_IN_NAME);
    const old = '[Service]\nExecStart=\nExecStart=/usr/bin/etcd --data-dir=/var/lib/etcd/restored-set-0\n';
    await mkdir(join(dir, 'etcd.service.d'));
    await writeFile(file, old);

    const change = await repointEtcdMember({
      service,
      member: 'node-1',
      changes: { dataDir: '/var/lib/etcd/restored-set-1' },
      backupTag: 'set-1',
      systemdDir: dir,
      systemctl,
    });
    expect(change.backupFile).toBe(`${file}.pre-restore-set-1`);
    expect(await readFile(`${file}.pre-restore-set-1`, 'utf8')).toBe(old);
    expect(change.before).toBe(sha256(old));
    expect(await readFile(file, 'utf8')).toContain(
      '\nExecStart=-/usr/bin/etcd --name=node-1 --data-dir=/var/lib/etcd/restored-set-1 --initial-cluster-state new\n',
    );

    expect((await revertEtcdMember(change, service, { systemdDir: dir, systemctl })).restored).toBe(true);
    expect(await readFile(file, 'utf8')).toBe(old);
    expect(existsSync(`${file}.pre-restore-set-1`)).toBe(false);

    await writeFile(file, `${old}# edited by hand\n`);
    await expect(revertEtcdMember(change, service, { systemdDir: dir, systemctl })).rejects.toThrow(
      `${file} changed since the restore rewrote it`,
    );
  });

  it('quotes ExecStart arguments and refuses ambiguous show output', () => {
    expect(['100%', '$HOME', 'a b', 'say "hi"', 'back\\slash', '--x=y'].map(quoteSystemdArg)).toEqual([
      '100%%',
      '$$HOME',
      '"a b"',
      '"say \\"hi\\""',
      '"back\\\\slash"',
      '--x=y',
    ]);
    expect(renderSystemdDropIn({ argv: [ETCD, '--data-dir=/a b'], ignoreErrors: false }, 't')).toContain(
      '\nExecStart=/usr/bin/etcd "--data-dir=/a b"\n',
    );
    expect(() => parseSystemdExecStart(show(OLD) + show(OLD), 'etcd.service')).toThrow(
      /exactly one ExecStart command for etcd.service, systemctl show gave 2/,
    );
    expect(() => parseSystemdExecStart('', 'etcd.service')).toThrow(/gave 0/);
    expect(() => parseSystemdExecStart(show(`${ETCD} "--name=a b"`), 'etcd.service')).toThrow(/quotes or backslashes/);
    expect(parseSystemdExecStart(show('etcd --name=a').replace('path=/usr/bin/etcd', 'path=/opt/etcd/etcd'))).toEqual({
      argv: ['/opt/etcd/etcd', '--name=a'],
      ignoreErrors: false,
    });
  });
});

describe('supervisor program under a real supervisord', () => {
  const MARKER_ENV = 'NNOE_DR_MEMBER_SERVICE_TEST';
  const PROGRAM = 'etcd-1';
  let dir: string;
  let layout: SupervisorLayout;
  let oldArgs: string[];
  let oldBytes: Buffer;
  let programFile: string;
  let change: MemberConfigChange;
  const service = () => ({ driver: 'supervisor', supervisorConf: layout.conf }) as const;
  const changes = (): EtcdFlagChanges => ({
    dataDir: join(dir, 'etcd-1', 'restored-set-1'),
    initialCluster: 'etcd-1=https://127.0.0.1:2380,etcd-2=https://127.0.0.1:2382',
    initialClusterState: 'existing',
    initialClusterToken: 'restored-token',
  });

  async function programPid(): Promise<number> {
    return Number.parseInt((await supervisorctl(layout.conf, 'pid', PROGRAM)).trim(), 10);
  }

  /** The stand-in's argv as the kernel sees it, minus the interpreter its #! line adds in front. */
  function runningArgs(pid: number): string[] {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1, -1);
  }

  async function waitRunning(): Promise<void> {
    await waitUntil(async () => (await programStates(layout.conf))[PROGRAM] === 'RUNNING', {
      timeoutMs: 30_000,
      describeFailure: async () => `${PROGRAM} not RUNNING: ${JSON.stringify(await programStates(layout.conf))}`,
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nnoe-dr-member-'));
    layout = supervisorLayout(dir);
    writeSupervisordConfig(layout);
    const standIn = join(dir, 'bin', 'etcd');
    await mkdir(join(dir, 'bin'));
    // Stand-in for etcd: ignores its flags and stays up until supervisord stops it.
    await writeFile(standIn, `#!${process.execPath}\nsetInterval(() => {}, 1 << 30);\nprocess.on('SIGTERM', () => process.exit(0));\n`, {
      mode: 0o755,
    });
    oldArgs = [
      standIn,
      `--name=${PROGRAM}`,
      `--data-dir=${join(dir, 'etcd-1', 'data')}`,
      '--initial-cluster',
      'etcd-1=https://127.0.0.1:2380',
      '--initial-cluster-state=new',
      '--initial-cluster-token=token-1',
      `--extra=it's "quoted" 100% a b`,
    ];
    programFile = writeProgramConfig(layout, { name: PROGRAM, command: oldArgs, stopWaitSecs: 5 });
    oldBytes = readFileSync(programFile);
    const env: NodeJS.ProcessEnv = { ...process.env, [MARKER_ENV]: dir };
    delete env.NODE_OPTIONS;
    await startSupervisord(layout.conf, { env });
    await waitRunning();
  });

  afterAll(async () => {
    await shutdownSupervisord(layout.conf);
    const leftovers = processesWithEnvironmentMarker(MARKER_ENV, dir);
    await terminateProcesses(leftovers);
    await rm(dir, { recursive: true, force: true });
    expect(leftovers).toEqual([]);
  });

  it('starts the stand-in with the argv written by renderProgramConfig', async () => {
    expect(runningArgs(await programPid())).toEqual(oldArgs);
    expect(await currentEtcdArgs(service(), PROGRAM)).toEqual(oldArgs);
    expect(currentDataDir(oldArgs)).toBe(join(dir, 'etcd-1', 'data'));
  });

  it('repoint rewrites the program file, keeps the old one byte for byte, and restarts the member with the new flags', async () => {
    const oldPid = await programPid();
    change = await repointEtcdMember({ service: service(), member: PROGRAM, changes: changes(), backupTag: 'set-1' });
    const newBytes = readFileSync(programFile);
    expect(change).toEqual({
      driver: 'supervisor',
      member: PROGRAM,
      file: programFile,
      backupFile: `${programFile}.pre-restore-set-1`,
      before: sha256(oldBytes),
      after: sha256(newBytes),
      running: true,
    });
    expect(newBytes.equals(oldBytes)).toBe(false);
    expect(readFileSync(`${programFile}.pre-restore-set-1`).equals(oldBytes)).toBe(true);

    const newArgs = rewriteEtcdArgs(oldArgs, changes());
    const pid = await programPid();
    expect(pid).not.toBe(oldPid);
    expect(runningArgs(pid)).toEqual(newArgs);
    expect(await currentEtcdArgs(service(), PROGRAM)).toEqual(newArgs);
  });

  it('a retry of the same repoint changes nothing and restarts nothing', async () => {
    const pid = await programPid();
    const bytes = readFileSync(programFile);
    expect(await repointEtcdMember({ service: service(), member: PROGRAM, changes: changes(), backupTag: 'set-1' })).toEqual(change);
    expect(readFileSync(programFile).equals(bytes)).toBe(true);
    expect(await programPid()).toBe(pid);
  });

  it('revert puts the original bytes back and restarts the member with its old flags', async () => {
    const newPid = await programPid();
    expect(await revertEtcdMember(change, service())).toEqual({ restored: true, running: true });
    expect(readFileSync(programFile).equals(oldBytes)).toBe(true);
    expect(existsSync(`${programFile}.pre-restore-set-1`)).toBe(false);
    const pid = await programPid();
    expect(pid).not.toBe(newPid);
    expect(runningArgs(pid)).toEqual(oldArgs);
  });

  it('a second revert, or a revert of a rewrite that never happened, is a no-op', async () => {
    const pid = await programPid();
    expect(await revertEtcdMember(change, service())).toEqual({ restored: false, running: true });
    const neverWritten = { ...change, backupFile: `${programFile}.pre-restore-never`, after: sha256('never written') };
    expect(await revertEtcdMember(neverWritten, service())).toEqual({ restored: false, running: true });
    expect(readFileSync(programFile).equals(oldBytes)).toBe(true);
    expect(await programPid()).toBe(pid);
    expect(runningArgs(pid)).toEqual(oldArgs);
  });

  it('refuses when a backup with the same tag holds other content, leaving file and member alone', async () => {
    const pid = await programPid();
    const stale = `${programFile}.pre-restore-set-2`;
    await writeFile(stale, '[program:etcd-1]\ncommand=/bin/false\n');
    try {
      await expect(repointEtcdMember({ service: service(), member: PROGRAM, changes: changes(), backupTag: 'set-2' })).rejects.toThrow(
        `${stale} already exists and differs from ${programFile}`,
      );
      expect(readFileSync(programFile).equals(oldBytes)).toBe(true);
      expect(await programPid()).toBe(pid);
    } finally {
      await rm(stale, { force: true });
    }
  });

  it('refuses to revert a program file someone edited since', async () => {
    const edited = Buffer.concat([oldBytes, Buffer.from('; edited by hand\n')]);
    await writeFile(programFile, edited);
    try {
      await expect(revertEtcdMember(change, service())).rejects.toThrow(`${programFile} changed since the restore rewrote it`);
      expect(readFileSync(programFile).equals(edited)).toBe(true);
    } finally {
      await writeFile(programFile, oldBytes);
    }
  });
});
