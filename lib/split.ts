/**
 * Stage 1c: cut every file into byte ranges. A gzip file is not splittable: it is one range.
 * Ranges are queued largest first so that a slow range starts early, a small tail is merged
 * into the range before it, and the last ranges of the queue are cut finer so that the workers
 * finish together.
 */
import type { FileSchema } from './schema.js';

export const MiB = 1 << 20;

/** One byte range of one file. */
export interface Range {
  fileIndex: number;
  rangeIndex: number;
  start: number;
  end: number;
  /** `start` is the first byte of a record (the file's first range). */
  atRecordStart: boolean;
  /** Bytes the range covers (an estimate for gzip: 4x the compressed size). */
  weight: number;
}

/**
 * The default range size: at least 4 ranges per worker when the input allows, between 1 MiB and
 * 64 MiB.
 */
export function defaultRangeSize(totalBytes: number, workers: number): number {
  const perRange = Math.ceil(totalBytes / (workers * 4));
  return Math.min(64 * MiB, Math.max(MiB, perRange));
}

/** Plan the ranges of every file. */
export function planRanges(files: FileSchema[], rangeSize: number): Range[] {
  const ranges: Range[] = [];
  files.forEach((f, fileIndex) => {
    if (f.compressed) {
      ranges.push({ fileIndex, rangeIndex: 0, start: f.dataStart, end: Number.MAX_SAFE_INTEGER, atRecordStart: true, weight: f.size * 4 });
      return;
    }
    const from = f.dataStart;
    const to = f.size;
    if (to <= from) {
      ranges.push({ fileIndex, rangeIndex: 0, start: from, end: from, atRecordStart: true, weight: 0 });
      return;
    }
    const cuts: number[] = [];
    for (let s = from; s < to; s += rangeSize) cuts.push(s);
    // merge a tail under a quarter of a range into the one before it
    if (cuts.length > 1 && to - cuts[cuts.length - 1] < rangeSize / 4) cuts.pop();
    cuts.forEach((s, i) => {
      const e = i + 1 < cuts.length ? cuts[i + 1] : to;
      ranges.push({ fileIndex, rangeIndex: i, start: s, end: e, atRecordStart: i === 0, weight: e - s });
    });
  });
  return ranges;
}

/** Pieces each of the last ranges of the queue is cut into (taperRanges). */
const TAPER_PIECES = 4;

/**
 * Cut the last `workers` ranges of the queue (queueOrder: the smallest, the files' tails) into
 * quarters. Workers take ranges as they come free, so they end apart by up to the length of the
 * last range one of them took: a quarter of a range instead of a whole one. With 16 ranges of 64
 * MiB on 2 workers the scans ended 10-25 ms apart, about a quarter of a range's time. Ranges of
 * gzip files and ranges under 4 MiB stay whole. Ranges are numbered again in file order.
 */
export function taperRanges(ranges: Range[], workers: number): Range[] {
  const cut = new Set(
    queueOrder(ranges)
      .filter((r) => r.end !== Number.MAX_SAFE_INTEGER && r.end - r.start >= 4 * MiB)
      .slice(-workers),
  );
  if (cut.size === 0) return ranges;
  const out: Range[] = [];
  for (const r of ranges) {
    if (!cut.has(r)) {
      out.push(r);
      continue;
    }
    const len = r.end - r.start;
    for (let j = 0; j < TAPER_PIECES; j++) {
      const start = r.start + Math.floor((j * len) / TAPER_PIECES);
      const end = r.start + Math.floor(((j + 1) * len) / TAPER_PIECES);
      out.push({ ...r, start, end, atRecordStart: r.atRecordStart && j === 0, weight: end - start });
    }
  }
  // rangeIndex: the position among the file's ranges
  const next = new Map<number, number>();
  return out
    .sort((a, b) => a.fileIndex - b.fileIndex || a.start - b.start)
    .map((r) => {
      const i = next.get(r.fileIndex) ?? 0;
      next.set(r.fileIndex, i + 1);
      return { ...r, rangeIndex: i };
    });
}

/** The order to queue ranges in: largest first, then by file and position (stable). */
export function queueOrder(ranges: Range[]): Range[] {
  return [...ranges].sort((a, b) => b.weight - a.weight || a.fileIndex - b.fileIndex || a.start - b.start);
}
