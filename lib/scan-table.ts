/**
 * The scan task's combiner table: open addressing with the accumulators inline in the slot array,
 * so that folding a row whose key is a plain integer touches one slot row (one or two cache
 * lines) instead of a slot and then a separate row. Built for the scan's access pattern (about
 * one new key per two rows in a 64 MiB range of a big user base, where every access misses the
 * cache): a batch of rows is first "touched" in a loop of independent loads, so the misses
 * overlap, then folded.
 *
 * Slot row layout (stride `stride`): [hash, num, count, sumLo, sumHi, (qtyLo, qtyHi), (dmin, dmax)].
 * `count === 0` marks an empty slot. `num` is the key's value when it is a plain decimal integer
 * without a leading zero (up to 15 digits), else -1; such keys are stored only as their value and
 * their bytes are rebuilt when the table is encoded. Other keys keep their bytes in an arena.
 */
import { F_DATE, F_QTY, layout } from './table.js';
import { LIMB_MAX, POW10, addBig, addExact, rescaleLimbs } from './util/exact.js';
import { partitionOf } from './table.js';

/** Rows of a batch are visited in order of the top SORT_BITS bits of their slot. */
const SORT_BITS = 10;
const SORT_BUCKETS = 1 << SORT_BITS;

const HASH = 0;
/** Offsets relative to the row start: the same layout as KeyTable's rows, shifted by one. */
const NUM = 1;
const COUNT = 2;
const SUM = 3;

/** An inline open-addressing table for one scan task. */
export class ScanTable {
  readonly flags: number;
  /** KeyTable's row width (without the hash). */
  readonly width: number;
  readonly stride: number;
  /** Offsets of the quantity and date fields in a slot row, or -1. */
  readonly qtyOff: number;
  readonly dateOff: number;
  scale = 0;
  qscale = 0;
  size = 0;
  cap: number;
  mask: number;
  cells: Float64Array;
  /** Arena offset and length of a string key, per slot. */
  keyOff: Int32Array;
  keyLen: Int32Array;
  arena: Uint8Array;
  arenaUsed = 0;
  private readonly growAt: number;

  constructor(flags: number, expectedKeys: number) {
    this.flags = flags;
    const l = layout(flags);
    this.width = l.width;
    this.stride = l.width + 1;
    this.qtyOff = l.qty >= 0 ? l.qty + 1 : -1;
    this.dateOff = l.dmin >= 0 ? l.dmin + 1 : -1;
    let cap = 1024;
    while (cap * 0.6 < expectedKeys) cap *= 2;
    this.cap = cap;
    this.mask = cap - 1;
    this.growAt = 0.7;
    this.cells = new Float64Array(cap * this.stride);
    this.keyOff = new Int32Array(cap);
    this.keyLen = new Int32Array(cap);
    this.arena = new Uint8Array(1 << 16);
  }

  /** Bytes held by the table's arrays. */
  get bytes(): number {
    return this.cells.byteLength + this.keyOff.byteLength * 2 + this.arena.byteLength;
  }

  /**
   * The slot row offset of a key, inserting it when new (its count stays 0 until the caller adds
   * to it: the caller must add at once).
   */
  find(hash: number, num: number, src: Uint8Array, start: number, end: number): number {
    const cells = this.cells;
    const stride = this.stride;
    const mask = this.mask;
    let i = hash & mask;
    for (;;) {
      const o = i * stride;
      if (cells[o + COUNT] === 0) return this.insert(i, hash, num, src, start, end);
      const n = cells[o + NUM];
      if (n === num && (num >= 0 || (cells[o + HASH] === hash && this.keyEquals(i, src, start, end)))) return o;
      i = (i + 1) & mask;
    }
  }

  private keyEquals(i: number, src: Uint8Array, start: number, end: number): boolean {
    const len = this.keyLen[i];
    if (len !== end - start) return false;
    const a = this.keyOff[i];
    const arena = this.arena;
    for (let k = 0; k < len; k++) if (arena[a + k] !== src[start + k]) return false;
    return true;
  }

  private insert(i: number, hash: number, num: number, src: Uint8Array, start: number, end: number): number {
    if (this.size + 1 > this.cap * this.growAt) {
      this.grow();
      return this.find(hash, num, src, start, end);
    }
    this.size++;
    const o = i * this.stride;
    const cells = this.cells;
    cells[o + HASH] = hash;
    cells[o + NUM] = num;
    if (this.dateOff >= 0) {
      cells[o + this.dateOff] = Infinity;
      cells[o + this.dateOff + 1] = -Infinity;
    }
    if (num < 0) {
      const len = end - start;
      if (this.arenaUsed + len > this.arena.length) {
        let c = this.arena.length * 2;
        while (c < this.arenaUsed + len) c *= 2;
        const a = new Uint8Array(c);
        a.set(this.arena.subarray(0, this.arenaUsed));
        this.arena = a;
      }
      this.arena.set(src.subarray(start, end), this.arenaUsed);
      this.keyOff[i] = this.arenaUsed;
      this.keyLen[i] = len;
      this.arenaUsed += len;
    }
    return o;
  }

  private grow(): void {
    const oldCells = this.cells;
    const oldOff = this.keyOff;
    const oldLen = this.keyLen;
    const oldCap = this.cap;
    const stride = this.stride;
    const cap = oldCap * 2;
    const mask = cap - 1;
    const cells = new Float64Array(cap * stride);
    const keyOff = new Int32Array(cap);
    const keyLen = new Int32Array(cap);
    for (let i = 0; i < oldCap; i++) {
      const o = i * stride;
      if (oldCells[o + COUNT] === 0) continue;
      let j = (oldCells[o + HASH] | 0) & mask;
      while (cells[j * stride + COUNT] !== 0) j = (j + 1) & mask;
      cells.set(oldCells.subarray(o, o + stride), j * stride);
      keyOff[j] = oldOff[i];
      keyLen[j] = oldLen[i];
    }
    this.cells = cells;
    this.keyOff = keyOff;
    this.keyLen = keyLen;
    this.cap = cap;
    this.mask = mask;
  }

  /** Raise the decimal places of every sum (exact). */
  rescale(scale: number): void {
    const d = scale - this.scale;
    if (d <= 0) return;
    for (let i = 0; i < this.cap; i++) {
      const o = i * this.stride;
      if (this.cells[o + COUNT] !== 0) rescaleLimbs(this.cells, o + SUM, d);
    }
    this.scale = scale;
  }

  /** Raise the decimal places of every quantity sum (exact). */
  rescaleQty(qscale: number): void {
    const d = qscale - this.qscale;
    if (d <= 0 || this.qtyOff < 0) return;
    for (let i = 0; i < this.cap; i++) {
      const o = i * this.stride;
      if (this.cells[o + COUNT] !== 0) rescaleLimbs(this.cells, o + this.qtyOff, d);
    }
    this.qscale = qscale;
  }

  /**
   * Fold a batch of rows: hashes, numeric keys, key byte ranges in `src`, amounts as scaled
   * integers `m` with `dp` places (the table's scale is raised first).
   */
  foldBatch(
    n: number,
    hashes: Int32Array,
    nums: Float64Array,
    ks: Int32Array,
    ke: Int32Array,
    m: Float64Array,
    dps: Int32Array,
    q: Float64Array,
    qdps: Int32Array,
    dates: Float64Array,
    src: Uint8Array,
  ): void {
    let maxDp = this.scale;
    for (let r = 0; r < n; r++) if (dps[r] > maxDp) maxDp = dps[r];
    if (maxDp > this.scale) this.rescale(maxDp);
    if (this.qtyOff >= 0) {
      let maxQ = this.qscale;
      for (let r = 0; r < n; r++) if (qdps[r] > maxQ) maxQ = qdps[r];
      if (maxQ > this.qscale) this.rescaleQty(maxQ);
    }
    // visit the rows in slot order (a counting sort on the slot's top bits): consecutive accesses
    // then land on nearby pages, so the table's cache and TLB misses become a forward sweep
    const order = this.sortBySlot(n, hashes);
    const scale = this.scale;
    const qtyOff = this.qtyOff;
    const dateOff = this.dateOff;
    for (let x = 0; x < n; x++) {
      const r = order[x];
      const o = this.find(hashes[r], nums[r], src, ks[r], ke[r]);
      const cells = this.cells;
      cells[o + COUNT]++;
      const dp = dps[r];
      const v = dp === scale ? m[r] : m[r] * POW10[scale - dp];
      const lo = cells[o + SUM] + v;
      if (v > LIMB_MAX || v < -LIMB_MAX || lo > LIMB_MAX || lo < -LIMB_MAX) addScaled(cells, o + SUM, m[r], dp, scale);
      else cells[o + SUM] = lo;
      if (qtyOff >= 0) addScaled(cells, o + qtyOff, q[r], qdps[r], this.qscale);
      if (dateOff >= 0) {
        const d = dates[r];
        if (d < cells[o + dateOff]) cells[o + dateOff] = d;
        if (d > cells[o + dateOff + 1]) cells[o + dateOff + 1] = d;
      }
    }
  }

  private order = new Int32Array(0);
  private readonly bucketCounts = new Int32Array(SORT_BUCKETS + 1);

  private sortBySlot(n: number, hashes: Int32Array): Int32Array {
    if (this.order.length < n) this.order = new Int32Array(n);
    const order = this.order;
    const counts = this.bucketCounts;
    counts.fill(0);
    const shift = Math.max(0, Math.log2(this.cap) - SORT_BITS);
    const mask = this.mask;
    for (let r = 0; r < n; r++) counts[((hashes[r] & mask) >>> shift) + 1]++;
    for (let b = 1; b <= SORT_BUCKETS; b++) counts[b] += counts[b - 1];
    for (let r = 0; r < n; r++) order[counts[(hashes[r] & mask) >>> shift]++] = r;
    return order;
  }

  /** Fold one row whose amount is an exact BigInt with `dp` places (the slow path past 2^52). */
  foldBig(hash: number, num: number, src: Uint8Array, start: number, end: number, big: bigint, dp: number, q: number, qdp: number, date: number): void {
    if (dp > this.scale) this.rescale(dp);
    if (this.qtyOff >= 0 && qdp > this.qscale) this.rescaleQty(qdp);
    const o = this.find(hash, num, src, start, end);
    const cells = this.cells;
    cells[o + COUNT]++;
    addBig(cells, o + SUM, big * 10n ** BigInt(this.scale - dp));
    if (this.qtyOff >= 0) addScaled(cells, o + this.qtyOff, q, qdp, this.qscale);
    if (this.dateOff >= 0) {
      if (date < cells[o + this.dateOff]) cells[o + this.dateOff] = date;
      if (date > cells[o + this.dateOff + 1]) cells[o + this.dateOff + 1] = date;
    }
  }

  /** Encode the table as `partitions` sections (the format of partial.ts). */
  encode(partitions: number, write: (p: number, n: number, keyBytes: number) => SectionWriter): void {
    const cap = this.cap;
    const stride = this.stride;
    const cells = this.cells;
    const counts = new Uint32Array(partitions);
    const bytes = new Float64Array(partitions);
    const part = new Uint16Array(cap);
    for (let i = 0; i < cap; i++) {
      const o = i * stride;
      if (cells[o + COUNT] === 0) continue;
      const p = partitionOf(cells[o + HASH] | 0, partitions);
      part[i] = p;
      counts[p]++;
      bytes[p] += cells[o + NUM] >= 0 ? digitCount(cells[o + NUM]) : this.keyLen[i];
    }
    const writers: SectionWriter[] = [];
    for (let p = 0; p < partitions; p++) writers.push(write(p, counts[p], bytes[p]));
    const w = this.width;
    for (let i = 0; i < cap; i++) {
      const o = i * stride;
      if (cells[o + COUNT] === 0) continue;
      const v = writers[part[i]];
      const j = v.i++;
      v.h[j] = cells[o + HASH] | 0;
      const a = v.a;
      for (let k = 0, d = j * w; k < w; k++) a[d + k] = cells[o + 1 + k];
      const b = v.b;
      let kb = v.kb;
      const num = cells[o + NUM];
      if (num >= 0) {
        const len = digitCount(num);
        let x = num;
        for (let k = len - 1; k >= 0; k--) {
          b[kb + k] = 48 + (x % 10);
          x = Math.floor(x / 10);
        }
        kb += len;
      } else {
        const a0 = this.keyOff[i];
        const len = this.keyLen[i];
        const arena = this.arena;
        for (let k = 0; k < len; k++) b[kb++] = arena[a0 + k];
      }
      v.kb = kb;
      v.k[j] = kb;
    }
  }
}

/** Where {@link ScanTable.encode} writes one section. */
export interface SectionWriter {
  h: Int32Array;
  a: Float64Array;
  k: Uint32Array;
  b: Uint8Array;
  i: number;
  kb: number;
}

function digitCount(v: number): number {
  let n = 1;
  while (v >= 10) {
    v = Math.floor(v / 10);
    n++;
  }
  return n;
}

function addScaled(acc: Float64Array, at: number, m: number, dp: number, scale: number): void {
  const v = dp === scale ? m : m * POW10[scale - dp];
  if (v <= LIMB_MAX && v >= -LIMB_MAX) addExact(acc, at, v);
  else addBig(acc, at, BigInt(m) * 10n ** BigInt(scale - dp));
}

export { F_QTY, F_DATE };
