/**
 * The dump's schema guard of the phpIPAM restore (src/phpipam/restore.ts), for step 1 (the load).
 *
 * Where the staging schema's SQL may reach: our dumps name no database (dump-command.ts dumps one
 * database without --databases: no CREATE DATABASE/USE), so every statement lands in the staging
 * schema. A dump made otherwise (by hand, or an older tool: --databases, --add-drop-database) is
 * neutralised on the way (DumpSchemaGuard): at the start of a statement, USE and CREATE/DROP
 * DATABASE lines are removed, `ALTER DATABASE <name>` (mysqldump writes it around routines when
 * collations differ) is pointed at the staging schema, and schema qualifiers in a trigger's header
 * (`TRIGGER phpipam.t ... ON phpipam.t`, kept verbatim by the dump tools) are dropped. What the guard
 * cannot see: schema names written inside routine/trigger/event bodies (they run only when called,
 * fired or scheduled; note that an ENABLED event fires in the staging schema too if the server's
 * event_scheduler is ON).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { q } from './restore-schemas';

export interface NeutralisedStatement {
  /** 1-based line of the dump. */
  line: number;
  action: 'removed' | 'retargeted';
  /** `USE`, `CREATE DATABASE`, `DROP DATABASE`, `ALTER DATABASE`, `TRIGGER qualifier`. */
  statement: string;
  /** The original line, cut to 120 characters. */
  text: string;
}

export class DumpNotRestorableError extends Error {
  override readonly name = 'DumpNotRestorableError';
}

const ID = '(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)';
const VERSIONED = String.raw`(?:\/\*!\d*\s*)?`; // `/*!40000 ` executable-comment prefix
const USE_LINE = new RegExp(String.raw`^\s*${VERSIONED}USE\b`, 'i');
const DATABASE_LINE = new RegExp(String.raw`^\s*${VERSIONED}(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\b`, 'i');
const ALTER_DATABASE_LINE = new RegExp(String.raw`^(\s*${VERSIONED}ALTER\s+(?:DATABASE|SCHEMA)\s+)(${ID})`, 'i');
const ALTER_DATABASE_KEYWORDS = /^(?:DEFAULT|CHARACTER|CHARSET|COLLATE|COMMENT|UPGRADE|READ)$/i;
const CREATE_LINE = new RegExp(String.raw`^\s*${VERSIONED}CREATE\b`, 'i');
const TRIGGER_HEADER = new RegExp(
  String.raw`(\bTRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?)(?:${ID}\s*\.\s*)?(${ID}\s+(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON\s+)(?:${ID}\s*\.\s*)?(${ID})`,
  'i',
);
const QUALIFIED_TRIGGER = new RegExp(
  String.raw`\bTRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?${ID}\s*\.\s*${ID}|\bON\s+${ID}\s*\.\s*${ID}\s+FOR\s+EACH\s+ROW`,
  'i',
);
// MariaDB's first dump line, `/*M!999999\- enable the sandbox mode */`: a client command, no statement.
const SANDBOX_LINE = /^\/\*M!\d+\\-.*\*\/\s*$/;

/**
 * Pass-through over the dump's lines that keeps every statement inside the target schema (see the
 * top of this file). It tracks statement starts from the dump tools' layout: one statement per line
 * or a multi-line statement that ends on a line ending with the current DELIMITER (values never
 * contain a raw newline, the tools escape it). A statement it cannot neutralise fails the stream
 * before any of it is passed on.
 */
export class DumpSchemaGuard extends Transform {
  readonly neutralised: NeutralisedStatement[] = [];
  private pending: Buffer[] = [];
  private delimiter = ';';
  private atStatementStart = true;
  private line = 0;
  private lastLine = '';

  /** `requireTrailer`: fail at the end unless the last line is `-- Dump completed` (a truncated dump never reaches EOF downstream). */
  constructor(
    private readonly target: string,
    private readonly options: { requireTrailer?: boolean } = {},
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl + 1);
        const line = this.pending.length > 0 ? Buffer.concat([...this.pending, piece]) : piece;
        this.pending = [];
        this.push(this.processLine(line));
        start = nl + 1;
      }
      if (start < chunk.length) this.pending.push(Buffer.from(chunk.subarray(start)));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.pending.length > 0) this.push(this.processLine(Buffer.concat(this.pending)));
      this.pending = [];
      if (this.options.requireTrailer && !/^-- Dump completed\b/.test(this.lastLine)) {
        throw new DumpNotRestorableError(`the dump ends at line ${this.line} without its "-- Dump completed" trailer: it is truncated`);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private processLine(line: Buffer): Buffer {
    this.line++;
    if (line.length <= 256) {
      const text = line.toString('utf8').trim();
      if (text !== '') this.lastLine = text;
    } else {
      this.lastLine = ''; // a long line is data, never the trailer
    }
    const wasStart = this.atStatementStart;
    this.atStatementStart = this.endsStatement(line);
    if (!wasStart) return line;

    const head = line.subarray(0, 1024).toString('utf8');
    const trimmed = head.trim();
    if (trimmed === '' || trimmed.startsWith('--') || SANDBOX_LINE.test(trimmed)) {
      this.atStatementStart = true;
      return line;
    }
    const delimiter = /^DELIMITER\s+(\S+)/i.exec(trimmed);
    if (delimiter) {
      this.delimiter = delimiter[1]!;
      this.atStatementStart = true;
      return line;
    }
    if (USE_LINE.test(head) || DATABASE_LINE.test(head)) {
      const statement = USE_LINE.test(head) ? 'USE' : `${DATABASE_LINE.exec(head)![1]!.toUpperCase()} DATABASE`;
      this.requireSingleLine(line, statement);
      this.record('removed', statement, head);
      return Buffer.from(`-- nnoe-dr removed a ${statement} statement here (restoring into \`${this.target}\`)\n`);
    }
    const alter = ALTER_DATABASE_LINE.exec(head);
    if (alter && !ALTER_DATABASE_KEYWORDS.test(alter[2]!)) {
      this.requireSingleLine(line, 'ALTER DATABASE');
      this.record('retargeted', 'ALTER DATABASE', head);
      const text = line.toString('utf8');
      return Buffer.from(text.replace(ALTER_DATABASE_LINE, (_m, prefix: string) => `${prefix}${q(this.target)}`));
    }
    if (CREATE_LINE.test(head) && /\bTRIGGER\b/i.test(head) && QUALIFIED_TRIGGER.test(head)) {
      const text = line.toString('utf8');
      const rewritten = text.replace(
        TRIGGER_HEADER,
        (_m, trigger: string, nameAndTiming: string, table: string) => `${trigger}${nameAndTiming}${table}`,
      );
      if (QUALIFIED_TRIGGER.test(rewritten)) {
        throw new DumpNotRestorableError(`line ${this.line}: cannot take the schema name out of this trigger header: ${cut(text)}`);
      }
      this.record('retargeted', 'TRIGGER qualifier', head);
      return Buffer.from(rewritten);
    }
    return line;
  }

  /** The line's last non-blank characters are the current delimiter. */
  private endsStatement(line: Buffer): boolean {
    const tail = line
      .subarray(Math.max(0, line.length - 64))
      .toString('latin1')
      .trimEnd();
    return tail.endsWith(this.delimiter);
  }

  private requireSingleLine(line: Buffer, statement: string): void {
    if (!this.endsStatement(line)) {
      throw new DumpNotRestorableError(
        `line ${this.line}: a ${statement} statement spanning several lines cannot be neutralised safely: ${cut(line.toString('utf8'))}`,
      );
    }
  }

  private record(action: NeutralisedStatement['action'], statement: string, head: string): void {
    this.neutralised.push({ line: this.line, action, statement, text: cut(head) });
  }
}

function cut(text: string, max = 120): string {
  const line = text.replace(/\s+$/, '');
  return line.length > max ? `${line.slice(0, max)}...` : line;
}
