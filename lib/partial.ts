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
import { KeyTable, partitionOf } from './table.js';
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
  const out: SharedArrayBuffer[] = [];
  const views: { h: Int32Array; a: Float64Array; k: Uint32Array; b: Uint8Array; i: number; kb: number }[] = [];
  for (let p = 0; p < partitions; p++) {
    const c = counts[p];
    const hOff = HEADER;
    const aOff = hOff + pad8(c * 4);
    const kOff = aOff + c * w * 8;
    const bOff = kOff + pad8(c * 4);
    // shared memory: the coordinator and a merge task (and its retries) read it without copies
    const buf = new SharedArrayBuffer(bOff + bytes[p]);
    const head = new Int32Array(buf, 0, 8);
    head.set([MAGIC, c, table.flags, table.scale, table.qscale, bytes[p], w, 0]);
    out.push(buf);
    views.push({
      h: new Int32Array(buf, hOff, c),
      a: new Float64Array(buf, aOff, c * w),
      k: new Uint32Array(buf, kOff, c),
      b: new Uint8Array(buf, bOff, bytes[p]),
      i: 0,
      kb: 0,
    });
  }
  const { acc, arena } = table;
  for (let id = 0; id < n; id++) {
    const v = views[part[id]];
    const i = v.i++;
    v.h[i] = hashes[id];
    v.a.set(acc.subarray(id * w, id * w + w), i * w);
    const ks = id === 0 ? 0 : keyEnds[id - 1];
    const ke = keyEnds[id];
    v.b.set(arena.subarray(ks, ke), v.kb);
    v.kb += ke - ks;
    v.k[i] = v.kb;
  }
  return out;
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

/** The byte length of a section from its header (for reading sections packed one after another). */
export function sectionLength(header: Int32Array): number {
  const n = header[1];
  return HEADER + pad8(n * 4) + n * header[6] * 8 + pad8(n * 4) + header[5];
}
