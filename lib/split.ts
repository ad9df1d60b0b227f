/**
 * Stage 1c: cut every file into byte ranges. A gzip file is not splittable: it is one range.
 * Ranges are queued largest first so that a slow range starts early, and a small tail is merged
 * into the range before it.
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

/** The order to queue ranges in: largest first, then by file and position (stable). */
export function queueOrder(ranges: Range[]): Range[] {
  return [...ranges].sort((a, b) => b.weight - a.weight || a.fileIndex - b.fileIndex || a.start - b.start);
}
