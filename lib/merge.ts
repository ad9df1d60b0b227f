/**
 * Stage 4, merge: fold partition p of every scan task into one table, sort it by user id (byte
 * order of the id's UTF-8 text) and write shard p. One task per partition; partitions merge in
 * parallel.
 *
 * Bounded memory: when a partition's table would pass the task's share of `--memory`, it is merged
 * in S sub-partitions, chosen by the hash bits just below the partition's bits. Each sub-partition
 * is one pass over the partition's sections that keeps only its own keys; it is folded, sorted and
 * written as a sorted run file; then the S runs are merged by key into the shard (a k-way merge
 * with one small buffer per run). A key lives in exactly one sub-partition, so the shard is
 * byte-identical to a one-pass merge.
 *
 * Retries: an attempt writes only files named for its attempt under `scratchDir`, and the shard
 * appears under its final name by one rename at the end, so a crashed or timed-out attempt that is
 * still writing cannot corrupt the attempt that replaces it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KeyTable, COUNT, NUM, SUM } from './table.js';
import { decodeSection, type Section } from './partial.js';
import { LIMB_MAX, POW10, addBig, addExact, formatScaled, limbsToBig } from './util/exact.js';
import { formatDate } from './util/bytes.js';

/** Where a section lives: shared memory, or a byte range of a spill file. */
export type SegmentRef = { shared: SharedArrayBuffer } | { path: string; offset: number; length: number };

/** One merge task. */
export interface MergeTask {
  partition: number;
  partitions: number;
  segments: SegmentRef[];
  flags: number;
  /** Decimal places of totals and quantities in the output (the job's maximum). */
  scale: number;
  qscale: number;
  dateHasTime: boolean;
  /** The shard file to write. */
  outFile: string;
  /**
   * Bytes this task may use for its table (default: no limit, one pass). A partition whose
   * estimate passes it is merged in sub-partitions through sorted run files.
   */
  memory?: number;
  /** Folder for this task's temporary files (default: the shard's folder). */
  scratchDir?: string;
  /** The attempt (1-based; the pool sets it): it names the attempt's temporary files. */
  attempt?: number;
}

/** What a merge task returns. */
export interface MergeOutput {
  partition: number;
  users: number;
  rows: number;
  /** Exact sums as scaled-integer strings (BigInt text). */
  total: string;
  quantity: string;
  bytes: number;
  /** Passes over the partition's sections: 1, or the number of sub-partitions. */
  subPartitions: number;
}

/**
 * Table bytes per section byte in the worst case: a section row costs about 47 bytes (hash, four
 * float64 accumulators, key end, a 7-byte key); in a table the same key costs up to ~210 (slots at
 * 25-50% load, rows and arena with doubling headroom, the old arrays while they grow, and the sort's
 * 12 bytes). Keys seen in several sections count once in the table, so this over-estimates there.
 */
export const MERGE_EXPANSION = 5;

/** The byte length of a segment. */
export function segmentBytes(ref: SegmentRef): number {
  return 'shared' in ref ? ref.shared.byteLength : ref.length;
}

/** Read a segment into a decoded section (spilled ones into `scratch` when it is large enough). */
export function loadSegment(ref: SegmentRef, scratch?: { buf: ArrayBuffer }): Section {
  if ('shared' in ref) return decodeSection(ref.shared);
  let ab: ArrayBuffer;
  if (scratch) {
    if (scratch.buf.byteLength < ref.length) scratch.buf = new ArrayBuffer(Math.max(ref.length, scratch.buf.byteLength * 2));
    ab = scratch.buf;
  } else ab = new ArrayBuffer(ref.length);
  const buf = new Uint8Array(ab, 0, ref.length);
  const fd = fs.openSync(ref.path, 'r');
  try {
    let got = 0;
    while (got < ref.length) {
      const n = fs.readSync(fd, buf, got, ref.length - got, ref.offset + got);
      if (n === 0) throw new Error(`spill file ${ref.path} ends early (wanted ${ref.length} bytes at ${ref.offset})`);
      got += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return decodeSection(buf);
}

/** Add limbs (lo, hi) at decimal places `from` into the limbs at acc[at] at places `to` >= from. */
function addLimbs(acc: Float64Array, at: number, lo: number, hi: number, from: number, to: number): void {
  if (from === to) {
    addExact(acc, at, lo);
    acc[at + 1] += hi;
    return;
  }
  const v = lo * POW10[to - from];
  if (hi === 0 && v <= LIMB_MAX && v >= -LIMB_MAX) addExact(acc, at, v);
  else addBig(acc, at, limbsToBig(lo, hi) * 10n ** BigInt(to - from));
}

/** Which of `subs` sub-partitions of partition p (of P) a key hash falls in. */
export function subPartitionOf(hash: number, P: number, p: number, subs: number): number {
  // the position of the hash inside its partition's slice of [0, 2^32), exact in float64
  const within = (hash >>> 0) * P - p * 4294967296;
  return Math.floor((within * subs) / 4294967296);
}

/** Keep only the keys of sub-partition `sub` of `subs` of partition p (of P). */
export interface SubFilter {
  partition: number;
  partitions: number;
  subs: number;
  sub: number;
}

/** Fold sections into a table whose scales are the job's (only one sub-partition's keys with `only`). */
export function mergeSections(sections: Iterable<Section>, flags: number, scale: number, qscale: number, only?: SubFilter): KeyTable {
  const t = new KeyTable(flags, 1024);
  t.scale = scale;
  t.qscale = qscale;
  const filter = only !== undefined && only.subs > 1;
  for (const s of sections) {
    const w = s.width;
    const { hashes, acc: sacc, keyEnds, keyBytes } = s;
    for (let i = 0; i < s.n; i++) {
      if (filter && subPartitionOf(hashes[i], only.partitions, only.partition, only.subs) !== only.sub) continue;
      const ks = i === 0 ? 0 : keyEnds[i - 1];
      const o = i * w;
      const id = t.find(hashes[i], sacc[o], keyBytes, ks, keyEnds[i]);
      const acc = t.acc;
      const d = id * t.width;
      acc[d + COUNT] += sacc[o + COUNT];
      addLimbs(acc, d + SUM, sacc[o + SUM], sacc[o + SUM + 1], s.scale, scale);
      if (t.qtyOff >= 0) addLimbs(acc, d + t.qtyOff, sacc[o + t.qtyOff], sacc[o + t.qtyOff + 1], s.qscale, qscale);
      if (t.dateOff >= 0) {
        const a = sacc[o + t.dateOff];
        const b = sacc[o + t.dateOff + 1];
        if (a < acc[d + t.dateOff]) acc[d + t.dateOff] = a;
        if (b > acc[d + t.dateOff + 1]) acc[d + t.dateOff + 1] = b;
      }
    }
  }
  return t;
}

/** Ids of a table in byte order of their keys. */
export function sortedIds(t: KeyTable): Uint32Array {
  const n = t.size;
  const { keyEnds, arena } = t;
  // the first 6 bytes as a number decide most comparisons without touching the arena again
  const pre = new Float64Array(n);
  for (let id = 0; id < n; id++) {
    const s = id === 0 ? 0 : keyEnds[id - 1];
    const e = keyEnds[id];
    let v = 0;
    for (let k = 0; k < 6; k++) v = v * 256 + (s + k < e ? arena[s + k] + 1 : 0);
    pre[id] = v;
  }
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  ids.sort((a, b) => {
    const d = pre[a] - pre[b];
    if (d !== 0) return d;
    const as = a === 0 ? 0 : keyEnds[a - 1];
    const ae = keyEnds[a];
    const bs = b === 0 ? 0 : keyEnds[b - 1];
    const be = keyEnds[b];
    const len = Math.min(ae - as, be - bs);
    for (let k = 6; k < len; k++) {
      const x = arena[as + k] - arena[bs + k];
      if (x !== 0) return x;
    }
    return ae - as - (be - bs);
  });
  return ids;
}

/** The header of a users shard. */
export function shardHeader(flags: number): string {
  let h = 'user_id,purchases,total';
  if (flags & 1) h += ',quantity';
  if (flags & 2) h += ',first_date,last_date';
  return h + '\n';
}

/** The text of a key as a CSV field (quoted when it holds a comma, quote or line break). */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Exact totals of the rows written. */
interface Totals {
  rows: number;
  total: bigint;
  quantity: bigint;
}

const TWO52 = 2 ** 52;

/**
 * Format every row of a table in key order and hand each to `emit` with its key bytes. Sums are
 * added as float64 while that is exact and carried into a BigInt before it could stop being so.
 */
function formatRows(t: KeyTable, dateHasTime: boolean, emit: (key: Uint8Array, line: string) => void): Totals {
  const ids = sortedIds(t);
  const { acc, keyEnds, arena } = t;
  const w = t.width;
  let total = 0n;
  let totalSmall = 0; // |totalSmall| <= 2^52 before each add of |lo| <= 2^51: exact
  let quantity = 0n;
  let qtySmall = 0;
  let rows = 0;
  const dec = new TextDecoder();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const o = id * w;
    const s = id === 0 ? 0 : keyEnds[id - 1];
    const keyBytes = arena.subarray(s, keyEnds[id]);
    const num = acc[o + NUM];
    // a plain decimal key without a leading zero prints as its number, and needs no quoting
    const field = num >= 0 ? String(num) : csvField(dec.decode(keyBytes));
    const count = acc[o + COUNT];
    rows += count;
    const lo = acc[o + SUM];
    const hi = acc[o + SUM + 1];
    let sum: number | bigint;
    if (hi === 0) {
      sum = lo;
      totalSmall += lo;
      if (totalSmall > TWO52 || totalSmall < -TWO52) {
        total += BigInt(totalSmall);
        totalSmall = 0;
      }
    } else {
      sum = limbsToBig(lo, hi);
      total += sum;
    }
    let line = `${field},${count},${formatScaled(sum, t.scale)}`;
    if (t.qtyOff >= 0) {
      const qlo = acc[o + t.qtyOff];
      const qhi = acc[o + t.qtyOff + 1];
      let q: number | bigint;
      if (qhi === 0) {
        q = qlo;
        qtySmall += qlo;
        if (qtySmall > TWO52 || qtySmall < -TWO52) {
          quantity += BigInt(qtySmall);
          qtySmall = 0;
        }
      } else {
        q = limbsToBig(qlo, qhi);
        quantity += q;
      }
      line += ',' + formatScaled(q, t.qscale);
    }
    if (t.dateOff >= 0) line += `,${formatDate(acc[o + t.dateOff], dateHasTime)},${formatDate(acc[o + t.dateOff + 1], dateHasTime)}`;
    emit(keyBytes, line + '\n');
  }
  return { rows, total: total + BigInt(totalSmall), quantity: quantity + BigInt(qtySmall) };
}

/** Format a merged table as a users shard (sorted), and its exact totals. */
export function formatShard(t: KeyTable, dateHasTime: boolean): { text: Buffer; total: bigint; quantity: bigint; rows: number } {
  const parts: string[] = [shardHeader(t.flags)];
  const { rows, total, quantity } = formatRows(t, dateHasTime, (_k, line) => parts.push(line));
  return { text: Buffer.from(parts.join('')), total, quantity, rows };
}

const CHUNK = 1 << 20;

/** Buffered writes to a file: rows go straight into a reused chunk, never one big string. */
class ChunkWriter {
  private buf = Buffer.allocUnsafe(CHUNK);
  private pos = 0;
  /** Bytes written so far (flushed or not). */
  bytes = 0;
  private readonly fd: number;
  constructor(file: string) {
    this.fd = fs.openSync(file, 'w');
  }

  /** Make room for `n` more bytes. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  text(s: string): void {
    this.room(s.length * 3);
    const n = this.buf.write(s, this.pos);
    this.pos += n;
    this.bytes += n;
  }

  bytesOf(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    this.bytes += b.length;
  }

  /** A run record: u32 key length, u32 line length, key bytes, line bytes. */
  record(key: Uint8Array, line: string): void {
    this.room(8 + key.length + line.length * 3);
    const at = this.pos;
    this.buf.set(key, at + 8);
    const n = this.buf.write(line, at + 8 + key.length);
    this.buf.writeUInt32LE(key.length, at);
    this.buf.writeUInt32LE(n, at + 4);
    this.pos += 8 + key.length + n;
    this.bytes += 8 + key.length + n;
  }

  flush(): void {
    let off = 0;
    while (off < this.pos) off += fs.writeSync(this.fd, this.buf, off, this.pos - off);
    this.pos = 0;
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}

/** Reads the records of one sorted run file in order, through one buffer. */
class RunReader {
  private buf = Buffer.allocUnsafe(CHUNK);
  private start = 0; // first unread byte in buf
  private end = 0; // end of the bytes read into buf
  private filePos = 0;
  private eof = false;
  private readonly fd: number;
  /** The current record (valid until the next call of `next`). */
  key: Buffer = this.buf.subarray(0, 0);
  line: Buffer = this.buf.subarray(0, 0);

  constructor(file: string) {
    this.fd = fs.openSync(file, 'r');
  }

  /** Have at least `n` unread bytes in the buffer, unless the file ends first. */
  private fill(n: number): boolean {
    if (this.end - this.start >= n) return true;
    if (this.start > 0) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    if (n > this.buf.length) {
      const b = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(b, 0, 0, this.end);
      this.buf = b;
    }
    while (!this.eof && this.end < n) {
      const got = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, this.filePos);
      if (got === 0) this.eof = true;
      this.end += got;
      this.filePos += got;
    }
    return this.end - this.start >= n;
  }

  /** Move to the next record; false at the end of the run. */
  next(): boolean {
    if (!this.fill(8)) {
      if (this.end !== this.start) throw new Error('a sorted run file ends inside a record');
      return false;
    }
    const k = this.buf.readUInt32LE(this.start);
    const l = this.buf.readUInt32LE(this.start + 4);
    if (!this.fill(8 + k + l)) throw new Error('a sorted run file ends inside a record');
    const s = this.start + 8;
    this.key = this.buf.subarray(s, s + k);
    this.line = this.buf.subarray(s + k, s + k + l);
    this.start = s + k + l;
    return true;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Merge sorted runs (disjoint keys) into `out`, in key byte order, through a binary heap. */
function mergeRuns(files: string[], out: ChunkWriter): void {
  const readers = files.map((f) => new RunReader(f));
  try {
    const heap: RunReader[] = readers.filter((r) => r.next());
    const less = (a: RunReader, b: RunReader): boolean => Buffer.compare(a.key, b.key) < 0;
    const down = (i: number): void => {
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) return;
        const r = l + 1;
        const c = r < n && less(heap[r], heap[l]) ? r : l;
        if (!less(heap[c], heap[i])) return;
        [heap[c], heap[i]] = [heap[i], heap[c]];
        i = c;
      }
    };
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
    while (heap.length > 0) {
      const top = heap[0];
      out.bytesOf(top.line);
      if (!top.next()) {
        const last = heap.pop()!;
        if (heap.length === 0) break;
        heap[0] = last;
      }
      down(0);
    }
  } finally {
    for (const r of readers) r.close();
  }
}

/** The sections of a task, read one at a time (spilled ones through one reused buffer). */
function* eachSection(refs: SegmentRef[]): Generator<Section> {
  const scratch = { buf: new ArrayBuffer(0) };
  for (const ref of refs) yield loadSegment(ref, scratch);
}

/** Sub-partitions a partition needs so that one pass fits in `memory` bytes. */
export function subPartitionsFor(inputBytes: number, memory: number | undefined): number {
  if (!memory || !(memory > 0)) return 1;
  return Math.min(4096, Math.max(1, Math.ceil((inputBytes * MERGE_EXPANSION) / memory)));
}

/** Run one merge task: fold, sort, write the shard (through sorted runs when memory is tight). */
export function mergePartition(task: MergeTask): MergeOutput {
  const inputBytes = task.segments.reduce((s, r) => s + segmentBytes(r), 0);
  const subs = subPartitionsFor(inputBytes, task.memory);
  const scratch = task.scratchDir ?? path.dirname(task.outFile);
  fs.mkdirSync(scratch, { recursive: true });
  const tag = `${path.basename(task.outFile)}.a${task.attempt ?? 1}`;
  const tmpOut = path.join(scratch, `${tag}.tmp`);
  const runs: string[] = [];
  let users = 0;
  const totals: Totals = { rows: 0, total: 0n, quantity: 0n };
  const add = (x: Totals): void => {
    totals.rows += x.rows;
    totals.total += x.total;
    totals.quantity += x.quantity;
  };
  const out = new ChunkWriter(tmpOut);
  try {
    out.text(shardHeader(task.flags));
    if (subs === 1) {
      const t = mergeSections(eachSection(task.segments), task.flags, task.scale, task.qscale);
      users = t.size;
      add(formatRows(t, task.dateHasTime, (_k, line) => out.text(line)));
    } else {
      for (let sub = 0; sub < subs; sub++) {
        const only = { partition: task.partition, partitions: task.partitions, subs, sub };
        let t: KeyTable | undefined = mergeSections(eachSection(task.segments), task.flags, task.scale, task.qscale, only);
        users += t.size;
        const file = path.join(scratch, `${tag}.run${sub}`);
        runs.push(file);
        const run = new ChunkWriter(file);
        try {
          add(formatRows(t, task.dateHasTime, (key, line) => run.record(key, line)));
        } finally {
          run.close();
        }
        t = undefined; // let the table go before the next pass allocates its own
      }
      mergeRuns(runs, out);
    }
  } finally {
    out.close();
    for (const f of runs) fs.rmSync(f, { force: true });
  }
  fs.renameSync(tmpOut, task.outFile);
  return {
    partition: task.partition,
    users,
    rows: totals.rows,
    total: totals.total.toString(),
    quantity: totals.quantity.toString(),
    bytes: out.bytes,
    subPartitions: subs,
  };
}
