/**
 * `--follow FILE`: a growing file, read like `tail -F`.
 *
 * - Rotation (the name now points at another inode, or at nothing): the old inode is read to its
 *   end through the descriptor still held, then the new file from its header. The old file is
 *   sealed (its last line counts even without a newline) once it has stopped growing for a poll.
 * - Truncation (same inode, smaller than what was read): read again from the start; a first line
 *   equal to the header is skipped as a header.
 * - Restart: the checkpoint names each file by inode; a rotated file is found again by its inode
 *   in the same folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Cursor } from './cursor.js';
import { firstLine, openFile, type FileReject, type Source, type SourceContext } from './source.js';
import type { CursorRecord, SourceRecord } from './checkpoint.js';

/** Where a followed file starts on the first run. */
export interface FollowStart {
  mode: 'auto' | 'beginning' | 'end';
  /** For `auto`: the bytes of this file that the --from output read, when it read this file. */
  readBytes?: number;
}

export class FollowSource implements Source {
  readonly kind = 'follow';
  private readonly file: string;
  private readonly label: string;
  private readonly ctx: SourceContext;
  /** Cursors in reading order: rotated files first, the active one last. */
  private list: Cursor[] = [];
  private active: Cursor | undefined;
  /** Polls since a cursor's file was rotated away. */
  private readonly rotated = new Map<Cursor, number>();
  /** The inode and schema of a truncated file whose new start is not yet decided. */
  private truncated: { ino: number; cursor: Cursor } | undefined;
  /** The first open applies the start mode (a restart never does). */
  private start: FollowStart | undefined;

  constructor(file: string, ctx: SourceContext) {
    this.label = file;
    this.file = path.resolve(file);
    this.ctx = ctx;
  }

  /** Set up from a checkpoint's record, or for a first run. */
  init(rec: SourceRecord | undefined, start: FollowStart): void {
    if (!rec || !rec.started) {
      this.start = start;
      return;
    }
    const records = rec.cursors;
    records.forEach((r, i) => {
      const c = this.reopen(r);
      if (!c) {
        this.ctx.log(`${this.label}: the file read up to byte ${r.offset} at the checkpoint (inode ${r.ino}) is gone; what it held after that is lost`);
        return;
      }
      const isActive = i === records.length - 1 && c.path === this.file;
      c.refresh();
      if (c.size < c.offset) {
        this.ctx.log(`${this.label}: truncated while the stream was stopped; reading it again from the start`);
        c.superseded = true;
        c.offset = c.next = c.size;
        this.list.push(c);
        if (isActive) this.truncated = { ino: c.ino, cursor: c };
        return;
      }
      this.list.push(c);
      if (isActive) this.active = c;
      else this.rotated.set(c, 0);
    });
  }

  /** Open a saved cursor's file: by its path, else by its inode in the same folder (rotated). */
  private reopen(r: CursorRecord): Cursor | undefined {
    const c = new Cursor(r);
    if (c.open()) return c;
    const dir = path.dirname(r.path);
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return undefined;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      try {
        if (fs.statSync(p).ino === r.ino) {
          c.path = p;
          if (c.open()) return c;
        }
      } catch {
        // vanished meanwhile
      }
    }
    return undefined;
  }

  poll(): FileReject[] {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.file);
    } catch {
      st = undefined;
    }
    const a = this.active;
    if (a) {
      if (st && st.ino === a.ino) {
        a.refresh();
        if (a.size < a.next) {
          this.ctx.log(`${this.label}: truncated (${a.size} bytes, ${a.next} read); reading it again from the start`);
          a.superseded = true;
          this.truncated = { ino: a.ino, cursor: a };
          this.active = undefined;
        }
      } else {
        this.ctx.log(`${this.label}: rotated; reading the rest of the old file (inode ${a.ino}), then the new one`);
        this.rotated.set(a, 0);
        this.active = undefined;
      }
    }
    for (const [c, polls] of this.rotated) {
      if (c.sealed) continue;
      const before = c.size;
      c.refresh();
      this.rotated.set(c, polls + 1);
      // sealed once it has not grown for a poll: a writer may finish a line after the rename
      if (polls >= 1 && c.size === before) c.sealed = true;
    }
    if (!this.active && st) this.openActive(st);
    return [];
  }

  private openActive(st: fs.Stats): void {
    const t = this.truncated;
    if (t && t.ino === st.ino) {
      // the same file after truncation: same schema; skip a first line equal to the header
      const old = t.cursor;
      const c = new Cursor({ ...old.record(), offset: 0, lines: 0, sealed: false });
      if (!c.open()) return;
      if (c.size === 0) return c.close();
      const schema = old.schema;
      if (schema.headerText !== '') {
        const line = firstLine(c.fd, c.size);
        if (line === undefined) return c.close();
        if (line === schema.headerText) {
          c.offset = c.next = schema.dataStart;
          c.lines = 1;
        }
      }
      this.truncated = undefined;
      this.list.push(c);
      this.active = c;
      return;
    }
    const c = openFile(this.file, this.label, false, this.ctx);
    if (!c) return;
    this.truncated = undefined;
    const start = this.start;
    this.start = undefined;
    if (start?.mode === 'end') {
      c.offset = c.next = c.plannableEnd();
      c.lines = c.countLines(c.offset);
    } else if (start?.mode === 'auto' && start.readBytes !== undefined) {
      const b = start.readBytes;
      if (b <= c.size && b >= c.offset && (b === c.size || byteAt(c.fd, b - 1) === 10)) {
        this.ctx.log(`${this.label}: starting after the ${b} bytes the --from output read`);
        c.offset = c.next = b;
        c.lines = c.countLines(b);
      } else {
        this.ctx.log(`${this.label}: the --from output read ${b} bytes of this file, which does not end a line here; reading it from the start`);
      }
    }
    this.list.push(c);
    this.active = c;
  }

  cursors(): Cursor[] {
    return this.list;
  }

  retire(c: Cursor): void {
    c.close();
    this.rotated.delete(c);
    this.list = this.list.filter((x) => x !== c);
  }

  /** Committed positions; a truncated file not yet reopened keeps its old cursor (its schema). */
  record(): SourceRecord {
    return { kind: 'follow', target: this.file, started: this.start === undefined, cursors: this.list.filter((c, i) => !c.superseded || i === this.list.length - 1).map((c) => c.record()) };
  }

  checkpointed(): void {}

  ended(): boolean {
    return false;
  }

  close(): void {
    for (const c of this.list) c.close();
  }
}

function byteAt(fd: number, at: number): number {
  if (at < 0) return 10;
  const b = Buffer.alloc(1);
  return fs.readSync(fd, b, 0, 1, at) === 1 ? b[0] : -1;
}
