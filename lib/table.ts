/**
 * The per-key accumulator table: open addressing over typed arrays, keys as byte ranges in an
 * arena (never JS strings), accumulators row-major in one Float64Array so that one key's update
 * touches one or two cache lines.
 *
 * Row layout (stride `width`):
 *   [num, count, sumLo, sumHi, (qtyLo, qtyHi), (dateMin, dateMax)]
 * `num` is the key's value when the key is a plain decimal integer without a leading zero (the
 * fast path: compared as a number), else -1 (compared byte by byte).
 */
import { LIMB_MAX, POW10, addBig, addExact, rescaleLimbs } from './util/exact.js';

export const F_QTY = 1;
export const F_DATE = 2;

/** Offsets inside a row. */
export const NUM = 0;
export const COUNT = 1;
export const SUM = 2;

/** The row layout for a set of flags. */
export function layout(flags: number): { width: number; qty: number; dmin: number } {
  let width = 4;
  let qty = -1;
  let dmin = -1;
  if (flags & F_QTY) {
    qty = width;
    width += 2;
  }
  if (flags & F_DATE) {
    dmin = width;
    width += 2;
  }
  return { width, qty, dmin };
}

/**
 * Doubles per dense row (scan-table.ts): a slot row without its key. The usual layout (count and
 * total, nothing else) packs its row into one double's 8 bytes instead: two int32, the count at
 * 2i and the total at 2i + 1 of the rows' Int32Array (a lean row, {@link denseCount}); a total that
 * would pass int32 moves to the hash parts. So its rows are 8 bytes instead of 24.
 */
export function denseWidthOf(flags: number): number {
  const w = layout(flags).width;
  return w === 4 ? 1 : w - 1;
}

/** The largest (and, negated and minus one, the smallest) total or count of a lean dense row. */
export const LEAN_MAX = 0x7fffffff;

/** A lean dense row can hold x (an integer total): it lies in int32. */
export const fitsLean = (x: number): boolean => x <= LEAN_MAX && x >= -LEAN_MAX - 1;

/**
 * The count of dense row i of rows `dw` doubles wide (0: no key): its first double, or a lean
 * row's first int32 (`ints`: the same memory as an Int32Array).
 */
export const denseCount = (rows: Float64Array, ints: Int32Array, i: number, dw: number): number => (dw === 1 ? ints[2 * i] : rows[i * dw]);

/** 32-bit FNV-1a over bytes followed by murmur3's finaliser; the same for every path. */
export function hashBytes(src: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ src[i], 0x01000193);
  return finalizeHash(h);
}

/** murmur3 fmix32: spreads FNV's bits so both the low bits (slots) and high bits (partitions) are good. */
export function finalizeHash(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** The partition (shard) of a key hash: the high bits, so it is independent of slot bits. */
export function partitionOf(hash: number, partitions: number): number {
  return Math.floor(((hash >>> 0) * partitions) / 4294967296);
}

/** An open-addressing table from key bytes to a dense id with a row of accumulators. */
export class KeyTable {
  readonly flags: number;
  readonly width: number;
  readonly qtyOff: number;
  readonly dateOff: number;
  /** Decimal places of the sums in this table. */
  scale = 0;
  qscale = 0;
  /** Keys held. */
  size = 0;
  /** [hash, id + 1] pairs; 0 in the id half marks an empty slot. */
  slots: Int32Array;
  mask: number;
  /** Row-major accumulators, `width` per id. */
  acc: Float64Array;
  hashes: Int32Array;
  /** keyEnds[id] is the end of key id in `arena`; it starts at keyEnds[id - 1] (0 for id 0). */
  keyEnds: Uint32Array;
  arena: Uint8Array;
  arenaUsed = 0;

  constructor(flags: number, initialKeys = 1024) {
    this.flags = flags;
    const l = layout(flags);
    this.width = l.width;
    this.qtyOff = l.qty;
    this.dateOff = l.dmin;
    let cap = 16;
    while (cap < initialKeys * 2) cap *= 2;
    this.slots = new Int32Array(cap * 2);
    this.mask = cap - 1;
    this.acc = new Float64Array(initialKeys * this.width);
    this.hashes = new Int32Array(initialKeys);
    this.keyEnds = new Uint32Array(initialKeys);
    this.arena = new Uint8Array(initialKeys * 8);
  }

  /** Bytes held by the table's arrays (for the memory budget). */
  get bytes(): number {
    return this.slots.byteLength + this.acc.byteLength + this.hashes.byteLength + this.keyEnds.byteLength + this.arena.byteLength;
  }

  /** The id of a key, inserting it (with a zeroed row) when new. */
  find(hash: number, num: number, src: Uint8Array, start: number, end: number): number {
    const slots = this.slots;
    const mask = this.mask;
    let i = hash & mask;
    for (;;) {
      const s = slots[2 * i + 1];
      if (s === 0) break;
      if (slots[2 * i] === hash) {
        const id = s - 1;
        const n = this.acc[id * this.width];
        if (num >= 0 ? n === num : n < 0 && this.keyEquals(id, src, start, end)) return id;
      }
      i = (i + 1) & mask;
    }
    return this.insert(i, hash, num, src, start, end);
  }

  private keyEquals(id: number, src: Uint8Array, start: number, end: number): boolean {
    const a = id === 0 ? 0 : this.keyEnds[id - 1];
    const b = this.keyEnds[id];
    if (b - a !== end - start) return false;
    const arena = this.arena;
    for (let k = 0; k < b - a; k++) if (arena[a + k] !== src[start + k]) return false;
    return true;
  }

  private insert(slot: number, hash: number, num: number, src: Uint8Array, start: number, end: number): number {
    const id = this.size++;
    if (id >= this.hashes.length) this.growRows();
    const len = end - start;
    if (this.arenaUsed + len > this.arena.length) {
      let cap = this.arena.length * 2;
      while (cap < this.arenaUsed + len) cap *= 2;
      const a = new Uint8Array(cap);
      a.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = a;
    }
    this.arena.set(src.subarray(start, end), this.arenaUsed);
    this.arenaUsed += len;
    this.keyEnds[id] = this.arenaUsed;
    this.hashes[id] = hash;
    const w = this.width;
    const o = id * w;
    this.acc[o] = num;
    if (this.dateOff >= 0) {
      this.acc[o + this.dateOff] = Infinity;
      this.acc[o + this.dateOff + 1] = -Infinity;
    }
    this.slots[2 * slot] = hash;
    this.slots[2 * slot + 1] = id + 1;
    if (this.size * 2 > this.mask + 1) this.growSlots();
    return id;
  }

  private growRows(): void {
    const cap = this.hashes.length * 2;
    const acc = new Float64Array(cap * this.width);
    acc.set(this.acc);
    this.acc = acc;
    const h = new Int32Array(cap);
    h.set(this.hashes);
    this.hashes = h;
    const k = new Uint32Array(cap);
    k.set(this.keyEnds);
    this.keyEnds = k;
  }

  private growSlots(): void {
    const cap = (this.mask + 1) * 2;
    const slots = new Int32Array(cap * 2);
    const mask = cap - 1;
    const hashes = this.hashes;
    for (let id = 0; id < this.size; id++) {
      const h = hashes[id];
      let i = h & mask;
      while (slots[2 * i + 1] !== 0) i = (i + 1) & mask;
      slots[2 * i] = h;
      slots[2 * i + 1] = id + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }

  /** Raise the decimal places of every sum to `scale` (exact). */
  rescale(scale: number): void {
    const d = scale - this.scale;
    if (d <= 0) return;
    const w = this.width;
    for (let id = 0; id < this.size; id++) rescaleLimbs(this.acc, id * w + SUM, d);
    this.scale = scale;
  }

  /** Raise the decimal places of every quantity sum to `qscale` (exact). */
  rescaleQty(qscale: number): void {
    const d = qscale - this.qscale;
    if (d <= 0 || this.qtyOff < 0) return;
    const w = this.width;
    for (let id = 0; id < this.size; id++) rescaleLimbs(this.acc, id * w + this.qtyOff, d);
    this.qscale = qscale;
  }

  /**
   * Add a scaled integer `m` with `dp` decimal places into the limbs at row offset `off` whose
   * scale is `scale` (the caller has already raised `scale` to at least `dp`).
   */
  static addScaled(acc: Float64Array, at: number, m: number, dp: number, scale: number): void {
    const v = dp === scale ? m : m * POW10[scale - dp];
    if (v <= LIMB_MAX && v >= -LIMB_MAX) addExact(acc, at, v);
    else addBig(acc, at, BigInt(m) * 10n ** BigInt(scale - dp));
  }
}
