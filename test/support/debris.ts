/**
 * The debris scan run after every fault: what an interrupted runbook may leave behind and nothing
 * may. Each entry names one leftover; an empty list is a clean world.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RowDataPacket } from 'mysql2/promise';
import type { Config } from '../../src/config/schema';
import type { World } from '../../src/sandbox/world';
import { listBackupSets } from '../../src/catalog/catalog';
import { openStore } from '../../src/storage';
import { SEGMENT_PREFIX } from '../../src/capture/segments';
import { connectAsRoot, mariadbLayout } from '../../src/sandbox/mariadb';

/** The world's own targets; the test config's other ones are unreachable on purpose. */
const WORLD_TARGETS = ['local', 's3'];

export async function scanForDebris(world: World, config: Config, wasLive: Set<string> = new Set()): Promise<string[]> {
  const debris: string[] = [];

  // Stores: hidden leftovers of writers, and set dirs/prefixes without a manifest.
  const listed = new Set((await listBackupSets(config, { targets: WORLD_TARGETS })).map((s) => s.setId));
  for (const target of config.storage.filter((t) => WORLD_TARGETS.includes(t.name))) {
    const store = await openStore(target);
    for (const leftover of await store.listLeftovers({ olderThan: new Date(Date.now() + 60_000) }))
      debris.push(`${target.name}: ${leftover.location}`);
    const setIds = new Set((await store.list()).map((key) => key.split('/')[0]!).filter((id) => id !== SEGMENT_PREFIX));
    for (const id of setIds) if (!listed.has(id)) debris.push(`${target.name}: ${id}/ holds objects but no manifest`);
  }

  // workDir: staging of backups (<setId>/attempt-*), option files (phpipam-*), restore staging, scratch members.
  for (const entry of readdirSync(world.workDir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) debris.push(`workDir: ${join(entry.parentPath, entry.name)}`);
  }

  // etcd: restored-* data dirs no member runs on and none ran on before (a completed restore keeps
  // the dirs it replaced, by design: `wasLive` names those).
  const live = liveDataDirs(world);
  for (const member of world.etcd.members) {
    const parent = dirname(live[member.name]!);
    for (const dir of readdirSync(parent)) {
      const path = join(parent, dir);
      if (dir.startsWith('restored-') && path !== live[member.name] && !wasLive.has(path))
        debris.push(`${member.name}: unused data dir ${path}`);
    }
  }

  // phpIPAM: staging schemas (`<db>_restore_<stamp>`) a restore loads into before the swap; the
  // `<db>_pre_restore_<stamp>` schemas are the old tables, kept on purpose.
  const root = await connectAsRoot(mariadbLayout(world.mariadb!.dir));
  try {
    const [rows] = await root.query<RowDataPacket[]>(
      "SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE '%\\_restore\\_%' AND schema_name NOT LIKE '%\\_pre\\_restore\\_%'",
    );
    for (const row of rows) debris.push(`mariadb: staging schema ${String(row.name)}`);
  } finally {
    await root.end();
  }
  return debris;
}

/** The data dir each member runs on now, by member name. */
export function liveDataDirs(world: World): Record<string, string> {
  return Object.fromEntries(world.etcd.members.map((m) => [m.name, /--data-dir=(\S+)/.exec(readFileSync(m.programConf, 'utf8'))![1]!]));
}
