/**
 * Checkpoints: the state (the per-user table, labels, model) and the source offsets in one file,
 * written atomically: a temp file in the state folder, fsync, rename over `checkpoint.msgpack`,
 * fsync of the folder. A process killed at any moment leaves either the old or the new
 * checkpoint, never a torn one.
 *
 * Layout: 8 bytes of magic, a u32 length, a msgpackr header (meta, table scalars, array lengths),
 * then the table's typed arrays raw, each 8-byte aligned. msgpackr copies binary fields byte by
 * byte into its buffer (measured: 1.2 s of CPU for a 2,000,000-user state); the arrays are instead
 * snapshotted with a native copy (tens of ms) and written from there while batches go on.
 *
 * Exactly-once: offsets and state are saved together, and the lengths of the changes and rejects
 * files at that moment too; a restart cuts those files back to them and reads the source again
 * from the saved offsets, so every row after the checkpoint is folded (and its changes written)
 * once more, and every row before it never again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Packr, Unpackr } from 'msgpackr';
import { KeyTable } from '../table.js';
import { SegflowError } from '../errors.js';
import { alive } from '../output.js';
import { StreamState } from './state.js';
import type { ModelInput, StreamModel } from './model.js';
import type { InputSummary } from '../types.js';
import type { ScanSchema } from '../scan.js';

export const CHECKPOINT = 'checkpoint.msgpack';
const FORMAT = 'segflow-stream-checkpoint';
// 3: a sum's high limb weighs 2^51 (util/exact.ts), 2^32 before
const VERSION = 3;

/** A persisted read position in one file. */
export interface CursorRecord {
  /** The name rejects and metrics use (the followed path, a watched file, "-" for stdin). */
  label: string;
  /** The path to open (a spool file, a watched file, the followed path). */
  path: string;
  ino: number;
  offset: number;
  /** Newlines before `offset` (for reject line numbers). */
  lines: number;
  /** No more bytes will be appended (rotated, watched or ended stdin): a last line without a newline is a record. */
  sealed: boolean;
  schema: CursorSchema;
  /** Offset of this file's byte 0 in the source (stdin spool files), for reject offsets. */
  base: number;
}

/** How a cursor's file is parsed: a scan task's schema, plus what a followed file needs. */
export interface CursorSchema extends ScanSchema {
  /** The header line's text ('' without one): a truncated followed file that starts with it again skips it. */
  headerText: string;
  dataStart: number;
  headerLines: number;
}

/** What a source saves. */
export interface SourceRecord {
  kind: 'follow' | 'watch' | 'stdin';
  /** The followed file or watched folder (resolved), '' for stdin. */
  target: string;
  cursors: CursorRecord[];
  /** Watched files read to the end: name -> inode. */
  done?: [string, number][];
  /** Follow: a file was opened (a restart never applies the start mode again). */
  started?: boolean;
  /** Stdin: the last spool file created when the checkpoint was taken (older ones not listed are read). */
  spoolLast?: string;
}

/** Everything but the arrays. */
export interface CheckpointMeta {
  savedAt: string;
  /** The --from folder the state started from. */
  from: string;
  model: StreamModel;
  modelInput: ModelInput;
  shards: number;
  source?: SourceRecord;
  inputs: InputSummary[];
  /** Files the --from output read, and how many bytes of each (where a first run starts). */
  fromRead?: [string, number][];
  changes?: { file: string; bytes: number };
  rejectsBytes: number;
  counters: { rows: number; rejected: number; emptyLines: number; rowsAtFit: number; moves: number; batches: number; reclusters: number };
  dateHasTime: boolean;
}

/** The header: everything but the arrays, which follow it in this order. */
interface Header {
  format: string;
  version: number;
  meta: CheckpointMeta;
  flags: number;
  scale: number;
  qscale: number;
  size: number;
  arenaUsed: number;
  /** Byte lengths of acc, hashes, keyEnds, arena, labels. */
  arrays: number[];
}

const MAGIC = Buffer.from('SGSTRM1\n');
const pad8 = (n: number): number => (n + 7) & ~7;

/** A checkpoint in memory: its parts, written one after another. */
export interface PackedCheckpoint {
  parts: Uint8Array[];
}

const bytesOf = (a: ArrayBufferView, length: number): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, length);

/** A private packer: pack() returns a view of its buffer, reused by the next call on it. */
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false });

/**
 * Buffers a stream reuses from one checkpoint to the next. Fresh memory is costly to touch here
 * (measured in this project's VMs: 570 ms to first write 64 MB, 10-40 ms to copy into the same
 * memory again), so each checkpoint copies the state into the buffers of the last one.
 */
export class SnapshotBuffers {
  private bufs: Uint8Array[] = [];

  /** A copy of `src` in buffer `i`, grown (with headroom) when too small. */
  copy(i: number, src: Uint8Array): Uint8Array {
    let b = this.bufs[i];
    if (!b || b.length < src.length) {
      b = new Uint8Array(Math.ceil(src.length * 1.25) + 8);
      this.bufs[i] = b;
    }
    b.set(src);
    return b.subarray(0, src.length);
  }
}

/**
 * Snapshot the state and meta (synchronously: the caller may change the state right after). The
 * parts stay valid until the next call with the same `buffers`.
 *
 * @returns The parts of the file.
 */
export function packCheckpoint(state: StreamState, meta: CheckpointMeta, buffers = new SnapshotBuffers()): PackedCheckpoint {
  const t = state.table;
  const n = t.size;
  // copies: the batches that run while the file is written change the live arrays
  const live = [bytesOf(t.acc, n * t.width * 8), bytesOf(t.hashes, n * 4), bytesOf(t.keyEnds, n * 4), bytesOf(t.arena, t.arenaUsed), bytesOf(state.labels, n * 4)];
  const arrays = live.map((a, i) => buffers.copy(i, a));
  const header: Header = { format: FORMAT, version: VERSION, meta, flags: t.flags, scale: t.scale, qscale: t.qscale, size: n, arenaUsed: t.arenaUsed, arrays: arrays.map((a) => a.length) };
  const head = packr.pack(header).slice();
  const prefix = Buffer.alloc(pad8(MAGIC.length + 4 + head.length));
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(head.length, MAGIC.length);
  prefix.set(head, MAGIC.length + 4);
  const parts: Uint8Array[] = [prefix];
  for (const a of arrays) {
    parts.push(a);
    if (a.length % 8) parts.push(new Uint8Array(8 - (a.length % 8)));
  }
  return { parts };
}

/** Write bytes to `file` atomically and durably (temp, fsync, rename, fsync of the folder). */
export async function writeAtomic(file: string, parts: Uint8Array[]): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  const fh = await fs.promises.open(tmp, 'w');
  try {
    let pos = 0;
    for (const bytes of parts) {
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, off, Math.min(bytes.length - off, 64 << 20), pos + off);
        off += bytesWritten;
      }
      pos += bytes.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
  fsyncDir(dir);
}

/** fsync a folder so that a rename in it is durable (a no-op where folders cannot be opened). */
export function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // not supported here (e.g. Windows): the rename is still atomic
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/** Remove temp files a killed process left in the state folder. */
export function removeStaleTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith(`.${CHECKPOINT}.tmp-`)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Copy bytes into a fresh, aligned buffer of at least `capacity` bytes. */
function aligned(src: Uint8Array, capacity: number): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(capacity, src.length, 8));
  new Uint8Array(buf).set(src);
  return buf;
}

/**
 * Read the checkpoint of a state folder.
 *
 * @returns The state and meta, or undefined when the folder holds no checkpoint.
 * @throws SegflowError ERR_BAD_INPUT when the file is not a checkpoint of this version.
 */
export function readCheckpoint(dir: string): { state: StreamState; meta: CheckpointMeta } | undefined {
  const file = path.join(dir, CHECKPOINT);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new SegflowError('ERR_BAD_INPUT', `${file}: not a segflow stream checkpoint`, { file });
  }
  const headLen = bytes.readUInt32LE(MAGIC.length);
  let p: Header;
  try {
    p = unpackr.unpack(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + headLen)) as Header;
  } catch (err) {
    throw new SegflowError('ERR_BAD_INPUT', `${file}: not a readable checkpoint (${(err as Error).message})`, { file });
  }
  if (!p || p.format !== FORMAT) throw new SegflowError('ERR_BAD_INPUT', `${file}: not a segflow stream checkpoint`, { file });
  if (p.version !== VERSION) throw new SegflowError('ERR_BAD_INPUT', `${file}: checkpoint version ${p.version}, this segflow reads version ${VERSION}`, { file });
  const views: Uint8Array[] = [];
  let at = pad8(MAGIC.length + 4 + headLen);
  for (const len of p.arrays) {
    if (at + len > bytes.length) throw new SegflowError('ERR_BAD_INPUT', `${file}: the checkpoint ends early`, { file });
    views.push(bytes.subarray(at, at + len));
    at = pad8(at + len);
  }
  const [accBytes, hashBytes, endBytes, arenaBytes, labelBytes] = views;
  const n = p.size;
  const cap = Math.max(1024, Math.ceil(n * 1.25));
  const t = new KeyTable(p.flags, cap);
  t.scale = p.scale;
  t.qscale = p.qscale;
  t.acc = new Float64Array(aligned(accBytes, cap * t.width * 8));
  t.hashes = new Int32Array(aligned(hashBytes, cap * 4));
  t.keyEnds = new Uint32Array(aligned(endBytes, cap * 4));
  t.arena = new Uint8Array(aligned(arenaBytes, Math.max(p.arenaUsed * 1.25, cap * 8)));
  t.arenaUsed = p.arenaUsed;
  t.size = n;
  // the slots are not saved: rebuilt from the hashes as the table grows them (linear probing)
  const slots = t.slots;
  const mask = t.mask;
  const hashes = t.hashes;
  for (let id = 0; id < n; id++) {
    const h = hashes[id];
    let i = h & mask;
    while (slots[2 * i + 1] !== 0) i = (i + 1) & mask;
    slots[2 * i] = h;
    slots[2 * i + 1] = id + 1;
  }
  const labels = new Int32Array(aligned(labelBytes, n * 4));
  const meta = p.meta;
  const state = new StreamState(t, meta.model, labels, meta.dateHasTime);
  state.rows = meta.counters.rows;
  state.rejected = meta.counters.rejected;
  state.emptyLines = meta.counters.emptyLines;
  state.rowsAtFit = meta.counters.rowsAtFit;
  return { state, meta };
}

/** State folders locked by this process (a lock file cannot tell two streams of one process apart). */
const held = new Set<string>();

/** The lock that keeps two streams off one state folder. */
export class StateLock {
  private constructor(private readonly file: string) {}

  /**
   * Take the lock of a state folder; a lock whose process is gone (a killed stream) is taken over.
   *
   * @throws SegflowError ERR_USAGE when a live process holds it.
   */
  static acquire(dir: string): StateLock {
    const file = path.resolve(dir, 'LOCK');
    if (held.has(file)) throw new SegflowError('ERR_USAGE', `the state folder ${dir} is in use by another stream of this process`, { state: dir });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
        held.add(file);
        return new StateLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid) && pid !== process.pid) {
        throw new SegflowError('ERR_USAGE', `the state folder ${dir} is in use by process ${pid} (another segflow stream)`, { state: dir, pid });
      }
      fs.rmSync(file, { force: true });
    }
    throw new SegflowError('ERR_USAGE', `could not lock the state folder ${dir}`, { state: dir });
  }

  release(): void {
    held.delete(this.file);
    try {
      if (Number(fs.readFileSync(this.file, 'utf8').trim()) === process.pid) fs.rmSync(this.file, { force: true });
    } catch {
      // gone already
    }
  }
}
