/**
 * What we read from the dump text as it streams past, without holding it: the head (where the
 * binlog position comment is) and the tail (the MariaDB 10.11 GTID comment, and the
 * `-- Dump completed` trailer that only a dump that ran to the end writes).
 *
 * Why parse the dump instead of asking the server (SHOW MASTER STATUS): only the dump's own session
 * knows the position of ITS snapshot; any other session sees a position that may already be later.
 * The comments are matched only at the start of a line: the dump escapes newlines inside values, so
 * table data can never produce such a line.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { BinlogPosition } from './types';

const HEAD_BYTES = 64 * 1024;
const TAIL_BYTES = 64 * 1024;

/** Pass-through that keeps the first and last 64 KiB of the dump. */
export class DumpTextWatcher extends Transform {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.headBytes < HEAD_BYTES) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
    }
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    // Drop whole chunks from the front while the rest still covers the tail window.
    while (this.tail.length > 1 && this.tailBytes - this.tail[0]!.length >= TAIL_BYTES) {
      this.tailBytes -= this.tail.shift()!.length;
    }
    done(null, chunk);
  }

  /** After the stream has finished. */
  result(): { binlog: BinlogPosition | null; completed: boolean } {
    const head = Buffer.concat(this.head).subarray(0, HEAD_BYTES).toString('utf8');
    const tailBuffer = Buffer.concat(this.tail);
    const tail = tailBuffer.subarray(Math.max(0, tailBuffer.length - TAIL_BYTES)).toString('utf8');
    return { binlog: parseBinlogPosition(head, tail), completed: hasDumpTrailer(tail) };
  }
}

/** The last non-empty line is `-- Dump completed[ on <date>]`: the dump program reached its end. */
export function hasDumpTrailer(tail: string): boolean {
  const lines = tail.trimEnd().split('\n');
  return /^-- Dump completed\b/.test(lines[lines.length - 1] ?? '');
}

/**
 * The binlog file/position (+ GTID) from the dump's comments:
 *   -- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=1172;      (MariaDB, MySQL < 8.0.26)
 *   -- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157; (MySQL 8.0.26+)
 *   -- SET GLOBAL gtid_slave_pos='0-1-5';                       (MariaDB; in the tail since 10.11-ish)
 *   /* SET @@GLOBAL.GTID_PURGED='+uuid:1-5';*\/                 (MySQL, --set-gtid-purged=COMMENTED)
 *   SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*\/ 'uuid:1-5';        (MySQL, AUTO/ON; also accepted)
 */
export function parseBinlogPosition(head: string, tail = ''): BinlogPosition | null {
  const position =
    /^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*(?:MASTER|SOURCE)_LOG_POS=(\d+)/m.exec(head);
  if (!position) return null;
  const gtid = findGtid(head) ?? findGtid(tail);
  return { file: position[1]!, position: Number(position[2]), ...(gtid ? { gtid } : {}) };
}

function findGtid(text: string): string | undefined {
  const mariadb = /^-- SET GLOBAL gtid_slave_pos='([^']*)'/m.exec(text);
  if (mariadb) return mariadb[1] || undefined;
  const mysql = /^(?:\/\*\s*)?SET @@GLOBAL\.GTID_PURGED\s*=\s*(?:\/\*!\d+\s*'\+'\s*\*\/\s*)?'([^']*)'/im.exec(text);
  // COMMENTED writes `'+uuid:1-5'`: the "+" means "add to", not part of the set.
  return mysql ? mysql[1]!.replace(/\s+/g, '').replace(/^\+/, '') || undefined : undefined;
}
