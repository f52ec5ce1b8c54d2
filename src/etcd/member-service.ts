/**
 * Repointing an etcd member's service at a restored data dir, and putting it back.
 *
 * The restore runbook starts each member on `restored-<tag>` beside its old data dir and, for
 * members joining an existing cluster, with a new `--initial-cluster`, `--initial-cluster-state`
 * and `--initial-cluster-token`. Those flags live in the service definition:
 *
 * - supervisor (sandbox, tests): the `command=` line of the member's program file (program name =
 *   member name), followed by `supervisorctl reread` + `update <program>`;
 * - systemd (production): a drop-in `<unit>.d/50-nnoe-dr-restore.conf` that resets `ExecStart`,
 *   followed by `systemctl daemon-reload`.
 *
 * Safety: the old file is kept beside the new one as `<file>.pre-restore-<tag>` and the new text
 * written durably (durable-file.ts). Revert renames the backup back (or deletes a drop-in that did
 * not exist before) and is idempotent: it compares sha256s instead of trusting memory.
 *
 * This file holds the side effects (the files, supervisorctl, systemctl); the pure parts are
 * etcd-argv.ts (the flags), supervisor-program-file.ts (command= lines, [include]) and
 * systemd-drop-in.ts (ExecStart, the drop-in).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

import { waitUntil } from '../common/poll';
import { type ProgramState, programStates, supervisorctl } from '../services/supervisorctl';
import { systemctl } from '../services/systemctl';
import { backupPathFor, exists, fsyncDir, putBack, replaceKeepingBackup } from './durable-file';
import { type EtcdFlagChanges, rewriteEtcdArgs } from './etcd-argv';
import { assertNotIncluded, autostarts, locateProgramConfig, programArgs, replaceProgramCommand } from './supervisor-program-file';
import { DROP_IN_NAME, type SystemdExecStart, parseSystemdExecStart, renderSystemdDropIn } from './systemd-drop-in';

// What the callers of this API pass and read back beside it.
export { currentDataDir, type EtcdFlagChanges } from './etcd-argv';

// ------------------------------------------------------------------ types

/** Same shape as the config's ServiceDriverSchema (src/config/schema.ts). */
export type EtcdServiceRef = { driver: 'supervisor'; supervisorConf: string } | { driver: 'systemd'; unit: string };

export interface MemberServiceOptions {
  /** systemd: where drop-in directories live. Default /etc/systemd/system. */
  systemdDir?: string;
  /** systemd: runs `systemctl <args>` and resolves to its stdout. Default: execFile('systemctl'). */
  systemctl?: (args: string[]) => Promise<string>;
  /** supervisor: how long to wait for the member to settle after `update` restarted it. Default 60 s. */
  settleTimeoutMs?: number;
}

/** What repointEtcdMember changed; plain JSON, so it can travel as an activity result. */
export interface MemberConfigChange {
  driver: EtcdServiceRef['driver'];
  member: string;
  /** The program file (supervisor) or drop-in (systemd) that now holds the new argv. */
  file: string;
  /** The old content, kept beside `file`; null = `file` did not exist before (systemd drop-in). */
  backupFile: string | null;
  /** sha256 (hex) of the old content (of '' when backupFile is null). */
  before: string;
  /** sha256 (hex) of the new content. */
  after: string;
  /** supervisor: whether the member runs after `update` (which restarts it); systemd: null. */
  running: boolean | null;
}

export interface MemberRevertResult {
  /** Whether this call changed the file (false: already put back, or never rewritten). */
  restored: boolean;
  /** supervisor: whether the member runs afterwards; systemd: null. */
  running: boolean | null;
}

export const SYSTEMD_DIR = '/etc/systemd/system';

// ------------------------------------------------------------------ supervisor side effects

/**
 * `reread` + `update <program>`. `update` of a changed program stops it and adds it again, which
 * starts it when autostart is true (even if it was stopped before): the caller treats this step as
 * (re)starting the member. Resolves to whether the program is RUNNING once it has settled.
 */
async function applySupervisorChange(supervisorConf: string, program: string, text: string, timeoutMs: number): Promise<boolean> {
  await supervisorctl(supervisorConf, 'reread');
  const output = await supervisorctl(supervisorConf, 'update', program);
  const restarted = /(updated|added) process group/.test(output);
  let state: ProgramState | undefined;
  const settled = (s: ProgramState | undefined) =>
    s === 'RUNNING' || s === 'FATAL' || s === 'EXITED' || (s === 'STOPPED' && !autostarts(text, program));
  if (restarted) {
    await waitUntil(async () => settled((state = (await programStates(supervisorConf))[program])), {
      timeoutMs,
      describeFailure: () =>
        `supervisor program ${program} did not settle within ${timeoutMs} ms after update (state ${state ?? 'unknown'})`,
    });
  } else {
    state = (await programStates(supervisorConf))[program];
  }
  return state === 'RUNNING';
}

async function repointSupervisorMember(
  supervisorConf: string,
  member: string,
  changes: EtcdFlagChanges,
  backupTag: string,
  timeoutMs: number,
): Promise<MemberConfigChange> {
  const file = await locateProgramConfig(supervisorConf, member);
  const text = await fs.readFile(file, 'utf8');
  const next = replaceProgramCommand(text, member, rewriteEtcdArgs(programArgs(text, member, file), changes), file);
  const backup = backupPathFor(file, backupTag);
  await assertNotIncluded(supervisorConf, backup);
  const written = await replaceKeepingBackup(file, next, backup, true);
  const running = await applySupervisorChange(supervisorConf, member, next, timeoutMs);
  return { driver: 'supervisor', member, file, ...written, running };
}

// ------------------------------------------------------------------ systemd side effects

/** The one systemctl client (src/services/systemctl.ts), unless a test passes its own. */
const defaultSystemctl = (args: string[]) => systemctl(args);

async function systemdExecStart(unit: string, options: MemberServiceOptions): Promise<SystemdExecStart> {
  const systemctl = options.systemctl ?? defaultSystemctl;
  return parseSystemdExecStart(await systemctl(['show', unit, '-p', 'ExecStart', '--value']), unit);
}

function dropInPath(unit: string, options: MemberServiceOptions): string {
  if (!/^[A-Za-z0-9@._:\\-]+$/.test(unit)) throw new Error(`expected a systemd unit name, got ${JSON.stringify(unit)}`);
  return path.join(options.systemdDir ?? SYSTEMD_DIR, `${unit}.d`, DROP_IN_NAME);
}

async function ensureDir(dir: string): Promise<void> {
  if (await exists(dir)) return;
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fsyncDir(path.dirname(dir));
}

async function repointSystemdMember(
  unit: string,
  member: string,
  changes: EtcdFlagChanges,
  backupTag: string,
  options: MemberServiceOptions,
): Promise<MemberConfigChange> {
  const exec = await systemdExecStart(unit, options);
  const next = renderSystemdDropIn({ ...exec, argv: rewriteEtcdArgs(exec.argv, changes) }, backupTag);
  const file = dropInPath(unit, options);
  await ensureDir(path.dirname(file));
  const written = await replaceKeepingBackup(file, next, backupPathFor(file, backupTag), false);
  // daemon-reload only loads the unit; the member starts when the runbook starts it.
  await (options.systemctl ?? defaultSystemctl)(['daemon-reload']);
  return { driver: 'systemd', member, file, ...written, running: null };
}
// ------------------------------------------------------------------ API

/** The etcd argv the service would start the member with now. */
export async function currentEtcdArgs(service: EtcdServiceRef, member: string, options: MemberServiceOptions = {}): Promise<string[]> {
  if (service.driver === 'systemd') return (await systemdExecStart(service.unit, options)).argv;
  const file = await locateProgramConfig(service.supervisorConf, member);
  return programArgs(await fs.readFile(file, 'utf8'), member, file);
}

/**
 * Points the member's service at the restored data dir (and new cluster flags). supervisor: the
 * `update` at the end (re)starts the member; `running` says whether it runs afterwards. systemd:
 * only daemon-reload, nothing is started. Safe to retry with the same changes and tag.
 */
export async function repointEtcdMember(
  opts: {
    service: EtcdServiceRef;
    member: string;
    changes: EtcdFlagChanges;
    /** Names the backup: `<file>.pre-restore-<backupTag>`; e.g. the backup set id. */
    backupTag: string;
  } & MemberServiceOptions,
): Promise<MemberConfigChange> {
  const { service, member, changes, backupTag } = opts;
  if (service.driver === 'systemd') return repointSystemdMember(service.unit, member, changes, backupTag, opts);
  return repointSupervisorMember(service.supervisorConf, member, changes, backupTag, opts.settleTimeoutMs ?? 60_000);
}

/**
 * Puts the member's old service definition back: renames the backup over the file (or deletes a
 * drop-in that did not exist before), then reread/update (restarting the member with its old argv
 * if supervisord had loaded the new one) or daemon-reload. Idempotent: a second call, or a call
 * for a rewrite that never happened, changes no file and restarts nothing.
 */
export async function revertEtcdMember(
  change: MemberConfigChange,
  service: EtcdServiceRef,
  options: MemberServiceOptions = {},
): Promise<MemberRevertResult> {
  if (change.driver !== service.driver)
    throw new Error(`cannot revert a ${change.driver} change of ${change.file} through a ${service.driver} service`);
  const restored = await putBack(change);
  if (service.driver === 'systemd') {
    await (options.systemctl ?? defaultSystemctl)(['daemon-reload']);
    return { restored, running: null };
  }
  const text = await fs.readFile(change.file, 'utf8');
  const running = await applySupervisorChange(service.supervisorConf, change.member, text, options.settleTimeoutMs ?? 60_000);
  return { restored, running };
}
