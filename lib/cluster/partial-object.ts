/**
 * The partial object of one scan attempt: the P sections of lib/partial.ts back to back (each
 * 8-byte aligned, so a ranged GET of one section decodes in place), then a JSON index, then a
 * 16-byte footer that finds the index. A merge task reads only its own section; the driver reads
 * only the index (for the rejected rows).
 *
 *   [section 0][pad]...[section P-1][pad][index: UTF-8 JSON][footer]
 *   footer: Uint32 magic "SGO1", Uint32 index length, Float64 index offset (little-endian)
 */
import type { RangeReject, ScanOutput } from '../scan.js';
import { SegflowError } from '../errors.js';

const MAGIC = 0x314f4753; // "SGO1"
/** Bytes of the footer. */
export const FOOTER = 16;

/** Where one section lies in a partial object: offset, length, keys (0 = empty, not fetched). */
export type SectionRef = [offset: number, length: number, keys: number];

/** What a scan attempt reports about its range (everything of ScanOutput but the data). */
export type ScanMeta = Omit<ScanOutput, 'sections' | 'rejects'>;

/** The index of a partial object. */
export interface PartialIndex extends ScanMeta {
  /** 2: a sum's high limb weighs 2^51 (util/exact.ts), 2^32 in version 1. */
  version: 2;
  sections: SectionRef[];
  rejects: RangeReject[];
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** The metadata of a scan output (its sections and rejects left out). */
export function scanMeta(out: ScanOutput): ScanMeta {
  return {
    fileIndex: out.fileIndex,
    rangeIndex: out.rangeIndex,
    keys: out.keys,
    rows: out.rows,
    rejected: out.rejected,
    emptyLines: out.emptyLines,
    newlines: out.newlines,
    firstRecord: out.firstRecord,
    endOffset: out.endOffset,
    quotedNewlines: out.quotedNewlines,
    scale: out.scale,
    qscale: out.qscale,
    dateHasTime: out.dateHasTime,
    tableBytes: out.tableBytes,
  };
}

/**
 * Lay out a scan output as a partial object: the pieces to write in order (views over the shared
 * sections, no copies) and the index.
 */
export function encodePartial(out: ScanOutput): { pieces: Uint8Array[]; index: PartialIndex; indexOffset: number; indexLength: number; size: number } {
  const pieces: Uint8Array[] = [];
  const sections: SectionRef[] = [];
  let off = 0;
  for (const s of out.sections) {
    const bytes = new Uint8Array(s);
    const keys = new Int32Array(s, 0, 2)[1];
    sections.push([off, bytes.length, keys]);
    pieces.push(bytes);
    off += bytes.length;
    const padded = pad8(off);
    if (padded > off) pieces.push(new Uint8Array(padded - off));
    off = padded;
  }
  const index: PartialIndex = { version: 2, ...scanMeta(out), sections, rejects: out.rejects };
  const json = Buffer.from(JSON.stringify(index));
  pieces.push(json);
  const footer = Buffer.alloc(FOOTER);
  footer.writeUInt32LE(MAGIC, 0);
  footer.writeUInt32LE(json.length, 4);
  footer.writeDoubleLE(off, 8);
  pieces.push(footer);
  return { pieces, index, indexOffset: off, indexLength: json.length, size: off + json.length + FOOTER };
}

/** Read the footer of a partial object: where its index lies. */
export function decodeFooter(footer: Uint8Array): { indexOffset: number; indexLength: number } {
  const b = Buffer.from(footer.buffer, footer.byteOffset, footer.byteLength);
  if (b.length !== FOOTER || b.readUInt32LE(0) !== MAGIC) throw new SegflowError('ERR_INTERNAL', 'corrupt partial object (bad footer)');
  return { indexLength: b.readUInt32LE(4), indexOffset: b.readDoubleLE(8) };
}

/** Parse the index bytes of a partial object. */
export function decodeIndex(bytes: Uint8Array): PartialIndex {
  let index: PartialIndex;
  try {
    index = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as PartialIndex;
  } catch {
    throw new SegflowError('ERR_INTERNAL', 'corrupt partial object (bad index)');
  }
  if (!Array.isArray(index.sections)) throw new SegflowError('ERR_INTERNAL', 'corrupt partial object (bad index)');
  if (index.version !== 2) throw new SegflowError('ERR_INTERNAL', `partial object of version ${index.version}, this segflow reads version 2: run the same segflow on every machine`);
  return index;
}
