/**
 * The `segflow kmeans` job as a library function, and the clustering step of `segment`.
 *
 * `kmeans(options)` reads numeric columns by name from CSV files (folders, globs, `.gz`), scales
 * them, fits k-means on the pool (lib/kmeans.ts) and resolves to the object `--json` prints; with
 * `out` it also writes `assignments.csv` (id, the features as written in the input, cluster) and
 * `model.json` (a {@link KMeansModel}). `fitSegments` is the step `segment` calls on the per-user
 * purchases and totals: log-zscore, fit, segments named by centroid spend.
 *
 * Defaults follow scikit-learn >= 1.4 where it has one: `nInit` 1 (its `n_init="auto"` for
 * k-means++), `maxIter` 300, `tol` 1e-4; `scale` is `zscore` for `kmeans` (features of any kind)
 * and `log-zscore` for `segment` (skewed counts and spend).
 *
 * The rows are parsed on the coordinator, twice when `out` is set (the second pass writes the
 * assignments in input order, so no per-row text is held in memory): the feature columns of
 * `users-*.csv` shards are small next to the sales they summarise.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { SegflowError } from './errors.js';
import { resolveInputs } from './inputs.js';
import { OutputDir } from './output.js';
import { SegflowPool } from './pool.js';
import { fitKMeans, silhouetteScore, assignNearest, DEFAULT_BLOCK_SIZE, type IterationInfo, type Labels } from './kmeans.js';
import { applyScaler, fitApplyScaler, invertScaler, parseScaleMethod, type ScaleMethod, type Scaler } from './scale.js';
import type { CommonOptions, ProgressEvent } from './types.js';
import { VERSION } from './version.js';

/**
 * A fitted model, JSON-serialisable: saved as `model.json`, and enough to scale and assign new
 * users (streaming) with {@link assignWithModel}.
 */
export interface KMeansModel {
  kind: 'segflow-kmeans';
  /** Model format version. */
  format: 1;
  /** Feature names, in the order of every row below. */
  features: string[];
  k: number;
  scaler: Scaler;
  /** k rows of d: centroids in the scaled space (where the distances are taken). */
  centroids: number[][];
  /** k rows of d: the centroids mapped back to original units with the inverse scaling. */
  centroidsOriginal: number[][];
  /** Points per cluster. */
  sizes: number[];
  /** Sum of squared distances to the centroids, in the scaled space. */
  inertia: number;
  iterations: number;
  converged: boolean;
  seed: number;
  nInit: number;
  maxIter: number;
  tol: number;
  /** Segment names by cluster (`segment`: High, Medium, Low for k = 3). */
  names?: string[];
}

/** The k-means settings shared by `kmeans`, `fitSegments` and `segment`. */
export interface FitOptions {
  /** Clusters (default 3). */
  k?: number;
  /** Seed of the k-means++ draws (default 42). */
  seed?: number;
  /** Restarts, the lowest inertia wins (default 1, scikit-learn's `n_init="auto"` for k-means++). */
  nInit?: number;
  /** Lloyd iterations per restart (default 300). */
  maxIter?: number;
  /** scikit-learn's tol: times the mean feature variance bounds the squared centre shift (default 1e-4). */
  tol?: number;
  /** Feature scaling (default `zscore` for `kmeans`, `log-zscore` for `fitSegments` and `segment`). */
  scale?: ScaleMethod;
  /** Points per block of the k-means passes (default 65,536; results depend on it, not on workers). */
  blockSize?: number;
  /** Blocks per pool task (default: one task per worker per pass). */
  blocksPerTask?: number;
}

/** Options of {@link kmeans}: the `segflow kmeans` flags in camelCase. */
export interface KMeansJobOptions extends CommonOptions, FitOptions {
  /** CSV files, folders or globs (`users-*.csv`); `.gz` is read too. */
  input: string | string[];
  /** Numeric columns to cluster on, by header name: an array or a comma-separated string. */
  features: string | string[];
  /** The id column written to assignments.csv (default: the first column). */
  idCol?: string;
  /** Write `assignments.csv` and `model.json` into this folder. */
  out?: string;
  /** Replace an existing result in `out`. */
  force?: boolean;
  /** Also fit each k of a range, e.g. `'2..8'` (or `'2,3,5'`, or `[2, 8]` as a range), for an elbow chart. */
  kRange?: string | number[];
  /** Field delimiter: one character or `tab` (default: detected from the header: , ; tab |). */
  delimiter?: string;
  /** Points sampled for the silhouette of each k in `kRange` (default 10,000). */
  silhouetteSample?: number;
}

/** One k of a `kRange` run. */
export interface KRangeEntry {
  k: number;
  inertia: number;
  iterations: number;
  converged: boolean;
  sizes: number[];
  /** Mean silhouette on a seeded sample; null when undefined (fewer than 2 clusters). */
  silhouette: number | null;
}

/** What {@link kmeans} resolves to (and `segflow kmeans --json` prints). */
export interface KMeansJobResult {
  command: 'kmeans';
  version: string;
  inputs: string[];
  features: string[];
  idCol: string;
  /** Points (data rows). */
  n: number;
  k: number;
  seed: number;
  nInit: number;
  maxIter: number;
  tol: number;
  scale: ScaleMethod;
  scaler: Scaler;
  /** In the scaled space. */
  inertia: number;
  iterations: number;
  converged: boolean;
  sizes: number[];
  /** k rows of d, scaled space. */
  centroids: number[][];
  /** k rows of d, original units. */
  centroidsOriginal: number[][];
  /** Per k of `kRange`, when asked. */
  kRange?: KRangeEntry[];
  /** The k with the best silhouette, and the elbow of the inertia curve, when `kRange` was asked. */
  suggestedK?: { silhouette: number | null; elbow: number | null };
  out?: string;
  files?: string[];
  workers: number;
  /** Milliseconds per stage and `total`. */
  timings: Record<string, number>;
}

/** Options of {@link fitSegments}. */
export interface FitSegmentsOptions extends CommonOptions, FitOptions {
  onIteration?: (info: IterationInfo) => void;
}

/** What {@link fitSegments} returns. */
export interface SegmentsFit {
  /** The model, with `features` `['purchases', 'total']` and `names`. */
  model: KMeansModel;
  /** Cluster of each user, in shared memory. */
  labels: Labels;
}

// ---------------------------------------------------------------------------------------------
// Naming, model use

/**
 * Name clusters by their centroid spend in original units: k = 3 gives High, Medium, Low; other k
 * give `Segment 1 (highest spend)`, `Segment 2`, ..., `Segment k (lowest spend)`, ranked by spend
 * (equal spend: the lower cluster index ranks first).
 *
 * @param centroidsOriginal Centroids in original units: k rows, or one row-major array of k x d.
 * @param k Clusters.
 * @param spendDim The feature index of spend (the total) within a row.
 * @returns The name of each cluster, by cluster index.
 */
export function nameSegments(centroidsOriginal: ArrayLike<number> | ReadonlyArray<ArrayLike<number>>, k: number, spendDim: number): string[] {
  const spend = (j: number): number => {
    const first = (centroidsOriginal as ArrayLike<unknown>)[0];
    if (typeof first === 'number') {
      const flat = centroidsOriginal as ArrayLike<number>;
      const d = flat.length / k;
      return flat[j * d + spendDim];
    }
    return (centroidsOriginal as ReadonlyArray<ArrayLike<number>>)[j][spendDim];
  };
  const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => spend(b) - spend(a) || a - b);
  const names = new Array<string>(k);
  order.forEach((cluster, rank) => {
    if (k === 3) names[cluster] = ['High', 'Medium', 'Low'][rank];
    else if (k > 1 && rank === 0) names[cluster] = 'Segment 1 (highest spend)';
    else if (k > 1 && rank === k - 1) names[cluster] = `Segment ${k} (lowest spend)`;
    else names[cluster] = `Segment ${rank + 1}`;
  });
  return names;
}

/**
 * Scale one row in original units with the model's scaler and return its nearest cluster: how a
 * new user is assigned in streaming.
 *
 * @param model A fitted model (from model.json).
 * @param row The features in original units, in `model.features` order.
 * @returns The cluster index.
 */
export function assignWithModel(model: KMeansModel, row: ArrayLike<number>): number {
  const d = model.features.length;
  const scaled = applyScaler(model.scaler, row, new Float64Array(d));
  return assignNearest(model.centroids.flat(), model.k, d, scaled);
}

function rows(flat: ArrayLike<number>, k: number, d: number): number[][] {
  return Array.from({ length: k }, (_, j) => Array.from({ length: d }, (_, t) => flat[j * d + t]));
}

// ---------------------------------------------------------------------------------------------
// fitSegments: the cluster step of `segment`

/**
 * Cluster users on (purchases, total): scale (log-zscore by default), fit, name the segments by
 * centroid total. The step `segment` runs after `aggregate`.
 *
 * @param purchases Purchases per user.
 * @param totals Total spend per user (same length).
 * @param options k (3), seed (42), restarts, iterations, tol, scale, pool or workers, signal.
 * @returns The model (with names) and each user's cluster.
 * @throws SegflowError ERR_TOO_FEW_POINTS when there are fewer users than k.
 */
export async function fitSegments(purchases: ArrayLike<number>, totals: ArrayLike<number>, options: FitSegmentsOptions = {}): Promise<SegmentsFit> {
  const n = purchases.length;
  if (totals.length !== n) throw new SegflowError('ERR_USAGE', `purchases (${n}) and totals (${totals.length}) differ in length`);
  const d = 2;
  const raw = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    raw[2 * i] = purchases[i];
    raw[2 * i + 1] = totals[i];
  }
  const settings = fitSettings(options, 'log-zscore');
  return withPool(options, n, settings.blockSize, async (pool) => {
    const { model, labels } = await fitModel(raw, n, ['purchases', 'total'], settings, pool, options);
    model.names = nameSegments(model.centroidsOriginal, model.k, 1);
    return { model, labels };
  });
}

interface FitSettings {
  k: number;
  seed: number;
  nInit: number;
  maxIter: number;
  tol: number;
  scale: ScaleMethod;
  blockSize: number;
  blocksPerTask?: number;
}

function fitSettings(o: Partial<FitSettings>, defaultScale: ScaleMethod): FitSettings {
  const k = o.k ?? 3;
  const nInit = o.nInit ?? 1;
  const maxIter = o.maxIter ?? 300;
  const blockSize = o.blockSize ?? DEFAULT_BLOCK_SIZE;
  positiveInteger('k', k);
  positiveInteger('nInit', nInit);
  positiveInteger('maxIter', maxIter);
  positiveInteger('blockSize', blockSize);
  if (o.blocksPerTask !== undefined) positiveInteger('blocksPerTask', o.blocksPerTask);
  const seed = o.seed ?? 42;
  if (!Number.isInteger(seed)) throw new SegflowError('ERR_USAGE', `seed must be an integer, got ${seed}`);
  const tol = o.tol ?? 1e-4;
  if (typeof tol !== 'number' || !(tol >= 0) || !Number.isFinite(tol)) throw new SegflowError('ERR_USAGE', `tol must be a number >= 0, got ${tol}`);
  return { k, seed, nInit, maxIter, tol, scale: parseScaleMethod(o.scale ?? defaultScale), blockSize, blocksPerTask: o.blocksPerTask };
}

function positiveInteger(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new SegflowError('ERR_USAGE', `${name} must be a positive integer, got ${String(v)}`);
}

/** Run `fn` with the caller's pool, a pool of our own (destroyed after), or none for one block. */
async function withPool<T>(o: CommonOptions, n: number, blockSize: number, fn: (pool: SegflowPool | undefined) => Promise<T>): Promise<T> {
  if (o.pool) return fn(o.pool);
  if (n <= blockSize) return fn(undefined); // one block runs inline; no threads to start
  const pool = new SegflowPool({ workers: o.workers });
  try {
    return await fn(pool);
  } finally {
    await pool.destroy();
  }
}

/** Scale raw points into shared memory, fit, and build the model. */
async function fitModel(
  raw: Float64Array, n: number, features: string[], s: FitSettings, pool: SegflowPool | undefined,
  o: { signal?: AbortSignal; onIteration?: (info: IterationInfo) => void },
): Promise<{ model: KMeansModel; labels: Labels; points: Float64Array }> {
  const d = features.length;
  if (n < s.k) throw new SegflowError('ERR_TOO_FEW_POINTS', `k = ${s.k} clusters need at least ${s.k} points, got ${n}`, { k: s.k, n });
  const points = new Float64Array(new SharedArrayBuffer(Math.max(8, n * d * 8)), 0, n * d);
  const scaler = fitApplyScaler(raw, n, d, s.scale, points);
  const fit = await fitKMeans(points, n, d, {
    k: s.k, seed: s.seed, nInit: s.nInit, maxIter: s.maxIter, tol: s.tol, pool,
    blockSize: s.blockSize, blocksPerTask: s.blocksPerTask, signal: o.signal, onIteration: o.onIteration,
  });
  const original = invertScaler(scaler, fit.centroids);
  const model: KMeansModel = {
    kind: 'segflow-kmeans',
    format: 1,
    features,
    k: s.k,
    scaler,
    centroids: rows(fit.centroids, s.k, d),
    centroidsOriginal: rows(original, s.k, d),
    sizes: fit.sizes,
    inertia: fit.inertia,
    iterations: fit.iterations,
    converged: fit.converged,
    seed: s.seed,
    nInit: s.nInit,
    maxIter: s.maxIter,
    tol: s.tol,
  };
  return { model, labels: fit.labels, points };
}

// ---------------------------------------------------------------------------------------------
// CSV: numeric columns by name

const LF = 10;
const CR = 13;
const QUOTE = 34;
const SPACE = 32;
const TAB = 9;

/** Field spans of one record: only the columns asked for (`slot` >= 0) are kept. */
interface Spans {
  start: Int32Array;
  end: Int32Array;
  /** 1 when the field was quoted (start/end exclude the quotes). */
  quoted: Uint8Array;
  /** Fields in the record. */
  count: number;
  /** Line ends in the record: its final one and any inside quoted fields. */
  lines: number;
}

/** What the record callback gets: the bytes, the kept spans, and the 1-based line of the record. */
type RecordFn = (buf: Buffer, spans: Spans, line: number) => void;

/** A file's header and the slot of each wanted column. */
interface FileColumns {
  header: string[];
  /** Column index per slot. */
  columns: number[];
}

/** Bytes read at a time. */
const WORK_BUFFER = 1 << 20;

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parse a decimal number from bytes `[s, e)` (spaces around allowed): exact (correctly rounded,
 * as `Number()`) through Clinger's fast path for up to 15 significant digits and powers of ten up
 * to 22, through `Number()` otherwise. NaN when the bytes are not a number.
 */
function parseNumber(buf: Buffer, s: number, e: number): number {
  while (s < e && (buf[s] === SPACE || buf[s] === TAB)) s++;
  while (e > s && (buf[e - 1] === SPACE || buf[e - 1] === TAB)) e--;
  if (s === e) return NaN;
  let i = s;
  let negative = false;
  if (buf[i] === 45 /* - */ || buf[i] === 43 /* + */) {
    negative = buf[i] === 45;
    i++;
  }
  let mantissa = 0;
  let digits = 0;
  let scale = 0;
  let seen = false;
  for (; i < e; i++) {
    const c = buf[i] - 48;
    if (c < 0 || c > 9) break;
    seen = true;
    if (digits > 0 || c !== 0) digits++;
    mantissa = mantissa * 10 + c;
  }
  if (i < e && buf[i] === 46 /* . */) {
    for (i++; i < e; i++) {
      const c = buf[i] - 48;
      if (c < 0 || c > 9) break;
      seen = true;
      if (digits > 0 || c !== 0) digits++;
      mantissa = mantissa * 10 + c;
      scale--;
    }
  }
  if (!seen) return NaN;
  if (i < e && (buf[i] === 101 || buf[i] === 69) /* e E */) return slowNumber(buf, s, e);
  if (i !== e) return NaN;
  if (digits > 15 || scale < -22) return slowNumber(buf, s, e);
  const v = scale === 0 ? mantissa : mantissa / POW10[-scale];
  return negative ? -v : v;
}

function slowNumber(buf: Buffer, s: number, e: number): number {
  const text = buf.toString('latin1', s, e);
  return NUMBER_TEXT.test(text) ? Number(text) : NaN;
}

/** The delimiter byte: given, or the most frequent of , ; tab | in the header line (default ,). */
function delimiterByte(given: string | undefined, headerLine: Buffer): number {
  if (given !== undefined) {
    if (given === 'tab' || given === '\\t') return TAB;
    if (given.length !== 1 || given.charCodeAt(0) > 127 || given === '"' || given === '\n' || given === '\r') {
      throw new SegflowError('ERR_USAGE', `delimiter must be one ASCII character or "tab", got ${JSON.stringify(given)}`);
    }
    return given.charCodeAt(0);
  }
  let best = 44;
  let bestCount = 0;
  for (const c of [44, 59, TAB, 124]) {
    let count = 0;
    let quoted = false;
    for (const b of headerLine) {
      if (b === QUOTE) quoted = !quoted;
      else if (b === c && !quoted) count++;
    }
    if (count > bestCount) {
      best = c;
      bestCount = count;
    }
  }
  return best;
}

/**
 * Stream one CSV file (RFC 4180 quoting, CRLF or LF, BOM, empty lines skipped, `.gz` inflated)
 * and call `onRecord` for each data record with the spans of the wanted columns.
 */
async function scanCsv(
  file: string, delimiter: string | undefined, want: (header: string[]) => number[], onRecord: RecordFn,
  onBytes: (bytes: number) => void, signal: AbortSignal | undefined,
): Promise<FileColumns> {
  let line = 1;
  let delim = -1;
  let columns: number[] | undefined;
  let header: string[] | undefined;
  let slotOf = new Int32Array(0);
  let spans: Spans = { start: new Int32Array(0), end: new Int32Array(0), quoted: new Uint8Array(0), count: 0, lines: 0 };
  let first = true;

  const handle = (buf: Buffer, final: boolean): number => {
    let pos = 0;
    if (first) {
      if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = 3;
      else if (buf.length < 3 && !final) return 0;
      first = false;
    }
    while (pos < buf.length) {
      if (header === undefined) {
        const nl = buf.indexOf(LF, pos);
        if (nl < 0 && !final) return pos;
        delim = delimiterByte(delimiter, buf.subarray(pos, nl < 0 ? buf.length : nl));
        const all: Spans = { start: new Int32Array(4096), end: new Int32Array(4096), quoted: new Uint8Array(4096), count: 0, lines: 0 };
        const slots = new Int32Array(4096).map((_, i) => i);
        const next = parseRecord(buf, pos, final, delim, slots, all);
        if (next < 0) return pos;
        line += all.lines;
        const names: string[] = [];
        for (let f = 0; f < Math.min(all.count, 4096); f++) names.push(unquote(buf, all.start[f], all.end[f], all.quoted[f] === 1).trim());
        if (names.length === 1 && names[0] === '') {
          pos = next; // empty line before the header
          continue;
        }
        header = names;
        columns = want(header);
        slotOf = new Int32Array(Math.max(...columns) + 1).fill(-1);
        columns.forEach((c, slot) => {
          if (slotOf[c] < 0) slotOf[c] = slot;
        });
        spans = { start: new Int32Array(columns.length), end: new Int32Array(columns.length), quoted: new Uint8Array(columns.length), count: 0, lines: 0 };
        pos = next;
        continue;
      }
      const next = parseRecord(buf, pos, final, delim, slotOf, spans);
      if (next < 0) return pos;
      const recordLine = line;
      line += spans.lines;
      // an empty line: one empty field
      if (!(spans.count === 1 && isBlank(buf, pos, next))) onRecord(buf, spans, recordLine);
      pos = next;
    }
    return pos;
  };

  // One work buffer, reused: fresh 4 MiB chunks (read streams, Buffer.concat) cost 30 ms each in
  // page faults on our VMs, more than parsing them (profiled). Records cut by the buffer's end
  // move to its front; a record longer than the buffer doubles it.
  let work = Buffer.allocUnsafe(WORK_BUFFER);
  let have = 0;
  const consume = (final: boolean): void => {
    const used = handle(work.subarray(0, have), final);
    work.copyWithin(0, used, have);
    have -= used;
    if (have === work.length) {
      const bigger = Buffer.allocUnsafe(work.length * 2);
      work.copy(bigger, 0, 0, have);
      work = bigger;
    }
  };
  const aborted = (): SegflowError => new SegflowError('ERR_ABORTED', 'the job was aborted');
  if (/\.gz$/i.test(file)) {
    const stream = fs.createReadStream(file).pipe(zlib.createGunzip());
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (signal?.aborted) {
        stream.destroy();
        throw aborted();
      }
      for (let off = 0; off < chunk.length;) {
        const copied = chunk.copy(work, have, off);
        have += copied;
        off += copied;
        if (have === work.length) consume(false);
      }
    }
    onBytes(fs.statSync(file).size);
  } else {
    const fh = await fs.promises.open(file, 'r');
    try {
      for (;;) {
        if (signal?.aborted) throw aborted();
        const { bytesRead } = await fh.read(work, have, work.length - have, null);
        if (bytesRead === 0) break;
        have += bytesRead;
        onBytes(bytesRead);
        consume(false);
      }
    } finally {
      await fh.close();
    }
  }
  consume(true);
  if (header === undefined || columns === undefined) throw new SegflowError('ERR_BAD_INPUT', `${file}: no header row`, { file });
  // wanted columns are resolved once the header is read
  return { header, columns };
}

function isBlank(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (buf[i] !== LF && buf[i] !== CR) return false;
  return true;
}

function unquote(buf: Buffer, s: number, e: number, quoted: boolean): string {
  const text = buf.toString('utf8', s, e);
  return quoted ? text.replace(/""/g, '"') : text;
}

/**
 * Parse one record starting at `pos`. Keeps the spans of fields whose `slotOf[field] >= 0`.
 *
 * @returns The position after the record's line end, or -1 when the buffer ends inside the record
 *   and more bytes may come (`final` false).
 */
function parseRecord(buf: Buffer, pos: number, final: boolean, delim: number, slotOf: Int32Array, spans: Spans): number {
  const len = buf.length;
  let i = pos;
  let field = 0;
  let newlines = 0;
  for (;;) {
    let s = i;
    let e: number;
    let quoted = 0;
    if (i < len && buf[i] === QUOTE) {
      quoted = 1;
      s = ++i;
      for (;;) {
        if (i >= len) {
          if (!final) return -1;
          e = i; // unterminated quote at the end of the file: take what is there
          break;
        }
        if (buf[i] === LF) newlines++;
        if (buf[i] === QUOTE) {
          if (i + 1 >= len && !final) return -1;
          if (buf[i + 1] === QUOTE) {
            i += 2;
            continue;
          }
          e = i++;
          break;
        }
        i++;
      }
      // bytes between the closing quote and the delimiter are ignored
      while (i < len && buf[i] !== delim && buf[i] !== LF) i++;
      if (i >= len && !final) return -1;
    } else {
      while (i < len && buf[i] !== delim && buf[i] !== LF) i++;
      if (i >= len && !final) return -1;
      e = i;
      if (e > s && buf[e - 1] === CR) e--;
    }
    if (field < slotOf.length) {
      const slot = slotOf[field];
      if (slot >= 0) {
        spans.start[slot] = s;
        spans.end[slot] = e;
        spans.quoted[slot] = quoted;
      }
    }
    field++;
    if (i < len && buf[i] === delim) {
      i++;
      continue;
    }
    spans.count = field;
    spans.lines = newlines + (i < len ? 1 : 0);
    return i < len ? i + 1 : i; // past the LF
  }
}

/** Find a column: exact name first, then ignoring case and spaces around. -1 when absent. */
function findColumn(header: string[], name: string): number {
  const exact = header.indexOf(name);
  if (exact >= 0) return exact;
  const want = name.trim().toLowerCase();
  return header.findIndex((h) => h.trim().toLowerCase() === want);
}

function parseFeatures(features: string | string[] | undefined): string[] {
  const list = (Array.isArray(features) ? features : String(features ?? '').split(',')).map((f) => f.trim()).filter((f) => f !== '');
  if (list.length === 0) throw new SegflowError('ERR_USAGE', '--features must name at least one numeric column, e.g. --features purchases,total');
  if (new Set(list).size !== list.length) throw new SegflowError('ERR_USAGE', `--features names a column twice: ${list.join(',')}`);
  return list;
}

/**
 * Parse `--k-range`: `'a..b'` (or `'a-b'`), a list `'2,3,5'`, or `[a, b]` as a range.
 *
 * @param value The flag value.
 * @returns The k values, ascending, without duplicates.
 * @throws SegflowError ERR_USAGE when it is not a range of positive integers.
 */
export function parseKRange(value: string | number[]): number[] {
  let ks: number[];
  if (Array.isArray(value)) {
    if (value.length !== 2) throw new SegflowError('ERR_USAGE', `kRange as an array must be [from, to], got ${JSON.stringify(value)}`);
    ks = span(value[0], value[1]);
  } else {
    const m = /^\s*(\d+)\s*(?:\.\.|-)\s*(\d+)\s*$/.exec(value);
    if (m) ks = span(Number(m[1]), Number(m[2]));
    else if (/^\s*\d+(\s*,\s*\d+)*\s*$/.test(value)) ks = value.split(',').map((x) => Number(x.trim()));
    else throw new SegflowError('ERR_USAGE', `--k-range must look like 2..8 or 2,3,5, got ${JSON.stringify(value)}`);
  }
  for (const k of ks) positiveInteger('k in --k-range', k);
  return [...new Set(ks)].sort((a, b) => a - b);
}

function span(a: number, b: number): number[] {
  positiveInteger('--k-range start', a);
  positiveInteger('--k-range end', b);
  if (b < a) throw new SegflowError('ERR_USAGE', `--k-range ${a}..${b} is empty`);
  if (b - a > 1000) throw new SegflowError('ERR_USAGE', `--k-range ${a}..${b} is too wide`);
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/**
 * The elbow of an inertia curve: the inner k after which the curve flattens most, i.e. with the
 * largest ratio of the drop into k to the drop out of k. (The distance-below-the-chord rule picks
 * k = 2 whenever the first drop dominates, as it does on log-scaled spend tiers.)
 */
function elbowOf(entries: KRangeEntry[]): number | null {
  let best: number | null = null;
  let bestRatio = 1;
  for (let i = 1; i + 1 < entries.length; i++) {
    const into = entries[i - 1].inertia - entries[i].inertia;
    const out = Math.max(entries[i].inertia - entries[i + 1].inertia, 1e-12 * entries[0].inertia);
    const ratio = into / out;
    if (ratio > bestRatio) {
      bestRatio = ratio;
      best = entries[i].k;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// The job

/**
 * `segflow kmeans`: cluster the rows of CSV files on numeric columns.
 *
 * @param options The `segflow kmeans` flags in camelCase, plus `pool`, `signal`, `onProgress`.
 * @returns The object `--json` prints: inertia (scaled space), iterations, centroids (scaled and
 *   original units), sizes, the scaler, and the k-range results when asked.
 * @throws SegflowError ERR_USAGE (bad options), ERR_INPUT_NOT_FOUND, ERR_COLUMN (a feature or id
 *   column not in a header; the message lists the header), ERR_BAD_INPUT (a value that is not a
 *   number, as file:line:column), ERR_TOO_FEW_POINTS (k larger than the rows), ERR_OUT_EXISTS,
 *   ERR_ABORTED.
 */
export async function kmeans(options: KMeansJobOptions): Promise<KMeansJobResult> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const features = parseFeatures(options.features);
  const settings = fitSettings(options, 'zscore');
  const ks = options.kRange !== undefined ? parseKRange(options.kRange) : undefined;
  const silhouetteSample = options.silhouetteSample ?? 10_000;
  positiveInteger('silhouetteSample', silhouetteSample);
  const files = resolveInputs(options.input);
  if (options.out) OutputDir.check(path.resolve(options.out), !!options.force);
  const d = features.length;
  const progress = progressFn(options.onProgress, t0);

  // read
  const totalBytes = files.reduce((sum, f) => sum + fs.statSync(f).size, 0);
  let bytes = 0;
  let raw = new Float64Array(1 << 16);
  let n = 0;
  let idCol = options.idCol;
  for (const file of files) {
    let columns: number[] = [];
    let need = 0;
    const { header } = await scanCsv(
      file, options.delimiter,
      (h) => {
        columns = features.map((f) => {
          const c = findColumn(h, f);
          if (c < 0) throw columnError(file, f, h, 'feature');
          return c;
        });
        const id = idCol === undefined ? 0 : findColumn(h, idCol);
        if (id < 0) throw columnError(file, idCol as string, h, 'id');
        need = Math.max(id, ...columns) + 1;
        return [...columns, id];
      },
      (buf, spans, line) => {
        if (spans.count < need) throw fieldCountError(file, line, spans.count, need);
        if (raw.length < (n + 1) * d) {
          const grown = new Float64Array(raw.length * 2);
          grown.set(raw);
          raw = grown;
        }
        for (let t = 0; t < d; t++) {
          const v = parseNumber(buf, spans.start[t], spans.end[t]);
          if (!Number.isFinite(v)) throw valueError(file, line, columns[t] + 1, features[t], buf, spans.start[t], spans.end[t]);
          raw[n * d + t] = v;
        }
        n++;
      },
      (b) => {
        bytes += b;
        progress({ stage: 'scan', bytes, totalBytes, records: n, done: 0, total: files.length });
      },
      options.signal,
    );
    if (idCol === undefined) idCol = header[0];
  }
  timings.read = performance.now() - t0;
  if (n < settings.k) throw new SegflowError('ERR_TOO_FEW_POINTS', `k = ${settings.k} clusters need at least ${settings.k} rows, got ${n}`, { k: settings.k, n });
  if (ks && ks[ks.length - 1] > n) throw new SegflowError('ERR_TOO_FEW_POINTS', `--k-range up to ${ks[ks.length - 1]} needs at least that many rows, got ${n}`, { k: ks[ks.length - 1], n });

  return withPool(options, n, settings.blockSize, async (pool) => {
    const tFit = performance.now();
    const onIteration = (info: IterationInfo): void => progress({ stage: 'cluster', bytes, totalBytes, records: n, done: info.iteration, total: settings.maxIter });
    const { model, labels, points } = await fitModel(raw, n, features, settings, pool, { signal: options.signal, onIteration });
    timings.fit = performance.now() - tFit;

    let kRange: KRangeEntry[] | undefined;
    let suggestedK: KMeansJobResult['suggestedK'];
    if (ks) {
      const tRange = performance.now();
      kRange = [];
      for (const k of ks) {
        const fit = k === settings.k
          ? { inertia: model.inertia, iterations: model.iterations, converged: model.converged, sizes: model.sizes, labels }
          : await fitKMeans(points, n, d, { ...settings, k, pool, signal: options.signal });
        const sil = k > 1 ? silhouetteScore(points, n, d, fit.labels, k, { sampleSize: silhouetteSample, seed: settings.seed }) : NaN;
        kRange.push({ k, inertia: fit.inertia, iterations: fit.iterations, converged: fit.converged, sizes: fit.sizes, silhouette: Number.isFinite(sil) ? sil : null });
      }
      let bySil: number | null = null;
      let bestSil = -Infinity;
      for (const e of kRange) {
        if (e.silhouette !== null && e.silhouette > bestSil) {
          bestSil = e.silhouette;
          bySil = e.k;
        }
      }
      suggestedK = { silhouette: bySil, elbow: elbowOf(kRange) };
      timings.kRange = performance.now() - tRange;
    }

    let written: string[] | undefined;
    if (options.out) {
      const tWrite = performance.now();
      written = await writeOutputs(options, files, features, idCol as string, model, labels);
      timings.write = performance.now() - tWrite;
    }
    timings.total = performance.now() - t0;
    const result: KMeansJobResult = {
      command: 'kmeans',
      version: VERSION,
      inputs: files,
      features,
      idCol: idCol as string,
      n,
      k: settings.k,
      seed: settings.seed,
      nInit: settings.nInit,
      maxIter: settings.maxIter,
      tol: settings.tol,
      scale: settings.scale,
      scaler: model.scaler,
      inertia: model.inertia,
      iterations: model.iterations,
      converged: model.converged,
      sizes: model.sizes,
      centroids: model.centroids,
      centroidsOriginal: model.centroidsOriginal,
      ...(kRange ? { kRange, suggestedK } : {}),
      ...(options.out ? { out: path.resolve(options.out), files: written } : {}),
      workers: pool?.workers ?? 1,
      timings: Object.fromEntries(Object.entries(timings).map(([key, v]) => [key, Math.round(v * 10) / 10])),
    };
    return result;
  });

}

function progressFn(onProgress: ((e: ProgressEvent) => void) | undefined, t0: number) {
  let last = 0;
  return (e: Omit<ProgressEvent, 'rejects' | 'elapsedMs'>): void => {
    if (!onProgress) return;
    const now = performance.now();
    if (now - last < 50 && e.stage === 'scan') return;
    last = now;
    onProgress({ ...e, rejects: 0, elapsedMs: Math.round(now - t0) });
  };
}

function columnError(file: string, name: string, header: string[], what: 'feature' | 'id'): SegflowError {
  return new SegflowError('ERR_COLUMN', `${file}: no ${what} column "${name}"; the header has: ${header.join(', ')}`, { file, column: name, header });
}

function fieldCountError(file: string, line: number, count: number, need: number): SegflowError {
  return new SegflowError('ERR_BAD_INPUT', `${file}:${line}: the row has ${count} fields; the columns asked for need ${need}`, { file, line });
}

function valueError(file: string, line: number, column: number, name: string, buf: Buffer, s: number, e: number): SegflowError {
  const text = buf.toString('utf8', s, Math.min(e, s + 60));
  return new SegflowError('ERR_BAD_INPUT', `${file}:${line}:${column}: column "${name}" holds ${JSON.stringify(text)}, not a number`, { file, line, column, name, text });
}

/** Write assignments.csv (a second pass over the inputs, in input order) and model.json. */
async function writeOutputs(
  options: KMeansJobOptions, files: string[], features: string[], idCol: string, model: KMeansModel, labels: Labels,
): Promise<string[]> {
  const dir = OutputDir.create(options.out as string, !!options.force);
  try {
    const fd = fs.openSync(dir.file('assignments.csv'), 'w');
    try {
      const out = Buffer.allocUnsafe(1 << 20);
      let used = 0;
      const flush = (): void => {
        let off = 0;
        while (off < used) off += fs.writeSync(fd, out, off, used - off);
        used = 0;
      };
      const put = (src: Buffer, s: number, e: number): void => {
        if (used + (e - s) > out.length) flush();
        if (e - s > out.length) {
          fs.writeSync(fd, src, s, e - s);
          return;
        }
        if (e - s > 64) {
          used += src.copy(out, used, s, e);
          return;
        }
        // fields are short: a byte loop beats Buffer#copy's per-call cost (0.8 s per 2M rows, profiled)
        for (let i = s; i < e; i++) out[used++] = src[i];
      };
      const headerLine = Buffer.from([idCol, ...features, 'cluster'].map(csvField).join(',') + '\n');
      put(headerLine, 0, headerLine.length);
      const tails = Array.from({ length: model.k }, (_, j) => Buffer.from(`,${j}\n`));
      const comma = Buffer.from(',');
      let row = 0;
      for (const file of files) {
        await scanCsv(
          file, options.delimiter,
          (h) => [findColumn(h, idCol) >= 0 ? findColumn(h, idCol) : 0, ...features.map((f) => findColumn(h, f))],
          (buf, spans) => {
            if (row >= labels.length) throw changedError(files);
            for (let slot = 0; slot <= features.length; slot++) {
              if (slot > 0) put(comma, 0, 1);
              // the field as written, quotes included
              const q = spans.quoted[slot];
              put(buf, spans.start[slot] - q, spans.end[slot] + q);
            }
            const tail = tails[labels[row++]];
            put(tail, 0, tail.length);
          },
          () => {},
          options.signal,
        );
      }
      flush();
      if (row !== labels.length) throw changedError(files);
    } finally {
      fs.closeSync(fd);
    }
    fs.writeFileSync(dir.file('model.json'), JSON.stringify(model, null, 2) + '\n');
    dir.commit();
  } catch (err) {
    dir.discard();
    throw err;
  }
  return ['assignments.csv', 'model.json'];
}

function changedError(files: string[]): SegflowError {
  return new SegflowError('ERR_BAD_INPUT', `the input changed while the job ran: ${files.join(', ')}`);
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
