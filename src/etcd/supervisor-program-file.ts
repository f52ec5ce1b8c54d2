/**
 * supervisord's program files as supervisord reads them: the `command=` value (ConfigParser
 * comments, `%` escapes, Python's shlex), the [include] globs, the file holding a program's section,
 * and the program file's text with a new command. Reads files, never writes them.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';

import { quoteArg } from '../services/supervisorctl';
import { exists } from './durable-file';

const SHLEX_WHITESPACE = ' \t\r\n';

/** Python's `shlex.split(s)` (posix, no comments), which supervisord applies to `command=`. */
export function shlexSplit(text: string): string[] {
  const args: string[] = [];
  let token = '';
  let inToken = false;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = null;
      else token += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) token += text[++i] as string;
      else token += c;
    } else if (SHLEX_WHITESPACE.includes(c)) {
      if (inToken) args.push(token);
      token = '';
      inToken = false;
    } else {
      inToken = true;
      if (c === "'" || c === '"') quote = c;
      else if (c !== '\\') token += c;
      else if (i + 1 < text.length) token += text[++i] as string;
      else throw new Error(`cannot split ${JSON.stringify(text)}: it ends with a lone backslash`);
    }
  }
  if (quote !== null) throw new Error(`cannot split ${JSON.stringify(text)}: no closing ${quote}`);
  if (inToken) args.push(token);
  return args;
}

/** ConfigParser (as supervisord configures it) ends a value at `;` or `#` after whitespace. */
const INLINE_COMMENT_RE = /\s[;#]/;

/** supervisord `%`-formats option values: `%%` is a literal `%`; expansions cannot be rewritten safely. */
function unescapePercent(value: string): string {
  return value.replace(/%(.|$)/g, (_whole, next: string) => {
    if (next === '%') return '%';
    if (next === '(') throw new Error(`command uses a supervisord %(...)s expansion; edit it by hand: ${value}`);
    throw new Error(`command has a lone '%' that supervisord would reject: ${value}`);
  });
}

/**
 * The argv supervisord runs for a `command=` value (or a whole `command=...` line): inline comment
 * cut, `%%` unescaped, then shlex-split. Inverse of formatSupervisorCommand.
 */
export function parseSupervisorCommand(line: string): string[] {
  let value = line.replace(/^\s*command\s*[=:]\s*/i, '');
  const comment = INLINE_COMMENT_RE.exec(value);
  if (comment) value = value.slice(0, comment.index);
  const argv = shlexSplit(unescapePercent(value.trim()));
  if (argv.length === 0) throw new Error(`empty supervisor command: ${JSON.stringify(line)}`);
  return argv;
}

/** The `command=` value for argv, quoted with the sandbox's quoteArg. */
export function formatSupervisorCommand(argv: string[]): string {
  if (argv.length === 0) throw new Error('cannot format an empty command');
  const bad = argv.find((arg) => /[\r\n]/.test(arg));
  if (bad !== undefined) throw new Error(`a supervisor command= line cannot hold an argument with a line break: ${JSON.stringify(bad)}`);
  const value = argv.map(quoteArg).join(' ');
  // A quoted ` ;` or ` #` would still be cut by ConfigParser as an inline comment.
  if (INLINE_COMMENT_RE.test(value)) throw new Error(`supervisord would cut this command at ' ;' or ' #': ${value}`);
  return value;
}

function lines(text: string): string[] {
  return text.split('\n');
}

function isSectionHeader(line: string): boolean {
  return /^\[[^\]]+\]/.test(line);
}

/** Line range [start, end) of the body of section `name` in an ini text, or undefined. */
function sectionRange(text: string, name: string): { start: number; end: number } | undefined {
  const all = lines(text);
  const header = all.findIndex((line) => line.trim() === `[${name}]`);
  if (header === -1) return undefined;
  const next = all.findIndex((line, i) => i > header && isSectionHeader(line));
  return { start: header + 1, end: next === -1 ? all.length : next };
}

/** Value of `key` in a section, with ConfigParser continuation lines joined by spaces. */
function optionValue(text: string, section: string, key: string): string | undefined {
  const range = sectionRange(text, section);
  if (!range) return undefined;
  const all = lines(text);
  const keyRe = new RegExp(`^${key}\\s*[=:]\\s*(.*)$`, 'i');
  for (let i = range.start; i < range.end; i++) {
    const match = keyRe.exec(all[i] as string);
    if (!match) continue;
    const parts = [match[1] as string];
    for (let j = i + 1; j < range.end && /^\s+\S/.test(all[j] as string); j++) parts.push((all[j] as string).trim());
    return parts.map((part) => part.split(INLINE_COMMENT_RE)[0] as string).join(' ');
  }
  return undefined;
}

/** `*` and `?` in a basename, as Python's glob (which skips dot files unless asked). */
function basenamePattern(pattern: string): RegExp {
  if (/[*?[]/.test(path.dirname(pattern))) throw new Error(`only the file name may hold wildcards in an [include] pattern: ${pattern}`);
  const body = path
    .basename(pattern)
    .replace(/[.+^${}()|\\\]]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

async function globOne(pattern: string): Promise<string[]> {
  if (!/[*?[]/.test(pattern)) return (await exists(pattern)) ? [pattern] : [];
  const re = basenamePattern(pattern);
  const dir = path.dirname(pattern);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const hiddenOk = path.basename(pattern).startsWith('.');
  return names
    .filter((name) => re.test(name) && (hiddenOk || !name.startsWith('.')))
    .sort()
    .map((name) => path.join(dir, name));
}

/** The [include] patterns of a supervisord conf, absolute, in order. */
async function includePatterns(supervisorConf: string): Promise<string[]> {
  const raw = optionValue(await fs.readFile(supervisorConf, 'utf8'), 'include', 'files');
  if (raw === undefined) return [];
  const here = path.dirname(path.resolve(supervisorConf));
  const expanded = raw.replace(/%\(here\)s/g, here).replace(/%\(host_node_name\)s/g, os.hostname());
  return unescapePercent(expanded)
    .split(/\s+/)
    .filter(Boolean)
    .map((pattern) => path.resolve(here, pattern));
}

/** The main conf followed by every file its [include] section pulls in, as supervisord reads them. */
export async function supervisorConfFiles(supervisorConf: string): Promise<string[]> {
  const files = [path.resolve(supervisorConf)];
  for (const pattern of await includePatterns(supervisorConf)) files.push(...(await globOne(pattern)));
  return files;
}

/** The file holding `[program:<program>]`: the main conf or one it includes. */
export async function locateProgramConfig(supervisorConf: string, program: string): Promise<string> {
  const holders: string[] = [];
  for (const file of await supervisorConfFiles(supervisorConf)) {
    if (sectionRange(await fs.readFile(file, 'utf8'), `program:${program}`)) holders.push(file);
  }
  if (holders.length === 0) {
    throw new Error(`no [program:${program}] section in ${supervisorConf} or the files its [include] section matches`);
  }
  if (holders.length > 1)
    throw new Error(
      `[program:${program}] is defined in several files (${holders.join(', ')}); supervisord merges them, refusing to edit one`,
    );
  return holders[0] as string;
}

interface CommandLine {
  index: number;
  /** `command=` (or `command = `) as written. */
  key: string;
  value: string;
  /** The inline comment (with the whitespace before it), kept on rewrite. */
  comment: string;
}

function findCommandLine(text: string, program: string, file: string): CommandLine {
  const range = sectionRange(text, `program:${program}`);
  if (!range) throw new Error(`expected a [program:${program}] section in ${file}`);
  const all = lines(text);
  const hits: number[] = [];
  for (let i = range.start; i < range.end; i++) if (/^command\s*[=:]/i.test(all[i] as string)) hits.push(i);
  if (hits.length !== 1) throw new Error(`expected exactly one command= line in [program:${program}] of ${file}, found ${hits.length}`);
  const index = hits[0] as number;
  if (/^\s+\S/.test(all[index + 1] ?? '') && index + 1 < range.end) {
    throw new Error(`the command= of [program:${program}] in ${file} continues on the next line; put it on one line first`);
  }
  const line = all[index] as string;
  const key = (/^command\s*[=:]\s*/i.exec(line) as RegExpExecArray)[0];
  const rest = line.slice(key.length);
  const comment = INLINE_COMMENT_RE.exec(rest);
  return {
    index,
    key,
    value: comment ? rest.slice(0, comment.index) : rest,
    comment: comment ? rest.slice(comment.index) : '',
  };
}

/** The argv of `[program:<program>]`'s command= in the file's text. */
export function programArgs(text: string, program: string, file: string): string[] {
  const { value } = findCommandLine(text, program, file);
  try {
    return parseSupervisorCommand(value);
  } catch (err) {
    throw new Error(`cannot read the command= of [program:${program}] in ${file}: ${(err as Error).message}`);
  }
}

/** The program file's text with its command= replaced by argv; every other byte kept. */
export function replaceProgramCommand(text: string, program: string, argv: string[], file = 'the program file'): string {
  const line = findCommandLine(text, program, file);
  const all = lines(text);
  all[line.index] = `${line.key}${formatSupervisorCommand(argv)}${line.comment}`;
  return all.join('\n');
}

export function autostarts(text: string, program: string): boolean {
  const value = optionValue(text, `program:${program}`, 'autostart');
  return value === undefined || !/^(false|no|off|0)$/i.test(value.trim());
}

/** Refuses a backup or temp name that the conf's [include] globs would load as a second definition. */
export async function assertNotIncluded(supervisorConf: string, file: string): Promise<void> {
  for (const pattern of await includePatterns(supervisorConf)) {
    const hiddenOk = path.basename(pattern).startsWith('.');
    if (
      path.dirname(pattern) === path.dirname(file) &&
      basenamePattern(pattern).test(path.basename(file)) &&
      (hiddenOk || !path.basename(file).startsWith('.'))
    ) {
      throw new Error(
        `${file} would match [include] pattern ${pattern} of ${supervisorConf}; supervisord would load the old program definition too`,
      );
    }
  }
}
