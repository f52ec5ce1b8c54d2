/**
 * Safe extraction (src/archive/extract.ts): a real cache-shaped archive round-trips with its modes
 * and an inner symlink; hand-made hostile archives are refused before anything is written.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { create as createTar, Header, type HeaderData } from 'tar';
import { UnsafeArchiveError, extractArchive, extractIntoFreshDir, listArchive, swapDirectory } from '../../src/archive/extract';

let base: string;
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'nnoe-dr-archive-test-'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

const modeOf = async (path: string) => (await lstat(path)).mode & 0o7777;

interface RawEntry {
  path: string;
  type?: HeaderData['type'];
  mode?: number;
  body?: string;
  linkpath?: string;
}

/** A tar written header by header, so it can hold what `tar -c` would never produce. */
function handMadeTar(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const header = new Header({
      path: e.path,
      type: e.type ?? 'File',
      mode: e.mode ?? 0o644,
      size: body.length,
      linkpath: e.linkpath,
      uid: 0,
      gid: 0,
      mtime: new Date('2025-01-01T00:00:00Z'),
    });
    header.encode();
    blocks.push(header.block!);
    if (body.length > 0) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

describe('extractIntoFreshDir + swapDirectory', () => {
  it('restores a cache archived relative to / with exact modes and an inner symlink, keeping the old dir beside it', async () => {
    // The source tree, archived the way the agent-cache backup does (cwd '/', path without the leading '/').
    const source = join(base, 'src', 'var', 'nnoe', 'cache');
    await mkdir(join(source, 'db', 'snap'), { recursive: true });
    await writeFile(join(source, 'db', 'conf'), 'segment_size: 524288\n');
    await writeFile(join(source, 'db', 'snap', 'blob'), 'x'.repeat(5000));
    await writeFile(join(source, 'run.sh'), '#!/bin/sh\n');
    await symlink('db/conf', join(source, 'current'));
    await link(join(source, 'db', 'conf'), join(source, 'conf.hardlink'));
    await chmod(join(source, 'db', 'conf'), 0o640);
    await chmod(join(source, 'db', 'snap', 'blob'), 0o600);
    await chmod(join(source, 'run.sh'), 0o755);
    await chmod(join(source, 'db', 'snap'), 0o700);
    await chmod(join(source, 'db'), 0o750);
    await chmod(source, 0o751);
    const prefix = source.replace(/^\/+/, '');
    const archive = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      createTar({ cwd: '/', gzip: true, portable: false }, [prefix])
        .on('data', (c: Buffer) => chunks.push(c))
        .on('end', () => resolve(Buffer.concat(chunks)))
        .on('error', reject);
    });

    // The live dir to be replaced.
    const finalDir = join(base, 'live', 'cache');
    await mkdir(finalDir, { recursive: true });
    await writeFile(join(finalDir, 'stale'), 'old cache');

    // A strict umask on the worker must not change what gets restored.
    const umask = process.umask(0o077);
    let restored: Awaited<ReturnType<typeof extractIntoFreshDir>>;
    try {
      restored = await extractIntoFreshDir(Readable.from([archive]), finalDir, { gzip: true, stripPrefix: prefix });
    } finally {
      process.umask(umask);
    }
    expect(restored.dir.startsWith(`${finalDir}.restoring-`)).toBe(true);
    // Which of the two hard-linked names is the File and which the Link depends on readdir order.
    const [linked, linkName] =
      restored.entries.find((e) => e.path === 'db/conf')!.type === 'File' ? ['db/conf', 'conf.hardlink'] : ['conf.hardlink', 'db/conf'];
    expect(Object.fromEntries(restored.entries.map((e) => [e.path, [e.type, e.mode, e.linkpath]]))).toEqual({
      '.': ['Directory', 0o751, undefined],
      db: ['Directory', 0o750, undefined],
      [linked]: ['File', 0o640, undefined],
      [linkName]: ['Link', 0o640, linked],
      'db/snap': ['Directory', 0o700, undefined],
      'db/snap/blob': ['File', 0o600, undefined],
      'run.sh': ['File', 0o755, undefined],
      current: ['SymbolicLink', 0o777, 'db/conf'],
    });
    expect(restored.entries.find((e) => e.path === 'db/snap/blob')!.size).toBe(5000);
    // Nothing of the spool left beside the target; the live dir is untouched until the swap.
    expect((await readdir(join(base, 'live'))).sort()).toEqual(['cache', restored.dir.split('/').pop()]);
    expect(await readFile(join(finalDir, 'stale'), 'utf8')).toBe('old cache');

    const swapped = await swapDirectory(restored.dir, finalDir);
    expect(swapped.previousDir).toMatch(/cache\.pre-restore-\d{8}T\d{9}Z$/);
    expect(await readFile(join(swapped.previousDir!, 'stale'), 'utf8')).toBe('old cache');
    expect(existsSync(restored.dir)).toBe(false);

    expect(await modeOf(finalDir)).toBe(0o751);
    expect(await modeOf(join(finalDir, 'db'))).toBe(0o750);
    expect(await modeOf(join(finalDir, 'db', 'snap'))).toBe(0o700);
    expect(await modeOf(join(finalDir, 'db', 'conf'))).toBe(0o640);
    expect(await modeOf(join(finalDir, 'db', 'snap', 'blob'))).toBe(0o600);
    expect(await modeOf(join(finalDir, 'run.sh'))).toBe(0o755);
    expect(await readlink(join(finalDir, 'current'))).toBe('db/conf');
    expect(await readFile(join(finalDir, 'current'), 'utf8')).toBe('segment_size: 524288\n');
    expect((await stat(join(finalDir, 'conf.hardlink'))).ino).toBe((await stat(join(finalDir, 'db', 'conf'))).ino);
    expect(await readFile(join(finalDir, 'db', 'snap', 'blob'), 'utf8')).toBe('x'.repeat(5000));
    expect(existsSync(join(finalDir, 'stale'))).toBe(false);
  });

  it('lists the same validated entries without extracting', async () => {
    const tar = handMadeTar([
      { path: './', type: 'Directory', mode: 0o755 },
      { path: './a.db', mode: 0o600, body: 'abc' },
      { path: './latest', type: 'SymbolicLink', mode: 0o777, linkpath: 'a.db' },
    ]);
    const { entries } = await listArchive(Readable.from([tar]));
    expect(entries).toEqual([
      { path: '.', type: 'Directory', mode: 0o755, size: 0 },
      { path: 'a.db', type: 'File', mode: 0o600, size: 3 },
      { path: 'latest', type: 'SymbolicLink', mode: 0o777, size: 0, linkpath: 'a.db' },
    ]);
    await expect(listArchive(Readable.from([handMadeTar([{ path: '../x', body: 'x' }])]))).rejects.toBeInstanceOf(UnsafeArchiveError);
  });

  it('puts the old dir back when the second rename fails', async () => {
    const finalDir = join(base, 'cache');
    await mkdir(finalDir);
    await writeFile(join(finalDir, 'keep'), 'still here');
    await expect(swapDirectory(join(base, 'no-such-restore'), finalDir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(finalDir, 'keep'), 'utf8')).toBe('still here');
    expect(await readdir(base)).toEqual(['cache']);
  });

  it('moves the new dir in place when there was no old dir', async () => {
    const newDir = join(base, 'cache.restoring-x');
    await mkdir(newDir);
    await writeFile(join(newDir, 'a'), 'a');
    const swapped = await swapDirectory(newDir, join(base, 'cache'));
    expect(swapped.previousDir).toBeNull();
    expect(await readFile(join(base, 'cache', 'a'), 'utf8')).toBe('a');
  });
});

describe('hostile archives are refused before anything is written', () => {
  const cases: Array<{ name: string; entries: RawEntry[]; entry: string; says: RegExp; stripPrefix?: string }> = [
    {
      name: 'absolute path',
      entries: [{ path: '/etc/nnoe-evil', body: 'x' }],
      entry: '/etc/nnoe-evil',
      says: /absolute path; expected a relative path/,
    },
    { name: 'leading ..', entries: [{ path: '../x', body: 'x' }], entry: '../x', says: /'\.\.' component/ },
    {
      name: '.. in the middle',
      entries: [
        { path: 'a/', type: 'Directory' },
        { path: 'a/../../x', body: 'x' },
      ],
      entry: 'a/../../x',
      says: /'\.\.' component/,
    },
    { name: 'backslash ..', entries: [{ path: 'a\\..\\..\\x', body: 'x' }], entry: 'a\\..\\..\\x', says: /'\.\.' component/ },
    { name: 'drive-letter path', entries: [{ path: 'c:x', body: 'x' }], entry: 'c:x', says: /absolute path/ },
    {
      name: 'symlink to /etc/passwd',
      entries: [{ path: 'passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
      entry: 'passwd',
      says: /symlink to absolute path \/etc\/passwd/,
    },
    {
      name: 'symlink climbing out',
      entries: [
        { path: 'sub/', type: 'Directory' },
        { path: 'sub/out', type: 'SymbolicLink', linkpath: '../../outside' },
      ],
      entry: 'sub/out',
      says: /symlink to \.\.\/\.\.\/outside resolves outside the extraction root/,
    },
    {
      name: 'write through an archived symlink',
      entries: [
        { path: 'sub/', type: 'Directory' },
        { path: 'd', type: 'SymbolicLink', linkpath: 'sub' },
        { path: 'd/file', body: 'x' },
      ],
      entry: 'd/file',
      says: /inside d, which is a SymbolicLink/,
    },
    {
      name: 'symlink through another symlink (target judged before the hop exists)',
      entries: [
        { path: 'e', type: 'SymbolicLink', linkpath: 'd/../x' },
        { path: 'd', type: 'SymbolicLink', linkpath: '.' },
      ],
      entry: 'e',
      says: /goes through another symlink, d/,
    },
    {
      name: 'hard link out',
      entries: [{ path: 'h', type: 'Link', linkpath: '../outside' }],
      entry: 'h',
      says: /hard link to \.\.\/outside outside the extraction root/,
    },
    {
      name: 'hard link to /etc/shadow',
      entries: [{ path: 'h', type: 'Link', linkpath: '/etc/shadow' }],
      entry: 'h',
      says: /hard link to \/etc\/shadow/,
    },
    {
      name: 'hard link to a symlink',
      entries: [
        { path: 's', type: 'SymbolicLink', linkpath: 'a' },
        { path: 'deep/', type: 'Directory' },
        { path: 'deep/h', type: 'Link', linkpath: 's' },
      ],
      entry: 'deep/h',
      says: /expected a hard link to a regular file/,
    },
    {
      name: 'FIFO',
      entries: [{ path: 'pipe', type: 'FIFO', mode: 0o600 }],
      entry: 'pipe',
      says: /FIFO entry; expected one of File, Directory, SymbolicLink, Link/,
    },
    {
      name: 'character device',
      entries: [{ path: 'null', type: 'CharacterDevice', mode: 0o666 }],
      entry: 'null',
      says: /CharacterDevice entry/,
    },
    { name: 'setuid file', entries: [{ path: 'su', mode: 0o4755, body: 'x' }], entry: 'su', says: /setuid\/setgid mode 4755/ },
    {
      name: 'same path twice',
      entries: [
        { path: 'a', body: 'x' },
        { path: 'a', type: 'SymbolicLink', linkpath: 'b' },
      ],
      entry: 'a',
      says: /appears twice/,
    },
    {
      name: 'entry outside stripPrefix',
      stripPrefix: 'var/nnoe/cache',
      entries: [
        { path: 'var/nnoe/cache/', type: 'Directory' },
        { path: 'var/nnoe/cache/ok', body: 'x' },
        { path: 'etc/cron.d/evil', body: 'x' },
      ],
      entry: 'etc/cron.d/evil',
      says: /outside the prefix "var\/nnoe\/cache"; expected every entry under that prefix/,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: refused naming ${c.entry}`, async () => {
      const finalDir = join(base, 'live', 'cache');
      await mkdir(finalDir, { recursive: true });
      await writeFile(join(finalDir, 'marker'), 'untouched');
      // Good entries first where the case allows, so a partial extraction would show.
      const tar = handMadeTar([{ path: c.stripPrefix ? `${c.stripPrefix}/first` : 'first', body: 'x' }, ...c.entries]);

      const error = await extractIntoFreshDir(Readable.from([tar]), finalDir, { stripPrefix: c.stripPrefix }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UnsafeArchiveError);
      expect((error as UnsafeArchiveError).entryPath).toBe(c.entry);
      expect((error as Error).message).toContain(JSON.stringify(c.entry));
      expect((error as Error).message).toMatch(c.says);

      // Target untouched, no staging or spool dir left, nothing written outside.
      expect(await readdir(join(base, 'live'))).toEqual(['cache']);
      expect(await readdir(finalDir)).toEqual(['marker']);
      expect(await readFile(join(finalDir, 'marker'), 'utf8')).toBe('untouched');
      expect((await readdir(base)).sort()).toEqual(['live']);
    });
  }

  it('extractArchive does not even create a missing target dir for a refused archive', async () => {
    const cwd = join(base, 'fresh');
    const tar = handMadeTar([
      { path: 'ok', body: 'x' },
      { path: 'evil', type: 'SymbolicLink', linkpath: '../../../etc/passwd' },
    ]);
    await expect(extractArchive(Readable.from([tar]), { cwd, spoolDir: base })).rejects.toThrow(/unsafe archive entry "evil"/);
    expect(await readdir(base)).toEqual([]);
  });

  it('refuses to extract into a non-empty dir', async () => {
    await writeFile(join(base, 'something'), 'x');
    const tar = handMadeTar([{ path: 'ok', body: 'x' }]);
    await expect(extractArchive(Readable.from([tar]), { cwd: base })).rejects.toThrow(/is not empty/);
    expect(await readdir(base)).toEqual(['something']);
  });

  it('allowedTypes narrows what is accepted', async () => {
    const tar = handMadeTar([
      { path: 'ok', body: 'x' },
      { path: 'l', type: 'SymbolicLink', linkpath: 'ok' },
    ]);
    await expect(listArchive(Readable.from([tar]), { allowedTypes: ['File', 'Directory'] })).rejects.toThrow(
      /"l": SymbolicLink entry; expected one of File, Directory$/,
    );
  });
});
