/**
 * The plan's dense key window. User ids are very often plain integers handed out in sequence, so
 * a year of sales has its ids in a narrow range: then a scan table folds them into a
 * direct-indexed array (row = id - base) instead of hashing and probing (scan-table.ts,
 * DenseWindow), and the merge adds those arrays row by row.
 *
 * The window is chosen before the scan from a sample: a few small ranges spread over the input
 * (512 KiB in all). A pool whose workers are already up scans them, in parallel; a pool the job has
 * just started is still booting its workers (longer than the sample takes), so the coordinator
 * scans them itself meanwhile. Ids the sample missed simply take the hash table path, so a poor
 * sample costs speed, never correctness.
 */
import type { FileSchema } from './schema.js';
import { sampleRange, scanTaskOf, type KeySample } from './scan.js';
import { abortError, type SegflowPool } from './pool.js';
import { digitCount, type DenseWindow } from './scan-table.js';
import type { Range } from './split.js';
import { denseWidthOf } from './table.js';
import { POW10 } from './util/exact.js';

/** Sample pieces over the whole input (about: a file gets at least one while fewer than twice this are planned; files after that get none). */
const PIECES = 16;
/**
 * Bytes per sample piece: 16 of 32 KiB (about 11 K Black Friday rows) pick the same window as 16
 * of 64 KiB on the 1 GiB file, in 113-146 ms of plan instead of 137-161 ms.
 */
const PIECE_BYTES = 32 * 1024;
/** Inputs of this many bytes or more get a dense window unless the job says otherwise. */
export const DENSE_MIN_BYTES = 64 * 1024 * 1024;
/**
 * The widest window (ids). Past it a window slice (1/512 of it) no longer fits a core's cache, so
 * folding a row costs a cache miss anyway, and every page of the array is faulted in: with 90 M
 * ids (2.2 GB a worker) the scan of 85 M rows took twice as long as the hash tables.
 */
export const DENSE_MAX_SPAN = 1 << 24;

/** Byte ranges to sample: evenly spaced pieces of each file (gzip files: their first piece). */
export function samplePieces(schemas: FileSchema[]): Range[] {
  const total = schemas.reduce((s, f) => s + Math.max(0, f.size - f.dataStart), 0);
  const out: Range[] = [];
  schemas.forEach((f, fileIndex) => {
    if (out.length >= 2 * PIECES) return;
    const bytes = Math.max(0, f.size - f.dataStart);
    if (bytes === 0) return;
    const k = f.compressed ? 1 : Math.max(1, Math.min(PIECES, Math.round((PIECES * bytes) / Math.max(1, total))));
    for (let j = 0; j < k; j++) {
      const start = f.dataStart + Math.floor((j * bytes) / k);
      const end = f.compressed ? start + PIECE_BYTES : Math.min(f.size, start + PIECE_BYTES);
      out.push({ fileIndex, rangeIndex: j, start, end, atRecordStart: j === 0, weight: end - start });
    }
  });
  return out;
}

/**
 * The window for what the samples saw, or undefined when dense rows would not pay. Most keys must
 * be plain integers. The window takes the digit count most sampled rows have, and the narrowest
 * range holding the rows of all those ids (else 99%, 95%, 90%, 80% of them: a few stray ids should
 * not widen it), with a quarter of its width plus 1,024 as margin on each side (none if that does not fit),
 * within the digit count. It may have at most two rows per input row the sample predicts, at most
 * {@link DENSE_MAX_SPAN} rows, and its rows may take at most `maxBytes`.
 */
export function chooseWindow(samples: KeySample[], totalBytes: number, flags: number, maxBytes: number): DenseWindow | undefined {
  let rows = 0;
  let bytes = 0;
  let ints = 0;
  let others = 0;
  let total = 0;
  const weight = new Float64Array(16);
  for (const s of samples) {
    rows += s.rows;
    bytes += s.bytes;
    ints += s.ints;
    others += s.others;
    total += s.keys.length;
    for (let i = 0; i < s.keys.length; i++) weight[digitCount(s.keys[i])] += s.counts[i];
  }
  let d = 1;
  for (let k = 2; k < 16; k++) if (weight[k] > weight[d]) d = k;
  // the keys of d digits in value order, with their rows (this runs on the coordinator before
  // the scan can start: typed arrays and a native sort, not an array of pairs, which took 40-50
  // ms in a fresh process). A key below 2^30 and its count (below 2^23) share one double
  const { keys, counts, n } = sortedKeys(samples, d, total);
  if (n === 0 || rows === 0 || others * 10 > ints) return undefined;
  // rows of keys[0, i) in cum[i]
  const cum = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + counts[i];
  // one digit count: value order is then byte order, and the merge prints rows as they come
  const floor = d > 1 ? POW10[d - 1] : 0;
  const ceil = POW10[d] - 1;
  const estRows = (rows * totalBytes) / Math.max(1, bytes);
  const rowBytes = denseWidthOf(flags) * 8;
  for (const share of [1, 0.99, 0.95, 0.9, 0.8]) {
    // the narrowest [keys[i], keys[j]] with at least `share` of the rows (two pointers)
    const want = share * cum[n];
    let lo = keys[0];
    let hi = keys[n - 1];
    for (let i = 0, j = 0; i < n; i++) {
      while (j < n && cum[j + 1] - cum[i] < want) j++;
      if (j >= n) break;
      if (keys[j] - keys[i] < hi - lo) {
        lo = keys[i];
        hi = keys[j];
      }
    }
    for (const margin of [Math.floor((hi - lo) / 4) + 1024, 0]) {
      const base = Math.max(floor, lo - margin);
      const span = Math.min(ceil, hi + margin) - base + 1;
      if (span <= 2 * estRows + 1024 && span * rowBytes <= maxBytes && span <= DENSE_MAX_SPAN) return { base, span };
    }
  }
  return undefined;
}

const PACK = 2 ** 23;

/** The sampled keys of `d` digits sorted by value, each with its rows. */
function sortedKeys(samples: KeySample[], d: number, total: number): { keys: Float64Array; counts: Float64Array; n: number } {
  const keys = new Float64Array(total);
  const counts = new Float64Array(total);
  let n = 0;
  let packed = d <= 9;
  for (const s of samples) {
    for (let i = 0; i < s.keys.length; i++) {
      if (digitCount(s.keys[i]) !== d) continue;
      keys[n] = s.keys[i];
      counts[n] = s.counts[i];
      if (counts[n] >= PACK) packed = false;
      n++;
    }
  }
  if (packed) {
    const v = keys.subarray(0, n);
    for (let i = 0; i < n; i++) v[i] = v[i] * PACK + counts[i];
    v.sort();
    for (let i = 0; i < n; i++) {
      const k = Math.floor(v[i] / PACK);
      counts[i] = v[i] - k * PACK;
      v[i] = k;
    }
    return { keys: v, counts, n };
  }
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => keys[a] - keys[b]);
  const k2 = new Float64Array(n);
  const c2 = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    k2[i] = keys[order[i]];
    c2[i] = counts[order[i]];
  }
  return { keys: k2, counts: c2, n };
}

/**
 * Sample the input and choose the job's dense window (see {@link chooseWindow}): on `pool` when
 * given (its workers are up), else on this thread.
 */
export async function planDenseWindow(
  schemas: FileSchema[],
  totalBytes: number,
  partitions: number,
  flags: number,
  maxBytes: number,
  signal: AbortSignal,
  pool?: SegflowPool,
): Promise<DenseWindow | undefined> {
  const pieces = samplePieces(schemas);
  if (pieces.length === 0) return undefined;
  const task = (r: Range) => {
    const s = schemas[r.fileIndex];
    return { ...scanTaskOf(s.file, s, r, partitions, 0), chunkSize: 4 * PIECE_BYTES };
  };
  let samples: KeySample[] = [];
  if (pool) {
    samples = await Promise.all(pieces.map((r) => pool.run<KeySample>('sample', task(r), { signal, label: `sampling ${schemas[r.fileIndex].file} bytes ${r.start}-${r.end}` })));
  } else {
    for (const r of pieces) {
      if (signal.aborted) throw abortError();
      samples.push(await sampleRange(task(r)));
    }
  }
  return chooseWindow(samples, totalBytes, flags, maxBytes);
}
