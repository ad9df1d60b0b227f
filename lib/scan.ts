/**
 * Stage 2, scan: read one byte range of one file and fold its rows into a per-key table.
 *
 * Beam's rule for text ranges: a range [start, end) owns every record whose first byte lies in
 * it; a range with start > 0 skips the partial line it starts in; the record that starts before
 * `end` is read to its end, even past `end`.
 *
 * The hot loop works on bytes in a reused buffer: newline search with the native indexOf, fields
 * located by byte, numbers parsed from bytes, the key hash computed in the same pass. A row of an
 * integer key goes straight to its hash part's stage (scan-table.ts); rows of other keys go into
 * small typed arrays and are folded into the table in a second tight loop, in slot order.
 */
import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { F_QTY, F_DATE, hashBytes } from './table.js';
import { ScanTable, type BatchArrays, type DenseWindow } from './scan-table.js';
import { encodeScanTable, type DenseSegment } from './partial.js';
import { EMPTY, INVALID, OK, TOO_LARGE, TOO_PRECISE, parseDate, parseDecimal, type ParseOut } from './util/bytes.js';
import { MAX_SCALE } from './util/exact.js';
import { SegflowError } from './errors.js';
import { KERNEL_MAX_FIELDS, KERNEL_READ_AREA, RECORD, kernelOwner, lineKernel, type LineKernel } from './kernel/lines.js';

/** The delimiter value that means "runs of blanks" (whitespace-separated text). */
export const WHITESPACE = -1;

/** How a file is read, as the plan resolved it (lib/schema.ts's FileSchema has these fields). */
export interface ScanSchema {
  compressed: boolean;
  format: 'csv' | 'jsonl';
  /** A byte value, or {@link WHITESPACE}. */
  delimiter: number;
  /** Fields every CSV row must have (the header's count). */
  fieldCount: number;
  /** Field indexes (CSV) or -1; JSON Lines finds its fields by `names`. */
  user: number;
  amount: number;
  quantity: number;
  date: number;
  /** Column names (user, amount, quantity, date; '' when unused), for JSON keys and reject reasons. */
  names: [string, string, string, string];
}

/** A range of a file to scan, in the plan's words. */
export interface ScanRange {
  fileIndex: number;
  rangeIndex: number;
  /** Absolute byte offsets; `end` is exclusive. */
  start: number;
  end: number;
  /** `start` is known to be the first byte of a record (the first range of a file, after its header). */
  atRecordStart: boolean;
}

/** One scan task: a pure function of its fields (a byte range in, a partial out). */
export interface ScanTask extends ScanSchema, ScanRange {
  file: string;
  /** JSON Lines: the keys for user, amount, quantity, date ('' when unused). */
  keys?: [string, string, string, string];
  partitions: number;
  /** Read buffer size (default 1 MiB). */
  chunkSize?: number;
  /** A line or record longer than this is rejected (default 1 MiB). */
  maxRecordBytes?: number;
  /** Keep the rows in this worker's table for the job instead of returning sections. */
  hold?: HoldOptions;
  /**
   * The job's dense key window (scan-table.ts): a held table folds integer keys inside it into a
   * direct-indexed array, handed over as it is at the flush. Used only with `hold`.
   */
  dense?: DenseWindow;
  /**
   * Attempts already made at this range in an earlier scan whose held table was lost: a scan
   * again is a later attempt at the same work (fault injection counts them).
   */
  priorAttempts?: number;
}

/**
 * A job's scan tasks may fold into one table per worker, kept between tasks, so that each key is
 * encoded and merged once per worker instead of once per range. The job collects the tables at
 * the end with one {@link FlushTask} per worker. A table that passes `maxBytes` is returned as
 * sections by the task that passed it; a task that fails drops its worker's table. Every output
 * that carries sections lists the ranges whose rows they hold (`covers`), so the job knows which
 * ranges a lost table took with it and scans those again.
 */
export interface HoldOptions {
  job: string;
  /** Table bytes past which the task returns the table as sections. */
  maxBytes: number;
  /** Jobs that ended: their tables, if any, are dropped. */
  ended: string[];
}

/** The key of a range in `covers`. */
export const rangeKey = (r: { fileIndex: number; rangeIndex: number }): string => `${r.fileIndex}:${r.rangeIndex}`;

/** Collect (or drop) a worker's held table at the end of a job's scan. */
export interface FlushTask {
  job: string;
  partitions: number;
  /** Drop the table instead of returning it. */
  discard: boolean;
  /** Int32[1], shared by the job's flush tasks: each waits until `workers` have started, so that each runs on its own worker. */
  barrier: SharedArrayBuffer;
  workers: number;
  /** Milliseconds to wait at the barrier for the others. */
  waitMs: number;
}

/** A rejected row, with its line counted from the range's first record (0-based). */
export interface RangeReject {
  line: number;
  offset: number;
  reason: string;
  text: string;
}

/** What a scan task returns. */
export interface ScanOutput {
  fileIndex: number;
  rangeIndex: number;
  sections: SharedArrayBuffer[];
  keys: number;
  rows: number;
  rejected: number;
  emptyLines: number;
  /** Newline bytes in what the range consumed (for line numbers in later ranges). */
  newlines: number;
  /** Absolute offset of the first record the range owns, and the offset after its last. */
  firstRecord: number;
  endOffset: number;
  rejects: RangeReject[];
  /** Records whose quoted fields spanned lines (byte-range splitting cannot place those). */
  quotedNewlines: number;
  scale: number;
  qscale: number;
  dateHasTime: boolean;
  /** Largest table size in bytes (for the memory budget). */
  tableBytes: number;
  /** The rows stayed in the worker's held table (`sections` is empty). */
  held?: boolean;
  /** With a held table: the ranges whose rows `sections` hold (this range's included, if it was scanned). */
  covers?: string[];
  /** A flushed held table's dense rows (their keys are in no section of this output). */
  dense?: DenseSegment;
}

/** What a sample scan of a small range saw of the user ids (for the job's dense key window). */
export interface KeySample {
  /** Rows counted and rejected, and the bytes they came from. */
  rows: number;
  bytes: number;
  /** Distinct keys that are plain integers, and distinct other keys. */
  ints: number;
  others: number;
  /** Some of the integer keys (all when there are few: a random subset) and their rows. */
  keys: number[];
  counts: number[];
}

const NL = 10;
const CR = 13;
const QUOTE = 34;
const SP = 32;
const TAB = 9;
const TWO52 = 2 ** 52;
const MAX_REJECT_TEXT = 200;
/**
 * Bytes read at a time. Small enough that what a read copies in is still in the core's cache when
 * the parser reads it: 1 GiB, 2 workers, scan stage median 2,243 ms with 8 MiB, 2,130 ms with
 * 1 MiB (six interleaved runs each; 512 KiB and 2 MiB no better).
 */
const DEFAULT_CHUNK = 1 << 20;
/** Rows parsed before they are folded into the table. */
const BATCH = 65536;

const NEED_MORE = -1;

/** SWAR constants: a newline in each byte of a word, and the low seven bits of each byte. */
const NL_WORD = 0x0a0a0a0a;
const LOW7 = 0x7f7f7f7f;
/** Words read as Int32 are little-endian (byte k of a word at bits 8k..8k+7); else no SWAR. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

let sharedBuffer: Buffer | undefined;

let spareBatch: BatchArrays | undefined;

function takeBatch(): BatchArrays {
  const b = spareBatch;
  spareBatch = undefined;
  return (
    b ?? {
      hash: new Int32Array(BATCH),
      num: new Float64Array(BATCH),
      ks: new Int32Array(BATCH),
      ke: new Int32Array(BATCH),
      m: new Float64Array(BATCH),
      dp: new Int32Array(BATCH),
      q: new Float64Array(BATCH),
      qdp: new Int32Array(BATCH),
      date: new Float64Array(BATCH),
    }
  );
}

/**
 * A reused read buffer per thread: in the line kernel's memory when there is one and the size fits
 * (the kernel then scans the bytes where they were read, without copying them in).
 */
function readBuffer(size: number): Buffer {
  // the buffer is as long as the longest this thread has asked for or grown to, in the kernel's
  // memory or not: where a line too long for it is cut (and rejected) must not depend on which
  // path reads it
  readSize = Math.max(readSize, size);
  const k = lineKernel();
  if (k && readSize <= KERNEL_READ_AREA) return k.readArea(readSize);
  if (!sharedBuffer || sharedBuffer.length < readSize) sharedBuffer = Buffer.allocUnsafe(readSize);
  return sharedBuffer;
}

/** The length of this thread's read buffer (readBuffer). */
let readSize = 0;

/** Just the {@link ScanSchema} fields of a schema (a FileSchema carries more than a task needs). */
export function scanSchemaOf(s: ScanSchema): ScanSchema {
  return {
    compressed: s.compressed,
    format: s.format,
    delimiter: s.delimiter,
    fieldCount: s.fieldCount,
    user: s.user,
    amount: s.amount,
    quantity: s.quantity,
    date: s.date,
    names: s.names,
  };
}

/**
 * The scan task of one range: the one place that turns a plan (a file's schema and a range) into
 * a task, for the local job, the cluster driver and the stream alike.
 */
export function scanTaskOf(file: string, s: ScanSchema, r: ScanRange, partitions: number, taskIndex: number): ScanTask & { taskIndex: number } {
  return {
    file,
    fileIndex: r.fileIndex,
    rangeIndex: r.rangeIndex,
    start: r.start,
    end: r.end,
    atRecordStart: r.atRecordStart,
    ...scanSchemaOf(s),
    keys: s.format === 'jsonl' ? s.names : undefined,
    partitions,
    taskIndex,
  };
}

/** A worker's held tables, by job (at most MAX_HELD: an abandoned job's table is dropped first). */
const heldTables = new Map<string, { table: ScanTable; covers: string[] }>();
const MAX_HELD = 2;

/** The table layout flags of a task's rows. */
function taskFlags(task: ScanTask): number {
  const qty = task.quantity >= 0 || (task.format === 'jsonl' && !!task.keys?.[2]);
  const date = task.date >= 0 || (task.format === 'jsonl' && !!task.keys?.[3]);
  return (qty ? F_QTY : 0) | (date ? F_DATE : 0);
}

/** The keys of a job's held tables (one per row layout). */
function heldKeysOf(job: string): string[] {
  return [...heldTables.keys()].filter((k) => k.startsWith(`${job}/`));
}

function dropHeld(key: string): void {
  const h = heldTables.get(key);
  if (!h) return;
  heldTables.delete(key);
  h.table.release();
}

/** Scan one range and return its partial aggregates (or keep them in the worker's held table). */
export async function scanRange(task: ScanTask): Promise<ScanOutput> {
  try {
    return await scanRangeOf(task);
  } catch (err) {
    // an input error raised below the scanner (a sum past the exact range) names the file here
    if (err instanceof SegflowError && err.code === 'ERR_BAD_INPUT' && err.details.file === undefined) {
      throw new SegflowError(err.code, `${task.file} (bytes ${task.start}-${task.end}): ${err.message}`, { ...err.details, file: task.file });
    }
    throw err;
  }
}

async function scanRangeOf(task: ScanTask): Promise<ScanOutput> {
  if (!(task.start >= 0) || !(task.end >= task.start)) {
    throw new SegflowError('ERR_INTERNAL', `bad range ${task.start}-${task.end} of ${task.file}`);
  }
  const hold = task.hold;
  // one held table per job and row layout (files of a job may differ in quantity and date columns)
  const heldKey = hold ? `${hold.job}/${taskFlags(task)}` : '';
  let held: { table: ScanTable; covers: string[] } | undefined;
  if (hold) {
    for (const j of hold.ended) for (const k of heldKeysOf(j)) dropHeld(k);
    held = heldTables.get(heldKey);
    if (!held) {
      while (heldTables.size >= MAX_HELD) dropHeld(heldTables.keys().next().value as string);
    }
  }
  const scanner = new RangeScanner(task, held?.table);
  const chunk = task.chunkSize ?? DEFAULT_CHUNK;
  try {
    if (task.compressed) await readCompressed(task, scanner, chunk);
    else readPlain(task, scanner, chunk);
  } catch (err) {
    // the table holds part of this range now: drop it (the job scans its other ranges again)
    if (hold) {
      heldTables.delete(heldKey);
      scanner.table.release();
    }
    throw err;
  }
  if (!hold) return scanner.finish(true);
  const covers = held?.covers ?? [];
  covers.push(rangeKey(task));
  if (scanner.table.bytes <= hold.maxBytes) {
    heldTables.set(heldKey, { table: scanner.table, covers });
    return scanner.finish(false);
  }
  // past the budget: return the table as sections now and start a new one
  heldTables.delete(heldKey);
  const out = scanner.finish(true);
  out.covers = covers;
  return out;
}

/**
 * Return (or drop) this worker's held tables of a job, after waiting for the job's other flush
 * tasks. One output per table (none when this worker holds none, or with `discard`).
 */
export function flushHeld(task: FlushTask): ScanOutput[] {
  const b = new Int32Array(task.barrier);
  if (Atomics.add(b, 0, 1) + 1 >= task.workers) Atomics.notify(b, 0);
  else {
    const until = Date.now() + task.waitMs;
    for (;;) {
      const v = Atomics.load(b, 0);
      const left = until - Date.now();
      if (v >= task.workers || left <= 0) break;
      Atomics.wait(b, 0, v, left);
    }
  }
  const outs: ScanOutput[] = [];
  for (const k of heldKeysOf(task.job)) {
    const held = heldTables.get(k)!;
    heldTables.delete(k);
    const t = held.table;
    if (!task.discard) {
      const keys = t.keys;
      const tableBytes = t.bytes + t.denseBytes;
      const sections = encodeScanTable(t, task.partitions, false);
      const d = t.takeDense();
      const dense = d && {
        buf: d.rows.buffer as SharedArrayBuffer,
        lease: d.lease,
        base: t.window!.base,
        span: t.window!.span,
        from: d.from,
        to: d.to,
        width: t.denseWidth,
        scale: t.scale,
        qscale: t.qscale,
      };
      outs.push({ ...emptyOutput(), sections, dense, keys, scale: t.scale, qscale: t.qscale, tableBytes, covers: held.covers });
    }
    t.release();
  }
  return outs;
}

/** The sample's table, kept for the next piece, and its staged rows per part (a small stage). */
let sampleTable: ScanTable | undefined;
const SAMPLE_STAGE_ROWS = 64;

/**
 * Scan a small range only to see its keys (the plan's sample: no faults injected, and the
 * thread's spare scan table left to the scans). A gzip sample awaits between chunks, so it reads
 * through a buffer of its own, not the thread's shared one: two jobs may sample at once.
 */
export async function sampleRange(task: ScanTask): Promise<KeySample> {
  const flags = taskFlags(task);
  const table = sampleTable?.flags === flags ? sampleTable : new ScanTable(flags, 4096, undefined, SAMPLE_STAGE_ROWS);
  sampleTable = undefined;
  const scanner = new RangeScanner(task, table);
  const chunk = task.chunkSize ?? DEFAULT_CHUNK;
  try {
    if (task.compressed) await readCompressed(task, scanner, chunk, Buffer.allocUnsafe(chunk));
    else readPlain(task, scanner, chunk);
    const st = table.keyStats(4096);
    const bytes = Math.max(0, scanner.endOffset - scanner.firstRecord);
    return { rows: scanner.rows + scanner.rejected, bytes, ...st };
  } finally {
    scanner.finish(false);
    table.release(false);
    sampleTable = table;
  }
}

function emptyOutput(): ScanOutput {
  return {
    fileIndex: -1,
    rangeIndex: -1,
    sections: [],
    keys: 0,
    rows: 0,
    rejected: 0,
    emptyLines: 0,
    newlines: 0,
    firstRecord: -1,
    endOffset: -1,
    rejects: [],
    quotedNewlines: 0,
    scale: 0,
    qscale: 0,
    dateHasTime: false,
    tableBytes: 0,
    covers: [],
  };
}

function readPlain(task: ScanTask, scanner: RangeScanner, chunk: number): void {
  const fd = fs.openSync(task.file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let buf = readBuffer(chunk);
    // a range that does not start at a record reads from start - 1 to find the first newline
    let fileOff = task.atRecordStart ? task.start : task.start - 1;
    let carry = 0;
    for (;;) {
      const n = fileOff < size ? fs.readSync(fd, buf, carry, buf.length - carry, fileOff) : 0;
      fileOff += n;
      const to = carry + n;
      const eof = fileOff >= size;
      const used = scanner.consume(buf, to, fileOff - to, eof);
      if (scanner.done || eof) break;
      carry = to - used;
      if (carry > 0) buf.copyWithin(0, used, to);
      if (carry >= buf.length) buf = growBuffer(buf, carry, task);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function growBuffer(buf: Buffer, carry: number, task: ScanTask): Buffer {
  // records are capped at maxRecordBytes (a longer one is rejected), so a buffer twice that size
  // (or the chunk size) always holds one: growing past it is a bug, not an input
  const max = Math.max((task.maxRecordBytes ?? 1 << 20) * 2, task.chunkSize ?? DEFAULT_CHUNK) + (1 << 20);
  if (buf.length >= max) throw new SegflowError('ERR_INTERNAL', `record too long in ${task.file}`);
  const bigger = Buffer.allocUnsafe(buf.length * 2);
  buf.copy(bigger, 0, 0, carry);
  if (sharedBuffer === buf) sharedBuffer = bigger;
  // (the thread's next read buffers are this long too, in the kernel's memory or not)
  readSize = Math.max(readSize, bigger.length);
  return bigger;
}

/**
 * `own`: a buffer of the caller's (this thread's shared read buffer is for one read at a time,
 * and a gzip read awaits between chunks: samples of two jobs may interleave on the coordinator).
 */
async function readCompressed(task: ScanTask, scanner: RangeScanner, chunk: number, own?: Buffer): Promise<void> {
  let buf = own ?? readBuffer(chunk);
  let carry = 0;
  let base = task.start; // absolute (uncompressed) offset of buf[0]
  let skip = task.start; // bytes before the range (the header) are not scanned
  const source = fs.createReadStream(task.file);
  const input = source.pipe(zlib.createGunzip());
  try {
    for await (const piece of input as AsyncIterable<Buffer>) {
      let p = 0;
      if (skip > 0) {
        const d = Math.min(skip, piece.length);
        skip -= d;
        p = d;
      }
      while (p < piece.length) {
        const room = buf.length - carry;
        const take = Math.min(room, piece.length - p);
        piece.copy(buf, carry, p, p + take);
        p += take;
        const to = carry + take;
        if (to < buf.length && p >= piece.length) {
          carry = to;
          break; // fill more before scanning
        }
        const used = scanner.consume(buf, to, base, false);
        if (scanner.done) return;
        base += used;
        carry = to - used;
        if (carry > 0) buf.copyWithin(0, used, to);
        if (carry >= buf.length) buf = growBuffer(buf, carry, task);
      }
    }
  } catch (err) {
    if (err instanceof SegflowError) throw err;
    throw new SegflowError('ERR_BAD_INPUT', `${task.file}: not a readable gzip file (${(err as Error).message})`, {
      file: task.file,
    });
  } finally {
    // a range that ends early (a sample) leaves the loop with the file still open: pipe() only
    // unpipes the source when the gunzip stream is destroyed
    source.destroy();
  }
  scanner.consume(buf, carry, base, true);
}

/** The scan state of one range. */
class RangeScanner {
  readonly task: ScanTask;
  readonly table: ScanTable;
  done = false;
  /** A comma may be the decimal mark (the delimiter is not a comma, and the file is not JSON). */
  private readonly decimalComma: boolean;
  /** Inside a line rejected as longer than maxRecordBytes: skip to its end. */
  private longLine = false;
  /** Still looking for the first record (the range started mid-line). */
  private skipping: boolean;
  private readonly end: number;
  private readonly delim: number;
  private readonly nf: number; // fields to locate (max index needed + 1)
  private readonly want: Int32Array; // field index -> slot (0 user, 1 amount, 2 qty, 3 date) or -1
  /** For f < nf: the first delimiter index >= f that ends or starts a wanted field (else nf). */
  private readonly nextBoundary: Int32Array;
  /** The delimiter in each byte of a word (SWAR). */
  private readonly delimWord: number;
  /** The read buffer as little-endian words, when it is word-aligned (plainLine's SWAR pass). */
  private words: Int32Array | null = null;
  private wordsOf: Buffer | null = null;
  private readonly fs = new Int32Array(4); // start of each wanted field
  private readonly fe = new Int32Array(4); // end of each wanted field
  private readonly out: ParseOut = { m: 0, dp: 0, date: 0, hasTime: false };
  private readonly hasQty: boolean;
  private readonly hasDate: boolean;
  private readonly maxRecord: number;
  private readonly jsonKeys: Uint8Array[];
  /** The SIMD line kernel, when there is one and the fields fit it (else plainLine alone). */
  private readonly kernel: LineKernel | null;
  /** This scanner's number for the kernel (which keeps no reference to it, nor to its table). */
  private readonly kernelKey = kernelOwner();
  /** Unquoted field bytes for the slow paths (quoted CSV, escaped JSON). */
  private scratch = new Uint8Array(1 << 16);

  // batch of parsed rows waiting to be folded into the table
  private n = 0;
  private readonly batch = takeBatch();
  private readonly bHash = this.batch.hash;
  private readonly bNum = this.batch.num;
  private readonly bKs = this.batch.ks;
  private readonly bKe = this.batch.ke;
  private readonly bM = this.batch.m;
  private readonly bDp = this.batch.dp;
  private readonly bQ = this.batch.q;
  private readonly bQdp = this.batch.qdp;
  private readonly bDate = this.batch.date;

  // counters
  rows = 0;
  rejected = 0;
  emptyLines = 0;
  newlines = 0;
  quotedNewlines = 0;
  firstRecord = -1;
  endOffset = -1;
  dateHasTime = false;
  rejects: RangeReject[] = [];
  maxTableBytes = 0;

  constructor(task: ScanTask, table?: ScanTable) {
    this.task = task;
    this.skipping = !task.atRecordStart;
    this.end = task.end;
    this.delim = task.delimiter;
    this.decimalComma = task.format === 'csv' && task.delimiter !== 44;
    const flags = taskFlags(task);
    this.hasQty = (flags & F_QTY) !== 0;
    this.hasDate = (flags & F_DATE) !== 0;
    // sized for the range (about one key per 64 bytes) so that it rarely grows while scanning
    const span = task.compressed ? 64 << 20 : Math.min(task.end - task.start, 256 << 20);
    // (with a dense window, most keys will not need the hash parts: they start small and grow)
    const window = task.hold ? task.dense : undefined;
    // a held table past its limit is handed over after every range: do not start one from a spare
    // table (another job's) that is already half way there
    if (!table && task.hold) ScanTable.dropSpareOver(task.hold.maxBytes / 2);
    this.table = table ?? new ScanTable(flags, window ? 4096 : Math.max(4096, Math.ceil(span / 64)), window);
    this.maxRecord = task.maxRecordBytes ?? 1 << 20;
    const idx = [task.user, task.amount, task.quantity, task.date];
    this.nf = Math.max(...idx) + 1;
    // (one more than nf: plainLine looks at the field after each delimiter)
    this.want = new Int32Array(Math.max(this.nf, 1) + 1).fill(-1);
    idx.forEach((f, slot) => {
      if (f >= 0) this.want[f] = slot;
    });
    this.nextBoundary = new Int32Array(this.nf + 1).fill(this.nf);
    for (let j = this.nf - 1; j >= 0; j--) this.nextBoundary[j] = this.want[j] >= 0 || this.want[j + 1] >= 0 ? j : this.nextBoundary[j + 1];
    this.delimWord = task.delimiter >= 0 ? Math.imul(task.delimiter & 0xff, 0x01010101) : 0;
    this.jsonKeys = (task.keys ?? ['', '', '', '']).map((k) => Buffer.from(k, 'utf8'));
    const csv = task.format === 'csv' && task.delimiter >= 0;
    this.kernel = csv && task.user >= 0 && task.amount >= 0 && this.nf <= KERNEL_MAX_FIELDS ? lineKernel() : null;
  }

  /**
   * Parse the complete records in buf[0, to), whose first byte is at absolute offset `base`.
   * Returns the position of the first byte not consumed (the start of an incomplete record).
   */
  consume(buf: Buffer, to: number, base: number, eof: boolean): number {
    if (this.wordsOf !== buf) {
      this.wordsOf = buf;
      this.words = LITTLE_ENDIAN && (buf.byteOffset & 3) === 0 ? new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2) : null;
    }
    let p = 0;
    if (this.longLine || this.skipping) {
      // the rest of a line already rejected as too long (its newline counts), or the partial
      // line the range starts in (the previous range's)
      const nl = buf.indexOf(NL, 0);
      if (nl === -1 || nl >= to) {
        if (eof) this.finishAt(base + to);
        return to;
      }
      if (this.longLine) this.newlines++;
      this.longLine = false;
      this.skipping = false;
      p = nl + 1;
    }
    if (this.firstRecord < 0) this.firstRecord = base + p;
    const end = this.end;
    const json = this.task.format === 'jsonl';
    // the next quote byte at or after p (to: none in the buffer): lines before it take the plain
    // CSV loop, which then need not look for quotes byte by byte
    let quoteAt = -1;
    // the start of the next line longer than maxRecord bytes at or after p (to: none in the buffer)
    let longAt = -1;
    const csv = !json && this.delim !== WHITESPACE;
    while (p < to) {
      if (base + p >= end) {
        this.finishAt(base + p);
        break;
      }
      if (csv) {
        // the usual line: no quote before its newline, which is in this buffer (one pass over its
        // bytes finds both the delimiters and the newline)
        if (quoteAt < p) {
          quoteAt = buf.indexOf(QUOTE, p);
          if (quoteAt === -1 || quoteAt > to) quoteAt = to;
        }
        let lim = quoteAt;
        if (to - p > this.maxRecord) {
          // a buffer that may hold a whole line longer than the limit (it grew for one): such a
          // line goes to the general path, which rejects it, as it would in any other buffer
          if (longAt < p) longAt = this.longLineAt(buf, p, to);
          if (longAt < lim) lim = longAt;
        }
        if (this.kernel !== null) {
          // the lines before the quote, by the kernel; the line it could not take goes on below
          const after = this.kernelLines(buf, p, lim, base);
          if (after !== p) {
            p = after;
            continue;
          }
        }
        const next = this.plainLine(buf, p, lim, base);
        if (next >= 0) {
          p = next;
          continue;
        }
      }
      let nl = buf.indexOf(NL, p);
      if (nl === -1 || nl >= to) {
        if (!eof && to - p > this.maxRecord) {
          // no newline within maxRecordBytes: reject the line and skip the rest of it
          this.recordLine = this.newlines;
          this.reject(buf, p, to, base, `line longer than ${this.maxRecord} bytes`);
          this.longLine = true;
          p = to;
          break;
        }
        if (!eof) break;
        nl = to;
      }
      if (nl - p > this.maxRecord) {
        // a whole line longer than the limit: rejected by its length, whatever the buffer's size
        this.recordLine = this.newlines;
        this.reject(buf, p, nl, base, `line longer than ${this.maxRecord} bytes`);
        if (nl < to) this.newlines++;
        p = nl + 1;
        continue;
      }
      let ce = nl;
      if (ce > p && buf[ce - 1] === CR) ce--;
      if (ce === p) {
        this.emptyLines++;
        if (nl < to) this.newlines++;
        p = nl + 1;
        continue;
      }
      this.recordLine = this.newlines;
      let next: number;
      if (json) next = this.jsonRecord(buf, p, ce, nl, to, base);
      else if (this.delim === WHITESPACE) next = this.blankRecord(buf, p, ce, nl, to, base);
      else {
        if (quoteAt < p) {
          quoteAt = buf.indexOf(QUOTE, p);
          if (quoteAt === -1 || quoteAt > to) quoteAt = to;
        }
        // (a line without quotes comes here only when it is the file's last, with no newline)
        next = quoteAt < ce ? this.quotedRecord(buf, p, to, base, eof) : this.plainLine(buf, p, nl, base, true);
      }
      if (next === NEED_MORE) break;
      p = next;
    }
    if (p >= to && eof) this.finishAt(base + to);
    this.flush(buf);
    return Math.min(p, to);
  }

  /**
   * The start of the first line in buf[p, to) longer than maxRecord bytes before its newline, or
   * `to`. p is a line start. A line at q is short enough when a newline lies in [q, q + maxRecord],
   * so each step looks back from q + maxRecord for the last newline and goes on after it.
   */
  private longLineAt(buf: Buffer, p: number, to: number): number {
    const max = this.maxRecord;
    let q = p;
    while (to - q > max) {
      const nl = buf.lastIndexOf(NL, q + max);
      if (nl < q) return q;
      q = nl + 1;
    }
    return to;
  }

  private finishAt(abs: number): void {
    if (this.endOffset < 0) this.endOffset = abs;
    if (this.firstRecord < 0) this.firstRecord = abs;
    this.done = true;
  }

  /**
   * A CSV line at p with no quote before `lim`: its fields and its newline found in one pass.
   * Returns the position after the line, or -1 when no newline comes before `lim` (the line holds
   * a quote, or ends past the buffer: the general path takes it). With `last`, the line ends at
   * `lim` without a newline (the end of the file).
   *
   * The pass reads four bytes at a time (SWAR): in each 32-bit word, the bytes equal to the
   * delimiter and to a newline become bit masks; a word adds its delimiter count (a popcount of
   * the mask) to the field number, and only words where a wanted field starts or ends are looked
   * at bit by bit. No branch depends on where a delimiter falls, which the byte loop mispredicts
   * about once a field. The bytes after the last whole word before `lim` take the byte loop.
   */
  private plainLine(buf: Buffer, p: number, lim: number, base: number, last = false): number {
    const delim = this.delim;
    const want = this.want;
    const nf = this.nf;
    const fs = this.fs;
    const fe = this.fe;
    let f = 0;
    let i = p;
    const w0 = want[0];
    if (w0 >= 0) fs[w0] = p;
    let found = false;
    const words = this.words;
    const wl = lim >> 2; // words below wl lie wholly before lim
    let w = p >> 2;
    if (words !== null && w < wl) {
      const nb = this.nextBoundary;
      const dl = this.delimWord;
      // the line's first word: the bytes before p read as 0xFF (neither a delimiter nor a newline)
      const sh = (p & 3) << 3;
      let x = sh === 0 ? words[w] : words[w] | ((1 << sh) - 1);
      for (;;) {
        // 0x80 in each byte of x that equals the newline (nm) or the delimiter (dm)
        const a = x ^ NL_WORD;
        const nm = ~(((a & LOW7) + LOW7) | a | LOW7);
        const b = x ^ dl;
        let dm = ~(((b & LOW7) + LOW7) | b | LOW7);
        if (nm !== 0) dm &= ((nm & -nm) - 1) | 0; // delimiters before the newline only
        if (dm !== 0) {
          const pc = Math.imul(dm >>> 7, 0x01010101) >>> 24;
          if (f < nf && f + pc > nb[f]) {
            // a wanted field starts or ends here: each delimiter in turn
            const at = w << 2;
            while (dm !== 0) {
              const low = dm & -dm;
              this.atDelimiter(f++, at + ((31 - Math.clz32(low)) >> 3));
              dm ^= low;
            }
          } else f += pc;
        }
        if (nm !== 0) {
          i = (w << 2) + ((31 - Math.clz32(nm & -nm)) >> 3);
          found = true;
          break;
        }
        if (++w >= wl) {
          i = w << 2;
          break;
        }
        x = words[w];
      }
    }
    if (!found) {
      for (; i < lim; i++) {
        const c = buf[i];
        if (c === delim) this.atDelimiter(f++, i);
        else if (c === NL) break;
      }
      if (i >= lim && !last) return -1;
    }
    let ce = i;
    if (ce > p && buf[ce - 1] === CR) ce--;
    const line = this.newlines;
    if (i < lim) this.newlines++;
    if (ce === p) {
      this.emptyLines++;
      return i + 1;
    }
    if (f < nf) {
      const e = want[f];
      if (e >= 0) fe[e] = ce;
    }
    f++;
    this.recordLine = line;
    if (f !== this.task.fieldCount) this.reject(buf, p, ce, base, `expected ${this.task.fieldCount} fields, found ${f}`);
    else this.row(buf, buf, p, ce, base);
    return i + 1;
  }

  /**
   * The complete lines of buf[p, lim) that start in the range, through the line kernel: returns
   * where the first line it did not take starts (p when it took none: the line holds a quote, runs
   * past lim, is longer than the kernel's area, or starts past the range).
   */
  private kernelLines(buf: Buffer, p: number, lim: number, base: number): number {
    const k = this.kernel!;
    const nf = this.nf;
    k.configure(this.kernelKey, this.want, this.nextBoundary, nf);
    const stop = this.end - base;
    const out = k.out;
    const fs = this.fs;
    const fe = this.fe;
    const fieldCount = this.task.fieldCount;
    const table = this.table;
    // a row whose key (plain digits) is in the dense window and whose amount the kernel read
    // (digits, at most one '.') is a direct row: the kernel hands it over as its window row and
    // amount, staged in one run (as row() would stage it)
    const direct = !this.hasQty && !this.hasDate;
    const dBase = direct ? table.dBase : Infinity;
    const dEnd = direct ? table.dEnd : -Infinity;
    let pos = p;
    while (pos < lim) {
      const n = k.lines(buf, pos, lim, stop, this.delim, nf, fieldCount, dBase, dEnd);
      if (k.direct > 0) {
        table.stageDenseRun(k.directRow, k.directM, k.directDp, k.direct, k.maxDp);
        this.rows += k.direct;
      }
      const first = this.newlines;
      this.newlines += k.lineCount;
      this.emptyLines += k.emptyCount;
      for (let r = 0, o = 0; r < n; r++, o += RECORD) {
        // the other lines, as plainLine does with the line it finds
        const s = out[o];
        const ce = out[o + 3];
        this.recordLine = first + out[o + 17];
        const f = out[o + 2];
        if (f !== fieldCount) {
          this.reject(buf, s, ce, base, `expected ${fieldCount} fields, found ${f}`);
          continue;
        }
        fs[0] = out[o + 4];
        fs[1] = out[o + 5];
        fs[2] = out[o + 6];
        fs[3] = out[o + 7];
        fe[0] = out[o + 8];
        fe[1] = out[o + 9];
        fe[2] = out[o + 10];
        fe[3] = out[o + 11];
        this.row(buf, buf, s, ce, base);
      }
      if (k.next === pos) break;
      pos = k.next;
    }
    return pos;
  }

  /** Delimiter number f of a line, at pos: it ends field f and starts field f + 1 (when wanted). */
  private atDelimiter(f: number, pos: number): void {
    if (f >= this.nf) return;
    const e = this.want[f];
    if (e >= 0) this.fe[e] = pos;
    const s = this.want[f + 1];
    if (s >= 0) this.fs[s] = pos + 1;
  }

  /** Whitespace-separated fields: runs of blanks separate, leading and trailing blanks ignored. */
  private blankRecord(buf: Buffer, p: number, ce: number, nl: number, to: number, base: number): number {
    const want = this.want;
    const nf = this.nf;
    let f = 0;
    let i = p;
    for (;;) {
      while (i < ce && (buf[i] === SP || buf[i] === TAB)) i++;
      if (i >= ce) break;
      const s = i;
      while (i < ce && buf[i] !== SP && buf[i] !== TAB) i++;
      if (f < nf) {
        const w = want[f];
        if (w >= 0) {
          this.fs[w] = s;
          this.fe[w] = i;
        }
      }
      f++;
    }
    if (nl < to) this.newlines++;
    if (f === 0) {
      this.emptyLines++;
      return nl + 1;
    }
    if (f !== this.task.fieldCount) {
      this.reject(buf, p, ce, base, `expected ${this.task.fieldCount} fields, found ${f}`);
      return nl + 1;
    }
    this.row(buf, buf, p, ce, base);
    return nl + 1;
  }

  /**
   * The slow path: a record with quotes (RFC 4180: a field may be quoted, `""` is a quote inside,
   * a quoted field may hold delimiters and newlines). Field contents are copied, unescaped, into
   * the scratch buffer.
   */
  private quotedRecord(buf: Buffer, p: number, to: number, base: number, eof: boolean): number {
    const delim = this.delim;
    const want = this.want;
    const nf = this.nf;
    if (this.scratch.length < Math.min(to - p, this.maxRecord) + 16) {
      this.scratch = new Uint8Array(Math.max(this.scratch.length * 2, Math.min(to - p, this.maxRecord) + 16));
    }
    const sc = this.scratch;
    let o = 0; // write position in scratch
    let f = 0;
    let fstart = 0;
    let inQ = false;
    let fieldBegin = true; // nothing read yet in this field
    let spans = 0; // newlines inside quotes
    let i = p;
    let recEnd = -1; // position after the record's newline
    let contentEnd = -1;
    const endField = (): void => {
      if (f < nf) {
        const w = want[f];
        if (w >= 0) {
          this.fs[w] = fstart;
          this.fe[w] = o;
        }
      }
      f++;
      fstart = o;
      fieldBegin = true;
    };
    for (;;) {
      if (i >= to) {
        if (!eof) return to - p >= this.maxRecord ? this.unterminated(buf, p, to, base) : NEED_MORE;
        if (inQ) return this.unterminated(buf, p, to, base);
        contentEnd = i;
        recEnd = i;
        break;
      }
      if (o >= sc.length - 1 || i - p > this.maxRecord) return this.unterminated(buf, p, to, base);
      const c = buf[i];
      if (inQ) {
        if (c === QUOTE) {
          if (i + 1 >= to && !eof) return NEED_MORE;
          // bytes at and past `to` are stale: never look at them
          if (i + 1 < to && buf[i + 1] === QUOTE) {
            sc[o++] = QUOTE;
            i += 2;
          } else {
            inQ = false;
            i++;
          }
          continue;
        }
        if (c === NL) spans++;
        sc[o++] = c;
        i++;
        continue;
      }
      if (c === QUOTE && fieldBegin) {
        inQ = true;
        fieldBegin = false;
        i++;
        continue;
      }
      if (c === delim) {
        endField();
        i++;
        continue;
      }
      if (c === NL) {
        contentEnd = i;
        recEnd = i + 1;
        break;
      }
      if (c === CR && (i + 1 < to ? buf[i + 1] === NL : eof)) {
        i++;
        continue;
      }
      sc[o++] = c;
      fieldBegin = false;
      i++;
    }
    endField();
    this.newlines += spans + (recEnd > contentEnd ? 1 : 0);
    if (spans > 0) this.quotedNewlines++;
    if (f !== this.task.fieldCount) {
      this.reject(buf, p, contentEnd, base, `expected ${this.task.fieldCount} fields, found ${f}`);
      return recEnd;
    }
    // fold immediately: the scratch buffer is reused by the next slow record
    this.flush(buf);
    this.row(sc, buf, p, contentEnd, base);
    this.flush(sc);
    return recEnd;
  }

  /** Reject the physical line at p as an unterminated quote and resume after it. */
  private unterminated(buf: Buffer, p: number, to: number, base: number): number {
    let nl = buf.indexOf(NL, p);
    if (nl === -1 || nl >= to) nl = to;
    let ce = nl;
    if (ce > p && buf[ce - 1] === CR) ce--;
    if (nl < to) this.newlines++;
    this.reject(buf, p, ce, base, 'unterminated quote');
    return nl + 1;
  }

  /** A JSON Lines record: a flat object whose wanted keys are found by byte comparison. */
  private jsonRecord(buf: Buffer, p: number, ce: number, nl: number, to: number, base: number): number {
    if (nl < to) this.newlines++;
    const err = this.jsonFields(buf, p, ce);
    if (err) {
      this.reject(buf, p, ce, base, err);
      return nl + 1;
    }
    if (this.jsonEscaped) {
      this.flush(buf);
      this.row(this.scratch, buf, p, ce, base);
      this.flush(this.scratch);
    } else this.row(buf, buf, p, ce, base);
    return nl + 1;
  }

  private jsonEscaped = false;

  /** Locate the wanted keys' values; string values are unquoted (escapes decoded into scratch). */
  private jsonFields(b: Buffer, s: number, e: number): string | null {
    const fs = this.fs;
    const fe = this.fe;
    fs.fill(-1);
    fe.fill(-1);
    this.jsonEscaped = false;
    let i = s;
    // bytes at and past `e` may be stale: read structure through B()
    const B = (k: number): number => (k < e ? b[k] : -1);
    const ws = (): void => {
      while (i < e && (b[i] === SP || b[i] === TAB || b[i] === CR)) i++;
    };
    ws();
    if (B(i) !== 123) return 'not a JSON object';
    i++;
    let scratchUsed = 0;
    for (;;) {
      ws();
      if (B(i) === 125) break; // }
      if (B(i) !== QUOTE) return 'invalid JSON: expected a key';
      const ks = ++i;
      while (i < e && b[i] !== QUOTE) i += b[i] === 92 ? 2 : 1;
      if (i >= e) return 'invalid JSON: unterminated string';
      const ke = i++;
      ws();
      if (B(i) !== 58) return 'invalid JSON: expected ":"';
      i++;
      ws();
      let slot = -1;
      for (let k = 0; k < 4; k++) {
        const key = this.jsonKeys[k];
        if (key.length === ke - ks && key.length > 0) {
          let eq = true;
          for (let j = 0; j < key.length; j++) if (key[j] !== b[ks + j]) eq = false;
          if (eq) slot = k;
        }
      }
      const vs = i;
      const c = B(i);
      if (c === QUOTE) {
        i++;
        let esc = false;
        while (i < e && b[i] !== QUOTE) {
          if (b[i] === 92) {
            esc = true;
            i += 2;
          } else i++;
        }
        if (i >= e) return 'invalid JSON: unterminated string';
        i++;
        if (slot >= 0) {
          if (esc) {
            let text: string;
            try {
              text = JSON.parse(b.toString('utf8', vs, i)) as string;
            } catch {
              return 'invalid JSON string';
            }
            const bytes = Buffer.from(text, 'utf8');
            if (!this.jsonEscaped) {
              // move what is already located into scratch too, so every field has one source
              this.jsonEscaped = true;
              for (let k = 0; k < 4; k++) {
                if (fs[k] >= 0) {
                  const len = fe[k] - fs[k];
                  this.ensureScratch(scratchUsed + len);
                  this.scratch.set(b.subarray(fs[k], fe[k]), scratchUsed);
                  fs[k] = scratchUsed;
                  fe[k] = scratchUsed + len;
                  scratchUsed += len;
                }
              }
            }
            this.ensureScratch(scratchUsed + bytes.length);
            this.scratch.set(bytes, scratchUsed);
            fs[slot] = scratchUsed;
            fe[slot] = scratchUsed + bytes.length;
            scratchUsed += bytes.length;
          } else this.setJson(slot, b, vs + 1, i - 1, scratchUsed, (n) => (scratchUsed = n));
        }
      } else if (c === 123 || c === 91) {
        // nested value: skip it, strings aware
        let depth = 0;
        for (; i < e; i++) {
          const d = b[i];
          if (d === QUOTE) {
            i++;
            while (i < e && b[i] !== QUOTE) i += b[i] === 92 ? 2 : 1;
          } else if (d === 123 || d === 91) depth++;
          else if (d === 125 || d === 93) {
            depth--;
            if (depth === 0) {
              i++;
              break;
            }
          }
        }
        if (depth !== 0) return 'invalid JSON: unbalanced brackets';
        if (slot >= 0) return `"${this.task.names[slot]}" is not a scalar`;
      } else {
        while (i < e && b[i] !== 44 && b[i] !== 125 && b[i] !== SP && b[i] !== TAB) i++;
        if (i === vs) return 'invalid JSON: expected a value';
        // null counts as missing
        const isNull = i - vs === 4 && b[vs] === 110 && b[vs + 1] === 117;
        if (slot >= 0 && !isNull) this.setJson(slot, b, vs, i, scratchUsed, (n) => (scratchUsed = n));
      }
      ws();
      if (B(i) === 44) {
        i++;
        continue;
      }
      if (B(i) === 125) break;
      return 'invalid JSON: expected "," or "}"';
    }
    i++;
    ws();
    if (i < e) return 'invalid JSON: text after the object';
    return null;
  }

  private setJson(slot: number, b: Buffer, s: number, e: number, used: number, setUsed: (n: number) => void): void {
    if (this.jsonEscaped) {
      this.ensureScratch(used + e - s);
      this.scratch.set(b.subarray(s, e), used);
      this.fs[slot] = used;
      this.fe[slot] = used + e - s;
      setUsed(used + e - s);
    } else {
      this.fs[slot] = s;
      this.fe[slot] = e;
    }
  }

  private ensureScratch(n: number): void {
    if (this.scratch.length >= n) return;
    const s = new Uint8Array(Math.max(n, this.scratch.length * 2));
    s.set(this.scratch);
    this.scratch = s;
  }

  /**
   * One record whose wanted fields are located in `src` (fs/fe): parse the key and numbers and
   * queue the row (or reject it). `buf`, p, ce locate the raw line for a reject.
   */
  private row(src: Uint8Array, buf: Buffer, p: number, ce: number, base: number): void {
    const fs = this.fs;
    const fe = this.fe;
    const names = this.task.names;
    // the key: trim blanks, hash the bytes, and note its value when it is a plain integer
    let ks = fs[0];
    let ke = fe[0];
    if (ks < 0) return this.reject(buf, p, ce, base, `missing user id (${names[0]})`);
    while (ks < ke && (src[ks] === SP || src[ks] === TAB)) ks++;
    while (ke > ks && (src[ke - 1] === SP || src[ke - 1] === TAB)) ke--;
    if (ks === ke) return this.reject(buf, p, ce, base, `missing user id (${names[0]})`);
    // its value when it is a plain integer (the hash comes later, when the key needs one)
    let num = ke - ks <= 15 ? plainDigits(src, ks, ke) : -1;
    if (src[ks] === 48 && ke - ks > 1) num = -1;
    // an id is text: bytes that are not UTF-8 (a Latin-1 file) would print as other text, and two
    // such ids as the same one
    if (num < 0 && !utf8Key(src, ks, ke)) return this.reject(buf, p, ce, base, `user id is not valid UTF-8 (${names[0]})`);
    const out = this.out;
    // the amount: plain digits (the usual case) inline, anything else through parseDecimal
    const as = fs[1];
    const ae = fe[1];
    let m = 0;
    let dp = 0;
    let st = OK;
    let plain = as >= 0 && ae > as && ae - as <= 15;
    if (plain) {
      m = plainDigits(src, as, ae);
      plain = m >= 0;
    }
    if (!plain) {
      st = as < 0 ? EMPTY : parseDecimal(src, as, ae, out, this.decimalComma);
      if (st !== OK) return this.reject(buf, p, ce, base, numberReason(st, 'amount', names[1], src, as, ae));
      m = out.m;
      dp = out.dp;
    }
    let q = 0;
    let qdp = 0;
    let big: bigint | undefined;
    if (this.hasQty) {
      st = fs[2] < 0 ? EMPTY : parseDecimal(src, fs[2], fe[2], out, this.decimalComma);
      if (st !== OK) return this.reject(buf, p, ce, base, numberReason(st, 'quantity', names[2], src, fs[2], fe[2]));
      q = out.m;
      qdp = out.dp;
      const prod = m * q;
      if (prod > TWO52 || prod < -TWO52) big = BigInt(m) * BigInt(q);
      m = prod;
      dp += qdp;
    }
    if (dp > MAX_SCALE) return this.reject(buf, p, ce, base, `amount has more than ${MAX_SCALE} decimal places`);
    let date = 0;
    if (this.hasDate) {
      st = fs[3] < 0 ? EMPTY : parseDate(src, fs[3], fe[3], out);
      if (st !== OK) {
        return this.reject(buf, p, ce, base, st === EMPTY ? `missing date (${names[3]})` : `date is not a date: ${quoteText(src, fs[3], fe[3])} (${names[3]})`);
      }
      date = out.date;
      if (out.hasTime) this.dateHasTime = true;
    }
    const table = this.table;
    if (big === undefined && num >= table.dBase && num < table.dEnd) {
      // a key of the dense window: its row index is all it needs
      table.stageDense(num - table.dBase, m, dp, q, qdp, date);
      this.rows++;
      return;
    }
    const h = hashBytes(src, ks, ke);
    if (big !== undefined) {
      // exact slow path for a product past 2^52: fold now
      this.flush(src);
      this.table.foldBig(h, num, src, ks, ke, big, dp, q, qdp, date);
      this.rows++;
      return;
    }
    if (num >= 0) {
      // an integer key needs no bytes from the buffer: straight to its part's stage
      this.table.stageInt(h, num, m, dp, q, qdp, date);
      this.rows++;
      return;
    }
    const n = this.n;
    this.bHash[n] = h;
    this.bNum[n] = num;
    this.bKs[n] = ks;
    this.bKe[n] = ke;
    this.bM[n] = m;
    this.bDp[n] = dp;
    this.bQ[n] = q;
    this.bQdp[n] = qdp;
    this.bDate[n] = date;
    this.n = n + 1;
    if (this.n === BATCH) this.flush(src);
  }

  /** Fold the queued rows into the table (the second, tight loop). */
  private flush(src: Uint8Array): void {
    const n = this.n;
    if (n === 0) return;
    this.n = 0;
    this.table.foldBatch(n, this.batch, src);
    this.rows += n;
  }

  private reject(buf: Uint8Array, p: number, ce: number, base: number, reason: string): void {
    this.rejected++;
    const end = Math.min(ce, p + MAX_REJECT_TEXT * 4);
    let text = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('utf8', p, end);
    if (text.length > MAX_REJECT_TEXT) text = text.slice(0, MAX_REJECT_TEXT) + '…';
    // the line index: newlines consumed before this record (its own may be counted already)
    this.rejects.push({ line: this.lineOfCurrent, offset: base + p, reason, text });
  }

  /** Line index of the record being parsed, relative to the range's first record. */
  private get lineOfCurrent(): number {
    return this.recordLine;
  }
  recordLine = 0;

  /** The range's output: with `emit`, the table as sections (and the table released); else counts only. */
  finish(emit: boolean): ScanOutput {
    const t = this.table;
    const sections = emit ? encodeScanTable(t, this.task.partitions) : [];
    const keys = emit ? t.keys : 0;
    const tableBytes = t.bytes;
    if (emit) t.release();
    spareBatch = this.batch;
    return {
      fileIndex: this.task.fileIndex,
      rangeIndex: this.task.rangeIndex,
      sections,
      keys,
      rows: this.rows,
      rejected: this.rejected,
      emptyLines: this.emptyLines,
      newlines: this.newlines,
      firstRecord: this.firstRecord,
      endOffset: this.endOffset,
      rejects: this.rejects,
      quotedNewlines: this.quotedNewlines,
      scale: t.scale,
      qscale: t.qscale,
      dateHasTime: this.dateHasTime,
      tableBytes,
      held: !emit,
    };
  }
}


/** Whether the bytes [s, e) are UTF-8: ASCII checked here, the rest by Node's validator. */
function utf8Key(src: Uint8Array, s: number, e: number): boolean {
  let high = 0;
  for (let i = s; i < e; i++) high |= src[i];
  return high < 0x80 || isUtf8(src.subarray(s, e));
}

/**
 * The value of src[s, e) (at most 15 bytes) when they are all digits, else -1. Up to nine digits
 * in int32 arithmetic (a float multiply-add per digit is a longer dependency chain).
 */
function plainDigits(src: Uint8Array, s: number, e: number): number {
  if (e - s <= 9) {
    let x = 0;
    for (let i = s; i < e; i++) {
      const d = src[i] - 48;
      if (d >>> 0 > 9) return -1;
      x = (x * 10 + d) | 0;
    }
    return x;
  }
  let v = 0;
  for (let i = s; i < e; i++) {
    const d = src[i] - 48;
    if (d >>> 0 > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function quoteText(src: Uint8Array, s: number, e: number): string {
  const t = Buffer.from(src.buffer, src.byteOffset, src.length).toString('utf8', s, Math.min(e, s + 40)).trim();
  return JSON.stringify(t);
}

function numberReason(st: number, what: string, name: string, src: Uint8Array, s: number, e: number): string {
  if (st === EMPTY) return `missing ${what} (${name})`;
  if (st === TOO_PRECISE) return `${what} has more than 15 significant digits: ${quoteText(src, s, e)} (${name})`;
  if (st === TOO_LARGE) return `${what} is past 2^53 units of its last decimal place: ${quoteText(src, s, e)} (${name})`;
  if (st === INVALID) return `${what} is not a number: ${quoteText(src, s, e)} (${name})`;
  return `bad ${what} (${name})`;
}
