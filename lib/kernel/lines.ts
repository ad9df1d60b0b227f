/**
 * The scan's line kernel: lines.wat (WebAssembly, 128-bit SIMD) finds the lines of a buffer and
 * the bounds of the wanted fields sixteen bytes at a time, where the JavaScript loop
 * (scan.ts, plainLine) reads four. The scanner reads the file into the kernel's memory
 * ({@link LineKernel.readArea}), where the kernel scans it in place; a buffer of the scanner's own
 * (a record past the read area's size) is copied in piece by piece instead. The kernel hands a
 * line whose key is in the dense window and whose amount it read over as three numbers (a direct
 * row, staged by ScanTable.stageDenseRun), and writes a record for any other line, whose fields
 * the scanner then parses as before (RangeScanner.kernelLines).
 *
 * One kernel per thread. Without the assembled module (a build without Binaryen) or without
 * WebAssembly SIMD, or with SEGFLOW_KERNEL=js, lineKernel() is null and the scanner keeps to its
 * JavaScript loop; both give the same records (test/scan-kernel.test.ts).
 */
import fs from 'node:fs';

/** Fields a line may be searched for (the highest wanted field index + 1). */
export const KERNEL_MAX_FIELDS = 4096;
/** Records one call writes at most. */
export const KERNEL_MAX_LINES = 32768;
/**
 * Int32 values per record: start, newline, fields, end (before a CR), field starts (4 slots),
 * field ends (4 slots), two f64: the key's value and the amount's as a scaled integer (plain
 * digits, the amount with at most one '.'; else -1), the amount's decimal places, and the line's
 * index among the lines of its call.
 */
export const RECORD = 18;

// the memory layout of lines.wat
const FS_OFF = 256;
const WANT_OFF = 1024;
const NB_OFF = 20480;
const AREA_OFF = 65536;
/** Bytes of the read buffer one call scans at most. */
const AREA = 1 << 20;
const OUT_OFF = AREA_OFF + AREA + 64;
/** The direct rows: window rows (i32), amounts (f64), places (i32), KERNEL_MAX_LINES each. */
const DIRECT_ROW_OFF = OUT_OFF + KERNEL_MAX_LINES * RECORD * 4;
const DIRECT_M_OFF = DIRECT_ROW_OFF + KERNEL_MAX_LINES * 4;
const DIRECT_DP_OFF = DIRECT_M_OFF + KERNEL_MAX_LINES * 8;
const READ_OFF = 4 << 20;
/** Bytes of the read buffer in the kernel's memory (64 more follow it: `scan` reads 16-byte blocks). */
export const KERNEL_READ_AREA = 2 << 20;

type ScanFn = (p: number, to: number, out: number, max: number, bias: number, stop: number, delim: number, nf: number, fc: number, dBase: number, dEnd: number) => number;

export class LineKernel {
  /** The records of the last call (RECORD values each). */
  readonly out: Int32Array;
  /** The same memory as f64: record r's key value at r * RECORD / 2 + 6, its amount's at + 7. */
  readonly values: Float64Array;
  /** The direct rows of the last call: window row, amount (a scaled integer), places. */
  readonly directRow: Int32Array;
  readonly directM: Float64Array;
  readonly directDp: Int32Array;
  /** After {@link lines}: the start of the first line not taken. */
  next = 0;
  /** After {@link lines}: direct rows, lines taken (empty ones too), empty lines, most places of a direct row. */
  direct = 0;
  lineCount = 0;
  emptyCount = 0;
  maxDp = 0;
  private readonly mem: Buffer;
  private readonly memory: ArrayBuffer;
  private readonly i32: Int32Array;
  private readonly scanFn: ScanFn;
  private readonly g: Record<'rest' | 'direct' | 'lines' | 'empty' | 'maxdp', WebAssembly.Global>;
  private owner = 0;

  constructor(instance: WebAssembly.Instance) {
    const memory = instance.exports.memory as WebAssembly.Memory;
    this.mem = Buffer.from(memory.buffer);
    this.memory = memory.buffer;
    if (this.memory.byteLength < READ_OFF + KERNEL_READ_AREA + 64) throw new Error('line kernel: memory too small for its read area');
    this.i32 = new Int32Array(memory.buffer);
    this.out = new Int32Array(memory.buffer, OUT_OFF, KERNEL_MAX_LINES * RECORD);
    this.values = new Float64Array(memory.buffer, OUT_OFF, (KERNEL_MAX_LINES * RECORD) / 2);
    this.directRow = new Int32Array(memory.buffer, DIRECT_ROW_OFF, KERNEL_MAX_LINES);
    this.directM = new Float64Array(memory.buffer, DIRECT_M_OFF, KERNEL_MAX_LINES);
    this.directDp = new Int32Array(memory.buffer, DIRECT_DP_OFF, KERNEL_MAX_LINES);
    this.scanFn = instance.exports.scan as ScanFn;
    const e = instance.exports as Record<string, WebAssembly.Global>;
    this.g = { rest: e.rest, direct: e.direct, lines: e.lines, empty: e.empty, maxdp: e.maxdp };
  }

  /**
   * Set the wanted fields for the calls of scanner `owner` (a number, not the scanner: the kernel
   * must not keep a finished scanner's table alive; nothing to do when it made the last call):
   * want[f] is the slot field f fills or -1 (f in [0, nf]), nb[f] the first delimiter index >= f
   * that ends or starts a wanted field (f < nf).
   */
  configure(owner: number, want: Int32Array, nb: Int32Array, nf: number): void {
    if (this.owner === owner) return;
    this.owner = owner;
    this.i32.set(want.subarray(0, nf + 1), WANT_OFF >> 2);
    this.i32.set(nb.subarray(0, nf), NB_OFF >> 2);
    this.i32.fill(-1, FS_OFF >> 2, (FS_OFF >> 2) + 8);
  }

  /**
   * Scan the lines of buf[pos, lim) that start before `stop` (a position in buf), at most one
   * area's bytes: returns the number of records written to `out` (positions in buf), and leaves in
   * `next` where the first line it did not take starts and in `direct`, `lineCount`,
   * `emptyCount` and `maxDp` what else it found. `fc`: the fields a line must have (the values
   * are read on those lines only). A line whose key lies in [dBase, dEnd) and whose amount was
   * read is a direct row, not a record (dBase Infinity: none; dEnd - dBase is below 2^31, the
   * window rows being int32).
   */
  lines(buf: Buffer, pos: number, lim: number, stop: number, delim: number, nf: number, fc: number, dBase = Infinity, dEnd = -Infinity): number {
    let at: number;
    let len: number;
    let bias: number;
    if (buf.buffer === this.memory) {
      // the read area (readArea): scanned in place; buffer position = memory address - byteOffset
      at = buf.byteOffset + pos;
      len = lim - pos;
      bias = -buf.byteOffset;
    } else {
      len = Math.min(lim - pos, AREA);
      buf.copy(this.mem, AREA_OFF, pos, pos + len);
      at = AREA_OFF;
      bias = pos - AREA_OFF;
    }
    const s = stop - bias;
    const n = this.scanFn(at, at + len, OUT_OFF, KERNEL_MAX_LINES, bias, s < 0 ? 0 : s > 0x7fffffff ? 0x7fffffff : s, delim, nf, fc, dBase, dEnd);
    const g = this.g;
    this.next = (g.rest.value as number) + bias;
    this.direct = g.direct.value as number;
    this.lineCount = g.lines.value as number;
    this.emptyCount = g.empty.value as number;
    this.maxDp = g.maxdp.value as number;
    return n;
  }

  /**
   * A read buffer of `size` bytes (at most {@link KERNEL_READ_AREA}) in the kernel's memory, which
   * {@link lines} scans without copying it. The same memory each call: one reader at a time.
   */
  readArea(size: number): Buffer {
    return Buffer.from(this.memory, READ_OFF, size);
  }
}

let kernel: LineKernel | null | undefined;
let owners = 0;

/** A number for {@link LineKernel.configure}'s owner: one per scanner. */
export function kernelOwner(): number {
  return ++owners;
}

/**
 * This thread's line kernel, or null (see the module's comment). SEGFLOW_KERNEL=js is read at
 * each call (each range): a test or a comparison can switch the kernel off between jobs.
 */
export function lineKernel(): LineKernel | null {
  if (process.env.SEGFLOW_KERNEL === 'js') return null;
  if (kernel !== undefined) return kernel;
  kernel = null;
  try {
    const bytes = fs.readFileSync(new URL('./lines.wasm', import.meta.url));
    kernel = new LineKernel(new WebAssembly.Instance(new WebAssembly.Module(bytes)));
  } catch {
    // not assembled, or no SIMD: the JavaScript loop
  }
  return kernel;
}
