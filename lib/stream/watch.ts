/**
 * `--watch DIR`: every new data file in a folder is read once, in name order.
 *
 * Files are expected to appear complete (written elsewhere, or under a hidden or `.tmp`/`.part`
 * name, then renamed into the folder), as with Spark's and Beam's file-watching sources. A file is
 * known by name and inode: the same name with a new inode is a new file. Large files are read over
 * several batches, with their position in the checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SegflowError } from '../errors.js';
import { Cursor } from './cursor.js';
import { openFile, type FileReject, type Source, type SourceContext } from './source.js';
import type { SourceRecord } from './checkpoint.js';

/** Names a folder contributes (as lib/inputs.ts): text tables, optionally gzip-compressed. */
const DATA_FILE = /\.(csv|tsv|txt|dat|jsonl|ndjson|json)(\.gz)?$/i;
/** Files held open at once. */
const MAX_OPEN = 64;

export class WatchSource implements Source {
  readonly kind = 'watch';
  private readonly dir: string;
  private readonly label: string;
  private readonly ctx: SourceContext;
  private list: Cursor[] = [];
  /** Files read to their end (or skipped): name -> inode. */
  private readonly done = new Map<string, number>();

  constructor(dir: string, ctx: SourceContext) {
    this.label = dir;
    this.dir = path.resolve(dir);
    this.ctx = ctx;
    let st: fs.Stats;
    try {
      st = fs.statSync(this.dir);
    } catch {
      throw new SegflowError('ERR_INPUT_NOT_FOUND', `--watch: folder not found: ${dir}`, { input: dir });
    }
    if (!st.isDirectory()) throw new SegflowError('ERR_USAGE', `--watch: ${dir} is not a folder`, { input: dir });
  }

  /**
   * Set up from a checkpoint, or for a first run: with `auto`, the files the --from output read
   * (same path and size) count as read; with `end`, every file there now does.
   */
  init(rec: SourceRecord | undefined, mode: 'auto' | 'beginning' | 'end', readByFrom: Map<string, number>): void {
    if (rec) {
      for (const [name, ino] of rec.done ?? []) this.done.set(name, ino);
      for (const r of rec.cursors) {
        const c = new Cursor(r);
        if (c.open()) this.list.push(c);
        else this.ctx.log(`${r.label}: gone before it was read to its end (${r.offset} bytes read)`);
      }
      return;
    }
    if (mode === 'beginning') return;
    for (const name of this.names()) {
      const p = path.join(this.dir, name);
      const st = fs.statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (mode === 'end' || readByFrom.get(p) === st.size) this.done.set(name, st.ino);
    }
  }

  private names(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    return names.filter((n) => !n.startsWith('.') && DATA_FILE.test(n) && !/\.(tmp|part|partial)$/i.test(n)).sort();
  }

  poll(): FileReject[] {
    const rejects: FileReject[] = [];
    if (this.list.length >= MAX_OPEN) return rejects;
    const open = new Set(this.list.map((c) => path.basename(c.path)));
    for (const name of this.names()) {
      if (open.has(name)) continue;
      const p = path.join(this.dir, name);
      const st = fs.statSync(p, { throwIfNoEntry: false });
      if (!st || !st.isFile() || this.done.get(name) === st.ino) continue;
      const label = path.join(this.label, name);
      try {
        const c = openFile(p, label, true, this.ctx);
        if (!c) continue; // empty for now
        this.list.push(c);
      } catch (err) {
        const msg = (err as Error).message;
        this.ctx.log(`${label}: skipped: ${msg}`);
        rejects.push({ file: label, line: 1, offset: 0, reason: `file skipped: ${msg}`, text: '' });
        this.done.set(name, st.ino);
      }
      if (this.list.length >= MAX_OPEN) break;
    }
    return rejects;
  }

  cursors(): Cursor[] {
    return this.list;
  }

  retire(c: Cursor): void {
    this.done.set(path.basename(c.path), c.ino);
    c.close();
    this.list = this.list.filter((x) => x !== c);
  }

  record(): SourceRecord {
    return { kind: 'watch', target: this.dir, cursors: this.list.map((c) => c.record()), done: [...this.done] };
  }

  checkpointed(): void {}

  ended(): boolean {
    return false;
  }

  close(): void {
    for (const c of this.list) c.close();
  }
}
