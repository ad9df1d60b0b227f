/**
 * Stage 4, merge: fold partition p of every scan task into one table, sort it by user id (byte
 * order of the id's UTF-8 text) and write shard p. One task per partition; partitions merge in
 * parallel.
 */
import fs from 'node:fs';
import { KeyTable, COUNT, SUM } from './table.js';
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
}

/** Read a segment into a decoded section. */
export function loadSegment(ref: SegmentRef): Section {
  if ('shared' in ref) return decodeSection(ref.shared);
  const fd = fs.openSync(ref.path, 'r');
  try {
    const buf = new Uint8Array(new ArrayBuffer(ref.length));
    let got = 0;
    while (got < ref.length) {
      const n = fs.readSync(fd, buf, got, ref.length - got, ref.offset + got);
      if (n === 0) break;
      got += n;
    }
    return decodeSection(buf);
  } finally {
    fs.closeSync(fd);
  }
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

/** Fold sections into a table whose scales are the job's. */
export function mergeSections(sections: Iterable<Section>, flags: number, scale: number, qscale: number): KeyTable {
  const t = new KeyTable(flags, 1024);
  t.scale = scale;
  t.qscale = qscale;
  for (const s of sections) {
    const w = s.width;
    const { hashes, acc: sacc, keyEnds, keyBytes } = s;
    for (let i = 0; i < s.n; i++) {
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

/** Format a merged table as a users shard (sorted), and its exact totals. */
export function formatShard(t: KeyTable, dateHasTime: boolean): { text: Buffer; total: bigint; quantity: bigint; rows: number } {
  const ids = sortedIds(t);
  const { acc, keyEnds, arena } = t;
  const w = t.width;
  const parts: string[] = [shardHeader(t.flags)];
  let total = 0n;
  let quantity = 0n;
  let rows = 0;
  const dec = new TextDecoder();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const o = id * w;
    const s = id === 0 ? 0 : keyEnds[id - 1];
    const key = dec.decode(arena.subarray(s, keyEnds[id]));
    const count = acc[o + COUNT];
    rows += count;
    const lo = acc[o + SUM];
    const hi = acc[o + SUM + 1];
    const sum = hi === 0 ? lo : limbsToBig(lo, hi);
    total += typeof sum === 'number' ? BigInt(sum) : sum;
    let line = `${csvField(key)},${count},${formatScaled(sum, t.scale)}`;
    if (t.qtyOff >= 0) {
      const q = limbsToBig(acc[o + t.qtyOff], acc[o + t.qtyOff + 1]);
      quantity += q;
      line += ',' + formatScaled(q, t.qscale);
    }
    if (t.dateOff >= 0) line += `,${formatDate(acc[o + t.dateOff], dateHasTime)},${formatDate(acc[o + t.dateOff + 1], dateHasTime)}`;
    parts.push(line + '\n');
  }
  return { text: Buffer.from(parts.join('')), total, quantity, rows };
}

/** Run one merge task: fold, sort, write the shard. */
export function mergePartition(task: MergeTask): MergeOutput {
  const sections = task.segments.map(loadSegment);
  const t = mergeSections(sections, task.flags, task.scale, task.qscale);
  const { text, total, quantity, rows } = formatShard(t, task.dateHasTime);
  fs.writeFileSync(task.outFile, text);
  return { partition: task.partition, users: t.size, rows, total: total.toString(), quantity: quantity.toString(), bytes: text.length };
}
