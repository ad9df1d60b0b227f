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
import { KeyTable, COUNT, SUM, denseCount, denseWidthOf, layout } from './table.js';
import { EMPTY_SECTION_BYTES, decodeSection, denseSection, type DenseSegment, type Section } from './partial.js';
import { csvField, shardHeader, sortedIds } from './shard.js';
import { POW10, addExact, addLimbs, formatScaled, limbsToBig } from './util/exact.js';
import { formatDate } from './util/bytes.js';
import { heldShared, releaseShared } from './util/gc.js';
import { ScanTable, densePartitions, digitCount, putDigits } from './scan-table.js';
import { SegflowError } from './errors.js';

// the shard format lives in shard.ts; these names stay importable from here
export { csvField, formatShard, shardHeader, sortedIds } from './shard.js';

/** Where a section lives: shared memory, or a byte range of a spill file. */
export type SegmentRef = { shared: SharedArrayBuffer } | { path: string; offset: number; length: number };

/** One merge task. */
export interface MergeTask {
  partition: number;
  partitions: number;
  segments: SegmentRef[];
  /**
   * The dense rows of the job's held tables (scan-table.ts, DenseWindow), every partition's: the
   * task takes the keys of its own. Their keys may also be in `segments` (rows of a table that was
   * emitted some other way); they are then added up like any key.
   */
  dense?: DenseSegment[];
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
 * Peak merge bytes per section byte. A section row costs ~54 bytes per key (hash, four float64
 * accumulators, key end, a 7-9 byte key); the table holds the same key in ~64 bytes when full and
 * up to twice that just after it doubles, plus the old arrays while they are copied, plus the
 * radix sort's 14 bytes a key: ~3.3x at worst (measured 1.4x at 84% load on 220K keys of generated
 * data). Keys seen in several sections count once in the table, so real data needs less.
 */
export const MERGE_EXPANSION = 4;

/** The byte length of a segment. */
export function segmentBytes(ref: SegmentRef): number {
  return 'shared' in ref ? ref.shared.byteLength : ref.length;
}

/** A segment that holds no rows (its section is a header alone). */
export function isEmptySegment(ref: SegmentRef): boolean {
  return segmentBytes(ref) <= EMPTY_SECTION_BYTES;
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

/**
 * Add the section row at src[o] (its sums at the section's places) into the row at dst[d] (at
 * the table's `scale` / `qscale`): count, exact sums, first and last date.
 */
function addRow(dst: Float64Array, d: number, src: Float64Array, o: number, s: { scale: number; qscale: number }, t: { qtyOff: number; dateOff: number; scale: number; qscale: number }): void {
  dst[d + COUNT] += src[o + COUNT];
  addLimbs(dst, d + SUM, src[o + SUM], src[o + SUM + 1], s.scale, t.scale);
  if (t.qtyOff >= 0) addLimbs(dst, d + t.qtyOff, src[o + t.qtyOff], src[o + t.qtyOff + 1], s.qscale, t.qscale);
  if (t.dateOff >= 0) {
    const a = src[o + t.dateOff];
    const b = src[o + t.dateOff + 1];
    if (a < dst[d + t.dateOff]) dst[d + t.dateOff] = a;
    if (b > dst[d + t.dateOff + 1]) dst[d + t.dateOff + 1] = b;
  }
}

/** Fold sections into a table whose scales are the job's (only one sub-partition's keys with `only`). */
export function mergeSections(sections: Iterable<Section>, flags: number, scale: number, qscale: number, only?: SubFilter, expectedKeys = 1024): KeyTable {
  const t = new KeyTable(flags, Math.max(1024, expectedKeys));
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
      addRow(t.acc, id * t.width, sacc, o, s, t);
    }
  }
  return t;
}

const CHUNK = 1 << 20;

/**
 * Chunks that writers of this thread closed, for its next writers (at most {@link SPARE_CHUNKS}).
 * A fresh 1 MiB buffer is fresh pages: a merge task writing 8 shards faulted in 2,000-3,000 pages
 * per job, at about 15 us a page on this VM (4 ms per MiB).
 */
const spareChunks: Buffer[] = [];
const SPARE_CHUNKS = 8;

/** Buffered writes to a file: rows are formatted straight into a reused chunk, never into strings. */
class ChunkWriter {
  buf: Buffer;
  pos = 0;
  /** Bytes flushed so far. */
  private flushed = 0;
  private readonly fd: number;
  constructor(file: string) {
    this.fd = fs.openSync(file, 'w');
    this.buf = spareChunks.pop() ?? Buffer.allocUnsafe(CHUNK);
  }

  /** Bytes written so far (flushed or not). */
  get bytes(): number {
    return this.flushed + this.pos;
  }

  /** Make room for `n` more contiguous bytes (flushing first when the chunk is short of them). */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  text(s: string): void {
    this.ensure(s.length * 3);
    this.pos += this.buf.write(s, this.pos);
  }

  bytesOf(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  flush(): void {
    let off = 0;
    while (off < this.pos) off += fs.writeSync(this.fd, this.buf, off, this.pos - off);
    this.flushed += this.pos;
    this.pos = 0;
  }

  private closed = false;

  close(): void {
    this.flush();
    this.closed = true;
    fs.closeSync(this.fd);
    this.spare();
  }

  /** Close without writing what is buffered (the attempt failed), unless closed already. */
  closeQuietly(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    this.spare();
  }

  /** Keep the chunk for this thread's next writer. */
  private spare(): void {
    if (this.buf.length === CHUNK && spareChunks.length < SPARE_CHUNKS) spareChunks.push(this.buf);
    this.buf = Buffer.alloc(0);
  }
}

const TWO53 = 2 ** 53;


/** Write a non-negative integer below 2^53 at buf[p]; returns the position after it. */
function putUint(buf: Buffer, p: number, v: number): number {
  if (v < 2147483648) {
    // int32 digits: a division by the constant 10 compiles to a multiply (floats divide slowly)
    let x = v | 0;
    const end = p + digitCount(x);
    let q = end;
    do {
      const d = (x / 10) | 0;
      buf[--q] = 48 + x - d * 10;
      x = d;
    } while (x !== 0);
    return end;
  }
  const len = digitCount(v);
  putDigits(buf, p, v, len);
  return p + len;
}

/** Write an integer |v| < 2^53 as a decimal with `scale` places (as formatScaled prints it). */
function putScaled(buf: Buffer, p: number, v: number, scale: number): number {
  if (v < 0) {
    buf[p++] = 45;
    v = -v;
  }
  if (scale === 0) return putUint(buf, p, v);
  let len = digitCount(v);
  if (len <= scale) len = scale + 1; // at least one digit before the point
  const end = p + len + 1;
  let q = end;
  for (let k = 0; k < len; k++) {
    if (k === scale) buf[--q] = 46;
    const d = Math.floor(v / 10);
    buf[--q] = 48 + (v - d * 10);
    v = d;
  }
  return end;
}

/** Write limbs (lo, hi) as a decimal with `scale` places. */
function putLimbs(buf: Buffer, p: number, lo: number, hi: number, scale: number): number {
  if (hi === 0 && lo < TWO53 && lo > -TWO53) return putScaled(buf, p, lo, scale);
  return p + buf.write(formatScaled(limbsToBig(lo, hi), scale), p, 'latin1');
}

/**
 * Print a row's values after its key, `,count,total[,quantity][,first,last]`, and add its sums to
 * `totals` (total lo, hi; quantity lo, hi); returns the position after them.
 */
function putValues(
  buf: Buffer,
  p: number,
  acc: Float64Array,
  o: number,
  t: { qtyOff: number; dateOff: number; scale: number; qscale: number },
  dateHasTime: boolean,
  totals: Float64Array,
): number {
  buf[p++] = 44;
  p = putUint(buf, p, acc[o + COUNT]);
  buf[p++] = 44;
  const lo = acc[o + SUM];
  const hi = acc[o + SUM + 1];
  p = putLimbs(buf, p, lo, hi, t.scale);
  addLimbs(totals, 0, lo, hi, 0, 0);
  if (t.qtyOff >= 0) {
    const ql = acc[o + t.qtyOff];
    const qh = acc[o + t.qtyOff + 1];
    buf[p++] = 44;
    p = putLimbs(buf, p, ql, qh, t.qscale);
    addLimbs(totals, 2, ql, qh, 0, 0);
  }
  if (t.dateOff >= 0) p += buf.write(`,${formatDate(acc[o + t.dateOff], dateHasTime)},${formatDate(acc[o + t.dateOff + 1], dateHasTime)}`, p, 'latin1');
  return p;
}

/** A key byte that csvField would quote for: `,` `"` CR LF anywhere. */
const needsQuote = (c: number): boolean => c === 44 || c === 34 || c === 10 || c === 13;
/** An edge byte that may be whitespace to String.prototype.trim: ASCII blanks, or any non-ASCII. */
const edgeUnsure = (c: number): boolean => c <= 32 || c >= 0x80;

/** Exact totals of the rows written. */
interface Totals {
  rows: number;
  total: bigint;
  quantity: bigint;
}

/**
 * Format every row of a table in key order straight into `out` (bytes identical to formatShard's):
 * as plain shard rows, or with `runs` as run records (u32 key length, u32 row length, key, row).
 * Totals are summed exactly in limbs.
 */
function formatRows(t: KeyTable, dateHasTime: boolean, out: ChunkWriter, runs: boolean): Totals {
  const ids = sortedIds(t);
  const { acc, keyEnds, arena } = t;
  const w = t.width;
  const totals = new Float64Array(4); // total lo, hi; quantity lo, hi
  let rows = 0;
  const dec = new TextDecoder();
  // the longest a row can print besides its key: count, two sums (BigInt text at worst), two dates
  const fixed = 8 + 2 + 5 * 64 + 2 * (t.scale + t.qscale);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const o = id * w;
    const s = id === 0 ? 0 : keyEnds[id - 1];
    const e = keyEnds[id];
    // one contiguous reservation per row: a run record's header is filled in after its row
    out.ensure(fixed + 3 * (e - s));
    const buf = out.buf;
    const start = out.pos;
    let p = runs ? start + 8 : start;
    // keys are short: byte loops beat a subarray() object per row
    if (runs) for (let k = s; k < e; k++) buf[p++] = arena[k];
    const rowStart = p;
    let plain = e > s && !edgeUnsure(arena[s]) && !edgeUnsure(arena[e - 1]);
    for (let k = s; plain && k < e; k++) if (needsQuote(arena[k])) plain = false;
    if (plain) {
      for (let k = s; k < e; k++) buf[p++] = arena[k];
    } else p += buf.write(csvField(dec.decode(arena.subarray(s, e))), p);
    rows += acc[o + COUNT];
    p = putValues(buf, p, acc, o, t, dateHasTime, totals);
    buf[p++] = 10;
    if (runs) {
      buf.writeUInt32LE(e - s, start);
      buf.writeUInt32LE(p - rowStart, start + 4);
    }
    out.pos = p;
  }
  return { rows, total: limbsToBig(totals[0], totals[1]), quantity: limbsToBig(totals[2], totals[3]) };
}

/**
 * The fast path of a one-pass merge whose keys are all plain integers (the usual user id): the
 * rows are combined in an inline open-addressing table keyed by the integer value (no key bytes
 * copied), sorted by a radix sort on the value (byte order of decimal text: the value scaled to
 * 15 digits, then the digit count), and the key printed from the value. The shard's bytes are the
 * same as the general path's.
 */
function mergeIntegerKeys(sections: Section[], flags: number, scale: number, qscale: number, dateHasTime: boolean, out: ChunkWriter): { users: number; totals: Totals } | undefined {
  for (const s of sections) {
    const { acc, width: w, n } = s;
    for (let i = 0; i < n; i++) if (!(acc[i * w] >= 0)) return undefined;
  }
  const { width: w, qty: qtyOff, dmin: dateOff } = layout(flags);
  const shape = { qtyOff, dateOff, scale, qscale };
  let most = 0;
  for (const s of sections) most = Math.max(most, s.n);
  // keys: at least the largest section's, at most all rows; grown past 0.7 load. The arrays of
  // this worker's last merge are reused when large enough (fresh memory costs a page fault per
  // 4 KiB), and handed back zeroed.
  let cap = 1024;
  while (cap * 0.7 < most * 1.25) cap *= 2;
  const spare = intSpare;
  intSpare = undefined;
  let cells: Float64Array;
  let slotHash: Int32Array;
  if (spare && spare.cells.length >= cap * w && spare.w === w) {
    cells = spare.cells;
    slotHash = spare.slotHash;
    cap = slotHash.length;
  } else {
    cells = new Float64Array(cap * w);
    slotHash = new Int32Array(cap);
  }
  let mask = cap - 1;
  let size = 0;
  const grow = (): void => {
    const c2 = cap * 2;
    const m2 = c2 - 1;
    const cells2 = new Float64Array(c2 * w);
    const hash2 = new Int32Array(c2);
    for (let i = 0; i < cap; i++) {
      if (cells[i * w + COUNT] === 0) continue;
      let j = slotHash[i] & m2;
      while (cells2[j * w + COUNT] !== 0) j = (j + 1) & m2;
      for (let k = 0; k < w; k++) cells2[j * w + k] = cells[i * w + k];
      hash2[j] = slotHash[i];
    }
    cap = c2;
    mask = m2;
    cells = cells2;
    slotHash = hash2;
  };
  for (const s of sections) {
    const { acc: sacc, hashes, n } = s;
    const sw = s.width;
    for (let i = 0; i < n; i++) {
      const so = i * sw;
      const num = sacc[so];
      const h = hashes[i];
      let j = h & mask;
      let o = j * w;
      for (;;) {
        if (cells[o + COUNT] === 0) {
          if (size + 1 > cap * 0.7) {
            grow();
            j = h & mask;
            o = j * w;
            continue;
          }
          size++;
          cells[o] = num;
          slotHash[j] = h;
          if (dateOff >= 0) {
            cells[o + dateOff] = Infinity;
            cells[o + dateOff + 1] = -Infinity;
          }
          break;
        }
        if (cells[o] === num) break;
        j = (j + 1) & mask;
        o = j * w;
      }
      addRow(cells, o, sacc, so, s, shape);
    }
  }
  // the sort: occupied slots by (value * 10^(15 - digits), digits), an LSD radix sort in 13-bit
  // digits; the scaled value is below 10^15 < 2^52, kept as two 26-bit halves
  const sorter = takeSorter(size, w);
  const { slots, lo26, hi26, len, dense } = sorter;
  let ids = sorter.ids;
  let tmp = sorter.tmp;
  for (let i = 0, k = 0; i < cap; i++) {
    if (cells[i * w + COUNT] === 0) continue;
    const v = cells[i * w];
    const d = digitCount(v);
    const x = v * POW10[15 - d];
    const hi = Math.floor(x / 67108864);
    slots[k] = i;
    // the rows packed in slot order (a forward sweep), so that printing them in key order jumps
    // around a table a third the size
    for (let c = 0; c < w; c++) dense[k * w + c] = cells[i * w + c];
    hi26[k] = hi;
    lo26[k] = x - hi * 67108864;
    len[k] = d;
    ids[k] = k;
    k++;
  }
  const counts = sorter.counts;
  const pass = (digits: Int32Array | Uint8Array, shift: number, bits: number): void => {
    const buckets = 1 << bits;
    const m = buckets - 1;
    counts.fill(0, 0, buckets + 1);
    for (let x = 0; x < size; x++) counts[((digits[ids[x]] >>> shift) & m) + 1]++;
    for (let b = 1; b <= buckets; b++) counts[b] += counts[b - 1];
    for (let x = 0; x < size; x++) {
      const id = ids[x];
      tmp[counts[(digits[id] >>> shift) & m]++] = id;
    }
    const t = ids;
    ids = tmp;
    tmp = t;
  };
  pass(len, 0, 4);
  pass(lo26, 0, 13);
  pass(lo26, 13, 13);
  pass(hi26, 0, 13);
  pass(hi26, 13, 13);
  // the rows, in key order
  const totals = new Float64Array(4);
  let rows = 0;
  const fixed = 8 + 2 + 5 * 64 + 2 * (scale + qscale) + 16;
  for (let x = 0; x < size; x++) {
    const o = ids[x] * w;
    const cells = dense;
    out.ensure(fixed);
    const buf = out.buf;
    let p = putUint(buf, out.pos, cells[o]);
    rows += cells[o + COUNT];
    p = putValues(buf, p, cells, o, shape, dateHasTime, totals);
    buf[p++] = 10;
    out.pos = p;
  }
  // hand the arrays back zeroed for this worker's next merge
  for (let k = 0; k < size; k++) cells.fill(0, slots[k] * w, slots[k] * w + w);
  intSpare = { cells, slotHash, w };
  sorter.ids = ids;
  sorter.tmp = tmp;
  return { users: size, totals: { rows, total: limbsToBig(totals[0], totals[1]), quantity: limbsToBig(totals[2], totals[3]) } };
}

/** densePartitions() of the window this worker merged last (each of its merge tasks needs it). */
let partsCache: { base: number; span: number; partitions: number; from: number; to: number; parts: Uint16Array } | undefined;

/** The rows of a window that may be non-zero in some segment: [from, to). */
function denseRange(segs: DenseSegment[]): { from: number; to: number } {
  let from = segs[0].span;
  let to = 0;
  for (const s of segs) {
    from = Math.min(from, s.from);
    to = Math.max(to, s.to);
  }
  return { from, to: Math.max(from, to) };
}

/** The partitions of the window's rows, those of `range` at least (default: all of them). */
function densePartsOf(seg: DenseSegment, partitions: number, range = { from: 0, to: seg.span }): Uint16Array {
  const c = partsCache;
  if (c && c.base === seg.base && c.span === seg.span && c.partitions === partitions && c.from <= range.from && c.to >= range.to) return c.parts;
  partsCache = { base: seg.base, span: seg.span, partitions, ...range, parts: densePartitions(seg.base, seg.span, partitions, range.from, range.to) };
  return partsCache.parts;
}

/** Rows written to one shard. */
interface ShardRows {
  users: number;
  totals: Totals;
}

/**
 * The merge of partitions whose keys are all in dense segments: one forward sweep of the window
 * rows in `range` (outside it every segment is zero: slices no row fell in)
 * adds each key's rows across the segments and prints the row into its partition's writer, when
 * that partition is one of `outs` (indexed by partition, undefined for the others). Keys come in
 * value order, which is byte order (the window's keys share their digit count). No table, no sort;
 * the rows are read in memory order, once for all the partitions of the sweep.
 */
function mergeDense(
  segs: DenseSegment[],
  parts: Uint16Array,
  range: { from: number; to: number },
  outs: (ChunkWriter | undefined)[],
  flags: number,
  scale: number,
  qscale: number,
  dateHasTime: boolean,
): ShardRows[] {
  const { width: w, qty: qtyOff, dmin: dateOff } = layout(flags);
  const shape = { qtyOff, dateOff, scale, qscale };
  const { base, span } = segs[0];
  const dw = denseWidthOf(flags);
  for (const s of segs) if (s.base !== base || s.span !== span || s.width !== dw) throw new SegflowError('ERR_INTERNAL', 'dense segments of different windows or row layouts');
  const views = segs.map((s) => new Float64Array(s.buf));
  const ints = segs.map((s) => new Int32Array(s.buf));
  const row = new Float64Array(w);
  // a lean dense row (an int32 count and total, table.ts denseWidthOf) read as a slot row
  const lean = dw === 1 ? new Float64Array(w) : undefined;
  const fixed = 8 + 2 + 5 * 64 + 2 * (scale + qscale) + 16;
  // the usual rows: count and total only (lean dense rows), every segment at the job's places
  // (int32 totals: those of up to 2^20 segments add up within addExact's 2^51)
  const plain = lean !== undefined && segs.every((s) => s.scale === scale);
  const from = range.from | 0;
  const to = range.to | 0;
  if (plain) {
    const t = new Float64Array(outs.length * 6);
    sweepPlain(ints, parts, outs.map((o) => o ?? null), t, from, to, base, scale, fixed);
    return outs.map((_, p) => shardRows(t.subarray(p * 6, p * 6 + 6)));
  }
  // per partition: users, rows, total lo, hi, quantity lo, hi
  const acc = outs.map(() => new Float64Array(6));
  for (let i = from; i < to; i++) {
    const out = outs[parts[i]];
    if (out === undefined) continue;
    const a = acc[parts[i]];
    // the row base: a dense row's fields sit at the slot row offsets from it (scan-table.ts)
    const rb = i * dw - 1;
    let any = false;
    for (let k = 0; k < views.length; k++) {
      const v = views[k];
      if (denseCount(v, ints[k], i, dw) === 0) continue;
      if (!any) {
        any = true;
        row.fill(0);
        if (dateOff >= 0) {
          row[dateOff] = Infinity;
          row[dateOff + 1] = -Infinity;
        }
      }
      if (lean) {
        lean[COUNT] = ints[k][2 * i];
        lean[SUM] = ints[k][2 * i + 1];
        addRow(row, 0, lean, 0, segs[k], shape);
      } else addRow(row, 0, v, rb, segs[k], shape);
    }
    if (!any) continue;
    a[0]++;
    a[1] += row[COUNT];
    out.ensure(fixed);
    const buf = out.buf;
    let q = putUint(buf, out.pos, base + i);
    // putValues adds total and quantity limbs at [0..3] of its array: this partition's, from 2
    q = putValues(buf, q, row, 0, shape, dateHasTime, a.subarray(2));
    buf[q++] = 10;
    out.pos = q;
  }
  return acc.map(shardRows);
}

/** A partition's ShardRows from its 6 numbers (users, rows, total lo, hi, quantity lo, hi). */
const shardRows = (a: Float64Array): ShardRows => ({ users: a[0], totals: { rows: a[1], total: limbsToBig(a[2], a[3]), quantity: limbsToBig(a[4], a[5]) } });

/**
 * The usual dense merge (mergeDense's `plain` rows): lean rows (an int32 count and total, row i at
 * 2i of each segment's Int32Array) at the job's places, added across the segments and printed as
 * `key,count,total`. Typed arrays and numbers only, so that its loop keeps its optimized code from
 * one job to the next: the same loop inside mergeDense read arrays of objects whose maps changed
 * between jobs, and each job compiled it again (20-60 ms on a V8 helper thread, trace-deopt:
 * 'wrong map' on loop entry). `acc` gets 6 numbers per partition (see mergeDense).
 */
function sweepPlain(
  segs: Int32Array[],
  parts: Uint16Array,
  outs: (ChunkWriter | null)[],
  acc: Float64Array,
  from: number,
  to: number,
  base: number,
  scale: number,
  fixed: number,
): void {
  // a task that writes some of the partitions takes its rows block by block: first their indexes,
  // without a branch (a row of another partition is written over by the next), then the rows.
  // Skipping the others in the sweep was a branch taken at random for every row (half of them
  // with 2 workers): 4 shards of 8 took 75-78 ms, all 8 took 123-128 ms
  const mine = sweepMine.length >= outs.length ? sweepMine : (sweepMine = new Uint8Array(outs.length));
  let all = true;
  for (let p = 0; p < outs.length; p++) {
    mine[p] = outs[p] === null ? 0 : 1;
    all &&= mine[p] === 1;
  }
  const idx = sweepBlock;
  for (let b = from; b < to; b += SWEEP_BLOCK) {
    const e = Math.min(to, b + SWEEP_BLOCK);
    let n = e - b;
    if (!all) {
      n = 0;
      for (let i = b; i < e; i++) {
        idx[n] = i;
        n += mine[parts[i]];
      }
    }
    for (let j = 0; j < n; j++) {
      const i = all ? b + j : idx[j];
      const p = parts[i];
      let c = 0;
      let lo = 0;
      for (let k = 0; k < segs.length; k++) {
        const v = segs[k];
        c += v[2 * i];
        lo += v[2 * i + 1];
      }
      if (c === 0) continue;
      const out = outs[p]!;
      const o = p * 6;
      acc[o]++;
      acc[o + 1] += c;
      out.ensure(fixed);
      const buf = out.buf;
      let q = putUint(buf, out.pos, base + i);
      buf[q++] = 44;
      q = putUint(buf, q, c);
      buf[q++] = 44;
      q = putLimbs(buf, q, lo, 0, scale);
      buf[q++] = 10;
      out.pos = q;
      addExact(acc, o + 2, lo);
    }
  }
}

/** Rows per block of {@link sweepPlain}, its block of row indexes, and its partitions of a task. */
const SWEEP_BLOCK = 4096;
const sweepBlock = new Int32Array(SWEEP_BLOCK);
let sweepMine = new Uint8Array(0);

/**
 * A merge task for partitions whose keys are all in dense segments (no section holds a row): one
 * sweep of the window writes every shard of `group` (see mergeDense). The job makes one such task
 * per worker. Fault injection (SEGFLOW_FAULTS merge:...) counts a group as its first partition.
 */
export interface DenseMergeTask {
  partitions: number;
  /** The partitions this task writes, and their shard files. */
  group: number[];
  outFiles: string[];
  dense: DenseSegment[];
  flags: number;
  scale: number;
  qscale: number;
  dateHasTime: boolean;
  /** Folder for this task's temporary files (default: the shards' folder). */
  scratchDir?: string;
  attempt?: number;
}

/** Run a {@link DenseMergeTask}: its shards, each written under a temporary name and renamed. */
export function mergeDenseGroup(task: DenseMergeTask): MergeOutput[] {
  heldShared();
  // the sweep covers only the rows some segment may hold
  const range = denseRange(task.dense);
  const parts = densePartsOf(task.dense[0], task.partitions, range);
  const outs: (ChunkWriter | undefined)[] = new Array(task.partitions).fill(undefined);
  const tmp: string[] = [];
  try {
    task.group.forEach((p, g) => {
      const dir = task.scratchDir ?? path.dirname(task.outFiles[g]);
      fs.mkdirSync(dir, { recursive: true });
      tmp[g] = path.join(dir, `${path.basename(task.outFiles[g])}.a${task.attempt ?? 1}.tmp`);
      outs[p] = new ChunkWriter(tmp[g]);
      outs[p]!.text(shardHeader(task.flags));
    });
    const rows = mergeDense(task.dense, parts, range, outs, task.flags, task.scale, task.qscale, task.dateHasTime);
    const result = task.group.map((p) => ({
      partition: p,
      users: rows[p].users,
      rows: rows[p].totals.rows,
      total: rows[p].totals.total.toString(),
      quantity: rows[p].totals.quantity.toString(),
      bytes: outs[p]!.bytes,
      subPartitions: 1,
    }));
    task.group.forEach((p) => outs[p]!.close());
    task.group.forEach((p, g) => fs.renameSync(tmp[g], task.outFiles[g]));
    return result;
  } catch (err) {
    for (const o of outs) o?.closeQuietly();
    for (const f of tmp) if (f) fs.rmSync(f, { force: true });
    throw err;
  }
}

/** The integer-key merge's table, kept by a worker between its merge tasks. */
let intSpare: { cells: Float64Array; slotHash: Int32Array; w: number } | undefined;

interface Sorter {
  slots: Uint32Array;
  lo26: Int32Array;
  hi26: Int32Array;
  len: Uint8Array;
  dense: Float64Array;
  ids: Uint32Array;
  tmp: Uint32Array;
  counts: Uint32Array;
}
let sorterSpare: Sorter | undefined;

/** Radix sort arrays for n keys (this worker's last ones when large enough). */
function takeSorter(n: number, w: number): Sorter {
  if (sorterSpare && sorterSpare.ids.length >= n && sorterSpare.dense.length >= n * w) return sorterSpare;
  const c = Math.max(1024, Math.ceil(n * 1.25));
  sorterSpare = {
    dense: new Float64Array(c * w),
    slots: new Uint32Array(c),
    lo26: new Int32Array(c),
    hi26: new Int32Array(c),
    len: new Uint8Array(c),
    ids: new Uint32Array(c),
    tmp: new Uint32Array(c),
    counts: new Uint32Array(8193),
  };
  return sorterSpare;
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
function* eachSection(refs: SegmentRef[], first: Section[] = []): Generator<Section> {
  yield* first;
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
  heldShared(); // this task's sections outlive many minor GCs: the worker's next task collects fully
  const denseSegs = task.dense ?? [];
  const range = denseSegs.length > 0 ? denseRange(denseSegs) : undefined;
  const parts = range ? densePartsOf(denseSegs[0], task.partitions, range) : undefined;
  // dense keys alone (the usual case with a dense window): no table at all
  const denseOnly = parts !== undefined && task.segments.every(isEmptySegment);
  // else the partition's dense keys become sections like any other
  const extra = parts && !denseOnly ? denseSegs.map((seg) => denseSection(seg, task.partition, parts, task.flags)) : [];
  const inputBytes = task.segments.reduce((s, r) => s + segmentBytes(r), 0) + extra.reduce((s, x) => s + x.acc.byteLength * 1.5, 0);
  const subs = subPartitionsFor(inputBytes, task.memory);
  // the arrays this worker keeps for its next scan count against the task's memory: let them go
  // when they would not fit beside this merge
  if (task.memory && ScanTable.spareBytes() + (inputBytes * MERGE_EXPANSION) / subs > task.memory) {
    ScanTable.dropSpares();
    releaseShared(); // array buffers go back only when collected
  }
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
    // presize the table: about 47 bytes per section row; the sections of a partition mostly share
    // their keys, so three times an average section's keys rarely needs a growth (which rehashes)
    const expected = Math.ceil((3 * inputBytes) / 47 / Math.max(1, task.segments.length) / subs);
    const one = (): ShardRows => {
      const outs: (ChunkWriter | undefined)[] = new Array(task.partitions).fill(undefined);
      outs[task.partition] = out;
      return mergeDense(denseSegs, parts!, range!, outs, task.flags, task.scale, task.qscale, task.dateHasTime)[task.partition];
    };
    const fast = denseOnly
      ? one()
      : subs === 1 && task.segments.every((r) => 'shared' in r)
        ? mergeIntegerKeys(extra.concat(task.segments.map((r) => loadSegment(r))), task.flags, task.scale, task.qscale, task.dateHasTime, out)
        : undefined;
    if (fast) {
      users = fast.users;
      add(fast.totals);
    } else if (subs === 1) {
      const t = mergeSections(eachSection(task.segments, extra), task.flags, task.scale, task.qscale, undefined, expected);
      users = t.size;
      add(formatRows(t, task.dateHasTime, out, false));
    } else {
      for (let sub = 0; sub < subs; sub++) {
        const only = { partition: task.partition, partitions: task.partitions, subs, sub };
        let t: KeyTable | undefined = mergeSections(eachSection(task.segments, extra), task.flags, task.scale, task.qscale, only, expected);
        users += t.size;
        const file = path.join(scratch, `${tag}.run${sub}`);
        runs.push(file);
        const run = new ChunkWriter(file);
        try {
          add(formatRows(t, task.dateHasTime, run, true));
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
