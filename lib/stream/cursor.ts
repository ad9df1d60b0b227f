/**
 * A read position in one source file, and the planning of micro-batches over cursors.
 *
 * A batch is a set of byte ranges of source files handed to the batch job's scan task (lib/scan.ts)
 * as they are: a batch never holds a partial line of a file that may still grow (it ends after the
 * last newline), and a long run of bytes is cut at newlines and split into one range per worker,
 * whose boundaries follow Beam's rule (a range owns the records that start in it).
 *
 * Each cursor keeps two positions: `next`, where the next batch starts (planned), and `offset`,
 * what the state has taken in (committed, saved in checkpoints).
 */
import fs from 'node:fs';
import type { FileSchema } from '../schema.js';
import { scanSchemaOf, scanTaskOf, type ScanTask } from '../scan.js';
import type { CursorRecord, CursorSchema } from './checkpoint.js';

const NL = 10;
const BLOCK = 64 << 10;
/** A range below this is not split further across workers. */
const MIN_SPLIT = 512 << 10;
/** Linux lets any thread reopen a descriptor of the process: scan tasks read the very inode held. */
const PROC_FD = (() => {
  try {
    return fs.statSync('/proc/self/fd').isDirectory();
  } catch {
    return false;
  }
})();

/** The cursor schema of a resolved file schema. */
export function cursorSchema(s: FileSchema, headerText: string): CursorSchema {
  return {
    ...scanSchemaOf(s),
    headerText: s.headerLines > 0 ? headerText : '',
    dataStart: s.dataStart,
    headerLines: s.headerLines,
  };
}

/** A read position in one file. */
export class Cursor {
  label: string;
  path: string;
  ino: number;
  offset: number;
  lines: number;
  sealed: boolean;
  schema: CursorSchema;
  base: number;
  /** Where the next batch starts. */
  next: number;
  /** Ranges of this cursor in flight. */
  pending = 0;
  /** The file was truncated: a new cursor reads it from the start; this one takes no new batch. */
  superseded = false;
  fd = -1;
  /** Size at the last {@link Cursor.refresh}. */
  size = 0;
  /** Size at the refresh before (a rotated file is sealed once it stops growing). */
  prevSize = -1;
  private nlSize = -1;
  private nlEnd = 0;

  constructor(rec: CursorRecord) {
    this.label = rec.label;
    this.path = rec.path;
    this.ino = rec.ino;
    this.offset = rec.offset;
    this.lines = rec.lines;
    this.sealed = rec.sealed;
    this.schema = rec.schema;
    this.base = rec.base;
    this.next = rec.offset;
  }

  /** What a checkpoint saves (the committed position). */
  record(): CursorRecord {
    return { label: this.label, path: this.path, ino: this.ino, offset: this.offset, lines: this.lines, sealed: this.sealed, schema: this.schema, base: this.base };
  }

  /** Open the file when it is still the same inode. */
  open(): boolean {
    if (this.fd >= 0) return true;
    let fd: number;
    try {
      fd = fs.openSync(this.path, 'r');
    } catch {
      return false;
    }
    const st = fs.fstatSync(fd);
    if (this.ino !== 0 && st.ino !== this.ino) {
      fs.closeSync(fd);
      return false;
    }
    this.ino = st.ino;
    this.fd = fd;
    this.size = st.size;
    return true;
  }

  /** Read the file's size again (through the open descriptor: the inode, whatever its name now). */
  refresh(): number {
    if (this.fd < 0) return this.size;
    this.prevSize = this.size;
    this.size = fs.fstatSync(this.fd).size;
    return this.size;
  }

  /** The path a scan task opens: the held descriptor where the OS allows it. */
  readPath(): string {
    return PROC_FD && this.fd >= 0 ? `/proc/self/fd/${this.fd}` : this.path;
  }

  /** The end of the bytes a batch may take: the file's end when sealed, else after its last newline. */
  plannableEnd(): number {
    if (this.superseded) return this.next;
    if (this.schema.compressed) return this.size;
    if (this.sealed) return this.size;
    if (this.nlSize === this.size) return Math.max(this.nlEnd, this.next);
    this.nlSize = this.size;
    this.nlEnd = this.lastNewlineEnd(this.next, this.size);
    return Math.max(this.nlEnd, this.next);
  }

  /** Bytes not yet planned into a batch. */
  get lag(): number {
    return Math.max(0, this.size - this.next);
  }

  /** Every byte is committed, and no more will come. */
  get finished(): boolean {
    return this.pending === 0 && (this.superseded || (this.sealed && this.next >= this.size && this.offset >= this.next));
  }

  /** The position after the last newline in [from, to), or `from` when there is none. */
  private lastNewlineEnd(from: number, to: number): number {
    if (to <= from) return from;
    const buf = Buffer.allocUnsafe(Math.min(BLOCK, to - from));
    let end = to;
    while (end > from) {
      const start = Math.max(from, end - buf.length);
      const n = fs.readSync(this.fd, buf, 0, end - start, start);
      const at = buf.lastIndexOf(NL, n - 1);
      if (at >= 0) return start + at + 1;
      end = start;
    }
    return from;
  }

  /** The position after the first newline at or after `x` (at most `limit`). */
  alignForward(x: number, limit: number): number {
    const buf = Buffer.allocUnsafe(BLOCK);
    let at = x;
    while (at < limit) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(buf.length, limit - at), at);
      if (n <= 0) break;
      const i = buf.indexOf(NL);
      if (i >= 0 && i < n) return at + i + 1;
      at += n;
    }
    return limit;
  }

  /** The newlines in [0, offset) (for reject line numbers when starting mid-file). */
  countLines(to: number): number {
    const buf = Buffer.allocUnsafe(4 << 20);
    let lines = 0;
    for (let at = 0; at < to; ) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(buf.length, to - at), at);
      if (n <= 0) break;
      for (let i = buf.indexOf(NL); i >= 0 && i < n; i = buf.indexOf(NL, i + 1)) lines++;
      at += n;
    }
    return lines;
  }

  close(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // closed already
      }
      this.fd = -1;
    }
  }
}

/** One byte range of a batch. */
export interface Piece {
  cursor: Cursor;
  start: number;
  end: number;
  atRecordStart: boolean;
  /** The last range of its cursor in this batch. */
  last: boolean;
}

/**
 * Plan one batch: take plannable bytes from the cursors in order, up to `budget` bytes, cut at a
 * newline, and split each cursor's run into up to `workers` ranges.
 *
 * @returns The ranges (each cursor's `next` and `pending` advanced), or [] when nothing is waiting.
 */
export function planBatch(cursors: Cursor[], budget: number, workers: number): Piece[] {
  const pieces: Piece[] = [];
  for (const c of cursors) {
    if (budget <= 0) break;
    if (c.fd < 0 || c.superseded) continue;
    const end = c.plannableEnd();
    if (end <= c.next) continue;
    if (c.schema.compressed) {
      // not splittable: the whole file in one range, its position in compressed bytes
      pieces.push({ cursor: c, start: c.schema.dataStart, end: Number.MAX_SAFE_INTEGER, atRecordStart: true, last: true });
      c.pending++;
      c.next = c.size;
      budget -= c.size * 4;
      continue;
    }
    const from = c.next;
    const to = end - from > budget ? c.alignForward(from + Math.max(1, Math.floor(budget)), end) : end;
    const parts = Math.max(1, Math.min(workers, Math.floor((to - from) / MIN_SPLIT)));
    for (let i = 0; i < parts; i++) {
      const s = from + Math.floor(((to - from) * i) / parts);
      const e = i + 1 === parts ? to : from + Math.floor(((to - from) * (i + 1)) / parts);
      pieces.push({ cursor: c, start: s, end: e, atRecordStart: i === 0, last: i + 1 === parts });
    }
    c.pending += parts;
    c.next = to;
    budget -= to - from;
  }
  return pieces;
}

/** The scan task of a range (lib/scan.ts), with one partition: the state is not sharded. */
export function scanTask(p: Piece, taskIndex: number): ScanTask & { taskIndex: number } {
  return scanTaskOf(p.cursor.readPath(), p.cursor.schema, { fileIndex: 0, rangeIndex: 0, start: p.start, end: p.end, atRecordStart: p.atRecordStart }, 1, taskIndex);
}
