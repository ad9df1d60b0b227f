/**
 * The partial-aggregate format that leaves a scan task: one self-contained binary section per
 * hash partition, so a section can be transferred between threads without copying, spilled to a
 * file as it is, or stored as one part of an object on a store and read back with a ranged GET.
 *
 * Section layout (little-endian, every array 8-byte aligned):
 *   Int32[8] header: magic, n, flags, scale, qscale, keyBytes, width, 0
 *   Int32[n] key hashes (padded to 8 bytes)
 *   Float64[n * width] accumulator rows (see table.ts)
 *   Uint32[n] key ends into the key bytes (padded to 8 bytes)
 *   Uint8[keyBytes] key bytes
 */
import { KeyTable, denseCount, layout, partitionOf } from './table.js';
import { digitCount, putDenseRow, type ScanTable, type SectionWriter } from './scan-table.js';
import { SegflowError } from './errors.js';

const MAGIC = 0x31504753; // "SGP1"
const HEADER = 32;

const pad8 = (n: number): number => (n + 7) & ~7;

/** A decoded section: views over its buffer. */
export interface Section {
  n: number;
  flags: number;
  scale: number;
  qscale: number;
  width: number;
  hashes: Int32Array;
  acc: Float64Array;
  keyEnds: Uint32Array;
  keyBytes: Uint8Array;
}

/** A section being written: its buffer and the views {@link ScanTable.encode} fills. */
export interface SectionBuffer extends SectionWriter {
  buf: SharedArrayBuffer;
}

/** Allocate one section of `n` keys and `keyBytes` key bytes, header filled. */
export function allocSection(n: number, keyBytes: number, flags: number, scale: number, qscale: number, width: number): SectionBuffer {
  const hOff = HEADER;
  const aOff = hOff + pad8(n * 4);
  const kOff = aOff + n * width * 8;
  const bOff = kOff + pad8(n * 4);
  // shared memory: the coordinator and a merge task (and its retries) read it without copies
  const buf = new SharedArrayBuffer(bOff + keyBytes);
  new Int32Array(buf, 0, 8).set([MAGIC, n, flags, scale, qscale, keyBytes, width, 0]);
  return {
    buf,
    h: new Int32Array(buf, hOff, n),
    a: new Float64Array(buf, aOff, n * width),
    k: new Uint32Array(buf, kOff, n),
    b: new Uint8Array(buf, bOff, keyBytes),
    i: 0,
    kb: 0,
  };
}

/** Encode a scan table as `partitions` sections by key hash, in shared memory (its dense rows too unless `withDense` is false). */
export function encodeScanTable(table: ScanTable, partitions: number, withDense = true): SharedArrayBuffer[] {
  const out: SectionBuffer[] = [];
  table.encode(
    partitions,
    (_p, n, keyBytes) => {
      const s = allocSection(n, keyBytes, table.flags, table.scale, table.qscale, table.width);
      out.push(s);
      return s;
    },
    withDense,
  );
  return out.map((s) => s.buf);
}

/**
 * A held scan table's dense rows as they leave the scan (scan-table.ts, DenseWindow): row i is key
 * base + i, `width` doubles (a section row without its key: count, sums, ...), or with `width` 1
 * a lean row, an int32 count and an int32 total at 2i and 2i + 1 of the rows as an Int32Array
 * (table.ts, denseWidthOf), at the places `scale`/`qscale`; a row whose count is 0 is no key.
 */
export interface DenseSegment {
  buf: SharedArrayBuffer;
  base: number;
  span: number;
  width: number;
  scale: number;
  qscale: number;
  /** Rows outside [from, to) are all zero (the window slices that got no row). */
  from: number;
  to: number;
  /**
   * Int32[1]: the job stores 1 once it is done with the rows (merged, or the job ended); the
   * worker that wrote them may then reuse the memory for its next dense table.
   */
  lease: SharedArrayBuffer;
}

/** Tell the worker that wrote a dense segment that the job is done with its rows. */
export function returnDense(seg: DenseSegment): void {
  Atomics.store(new Int32Array(seg.lease), 0, 1);
}

/**
 * The keys of partition p of a dense segment as an ordinary section (for merges that must combine
 * them with section rows of the same keys). `parts` is densePartitions() of its window (rows
 * [seg.from, seg.to) at least: the others are all zero).
 */
export function denseSection(seg: DenseSegment, p: number, parts: Uint16Array, flags: number): Section {
  const rows = new Float64Array(seg.buf);
  const ints = new Int32Array(seg.buf);
  const dw = seg.width;
  const any = (i: number): boolean => denseCount(rows, ints, i, dw) !== 0;
  let n = 0;
  for (let i = seg.from; i < seg.to; i++) if (parts[i] === p && any(i)) n++;
  const digits = digitCount(seg.base);
  // a section row is a slot row: the key, then the dense row's fields
  const w = layout(flags).width;
  const v = allocSection(n, n * digits, flags, seg.scale, seg.qscale, w);
  for (let i = seg.from; i < seg.to; i++) if (parts[i] === p && any(i)) putDenseRow(v, seg.base + i, digits, rows, ints, i, dw, w);
  return decodeSection(v.buf);
}

/** Split a table into `partitions` sections by key hash, in shared memory. */
export function encodeSections(table: KeyTable, partitions: number): SharedArrayBuffer[] {
  const n = table.size;
  const part = new Uint16Array(n);
  const counts = new Uint32Array(partitions);
  const bytes = new Float64Array(partitions);
  const { hashes, keyEnds } = table;
  for (let id = 0; id < n; id++) {
    const p = partitionOf(hashes[id], partitions);
    part[id] = p;
    counts[p]++;
    bytes[p] += keyEnds[id] - (id === 0 ? 0 : keyEnds[id - 1]);
  }
  const w = table.width;
  const views: SectionBuffer[] = [];
  for (let p = 0; p < partitions; p++) views.push(allocSection(counts[p], bytes[p], table.flags, table.scale, table.qscale, w));
  const { acc, arena } = table;
  for (let id = 0; id < n; id++) {
    const v = views[part[id]];
    const i = v.i++;
    v.h[i] = hashes[id];
    // element loops, not subarray().set(): no allocation per key
    const a = v.a;
    for (let j = 0, src = id * w, dst = i * w; j < w; j++) a[dst + j] = acc[src + j];
    const ks = id === 0 ? 0 : keyEnds[id - 1];
    const ke = keyEnds[id];
    const b = v.b;
    let kb = v.kb;
    for (let j = ks; j < ke; j++) b[kb++] = arena[j];
    v.kb = kb;
    v.k[i] = kb;
  }
  return views.map((v) => v.buf);
}

/** Read a section from a buffer (copied first when it is not 8-byte aligned). */
export function decodeSection(input: ArrayBufferLike | Uint8Array): Section {
  let buf: ArrayBufferLike;
  let base = 0;
  if (input instanceof Uint8Array) {
    if (input.byteOffset % 8 === 0) {
      buf = input.buffer;
      base = input.byteOffset;
    } else {
      buf = input.slice().buffer;
    }
  } else {
    buf = input;
  }
  const head = new Int32Array(buf, base, 8);
  if (head[0] !== MAGIC) throw new SegflowError('ERR_INTERNAL', 'corrupt partial section (bad magic)');
  const [, n, flags, scale, qscale, kb, width] = head;
  const hOff = base + HEADER;
  const aOff = hOff + pad8(n * 4);
  const kOff = aOff + n * width * 8;
  const bOff = kOff + pad8(n * 4);
  return {
    n,
    flags,
    scale,
    qscale,
    width,
    hashes: new Int32Array(buf, hOff, n),
    acc: new Float64Array(buf, aOff, n * width),
    keyEnds: new Uint32Array(buf, kOff, n),
    keyBytes: new Uint8Array(buf, bOff, kb),
  };
}

/** A section with no rows is its header alone. */
export const EMPTY_SECTION_BYTES = HEADER;

/** The byte length of a section from its header (for reading sections packed one after another). */
export function sectionLength(header: Int32Array): number {
  const n = header[1];
  return HEADER + pad8(n * 4) + n * header[6] * 8 + pad8(n * 4) + header[5];
}
