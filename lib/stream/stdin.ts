/**
 * Standard input (or any Readable): its bytes are appended to spool files in the state folder
 * and read from there like a followed file, so that a batch is a byte range handed to the scan
 * task like any other, and bytes that reached the spool survive a crash (they are read after the
 * restart). Bytes still in the pipe when the process dies are lost: exactly-once holds for file
 * and folder sources; standard input gets it from the spool on.
 *
 * Spool files are `stdin-SSSSSS-BBBBBBBBBBBBBBB-LLLLLLLLLLLL.spool`: session, the part's first byte
 * in the session's input and the newlines before it (for reject offsets and line numbers). A part
 * is closed at a newline after {@link PART_BYTES}, deleted once a checkpoint no longer needs it.
 * A session's schema (from its header line) is kept beside the parts.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Cursor } from './cursor.js';
import { openFile, type FileReject, type Source, type SourceContext } from './source.js';
import type { CursorRecord, CursorSchema, SourceRecord } from './checkpoint.js';

const PART_BYTES = 64 << 20;
const NL = 10;
const NAME = /^stdin-(\d{6})-(\d{15})-(\d{12})\.spool$/;

const partName = (session: number, base: number, lines: number): string =>
  `stdin-${String(session).padStart(6, '0')}-${String(base).padStart(15, '0')}-${String(lines).padStart(12, '0')}.spool`;
const schemaName = (session: number): string => `stdin-${String(session).padStart(6, '0')}.schema.json`;
const endName = (session: number): string => `stdin-${String(session).padStart(6, '0')}.end`;

export class StdinSource implements Source {
  readonly kind = 'stdin';
  private readonly dir: string;
  private readonly ctx: SourceContext;
  private list: Cursor[] = [];
  private session = 0;
  /** The part being written: its file, bytes and the cursor once it has one. */
  private part: { path: string; fd: number; size: number; base: number; lines: number; cursor?: Cursor } | undefined;
  private schema: CursorSchema | undefined;
  /** Bytes and newlines written in this session. */
  private bytes = 0;
  private newlines = 0;
  private inputEnded = false;
  private failure: Error | undefined;
  /** Files read to their end; those of the last record() are deleted once its checkpoint is on disk. */
  private obsolete: string[] = [];
  private deletable: string[] = [];
  /** Rejects found while recovering (a line cut by a crash). */
  private recovered: FileReject[] = [];
  private lastCreated = '';

  constructor(dir: string, ctx: SourceContext) {
    this.dir = dir;
    this.ctx = ctx;
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Recover the spool of earlier runs, then start a new session on `input`. */
  init(rec: SourceRecord | undefined, input: Readable): void {
    const names = fs.readdirSync(this.dir).sort();
    const referenced = new Map<string, CursorRecord>((rec?.cursors ?? []).map((r) => [path.basename(r.path), r]));
    const last = rec?.spoolLast ?? '';
    let maxSession = 0;
    const sessions = new Map<number, string[]>();
    for (const name of names) {
      const m = NAME.exec(name);
      if (!m) continue;
      const s = Number(m[1]);
      maxSession = Math.max(maxSession, s);
      if (!sessions.has(s)) sessions.set(s, []);
      sessions.get(s)!.push(name);
    }
    for (const [s, parts] of sessions) {
      const schema = this.readSessionSchema(s);
      const ended = fs.existsSync(path.join(this.dir, endName(s)));
      parts.forEach((name, i) => {
        const p = path.join(this.dir, name);
        const m = NAME.exec(name)!;
        const r = referenced.get(name);
        if (!r && name <= last) {
          // read to its end before the checkpoint; the deletion did not happen
          fs.rmSync(p, { force: true });
          return;
        }
        if (!schema && !r) {
          this.ctx.log(`${p}: standard input spooled before a header line was complete; nothing to read`);
          fs.rmSync(p, { force: true });
          return;
        }
        if (!ended && i === parts.length - 1) this.cutPartialLine(p, Number(m[2]), Number(m[3]));
        const base = Number(m[2]);
        const first = base === 0;
        const c = new Cursor(
          r ?? {
            label: '-',
            path: p,
            ino: 0,
            offset: first ? schema!.dataStart : 0,
            lines: Number(m[3]) + (first ? schema!.headerLines : 0),
            sealed: true,
            schema: first ? schema! : { ...schema!, dataStart: 0, headerLines: 0, headerText: '' },
            base,
          },
        );
        c.sealed = true;
        if (c.open()) this.list.push(c);
      });
    }
    for (const name of names) {
      // end markers and schemas of sessions with no part left
      const m = /^stdin-(\d{6})\.(end|schema\.json)$/.exec(name);
      if (m && !sessions.has(Number(m[1]))) fs.rmSync(path.join(this.dir, name), { force: true });
    }
    this.session = maxSession + 1;
    // (a Readable of strings, or one with an encoding set, gives strings: written as UTF-8)
    input.on('data', (data: Buffer | string) => {
      const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      try {
        this.write(chunk);
      } catch (err) {
        this.failure = err as Error;
        input.destroy();
      }
    });
    input.on('end', () => this.end());
    input.on('error', (err) => {
      this.failure = err;
      this.end();
    });
  }

  private readSessionSchema(s: number): CursorSchema | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, schemaName(s)), 'utf8')) as CursorSchema;
    } catch {
      return undefined;
    }
  }

  /** The last part of a session that did not end: a last line without a newline was cut by the crash. */
  private cutPartialLine(p: string, base: number, lines: number): void {
    const fd = fs.openSync(p, 'r+');
    try {
      const size = fs.fstatSync(fd).size;
      if (size === 0) return;
      const c = new Cursor({ label: '-', path: p, ino: 0, offset: 0, lines: 0, sealed: false, schema: {} as CursorSchema, base });
      c.fd = fd;
      c.size = size;
      const keep = c.plannableEnd();
      c.fd = -1;
      if (keep >= size) return;
      const text = Buffer.alloc(Math.min(size - keep, 200));
      fs.readSync(fd, text, 0, text.length, keep);
      const before = new Cursor({ label: '-', path: p, ino: 0, offset: 0, lines: 0, sealed: false, schema: {} as CursorSchema, base });
      before.fd = fd;
      const line = lines + before.countLines(keep) + 1;
      before.fd = -1;
      fs.ftruncateSync(fd, keep);
      this.recovered.push({ file: '-', line, offset: base + keep, reason: 'incomplete line: the stream stopped while reading it from standard input', text: text.toString('utf8') });
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Append a chunk of input to the spool; a full part is closed after a newline. */
  private write(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0) {
      if (!this.part) this.newPart();
      const part = this.part!;
      let take = rest.length;
      let full = false;
      if (part.size + rest.length >= PART_BYTES) {
        const nl = rest.lastIndexOf(NL);
        if (nl >= 0) {
          take = nl + 1;
          full = true;
        }
      }
      const piece = rest.subarray(0, take);
      let off = 0;
      while (off < piece.length) off += fs.writeSync(part.fd, piece, off, piece.length - off);
      part.size += take;
      this.bytes += take;
      for (let i = piece.indexOf(NL); i >= 0; i = piece.indexOf(NL, i + 1)) this.newlines++;
      this.attach(false);
      rest = rest.subarray(take);
      if (full) this.closePart();
    }
  }

  private newPart(): void {
    const name = partName(this.session, this.bytes, this.newlines);
    const p = path.join(this.dir, name);
    const fd = fs.openSync(p, 'w');
    this.lastCreated = name;
    this.part = { path: p, fd, size: 0, base: this.bytes, lines: this.newlines };
  }

  /** Give the part being written a cursor once it can have one (the session's header is complete). */
  private attach(sealed: boolean): void {
    const part = this.part;
    if (!part || part.cursor) return;
    let c: Cursor | undefined;
    if (part.base === 0) {
      c = openFile(part.path, '-', sealed, this.ctx, 0);
      if (!c) return;
      this.schema = c.schema;
      fs.writeFileSync(path.join(this.dir, schemaName(this.session)), JSON.stringify(c.schema));
    } else {
      const schema: CursorSchema = { ...this.schema!, dataStart: 0, headerLines: 0, headerText: '' };
      c = new Cursor({ label: '-', path: part.path, ino: 0, offset: 0, lines: part.lines, sealed, schema, base: part.base });
      if (!c.open()) return;
    }
    part.cursor = c;
    this.list.push(c);
  }

  private closePart(): void {
    const part = this.part;
    if (!part) return;
    // (forgotten even when attach throws: close() must not close the fd a second time)
    try {
      fs.closeSync(part.fd);
      this.attach(true);
    } finally {
      this.part = undefined;
    }
    if (part.cursor) part.cursor.sealed = true;
  }

  private end(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    try {
      this.closePart();
      fs.writeFileSync(path.join(this.dir, endName(this.session)), '');
    } catch (err) {
      this.failure ??= err as Error;
    }
  }

  poll(): FileReject[] {
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined;
      throw err;
    }
    for (const c of this.list) c.refresh();
    const out = this.recovered;
    this.recovered = [];
    return out;
  }

  cursors(): Cursor[] {
    return this.list;
  }

  retire(c: Cursor): void {
    c.close();
    this.list = this.list.filter((x) => x !== c);
    this.obsolete.push(c.path);
  }

  record(): SourceRecord {
    // only files retired before this snapshot: a later one may still be in the checkpoint written
    this.deletable.push(...this.obsolete);
    this.obsolete = [];
    return { kind: 'stdin', target: '', cursors: this.list.map((c) => c.record()), spoolLast: this.lastCreated };
  }

  checkpointed(): void {
    for (const p of this.deletable) fs.rmSync(p, { force: true });
    this.deletable = [];
  }

  ended(): boolean {
    return this.inputEnded && this.list.length === 0;
  }

  close(): void {
    if (this.part) {
      fs.closeSync(this.part.fd);
      this.part = undefined;
    }
    for (const c of this.list) c.close();
  }
}
