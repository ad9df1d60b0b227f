/**
 * What every stream source offers the batch loop, and opening a source file as a cursor: its
 * header read by lib/schema.ts once the first line is complete, its columns checked against the
 * state's.
 */
import fs from 'node:fs';
import { readSchema, type ColumnOptions } from '../schema.js';
import { SegflowError } from '../errors.js';
import { F_DATE, F_QTY } from '../table.js';
import { Cursor, cursorSchema } from './cursor.js';
import type { CursorRecord, SourceRecord } from './checkpoint.js';

/** A file-level reject (a watched file that cannot be read), written to rejects.jsonl. */
export interface FileReject {
  file: string;
  line: number;
  offset: number;
  reason: string;
  text: string;
}

/** A stream source: the files it reads, as cursors in the order their bytes must be taken. */
export interface Source {
  readonly kind: 'follow' | 'watch' | 'stdin';
  /** Look at the files again: sizes, rotation, new files. May return file-level rejects. */
  poll(): FileReject[];
  /** The open cursors, in order. */
  cursors(): Cursor[];
  /** A cursor whose bytes are all committed: close it (and remember it as read). */
  retire(c: Cursor): void;
  /** The source's part of a checkpoint (committed positions). */
  record(): SourceRecord;
  /** After a checkpoint is on disk: drop what it no longer needs (stdin spool files). */
  checkpointed(): void;
  /** No byte will ever come again (standard input ended and everything is planned). */
  ended(): boolean;
  close(): void;
}

/** What a source needs from the stream. */
export interface SourceContext {
  columns: ColumnOptions;
  /** The state's table flags: a file must have the same optional columns. */
  flags: number;
  log: (message: string) => void;
}

/** The first line of an open file, or undefined while it has no newline yet. */
export function firstLine(fd: number, size: number): string | undefined {
  const buf = Buffer.allocUnsafe(Math.min(size, 1 << 16));
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  const nl = buf.indexOf(10);
  if (nl < 0 || nl >= n) return undefined;
  let s = nl;
  if (s > 0 && buf[s - 1] === 13) s--;
  const start = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  return buf.toString('utf8', start, s);
}

/** Check that a file's optional columns match the state's. */
export function checkColumns(file: string, names: [string, string, string, string], flags: number): void {
  const hasQty = names[2] !== '';
  const hasDate = names[3] !== '';
  if (hasQty !== ((flags & F_QTY) !== 0)) {
    throw new SegflowError('ERR_COLUMN', `${file}: ${hasQty ? `has a quantity column (${names[2]}) and the state has none; pass --quantity-col none` : 'has no quantity column and the state has one; name it with --quantity-col'}`, { file });
  }
  if (hasDate !== ((flags & F_DATE) !== 0)) {
    throw new SegflowError('ERR_COLUMN', `${file}: ${hasDate ? 'has a date column and the state has none' : 'has no date column and the state has one; name it with --date-col'}`, { file });
  }
}

/**
 * Open a file as a cursor at its first record: its header resolved as `aggregate` resolves it.
 *
 * @param path The file.
 * @param label The name rejects use.
 * @param sealed The file is complete.
 * @returns The cursor (open), or undefined while the file is missing, empty or its first line incomplete.
 * @throws SegflowError for a header whose columns do not resolve or do not match the state.
 */
export function openFile(path: string, label: string, sealed: boolean, ctx: SourceContext, base = 0): Cursor | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return undefined;
  }
  let keep = false;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size === 0) return undefined;
    const gz = isGzip(fd);
    let header = '';
    if (!gz) {
      const line = firstLine(fd, st.size);
      if (line === undefined && !(sealed && st.size < 1 << 16)) return undefined;
      header = line ?? '';
    }
    const schema = readSchema(path, ctx.columns);
    checkColumns(label, schema.names, ctx.flags);
    const cs = cursorSchema(schema, header);
    const rec: CursorRecord = { label, path, ino: st.ino, offset: gz ? 0 : schema.dataStart, lines: schema.headerLines, sealed, schema: cs, base };
    const c = new Cursor(rec);
    c.fd = fd;
    c.size = st.size;
    keep = true;
    return c;
  } finally {
    if (!keep) fs.closeSync(fd);
  }
}

function isGzip(fd: number): boolean {
  const b = Buffer.alloc(2);
  fs.readSync(fd, b, 0, 2, 0);
  return b[0] === 0x1f && b[1] === 0x8b;
}
