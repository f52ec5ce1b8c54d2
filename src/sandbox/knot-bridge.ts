/**
 * A real Knot DNS server answering from what one NNOE agent rendered, for the world's DNS checks.
 *
 * The agent's output cannot be loaded by knotd as it is (upstream defects, see
 * ../shared/third_party/nnoe/PATCHES.md): its knot.conf is JSON, and its zone files say
 * `$ORIGIN example.com` (not fully qualified) with a serial that is always 1. This bridge watches
 * the agent's files and keeps a native knot config plus corrected copies of the zone files (origin
 * qualified, serial counting up) beside a knotd it runs, reloading it on every change. It changes
 * nothing the agent wrote: the records served are the agent's.
 *
 *   node knot-bridge.js --agent-knot-conf <agent's knot.conf> --dir <bridge dir> --port <udp/tcp port>
 */
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseKnotConf } from '../agent/rendering';

const POLL_MS = 300;

/** The agent's zone file made loadable: `$ORIGIN x` -> `$ORIGIN x.`, serial -> `serial`. */
export function loadableZone(text: string, serial: number): string {
  return text.replace(/^\$ORIGIN\s+([^\s.]\S*[^.\s])\s*$/m, '$ORIGIN $1.').replace(/^(\s+)1(\s*; Serial)/m, `$1${serial}$2`);
}

export function nativeConfig(dir: string, port: number, zones: Array<{ domain: string; file: string }>): string {
  const lines = [
    'server:',
    `  rundir: "${join(dir, 'run')}"`,
    `  listen: 127.0.0.1@${port}`,
    'database:',
    `  storage: "${join(dir, 'db')}"`,
    'control:',
    `  listen: "${join(dir, 'run', 'knot.sock')}"`,
    'template:',
    '  - id: default',
    '    zonefile-load: whole',
    '    journal-content: none',
    '    zonefile-sync: -1',
  ];
  if (zones.length > 0) {
    lines.push('zone:');
    for (const z of zones) lines.push(`  - domain: "${z.domain}."`, `    file: "${z.file}"`);
  }
  return `${lines.join('\n')}\n`;
}

function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function main(): void {
  const { values } = parseArgs({ options: { 'agent-knot-conf': { type: 'string' }, dir: { type: 'string' }, port: { type: 'string' } } });
  const agentConf = values['agent-knot-conf'];
  const dir = values.dir;
  const port = Number(values.port);
  if (!agentConf || !dir || !Number.isInteger(port)) throw new Error('usage: knot-bridge --agent-knot-conf FILE --dir DIR --port PORT');
  for (const sub of ['run', 'db', 'zones']) mkdirSync(join(dir, sub), { recursive: true });
  const conf = join(dir, 'knot.conf');
  writeAtomic(conf, nativeConfig(dir, port, []));
  const knotd = spawn('/usr/sbin/knotd', ['-c', conf], { stdio: 'inherit' });
  knotd.on('exit', (code) => {
    console.error(`knotd exited with ${code}`);
    process.exit(1);
  });
  const stop = () => {
    knotd.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  let serial = 1;
  let applied = '';
  const tick = () => {
    const zones = parseKnotConf(read(agentConf) ?? '') ?? [];
    const texts = zones.map((z) => read(z.file));
    const digest = createHash('sha256')
      .update(JSON.stringify([zones, texts]))
      .digest('hex');
    if (digest !== applied) {
      serial += 1;
      const served = zones.flatMap((z, i) => {
        const text = texts[i];
        if (text === null || text === undefined) return [];
        const file = join(dir, 'zones', `${z.domain}.zone`);
        writeAtomic(file, loadableZone(text, serial));
        return [{ domain: z.domain, file }];
      });
      writeAtomic(conf, nativeConfig(dir, port, served));
      applied = digest;
      execFile('/usr/sbin/knotc', ['-c', conf, 'reload'], (err, _out, stderr) => {
        if (err) {
          applied = '';
          console.error(`knotc reload: ${stderr.trim() || err.message}`);
        } // try again next tick
        else console.log(`serving ${served.map((z) => z.domain).join(', ') || 'no zones'} (serial ${serial})`);
      });
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, 500); // knotd opens its control socket first
}

if (require.main === module) main();
