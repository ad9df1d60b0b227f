/**
 * The scan task's combiner table: open addressing with the accumulators inline in the slot array,
 * so that folding a row whose key is a plain integer touches one 32-byte slot row (one cache
 * line) instead of a slot and then a separate row. Built for the scan's access pattern: in a
 * 64 MiB range of a big user base about every second row brings a new key and nearly every access
 * misses the cache, so each batch of rows is visited in slot order (consecutive accesses then land
 * on nearby pages: a forward sweep instead of random TLB and cache misses).
 *
 * Slot row layout (stride = KeyTable's row width): [num, count, sumLo, sumHi, (qtyLo, qtyHi),
 * (dmin, dmax)], the same as a section row, so encoding copies rows as they are. `count === 0`
 * marks an empty slot. `num` is the key's value when it is a plain decimal integer without a
 * leading zero (up to 15 digits), else -1; such keys are stored only as their value (their bytes
 * are rebuilt when the table is encoded). Other keys keep their bytes in an arena and their hash
 * in a side array; an integer key's hash is recomputed from its value when the table grows or is
 * encoded, so the hot path touches nothing but the slot row.
 *
 * Dense keys: when the job found (by sampling) that its user ids are plain integers filling a
 * narrow window [base, base + span), those keys skip hashing and probing altogether: key v folds
 * into row v - base of one shared array (a direct-indexed table, staged by window slice like the
 * parts). At the end of the scan the array itself goes to the merge (no encoding); only when the
 * table is emitted some other way are its dense rows encoded as ordinary section rows.
 */
import { LEAN_MAX, denseCount, denseWidthOf, finalizeHash, fitsLean, layout, partitionOf } from './table.js';
import { LIMB_MAX, POW10, addBig, addExact, rescaleLimbs } from './util/exact.js';

/** Rows of a batch are visited in order of the top SORT_BITS bits of their slot. */
const SORT_BITS = 10;
const SORT_BUCKETS = 1 << SORT_BITS;

const NUM = 0;
const COUNT = 1;
const SUM = 2;

/**
 * Integer keys go to PARTS small tables chosen by the top PART_BITS bits of the key hash. Their
 * rows are first staged per part (sequential writes), then each part's rows are folded into its
 * table while that table is hot in cache: a radix-partitioned aggregation, so a big user base
 * costs a cache hit per row instead of a cache and TLB miss.
 */
const PART_BITS = 8;
const PARTS = 1 << PART_BITS;
const PART_SHIFT = 32 - PART_BITS;
/**
 * A part grows past this load. Higher than the string table's 0.7: a part's probes stay in cache,
 * and a 64 MiB range of distinct ids (1.45 M keys, 5.7 K a part) then fits 8 K slots a part.
 */
const PART_LOAD = 0.75;
/** Staged rows per part before every part is folded. */
const STAGE_PER_PART = 4096;
/**
 * Dense rows are staged by window slice: at most DENSE_SLICES slices of a power-of-two rows each,
 * sharing as many staged rows as the parts have (each slice the window has gets an equal share).
 */
const DENSE_SLICES = 512;

/**
 * A job's dense key window: integer keys in [base, base + span), all with the same number of
 * digits (so that value order is byte order).
 */
export interface DenseWindow {
  base: number;
  span: number;
}

/** One part's table: integer keys only, rows inline as in the main table, a hash per slot. */
interface IntPart {
  cap: number;
  mask: number;
  size: number;
  /** Decimal digits of all its keys (their bytes in a section). */
  keyBytes: number;
  cells: Float64Array;
  hashes: Int32Array;
  used: Int32Array;
}

function newPart(cap: number, width: number): IntPart {
  return { cap, mask: cap - 1, size: 0, keyBytes: 0, cells: new Float64Array(cap * width), hashes: new Int32Array(cap), used: new Int32Array(Math.ceil(cap * PART_LOAD) + 1) };
}

/** The parsed rows of a batch (string keys), by field; the scan keeps one set per thread. */
export interface BatchArrays {
  hash: Int32Array;
  num: Float64Array;
  ks: Int32Array;
  ke: Int32Array;
  m: Float64Array;
  dp: Int32Array;
  q: Float64Array;
  qdp: Int32Array;
  date: Float64Array;
}

/** The staged rows of integer keys, PARTS regions of `per` rows; one set per thread. */
interface Stage {
  /** Rows per part (STAGE_PER_PART, or fewer for a sample's small table). */
  per: number;
  hash: Int32Array;
  num: Float64Array;
  m: Float64Array;
  dp: Int8Array;
  q: Float64Array;
  qdp: Int8Array;
  date: Float64Array;
  fill: Int32Array;
}
let spareStage: Stage | undefined;
/**
 * The dense rows this thread last handed over, and their lease (partial.ts, DenseSegment): once
 * the job returns them, the next dense table of the same size reuses the memory (zeroed), instead
 * of faulting in fresh pages.
 */
let lentDense: { rows: Float64Array; lease: Int32Array; from: number; to: number; width: number } | undefined;
/** The dense keys' stage: `hash` holds the row index, `num` is unused. */
let spareDenseStage: Stage | undefined;

function takeStage(qty: boolean, date: boolean, dense: boolean, per = STAGE_PER_PART): Stage {
  const s = dense ? spareDenseStage : spareStage;
  if (s && s.per === per && (s.q.length > 0 || !qty) && (s.date.length > 0 || !date)) {
    if (dense) spareDenseStage = undefined;
    else spareStage = undefined;
    return s;
  }
  const n = PARTS * per;
  return {
    per,
    hash: new Int32Array(n),
    num: new Float64Array(dense ? 0 : n),
    m: new Float64Array(n),
    dp: new Int8Array(n),
    q: new Float64Array(qty ? n : 0),
    qdp: new Int8Array(qty ? n : 0),
    date: new Float64Array(date ? n : 0),
    fill: new Int32Array(dense ? DENSE_SLICES : PARTS),
  };
}

/** An inline open-addressing table for one scan task. */
export class ScanTable {
  readonly flags: number;
  /** Doubles per slot row (= KeyTable's and a section's row width). */
  readonly width: number;
  /** Offsets of the quantity and date fields in a slot row, or -1. */
  readonly qtyOff: number;
  readonly dateOff: number;
  scale = 0;
  qscale = 0;
  size = 0;
  cap: number;
  mask: number;
  cells: Float64Array;
  /** Key hash per slot. */
  hashes: Int32Array;
  /** Arena offset and length of a string key, per slot. */
  keyOff: Int32Array;
  keyLen: Int32Array;
  arena: Uint8Array;
  arenaUsed = 0;
  /** Occupied slots in insertion order: encoding, growing and rescaling never sweep empty slots. */
  used: Int32Array;
  private readonly growAt = 0.7;

  /** The integer-key parts (see PARTS) and the rows staged for them. */
  parts: IntPart[];
  private stage: Stage;
  private readonly stagePer: number;
  private stagedDp = 0;
  /** Where the cache warm-up sweep's sum goes (so that it is not optimized away). */
  sink = 0;
  private stagedQdp = 0;
  /** The string-key table's capacity for its first key (it starts small: most keys are integers). */
  private readonly wantCap: number;

  /** The dense window ({@link DenseWindow}): keys in [dBase, dEnd) have rows in `dense`. */
  readonly window: DenseWindow | undefined;
  readonly dBase: number;
  readonly dEnd: number;
  /**
   * Doubles per dense row: a slot row without its key (`width - 1`), or, for the usual layout
   * (count and total only), one double holding an int32 count and an int32 total (`denseLean`,
   * read through {@link denseInts}; see {@link denseWidthOf}): a total that would pass int32 moves
   * to the hash parts.
   */
  readonly denseWidth: number;
  private readonly denseLean: boolean;
  /** The dense rows as an Int32Array (lean rows: count at 2i, total at 2i + 1). */
  private denseInts: Int32Array | undefined;
  /**
   * The dense rows, in shared memory (handed to the merge as they are). Row i starts at
   * i * denseWidth; its fields sit at the slot row offsets (COUNT, SUM, qtyOff, dateOff) from the
   * row base i * denseWidth - 1, so the same offsets serve both kinds of row. Lean rows are read
   * through {@link denseInts} instead.
   */
  dense: Float64Array | undefined;
  /** Dense keys seen (rows whose count is not 0). */
  denseKeys = 0;
  /** Window rows per dense stage slice: row index >>> dShift is the slice. */
  private readonly dShift: number;
  /** Staged rows per slice. */
  private readonly dStage: number;
  /**
   * Slices whose memory has been written. A fresh slice is written (zeros) before its first fold:
   * a read of fresh memory maps the zero page, and the write after it faults the page in again.
   * A written slice is swept before a fold instead.
   */
  private readonly dTouched = new Uint8Array(DENSE_SLICES);
  /** The first and last window slice that got a row (the rows outside them are all zero). */
  private dSliceLo = DENSE_SLICES;
  private dSliceHi = -1;
  private dstage: Stage | undefined;

  /**
   * `stageRows`: staged rows per part (a sample's table takes few: the stage of a full table is
   * 21 MB of fresh memory, which costs more than scanning a sample).
   */
  constructor(flags: number, expectedKeys: number, window?: DenseWindow, stageRows = STAGE_PER_PART) {
    this.flags = flags;
    const l = layout(flags);
    this.width = l.width;
    this.qtyOff = l.qty;
    this.dateOff = l.dmin;
    let cap = 1024;
    while (cap * this.growAt < expectedKeys) cap *= 2;
    this.wantCap = cap;
    let pcap = 64;
    while (pcap * PART_LOAD < expectedKeys / PARTS) pcap *= 2;
    // reuse the arrays of this thread's last table: the first write to fresh memory (a page fault
    // per 4 KiB) costs more than the scan of the range itself on small VMs. A table with a small
    // stage (a sample's) leaves them for the next real scan
    const spare = stageRows === STAGE_PER_PART ? ScanTable.spare : undefined;
    if (spare) ScanTable.spare = undefined;
    this.reused = spare !== undefined && spare.width === this.width;
    if (spare && spare.width === this.width) {
      this.cells = spare.cells;
      this.hashes = spare.hashes;
      this.keyOff = spare.keyOff;
      this.keyLen = spare.keyLen;
      this.used = spare.used;
      this.arena = spare.arena;
      this.cap = spare.cap;
      this.parts = spare.parts;
    } else {
      this.cap = 64;
      this.cells = new Float64Array(this.cap * this.width);
      this.hashes = new Int32Array(this.cap);
      this.keyOff = new Int32Array(this.cap);
      this.keyLen = new Int32Array(this.cap);
      this.used = new Int32Array(Math.ceil(this.cap * this.growAt) + 1);
      this.arena = new Uint8Array(1 << 12);
      this.parts = Array.from({ length: PARTS }, () => newPart(pcap, this.width));
    }
    this.mask = this.cap - 1;
    this.stage = takeStage(this.qtyOff >= 0, this.dateOff >= 0, false, stageRows);
    this.stagePer = stageRows;
    this.window = window;
    this.denseWidth = denseWidthOf(flags);
    this.denseLean = this.denseWidth === 1;
    this.dBase = window ? window.base : Infinity;
    this.dEnd = window ? window.base + window.span : -Infinity;
    let shift = 0;
    while (window && (window.span - 1) >>> shift >= DENSE_SLICES) shift++;
    this.dShift = shift;
    this.dStage = window ? Math.floor((PARTS * STAGE_PER_PART) / (((window.span - 1) >>> shift) + 1)) : 0;
    if (window) {
      const want = window.span * this.denseWidth;
      // the last table's dense rows when it kept them (zeroed), else fresh shared memory
      let d = spare?.dense;
      const lent = lentDense;
      if (!d && lent && lent.rows.length === want && Atomics.load(lent.lease, 0) === 1) {
        lentDense = undefined;
        d = lent.rows;
        // only the rows of the slices that got rows were written (every write notes its slice,
        // and the merge reads no others either), rows of the width they were written with (the
        // same memory may come back for rows of another width: 5 doubles with a quantity, 1 lean)
        d.fill(0, lent.from * lent.width, Math.min(d.length, lent.to * lent.width));
      }
      if (d && d.length === want) {
        this.dense = d;
        this.dTouched.fill(1);
      } else this.dense = new Float64Array(new SharedArrayBuffer(want * 8));
      this.denseInts = new Int32Array(this.dense.buffer);
      this.dstage = takeStage(this.qtyOff >= 0, this.dateOff >= 0, true);
    }
  }

  /** Arrays kept from the last table of this thread, zeroed, for the next task. */
  private static spare: ScanTable | undefined;
  /** This table took over the thread's spare arrays (else it made its own). */
  readonly reused: boolean;

  /** Bytes this thread keeps for its next scan table (the spare table and staging area). */
  static spareBytes(): number {
    const st = spareStage;
    const stage = (s: Stage | undefined): number => (s ? s.hash.byteLength + s.num.byteLength + s.m.byteLength + s.dp.byteLength + s.q.byteLength + s.qdp.byteLength + s.date.byteLength : 0);
    return (ScanTable.spare?.bytes ?? 0) + (ScanTable.spare?.denseBytes ?? 0) + stage(st) + stage(spareDenseStage) + (lentDense?.rows.byteLength ?? 0);
  }

  /** Let this thread's spare table and staging area go (a merge task needs the memory). */
  static dropSpares(): void {
    ScanTable.spare = undefined;
    spareStage = undefined;
    spareDenseStage = undefined;
    lentDense = undefined;
  }

  /** Let this thread's spare table go when its arrays take more than `bytes`. */
  static dropSpareOver(bytes: number): void {
    const s = ScanTable.spare;
    if (s && s.bytes + s.denseBytes > bytes) ScanTable.spare = undefined;
  }

  /** Keys in the table (integer and string keys). */
  get keys(): number {
    this.foldStaged();
    let n = this.size + this.denseKeys;
    for (const part of this.parts) n += part.size;
    return n;
  }

  /**
   * Done with this table (after encoding): zero the occupied slots and keep the arrays for the
   * next table of this thread (unless `keep` is false: the staging areas only).
   */
  release(keep = true): void {
    const w = this.width;
    const zero = (cells: Float64Array, used: Int32Array, n: number): void => {
      for (let u = 0; u < n; u++) {
        const o = used[u] * w;
        for (let k = 0; k < w; k++) cells[o + k] = 0;
      }
    };
    zero(this.cells, this.used, this.size);
    for (const part of this.parts) {
      zero(part.cells, part.used, part.size);
      part.size = 0;
      part.keyBytes = 0;
    }
    this.size = 0;
    this.arenaUsed = 0;
    this.stage.fill.fill(0);
    this.stagedDp = 0;
    this.stagedQdp = 0;
    if (this.stagePer === STAGE_PER_PART) spareStage = this.stage;
    if (this.dstage) {
      this.dstage.fill.fill(0);
      spareDenseStage = this.dstage;
    }
    if (this.dense && this.denseKeys > 0) {
      const { from, to } = this.notedRows();
      this.dense.fill(0, from * this.denseWidth, to * this.denseWidth);
    }
    this.denseKeys = 0;
    this.dSliceLo = DENSE_SLICES;
    this.dSliceHi = -1;
    if (keep) ScanTable.spare = this;
  }

  /**
   * Hand the dense rows over (after encoding the rest of the table): the table forgets them, and
   * this thread reuses their memory only once the job sets their lease (partial.ts,
   * DenseSegment). Undefined without a window or dense keys.
   */
  takeDense(): { rows: Float64Array; lease: SharedArrayBuffer; from: number; to: number } | undefined {
    this.foldStaged();
    const d = this.dense;
    if (!d || this.denseKeys === 0) return undefined;
    this.dense = undefined;
    this.denseInts = undefined;
    this.denseKeys = 0;
    const lease = new SharedArrayBuffer(4);
    const { from, to } = this.notedRows();
    lentDense = { rows: d, lease: new Int32Array(lease), from, to, width: this.denseWidth };
    this.dSliceLo = DENSE_SLICES;
    this.dSliceHi = -1;
    return { rows: d, lease, from, to };
  }

  /** The rows that may be non-zero: those of the slices that got rows ([from, to), empty when none). */
  private notedRows(): { from: number; to: number } {
    const from = this.dSliceLo << this.dShift;
    return { from, to: Math.max(from, Math.min(this.window!.span, (this.dSliceHi + 1) << this.dShift)) };
  }

  /** Note that slice si got rows. */
  private noteSlice(si: number): void {
    if (si < this.dSliceLo) this.dSliceLo = si;
    if (si > this.dSliceHi) this.dSliceHi = si;
  }

  /** Bytes of the dense rows (planned by the job, so not part of {@link bytes}). */
  get denseBytes(): number {
    return this.dense ? this.dense.byteLength : 0;
  }

  /**
   * What a sample scan saw: distinct keys that are plain integers (and up to `most` of them, in
   * hash order, a random subset, with their row counts) and distinct other keys.
   */
  keyStats(most: number): { ints: number; others: number; keys: number[]; counts: number[] } {
    this.foldStaged();
    let ints = 0;
    const keys: number[] = [];
    const counts: number[] = [];
    for (const part of this.parts) {
      ints += part.size;
      for (let u = 0; u < part.size && keys.length < most; u++) {
        const o = part.used[u] * this.width;
        keys.push(part.cells[o + NUM]);
        counts.push(part.cells[o + COUNT]);
      }
    }
    return { ints, others: this.size, keys, counts };
  }

  /** Bytes held by the table's arrays. */
  get bytes(): number {
    let n = this.cells.byteLength + this.hashes.byteLength * 3 + this.used.byteLength + this.arena.byteLength;
    for (const p of this.parts) n += p.cells.byteLength + p.hashes.byteLength + p.used.byteLength;
    return n;
  }

  /**
   * The slot row offset of a key, inserting it when new (its count stays 0 until the caller adds
   * to it: the caller must add at once).
   */
  find(hash: number, num: number, src: Uint8Array, start: number, end: number): number {
    const cells = this.cells;
    const w = this.width;
    const mask = this.mask;
    let i = hash & mask;
    for (;;) {
      const o = i * w;
      if (cells[o + COUNT] === 0) return this.insert(i, hash, num, src, start, end);
      if (cells[o + NUM] === num && (num >= 0 || (this.hashes[i] === hash && this.keyEquals(i, src, start, end)))) return o;
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
    if (this.size + 1 > this.cap * this.growAt || (this.size === 0 && this.cap < this.wantCap)) {
      this.grow();
      return this.find(hash, num, src, start, end);
    }
    this.used[this.size++] = i;
    const o = i * this.width;
    const cells = this.cells;
    cells[o + NUM] = num;
    if (this.dateOff >= 0) {
      cells[o + this.dateOff] = Infinity;
      cells[o + this.dateOff + 1] = -Infinity;
    }
    if (num < 0) {
      // an integer key's hash is rebuilt from its value when needed: one array fewer to touch here
      this.hashes[i] = hash;
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
    const { cells: oldCells, hashes: oldHashes, keyOff: oldOff, keyLen: oldLen, used: oldUsed } = this;
    const w = this.width;
    const cap = this.size === 0 ? Math.max(this.cap * 2, this.wantCap) : this.cap * 2;
    const mask = cap - 1;
    const cells = new Float64Array(cap * w);
    const hashes = new Int32Array(cap);
    const keyOff = new Int32Array(cap);
    const keyLen = new Int32Array(cap);
    const used = new Int32Array(Math.ceil(cap * this.growAt) + 1);
    for (let u = 0; u < this.size; u++) {
      const i = oldUsed[u];
        const num = oldCells[i * w + NUM];
      const h = num >= 0 ? hashOfInteger(num) : oldHashes[i];
      let j = h & mask;
      while (cells[j * w + COUNT] !== 0) j = (j + 1) & mask;
      for (let k = 0; k < w; k++) cells[j * w + k] = oldCells[i * w + k];
      hashes[j] = h;
      keyOff[j] = oldOff[i];
      keyLen[j] = oldLen[i];
      used[u] = j;
    }
    this.cells = cells;
    this.hashes = hashes;
    this.keyOff = keyOff;
    this.keyLen = keyLen;
    this.used = used;
    this.cap = cap;
    this.mask = mask;
  }

  /** Raise the decimal places of every sum (exact). */
  rescale(scale: number): void {
    const d = scale - this.scale;
    if (d <= 0) return;
    for (let u = 0; u < this.size; u++) rescaleLimbs(this.cells, this.used[u] * this.width + SUM, d);
    for (const p of this.parts) for (let u = 0; u < p.size; u++) rescaleLimbs(p.cells, p.used[u] * this.width + SUM, d);
    this.rescaleDense(SUM, d);
    this.scale = scale;
  }

  /** Raise the decimal places of every quantity sum (exact). */
  rescaleQty(qscale: number): void {
    const d = qscale - this.qscale;
    if (d <= 0 || this.qtyOff < 0) return;
    for (let u = 0; u < this.size; u++) rescaleLimbs(this.cells, this.used[u] * this.width + this.qtyOff, d);
    for (const p of this.parts) for (let u = 0; u < p.size; u++) rescaleLimbs(p.cells, p.used[u] * this.width + this.qtyOff, d);
    this.rescaleDense(this.qtyOff, d);
    this.qscale = qscale;
  }

  /** Raise the places of the limbs at slot row offset `off` of every dense row by `d`. */
  private rescaleDense(off: number, d: number): void {
    const cells = this.dense;
    if (!cells || this.denseKeys === 0) return;
    const dw = this.denseWidth;
    if (this.denseLean) {
      // int32: a total that no longer fits moves to the hash parts (already at the new places)
      const ints = this.denseInts!;
      const f = POW10[d];
      for (let i = 0, n = this.window!.span; i < n; i++) {
        if (ints[2 * i] === 0) continue;
        const v = ints[2 * i + 1] * f;
        if (fitsLean(v)) ints[2 * i + 1] = v;
        else this.spillDense(i, d);
      }
      return;
    }
    for (let rb = -1, n = cells.length - 1; rb < n; rb += dw) if (cells[rb + COUNT] !== 0) rescaleLimbs(cells, rb + off, d);
  }

  /**
   * Move lean dense row `idx` to its key's row in the hash parts, its total raised by `d` places,
   * and zero it; returns the part row's offset (the merge adds the key's rows of both kinds).
   */
  private spillDense(idx: number, d = 0): number {
    const ints = this.denseInts!;
    const num = this.dBase + idx;
    const h = hashOfInteger(num);
    const o2 = this.findInt(h, num);
    const pc = this.parts[h >>> PART_SHIFT].cells;
    const c = ints[2 * idx];
    if (c !== 0) {
      pc[o2 + COUNT] += c;
      addScaled(pc, o2 + SUM, ints[2 * idx + 1], 0, d);
      ints[2 * idx] = 0;
      ints[2 * idx + 1] = 0;
      this.denseKeys--;
    }
    return o2;
  }

  private order = new Int32Array(0);
  private readonly bucketCounts = new Int32Array(SORT_BUCKETS + 1);

  /** Row indexes [0, n) in order of their home slot's top bits (a counting sort). */
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

  /**
   * Fold the rows [0, n) of a batch into the string-key table, in slot order: their hashes, key
   * byte ranges in `src`, amounts as scaled integers with their places. (Rows of integer keys do
   * not come here: the parser stages them with {@link stageInt}.)
   */
  foldBatch(n: number, batch: BatchArrays, src: Uint8Array): void {
    const { hash: hashes, num: nums, ks, ke, m, dp: dps, q, qdp: qdps, date: dates } = batch;
    let maxDp = this.scale;
    for (let r = 0; r < n; r++) if (dps[r] > maxDp) maxDp = dps[r];
    if (maxDp > this.scale) this.rescale(maxDp);
    if (this.qtyOff >= 0) {
      let maxQ = this.qscale;
      for (let r = 0; r < n; r++) if (qdps[r] > maxQ) maxQ = qdps[r];
      if (maxQ > this.qscale) this.rescaleQty(maxQ);
    }
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

  /** Stage one row of an integer key for its part (folded when the part's stage is full). */
  stageInt(h: number, num: number, m: number, dp: number, q: number, qdp: number, date: number): void {
    const st = this.stage;
    const part = h >>> PART_SHIFT;
    const f = st.fill[part];
    const i = part * this.stagePer + f;
    st.hash[i] = h;
    st.num[i] = num;
    this.putStaged(st, i, m, dp, q, qdp, date);
    st.fill[part] = f + 1;
    if (f + 1 === this.stagePer) this.foldStaged();
  }

  /** The values of staged row i (its key or row index is the caller's). */
  private putStaged(st: Stage, i: number, m: number, dp: number, q: number, qdp: number, date: number): void {
    st.m[i] = m;
    st.dp[i] = dp;
    if (dp > this.stagedDp) this.stagedDp = dp;
    if (this.qtyOff >= 0) {
      st.q[i] = q;
      st.qdp[i] = qdp;
      if (qdp > this.stagedQdp) this.stagedQdp = qdp;
    }
    if (this.dateOff >= 0) st.date[i] = date;
  }

  /** Stage one row of a dense key (row `idx` of the window) for its slice. */
  stageDense(idx: number, m: number, dp: number, q: number, qdp: number, date: number): void {
    const st = this.dstage!;
    const slice = idx >>> this.dShift;
    const f = st.fill[slice];
    const i = slice * this.dStage + f;
    st.hash[i] = idx;
    this.putStaged(st, i, m, dp, q, qdp, date);
    st.fill[slice] = f + 1;
    if (f + 1 === this.dStage) this.foldStaged();
  }

  /**
   * Stage n dense rows of the lean layout at once (the line kernel's direct rows): window row
   * rows[r], amount m[r] with dp[r] places, at most maxDp of them.
   */
  stageDenseRun(rows: Int32Array, m: Float64Array, dp: Int32Array, n: number, maxDp: number): void {
    const st = this.dstage!;
    const fill = st.fill;
    const sHash = st.hash;
    const sM = st.m;
    const sDp = st.dp;
    const shift = this.dShift;
    const per = this.dStage;
    if (maxDp > this.stagedDp) this.stagedDp = maxDp;
    for (let r = 0; r < n; r++) {
      const idx = rows[r];
      const slice = idx >>> shift;
      const f = fill[slice];
      const i = slice * per + f;
      sHash[i] = idx;
      sM[i] = m[r];
      sDp[i] = dp[r];
      fill[slice] = f + 1;
      if (f + 1 === per) {
        this.foldStaged();
        // (the rows left may have as many places as the run's most)
        this.stagedDp = maxDp;
      }
    }
  }

  /** Fold every staged row into its part's table (and every staged dense row into its row). */
  private foldStaged(): void {
    if (this.stagedDp > this.scale) this.rescale(this.stagedDp);
    if (this.qtyOff >= 0 && this.stagedQdp > this.qscale) this.rescaleQty(this.stagedQdp);
    this.stagedDp = 0;
    this.stagedQdp = 0;
    const fill = this.stage.fill;
    for (let pi = 0; pi < PARTS; pi++) {
      const cnt = fill[pi];
      if (cnt === 0) continue;
      fill[pi] = 0;
      this.foldPart(pi, pi * this.stagePer, cnt);
    }
    const ds = this.dstage;
    if (!ds) return;
    for (let si = 0; si < DENSE_SLICES; si++) {
      const cnt = ds.fill[si];
      if (cnt === 0) continue;
      ds.fill[si] = 0;
      this.foldDense(si, si * this.dStage, cnt);
    }
  }

  /** Write a fresh slice of the dense rows (zeros) before it is first read. */
  private touchSlice(si: number): void {
    const cells = this.dense!;
    const rows = 1 << this.dShift;
    this.dTouched[si] = 1;
    cells.fill(0, si * rows * this.denseWidth, Math.min(cells.length, (si + 1) * rows * this.denseWidth));
  }

  /** Fold the staged dense rows [from, from + cnt) of slice `si` (places within the scale). */
  private foldDense(si: number, from: number, cnt: number): void {
    const st = this.dstage!;
    const sIdx = st.hash;
    const cells = this.dense!;
    const dw = this.denseWidth;
    const scale = this.scale;
    const qscale = this.qscale;
    const qtyOff = this.qtyOff;
    const dateOff = this.dateOff;
    // warm the slice's rows with a forward sweep first (see foldPart)
    const sliceRows = 1 << this.dShift;
    this.noteSlice(si);
    if (this.dTouched[si] === 0) this.touchSlice(si);
    else if (cnt * 16 >= sliceRows) {
      // (one read a cache line; lean rows read as int32: as doubles they may be subnormal)
      let sink = 0;
      const ints = this.denseInts!;
      const sliceEnd = Math.min(ints.length, (si + 1) * sliceRows * dw * 2);
      for (let k = si * sliceRows * dw * 2; k < sliceEnd; k += 16) sink += ints[k];
      this.sink = sink;
    }
    const end = from + cnt;
    if (this.denseLean) {
      const ints = this.denseInts!;
      const sM = st.m;
      const sDp = st.dp;
      for (let i = from; i < end; i++) {
        const k = sIdx[i] * 2;
        const c = ints[k];
        const dp = sDp[i];
        const mv = sM[i];
        const v = dp === scale ? mv : mv * POW10[scale - dp];
        const lo = ints[k + 1] + v;
        if (!fitsLean(v) || !fitsLean(lo) || c === LEAN_MAX) {
          // past int32: the key's row moves to the hash parts, which fold this row exactly
          const o2 = this.spillDense(sIdx[i]);
          addStaged(this.parts[hashOfInteger(this.dBase + sIdx[i]) >>> PART_SHIFT].cells, o2, st, i, scale, qscale, -1, -1);
          continue;
        }
        if (c === 0) this.denseKeys++;
        ints[k] = c + 1;
        ints[k + 1] = lo;
      }
      return;
    }
    for (let i = from; i < end; i++) {
      // the row base: the row's fields at the slot row offsets (see `dense`)
      const o = sIdx[i] * dw - 1;
      if (cells[o + COUNT] === 0) {
        this.denseKeys++;
        if (dateOff >= 0) {
          cells[o + dateOff] = Infinity;
          cells[o + dateOff + 1] = -Infinity;
        }
      }
      addStaged(cells, o, st, i, scale, qscale, qtyOff, dateOff);
    }
  }

  /** Fold the staged rows [from, from + cnt) of part `pi` (their places do not exceed the scale). */
  private foldPart(pi: number, from: number, cnt: number): void {
    const st = this.stage;
    const sHash = st.hash;
    const sNum = st.num;
    const w = this.width;
    const scale = this.scale;
    const qscale = this.qscale;
    const qtyOff = this.qtyOff;
    const dateOff = this.dateOff;
    let part = this.parts[pi];
    let cells = part.cells;
    let mask = part.mask;
    const end = from + cnt;
    // bring the part's table into cache with a forward sweep (the prefetcher streams it) before
    // the random accesses, when there are enough rows to pay for it
    if (cnt * 16 >= part.cap) {
      let sink = 0;
      for (let k = COUNT, n = cells.length; k < n; k += 8) sink += cells[k];
      this.sink = sink;
    }
    for (let i = from; i < end; i++) {
      const h = sHash[i];
      const num = sNum[i];
      let j = h & mask;
      let o = j * w;
      for (;;) {
        if (cells[o + COUNT] === 0) {
          if (part.size + 1 > part.cap * PART_LOAD) {
            this.growPart(pi);
            part = this.parts[pi];
            cells = part.cells;
            mask = part.mask;
            j = h & mask;
            o = j * w;
            continue;
          }
          part.used[part.size++] = j;
          part.keyBytes += digitCount(num);
          part.hashes[j] = h;
          cells[o + NUM] = num;
          if (dateOff >= 0) {
            cells[o + dateOff] = Infinity;
            cells[o + dateOff + 1] = -Infinity;
          }
          break;
        }
        if (cells[o + NUM] === num) break;
        j = (j + 1) & mask;
        o = j * w;
      }
      addStaged(cells, o, st, i, scale, qscale, qtyOff, dateOff);
    }
  }

  private growPart(pi: number): void {
    const old = this.parts[pi];
    const w = this.width;
    const next = newPart(old.cap * 2, w);
    const { cells, hashes, used, mask } = next;
    for (let u = 0; u < old.size; u++) {
      const i = old.used[u];
      const h = old.hashes[i];
      let j = h & mask;
      while (cells[j * w + COUNT] !== 0) j = (j + 1) & mask;
      for (let k = 0; k < w; k++) cells[j * w + k] = old.cells[i * w + k];
      hashes[j] = h;
      used[u] = j;
    }
    next.size = old.size;
    next.keyBytes = old.keyBytes;
    this.parts[pi] = next;
  }

  /** The slot row offset of an integer key in its part, inserted when new (add to it at once). */
  private findInt(h: number, num: number): number {
    const pi = h >>> PART_SHIFT;
    for (;;) {
      const part = this.parts[pi];
      const { cells, mask } = part;
      const w = this.width;
      let j = h & mask;
      for (;;) {
        const o = j * w;
        if (cells[o + COUNT] === 0) break;
        if (cells[o + NUM] === num) return o;
        j = (j + 1) & mask;
      }
      if (part.size + 1 > part.cap * PART_LOAD) {
        this.growPart(pi);
        continue;
      }
      const o = j * w;
      part.used[part.size++] = j;
      part.keyBytes += digitCount(num);
      part.hashes[j] = h;
      cells[o + NUM] = num;
      if (this.dateOff >= 0) {
        cells[o + this.dateOff] = Infinity;
        cells[o + this.dateOff + 1] = -Infinity;
      }
      return o;
    }
  }

  /** Fold one row whose amount is an exact BigInt with `dp` places (the slow path past 2^52). */
  foldBig(hash: number, num: number, src: Uint8Array, start: number, end: number, big: bigint, dp: number, q: number, qdp: number, date: number): void {
    if (dp > this.scale) this.rescale(dp);
    if (this.qtyOff >= 0 && qdp > this.qscale) this.rescaleQty(qdp);
    let o: number;
    let cells: Float64Array;
    if (num >= this.dBase && num < this.dEnd && !this.denseLean) {
      cells = this.dense!;
      const idx = num - this.dBase;
      this.noteSlice(idx >>> this.dShift);
      if (this.dTouched[idx >>> this.dShift] === 0) this.touchSlice(idx >>> this.dShift);
      o = idx * this.denseWidth - 1;
      if (cells[o + COUNT] === 0) {
        this.denseKeys++;
        if (this.dateOff >= 0) {
          cells[o + this.dateOff] = Infinity;
          cells[o + this.dateOff + 1] = -Infinity;
        }
      }
    } else {
      o = num >= 0 ? this.findInt(hash, num) : this.find(hash, num, src, start, end);
      cells = num >= 0 ? this.parts[hash >>> PART_SHIFT].cells : this.cells;
    }
    cells[o + COUNT]++;
    addBig(cells, o + SUM, big * 10n ** BigInt(this.scale - dp));
    if (this.qtyOff >= 0) addScaled(cells, o + this.qtyOff, q, qdp, this.qscale);
    if (this.dateOff >= 0) {
      if (date < cells[o + this.dateOff]) cells[o + this.dateOff] = date;
      if (date > cells[o + this.dateOff + 1]) cells[o + this.dateOff + 1] = date;
    }
  }

  /**
   * Encode the table as `partitions` sections (the format of partial.ts); its dense rows too unless
   * `withDense` is false (they are handed over as they are: {@link takeDense}).
   */
  encode(partitions: number, write: (p: number, n: number, keyBytes: number) => SectionWriter, withDense = true): void {
    this.foldStaged();
    const dense = withDense && this.denseKeys > 0 ? this.dense : undefined;
    const win = this.window!;
    const digits = dense ? digitCount(win.base) : 0;
    const dparts = dense ? densePartitions(win.base, win.span, partitions) : undefined;
    const { cells, hashes, keyLen, cap } = this;
    const w = this.width;
    const counts = new Uint32Array(partitions);
    const bytes = new Float64Array(partitions);
    // pass 1: each key's partition and key length. String keys: a forward sweep over the slots
    // (an integer key there has its hash rebuilt and its digit count noted in keyLen)
    for (let i = 0; i < cap; i++) {
      const o = i * w;
      if (cells[o + COUNT] === 0) continue;
      const num = cells[o + NUM];
      let len: number;
      if (num >= 0) {
        len = digitCount(num);
        hashes[i] = hashOfInteger(num);
      } else len = keyLen[i];
      const p = partitionOf(hashes[i], partitions);
      keyLen[i] = len; // integer keys: their digit count, from here on
      counts[p]++;
      bytes[p] += len;
    }
    // a part holds the hashes with its top PART_BITS bits: when the partition count divides
    // PARTS, the whole part goes to one partition and its counts are known without a pass
    const whole = PARTS % partitions === 0;
    for (let pi = 0; pi < PARTS; pi++) {
      const part = this.parts[pi];
      if (whole) {
        const p = Math.floor((pi * partitions) / PARTS);
        counts[p] += part.size;
        bytes[p] += part.keyBytes;
        continue;
      }
      for (let u = 0; u < part.size; u++) {
        const i = part.used[u];
        const p = partitionOf(part.hashes[i], partitions);
        counts[p]++;
        bytes[p] += digitCount(part.cells[i * w + NUM]);
      }
    }
    const dw = this.denseWidth;
    const ints = this.denseInts;
    const denseEmpty = (i: number): boolean => denseCount(dense!, ints!, i, dw) === 0;
    if (dense) {
      for (let i = 0; i < win.span; i++) {
        if (denseEmpty(i)) continue;
        counts[dparts![i]]++;
        bytes[dparts![i]] += digits;
      }
    }
    const writers: SectionWriter[] = [];
    for (let p = 0; p < partitions; p++) writers.push(write(p, counts[p], bytes[p]));
    const arena = this.arena;
    // pass 2: copy rows and key bytes into their sections
    for (let i = 0; i < cap; i++) {
      const o = i * w;
      if (cells[o + COUNT] === 0) continue;
      const v = writers[partitionOf(hashes[i], partitions)];
      const j = v.i++;
      v.h[j] = hashes[i];
      const a = v.a;
      for (let k = 0, d = j * w; k < w; k++) a[d + k] = cells[o + k];
      const b = v.b;
      let kb = v.kb;
      const num = cells[o + NUM];
      const len = keyLen[i];
      if (num >= 0) {
        putDigits(b, kb, num, len);
        kb += len;
      } else {
        const a0 = this.keyOff[i];
        for (let k = 0; k < len; k++) b[kb++] = arena[a0 + k];
      }
      v.kb = kb;
      v.k[j] = kb;
    }
    for (const part of this.parts) {
      // a forward sweep over the slots (the prefetcher streams them), not the insertion order
      const pc = part.cells;
      const ph = part.hashes;
      for (let i = 0, cap = part.cap; i < cap; i++) {
        const o = i * w;
        if (pc[o + COUNT] === 0) continue;
        const h = ph[i];
        const v = writers[partitionOf(h, partitions)];
        const j = v.i++;
        v.h[j] = h;
        const a = v.a;
        for (let k = 0, d = j * w; k < w; k++) a[d + k] = pc[o + k];
        const num = pc[o + NUM];
        const len = digitCount(num);
        putDigits(v.b, v.kb, num, len);
        v.kb += len;
        v.k[j] = v.kb;
      }
    }
    if (!dense) return;
    for (let i = 0; i < win.span; i++) if (!denseEmpty(i)) putDenseRow(writers[dparts![i]], win.base + i, digits, dense, ints!, i, dw, w);
  }
}

/**
 * Write dense row i, the row of key `num` (`digits` digits; see ScanTable.dense: `dw` doubles a
 * row of `rows`, or a lean row's two int32 of `ints`, the same memory, when dw is 1), as the next row of section writer v, whose rows
 * are `w` wide. A lean row has no high limb: it stays 0 in the section's fresh memory.
 */
export function putDenseRow(v: SectionWriter, num: number, digits: number, rows: Float64Array, ints: Int32Array, i: number, dw: number, w: number): void {
  const j = v.i++;
  v.h[j] = hashOfInteger(num);
  const d = j * w;
  v.a[d + NUM] = num;
  if (dw === 1) {
    v.a[d + COUNT] = ints[2 * i];
    v.a[d + SUM] = ints[2 * i + 1];
  } else for (let k = 1; k <= dw; k++) v.a[d + k] = rows[i * dw - 1 + k];
  putDigits(v.b, v.kb, num, digits);
  v.kb += digits;
  v.k[j] = v.kb;
}

/**
 * The partition of every key of a dense window (row i: key base + i), by the same hash as
 * {@link hashOfInteger}. The keys share their digit count, so the hash state after all digits but
 * the last is computed once per ten keys. With `from` and `to`, only rows [from, to) get theirs.
 */
export function densePartitions(base: number, span: number, partitions: number, from = 0, to = span): Uint16Array {
  const out = new Uint16Array(span);
  const digits = digitCount(base);
  let last = (base + from) % 10;
  let prefix = prefixHash(Math.floor((base + from) / 10), digits - 1);
  for (let i = from; i < to; i++) {
    if (last === 10) {
      last = 0;
      prefix = prefixHash(Math.floor((base + i) / 10), digits - 1);
    }
    out[i] = partitionOf(finalizeHash(Math.imul(prefix ^ (48 + last), 0x01000193)), partitions);
    last++;
  }
  return out;
}

/** The FNV-1a state after the `digits` decimal digits of v (none when digits is 0). */
function prefixHash(v: number, digits: number): number {
  let h = 0x811c9dc5 | 0;
  for (let k = digits - 1; k >= 0; k--) {
    const d = Math.floor(v / POW10[k]) % 10;
    h = Math.imul(h ^ (48 + d), 0x01000193);
  }
  return h;
}

/** Write the `len` decimal digits of the integer `x` at b[at]. */
export function putDigits(b: Uint8Array, at: number, x: number, len: number): void {
  for (let k = len - 1; k >= 0; k--) {
    const q = Math.floor(x / 10);
    b[at + k] = 48 + (x - q * 10);
    x = q;
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

/** The key hash of an integer key: the same as hashing its decimal digits (table.ts's hashBytes). */
export function hashOfInteger(v: number): number {
  const digits = digitCount(v);
  let h = 0x811c9dc5 | 0;
  for (let k = digits - 1; k >= 0; k--) {
    const d = Math.floor(v / POW10[k]) % 10;
    h = Math.imul(h ^ (48 + d), 0x01000193);
  }
  return finalizeHash(h);
}

/** Decimal digits of a non-negative integer below 10^16. */
export function digitCount(v: number): number {
  let n = 1;
  while (n < 16 && v >= POW10[n]) n++;
  return n;
}

/**
 * Add staged row i to the row at cells[o] (slot row offsets): count, the amount at `scale` places
 * (exact: limbs past 2^51 take addScaled), the quantity, the first and last date.
 */
function addStaged(cells: Float64Array, o: number, st: Stage, i: number, scale: number, qscale: number, qtyOff: number, dateOff: number): void {
  cells[o + COUNT]++;
  const dp = st.dp[i];
  const mv = st.m[i];
  const v = dp === scale ? mv : mv * POW10[scale - dp];
  const lo = cells[o + SUM] + v;
  if (v > LIMB_MAX || v < -LIMB_MAX || lo > LIMB_MAX || lo < -LIMB_MAX) addScaled(cells, o + SUM, mv, dp, scale);
  else cells[o + SUM] = lo;
  if (qtyOff >= 0) addScaled(cells, o + qtyOff, st.q[i], st.qdp[i], qscale);
  if (dateOff >= 0) {
    const d = st.date[i];
    if (d < cells[o + dateOff]) cells[o + dateOff] = d;
    if (d > cells[o + dateOff + 1]) cells[o + dateOff + 1] = d;
  }
}

function addScaled(acc: Float64Array, at: number, m: number, dp: number, scale: number): void {
  const v = dp === scale ? m : m * POW10[scale - dp];
  if (v <= LIMB_MAX && v >= -LIMB_MAX) addExact(acc, at, v);
  else addBig(acc, at, BigInt(m) * 10n ** BigInt(scale - dp));
}
