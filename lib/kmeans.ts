/**
 * k-means over points in a SharedArrayBuffer (n x d float64, row-major), on the worker pool.
 *
 * - Initialisation: seeded greedy k-means++ (`2 + floor(ln k)` candidates per step, the candidate
 *   that lowers the potential most wins), as scikit-learn's `_kmeans_plusplus`.
 * - Lloyd iterations, scikit-learn's `_kmeans_single_lloyd` step for step: assignment, empty
 *   clusters re-seeded from the farthest points, new centres, strict convergence when no label
 *   changed, else `sum of squared centre shifts <= tol * mean feature variance`, and a last
 *   assignment so that labels and inertia belong to the final centres.
 *
 * Determinism: every pass over the points runs over FIXED blocks of `blockSize` points (independent
 * of the worker count). A block writes its labels into a shared labels array and its partials
 * (inertia, changed flag, counts, coordinate sums, k-means++ potentials) into its own slot of a
 * shared partials array; the coordinator reduces the slots in block order. Pool tasks only decide
 * which worker runs which contiguous run of blocks, so centroids, labels and inertia are
 * bit-identical for any `--workers` and any blocks per task, and equal to the inline run. Labels
 * are double-buffered (a pass reads the previous labels from one array and writes the new ones to
 * the other), so a task is a pure function of its inputs: a task retried after a worker died
 * computes the same labels and the same "changed" flag.
 *
 * Speed: the assignment kernel for d = 2, k = 3 (the segment job) decides the argmin with integer
 * masks instead of branches: on log1p features the nearest centre changes unpredictably from point
 * to point, and a mispredicted branch per point cost 2.8x (27 ms vs 9.5 ms per 2M points on one
 * core, measured). Sums are accumulated in registers through the masks (adding 0 * x leaves a sum
 * unchanged, so the result equals the branchy sum bit for bit). Other shapes use a generic kernel
 * with an arithmetic select, 2x faster than the branchy loop at k = 3..5.
 */
import { SegflowError } from './errors.js';
import type { SegflowPool } from './pool.js';

/** Points per block unless told otherwise. Fixed: it must not depend on the worker count. */
export const DEFAULT_BLOCK_SIZE = 65536;

/** The per-block passes a pool task can run. */
export type BlockOp = 'assign' | 'kpp-seed' | 'kpp-pots' | 'moments';

/**
 * The payload of one `kmeans-assign` task: a contiguous run of blocks `[firstBlock, endBlock)` and
 * the shared buffers. Plain data: SharedArrayBuffers cross to the worker without copying.
 */
export interface BlockTask {
  op: BlockOp;
  n: number;
  d: number;
  k: number;
  blockSize: number;
  firstBlock: number;
  endBlock: number;
  /** Float64 slots per block in `partials`. */
  stride: number;
  /** Centres the op reads from `centers`: k for assign, 1 for kpp-seed, the chosen ones for kpp-pots. */
  centerCount: number;
  /** kpp-pots: candidate rows in `centers` after the chosen ones. */
  candidates: number;
  points: SharedArrayBuffer;
  /** Byte offset of the first point in `points`. */
  pointsOffset: number;
  /** Labels this pass writes. */
  labels: SharedArrayBuffer;
  /** Labels of the previous pass (read only: they decide the "changed" flag). */
  previous: SharedArrayBuffer;
  /** 1 (Uint8Array, k <= 256) or 4 (Int32Array). */
  labelBytes: 1 | 4;
  centers: SharedArrayBuffer;
  partials: SharedArrayBuffer;
}

/** Typed views over the shared buffers, as the kernels use them. */
export interface BlockViews {
  points: Float64Array;
  labels: Labels;
  previous: Labels;
  centers: Float64Array;
  partials: Float64Array;
}

/** Labels, as one byte per point when k <= 256. */
export type Labels = Uint8Array | Int32Array;

/** What {@link KMeansOptions.onIteration} receives after each Lloyd iteration. */
export interface IterationInfo {
  /** 0-based restart (n-init). */
  restart: number;
  /** 1-based iteration within the restart. */
  iteration: number;
  /** Inertia of this iteration's assignment (against the centres it started from). */
  inertia: number;
  /** Sum of squared centre shifts. */
  shift: number;
  /** Whether any label changed. */
  changed: boolean;
}

/** Options of {@link fitKMeans}. */
export interface KMeansOptions {
  /** Clusters. */
  k: number;
  /** Seed of the k-means++ draws (default 42). */
  seed?: number;
  /** Restarts; the lowest inertia wins, the first one on ties (default 1). */
  nInit?: number;
  /** Lloyd iterations per restart (default 300). */
  maxIter?: number;
  /** scikit-learn's tol: relative to the mean feature variance (default 1e-4; 0 runs to strict convergence). */
  tol?: number;
  /** Initial centres (k x d, row-major) instead of k-means++; forces one restart, as scikit-learn. */
  init?: ArrayLike<number>;
  /** Run the block passes on this pool (default: inline on the calling thread). */
  pool?: SegflowPool;
  /** Points per block (default {@link DEFAULT_BLOCK_SIZE}). Results depend on it; not on workers. */
  blockSize?: number;
  /** Blocks per pool task (default: the blocks split evenly, one task per worker). */
  blocksPerTask?: number;
  signal?: AbortSignal;
  onIteration?: (info: IterationInfo) => void;
}

/** The result of {@link fitKMeans}. */
export interface KMeansResult {
  /** k x d, row-major, in the space of the points. */
  centroids: Float64Array;
  /** Cluster of each point, in shared memory. */
  labels: Labels;
  /** Sum of squared distances of the points to their centroids, after the last assignment. */
  inertia: number;
  /** Lloyd iterations of the winning restart. */
  iterations: number;
  /** Points per cluster. */
  sizes: number[];
  /** The winning restart stopped on strict or tol convergence (not on maxIter). */
  converged: boolean;
  /** Inertia and iterations of each restart. */
  restarts: { inertia: number; iterations: number; converged: boolean }[];
}

// ---------------------------------------------------------------------------------------------
// Seeded random numbers

/**
 * xoshiro128** seeded through splitmix32: small, fast, and the same stream on every platform.
 * Doubles take 53 random bits.
 */
export class SeededRandom {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * @param seed Any integer (up to 2^53 in magnitude) or a list of integers mixed in order.
   */
  constructor(seed: number | readonly number[]) {
    let s = 0x9e3779b9;
    const parts = typeof seed === 'number' ? [seed] : seed;
    for (const part of parts) {
      const lo = part >>> 0;
      const hi = Math.floor(part / 4294967296) >>> 0;
      s = splitmix32(s ^ lo);
      s = splitmix32(s ^ hi);
    }
    this.#a = s = splitmix32(s);
    this.#b = s = splitmix32(s);
    this.#c = s = splitmix32(s);
    this.#d = splitmix32(s);
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /** @returns A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** @returns A uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /**
   * @param n Upper bound (exclusive), a positive integer below 2^53.
   * @returns A uniform integer in [0, n).
   */
  nextInt(n: number): number {
    return Math.floor(this.nextDouble() * n);
  }
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Kernels: one block at a time. Partials of the assign op at slot o:
//   [o] inertia, [o+1] 1 when a label changed, [o+2 .. o+2+k) counts, then k*d coordinate sums.

const P_INERTIA = 0;
const P_CHANGED = 1;
const P_COUNTS = 2;

/** Float64 slots per block in the partials of an assign pass. */
function assignStride(k: number, d: number): number {
  return P_COUNTS + k + k * d;
}

/**
 * The k-means++ candidates per step: scikit-learn's `2 + int(np.log(k))`.
 *
 * @param k Clusters.
 * @returns Candidates drawn per step.
 */
export function kppCandidates(k: number): number {
  return 2 + Math.floor(Math.log(k));
}

/**
 * Assign points [start, end) for d = 2, k = 3 without data-dependent branches. The pairwise
 * comparisons give integer masks (strict `<`, so the first of equal centres wins, as argmin);
 * the masks select the distance and feed the sums.
 */
function assignD2K3(P: Float64Array, L: Uint8Array, prev: Uint8Array, C: Float64Array, start: number, end: number, out: Float64Array, o: number): void {
  const c00 = C[0], c01 = C[1], c10 = C[2], c11 = C[3], c20 = C[4], c21 = C[5];
  let n1 = 0, n2 = 0;
  let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0;
  let inertia = 0;
  let changed = 0;
  for (let i = start, p = 2 * start; i < end; i++, p += 2) {
    const x0 = P[p];
    const x1 = P[p + 1];
    let a = x0 - c00;
    let b = x1 - c01;
    const d0 = a * a + b * b;
    a = x0 - c10;
    b = x1 - c11;
    const d1 = a * a + b * b;
    a = x0 - c20;
    b = x1 - c21;
    const d2 = a * a + b * b;
    const b10 = +(d1 < d0);
    const b20 = +(d2 < d0);
    const b21 = +(d2 < d1);
    const m2 = b20 & b21;
    const m1 = b10 & (b21 ^ 1);
    const m0 = 1 - m1 - m2;
    const lab = m1 + (m2 << 1);
    changed |= prev[i] ^ lab;
    L[i] = lab;
    n1 += m1;
    n2 += m2;
    s00 += m0 * x0;
    s01 += m0 * x1;
    s10 += m1 * x0;
    s11 += m1 * x1;
    s20 += m2 * x0;
    s21 += m2 * x1;
    inertia += m0 * d0 + m1 * d1 + m2 * d2;
  }
  out[o + P_INERTIA] = inertia;
  out[o + P_CHANGED] = changed !== 0 ? 1 : 0;
  out[o + P_COUNTS] = end - start - n1 - n2;
  out[o + P_COUNTS + 1] = n1;
  out[o + P_COUNTS + 2] = n2;
  out[o + 5] = s00;
  out[o + 6] = s01;
  out[o + 7] = s10;
  out[o + 8] = s11;
  out[o + 9] = s20;
  out[o + 10] = s21;
}

/**
 * Assign points [start, end) for any d and k. The running minimum uses an arithmetic select
 * (`f * dj + (1 - f) * best` is exact: one term is 0) and an integer mask for the label.
 * `acc` holds k * (d + 1) doubles: per cluster a count and d sums.
 */
function assignGeneric(
  P: Float64Array, L: Labels, prev: Labels, C: Float64Array, d: number, k: number,
  start: number, end: number, out: Float64Array, o: number, acc: Float64Array,
): void {
  acc.fill(0);
  let inertia = 0;
  let changed = 0;
  const w = d + 1;
  for (let i = start, p = start * d; i < end; i++, p += d) {
    let best = 0;
    for (let t = 0; t < d; t++) {
      const a = P[p + t] - C[t];
      best += a * a;
    }
    let lab = 0;
    for (let j = 1, c = d; j < k; j++, c += d) {
      let dj = 0;
      for (let t = 0; t < d; t++) {
        const a = P[p + t] - C[c + t];
        dj += a * a;
      }
      const f = +(dj < best);
      lab += (j - lab) & -f;
      best = f * dj + (1 - f) * best;
    }
    changed |= prev[i] ^ lab;
    L[i] = lab;
    inertia += best;
    const q = lab * w;
    acc[q] += 1;
    for (let t = 0; t < d; t++) acc[q + 1 + t] += P[p + t];
  }
  out[o + P_INERTIA] = inertia;
  out[o + P_CHANGED] = changed !== 0 ? 1 : 0;
  for (let j = 0; j < k; j++) {
    out[o + P_COUNTS + j] = acc[j * w];
    for (let t = 0; t < d; t++) out[o + P_COUNTS + k + j * d + t] = acc[j * w + 1 + t];
  }
}

/** Squared distance from point row p to centre row c, for the kernels. Same operation order as assign. */
function sqDist(P: Float64Array, p: number, C: Float64Array, c: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) {
    const a = P[p + t] - C[c + t];
    s += a * a;
  }
  return s;
}

/**
 * The same distance for callers off the hot path (plain arrays too): kept apart so that the
 * kernels' call sites stay monomorphic on Float64Array.
 */
function rowDist(P: ArrayLike<number>, p: number, C: ArrayLike<number>, c: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) {
    const a = P[p + t] - C[c + t];
    s += a * a;
  }
  return s;
}

// k-means++ keeps no per-point state: a pass recomputes each point's distance to the chosen
// centres (k is small) instead of reading an n-double array, which saves 16 MB per 2M points and
// a pass per step (the "update" pass), and first-touch page faults cost ~30 us per page on our VMs.

/** kpp-seed for d = 2: block sum of the squared distance to centre 0 (inlined: 5x the generic loop). */
function kppSeedD2(P: Float64Array, C: Float64Array, start: number, end: number, out: Float64Array, o: number): void {
  const c0 = C[0];
  const c1 = C[1];
  let sum = 0;
  for (let i = start, p = 2 * start; i < end; i++, p += 2) {
    const a = P[p] - c0;
    const b = P[p + 1] - c1;
    sum += a * a + b * b;
  }
  out[o] = sum;
}

/**
 * kpp-pots for d = 2: per candidate l, the block sum of min(distance to the nearest of the `chosen`
 * centres, distance to candidate l). Centres are rows [0, chosen), candidates the `nc` rows after.
 * Minima by arithmetic select (exact): the same doubles as {@link closestDistance}. Up to four
 * candidates (k < 55) accumulate in registers: sums kept in an array chain each add through
 * memory, 2x slower (measured).
 */
function kppPotsD2(
  P: Float64Array, C: Float64Array, chosen: number, nc: number, start: number, end: number,
  out: Float64Array, o: number, acc: Float64Array,
): void {
  if (nc > 4) {
    kppPots(P, C, 2, chosen, nc, start, end, out, o, acc);
    return;
  }
  const q = 2 * chosen;
  // unused candidate slots repeat the first one; they are not computed
  const e00 = C[q], e01 = C[q + 1];
  const e10 = nc > 1 ? C[q + 2] : e00, e11 = nc > 1 ? C[q + 3] : e01;
  const e20 = nc > 2 ? C[q + 4] : e00, e21 = nc > 2 ? C[q + 5] : e01;
  const e30 = nc > 3 ? C[q + 6] : e00, e31 = nc > 3 ? C[q + 7] : e01;
  const c00 = C[0], c01 = C[1];
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (let i = start, p = 2 * start; i < end; i++, p += 2) {
    const x0 = P[p];
    const x1 = P[p + 1];
    let a = x0 - c00;
    let b = x1 - c01;
    let cur = a * a + b * b;
    for (let c = 2; c < q; c += 2) {
      a = x0 - C[c];
      b = x1 - C[c + 1];
      const v = a * a + b * b;
      const f = +(v < cur);
      cur = f * v + (1 - f) * cur;
    }
    a = x0 - e00;
    b = x1 - e01;
    let v = a * a + b * b;
    let f = +(v < cur);
    s0 += f * v + (1 - f) * cur;
    a = x0 - e10;
    b = x1 - e11;
    v = a * a + b * b;
    f = +(v < cur);
    s1 += f * v + (1 - f) * cur;
    // nc is fixed for the call: these branches are always predicted
    if (nc > 2) {
      a = x0 - e20;
      b = x1 - e21;
      v = a * a + b * b;
      f = +(v < cur);
      s2 += f * v + (1 - f) * cur;
      if (nc > 3) {
        a = x0 - e30;
        b = x1 - e31;
        v = a * a + b * b;
        f = +(v < cur);
        s3 += f * v + (1 - f) * cur;
      }
    }
  }
  out[o] = s0;
  if (nc > 1) out[o + 1] = s1;
  if (nc > 2) out[o + 2] = s2;
  if (nc > 3) out[o + 3] = s3;
}

/**
 * moments for d = 2: the block's mean and sum of squared deviations per feature, in two passes over
 * the block (in cache), for {@link KMeansRunner.meanVariance} to merge with Chan's formula.
 * Partials: [mean_0, mean_1, m2_0, m2_1].
 */
function momentsD2(P: Float64Array, start: number, end: number, out: Float64Array, o: number): void {
  let s0 = 0;
  let s1 = 0;
  for (let p = 2 * start, e = 2 * end; p < e; p += 2) {
    s0 += P[p];
    s1 += P[p + 1];
  }
  const m = end - start;
  const mean0 = s0 / m;
  const mean1 = s1 / m;
  let q0 = 0;
  let q1 = 0;
  for (let p = 2 * start, e = 2 * end; p < e; p += 2) {
    const a = P[p] - mean0;
    const b = P[p + 1] - mean1;
    q0 += a * a;
    q1 += b * b;
  }
  out[o] = mean0;
  out[o + 1] = mean1;
  out[o + 2] = q0;
  out[o + 3] = q1;
}

/** moments for any d: partials [mean_0..mean_d-1, m2_0..m2_d-1]. */
function moments(P: Float64Array, d: number, start: number, end: number, out: Float64Array, o: number, acc: Float64Array): void {
  for (let t = 0; t < d; t++) acc[t] = 0;
  for (let p = start * d, e = end * d; p < e; p += d) for (let t = 0; t < d; t++) acc[t] += P[p + t];
  const m = end - start;
  for (let t = 0; t < d; t++) {
    out[o + t] = acc[t] / m;
    acc[t] = 0;
  }
  for (let p = start * d, e = end * d; p < e; p += d) {
    for (let t = 0; t < d; t++) {
      const a = P[p + t] - out[o + t];
      acc[t] += a * a;
    }
  }
  for (let t = 0; t < d; t++) out[o + d + t] = acc[t];
}

/** kpp-seed for any d. */
function kppSeed(P: Float64Array, C: Float64Array, d: number, start: number, end: number, out: Float64Array, o: number): void {
  let sum = 0;
  for (let i = start, p = start * d; i < end; i++, p += d) sum += sqDist(P, p, C, 0, d);
  out[o] = sum;
}

/** kpp-pots for any d (see {@link kppPotsD2}). */
function kppPots(
  P: Float64Array, C: Float64Array, d: number, chosen: number, nc: number, start: number, end: number,
  out: Float64Array, o: number, acc: Float64Array,
): void {
  for (let l = 0; l < nc; l++) acc[l] = 0;
  for (let i = start, p = start * d; i < end; i++, p += d) {
    let cur = sqDist(P, p, C, 0, d);
    for (let j = 1; j < chosen; j++) {
      const v = sqDist(P, p, C, j * d, d);
      const f = +(v < cur);
      cur = f * v + (1 - f) * cur;
    }
    for (let l = 0; l < nc; l++) {
      const v = sqDist(P, p, C, (chosen + l) * d, d);
      const f = +(v < cur);
      acc[l] += f * v + (1 - f) * cur;
    }
  }
  for (let l = 0; l < nc; l++) out[o + l] = acc[l];
}

/**
 * Run one block of one op. The kernel every path uses: inline, and inside the pool's
 * `kmeans-assign` worker through {@link runBlockTask}.
 *
 * @param views Typed views over the shared buffers.
 * @param op The pass.
 * @param block Block index.
 * @param n Points.
 * @param d Features.
 * @param k Clusters (assign); for kpp-pots the chosen centres.
 * @param blockSize Points per block.
 * @param stride Float64 slots per block in `views.partials`.
 * @param acc Scratch of at least k * (d + 1) doubles (assign) or `candidates` doubles (kpp-pots).
 * @param candidates kpp-pots: candidate rows after the chosen ones.
 */
export function runBlock(
  views: BlockViews, op: BlockOp, block: number, n: number, d: number, k: number,
  blockSize: number, stride: number, acc: Float64Array, candidates = 0,
): void {
  const start = block * blockSize;
  const end = Math.min(n, start + blockSize);
  const o = block * stride;
  const { points: P, centers: C, partials: out } = views;
  switch (op) {
    case 'assign':
      if (d === 2 && k === 3 && views.labels instanceof Uint8Array && views.previous instanceof Uint8Array) {
        assignD2K3(P, views.labels, views.previous, C, start, end, out, o);
      } else assignGeneric(P, views.labels, views.previous, C, d, k, start, end, out, o, acc);
      return;
    case 'kpp-seed':
      if (d === 2) kppSeedD2(P, C, start, end, out, o);
      else kppSeed(P, C, d, start, end, out, o);
      return;
    case 'kpp-pots':
      if (d === 2) kppPotsD2(P, C, k, candidates, start, end, out, o, acc);
      else kppPots(P, C, d, k, candidates, start, end, out, o, acc);
      return;
    case 'moments':
      if (d === 2) momentsD2(P, start, end, out, o);
      else moments(P, d, start, end, out, o, acc);
      return;
  }
}

let kernelsWarm = false;

/**
 * Run every kernel once on a few points so that the code after each hot loop has type feedback.
 * Without it the first call is compiled on-stack (OSR) mid-loop with no feedback for the stores
 * after the loop: that code deopts at every loop exit and, in about one process in three, the
 * kernel kept running at a half or a fifth of its speed (measured: 10-30 ms instead of 5 ms per
 * million points, `--trace-deopt`: "Insufficient type feedback for binary operation").
 */
function warmKernels(): void {
  if (kernelsWarm) return;
  kernelsWarm = true;
  const n = 16;
  for (const [d, k] of [[2, 3], [2, 4], [3, 2]] as const) {
    const points = new Float64Array(n * d);
    for (let i = 0; i < points.length; i++) points[i] = ((i * 7919) % 13) / 4 - 1.5;
    const L = kppCandidates(k);
    const stride = Math.max(assignStride(k, d), L, 2 * d);
    const views: BlockViews = {
      points,
      labels: new Uint8Array(n),
      previous: new Uint8Array(n),
      centers: points.slice(0, (k - 1 + L) * d),
      partials: new Float64Array(2 * stride),
    };
    const acc = new Float64Array(k * (d + 1));
    for (let rep = 0; rep < 3; rep++) {
      for (let b = 0; b < 2; b++) {
        runBlock(views, 'moments', b, n, d, k, n / 2, stride, acc);
        runBlock(views, 'kpp-seed', b, n, d, 1, n / 2, stride, acc);
        for (let chosen = 1; chosen < k; chosen++) runBlock(views, 'kpp-pots', b, n, d, chosen, n / 2, stride, acc, L);
        runBlock(views, 'assign', b, n, d, k, n / 2, stride, acc);
      }
    }
  }
}

function labelView(buffer: SharedArrayBuffer, bytes: 1 | 4, n: number): Labels {
  return bytes === 1 ? new Uint8Array(buffer, 0, n) : new Int32Array(buffer, 0, n);
}

/**
 * The `kmeans-assign` task: run `task.op` over blocks `[firstBlock, endBlock)`. Results go to
 * shared memory (labels, partials); the return value is only the number of blocks run.
 *
 * @param task The task payload.
 * @returns Blocks run.
 */
export function runBlockTask(task: BlockTask): number {
  warmKernels();
  const { n, d, k, blockSize, stride, centerCount, candidates } = task;
  const views: BlockViews = {
    points: new Float64Array(task.points, task.pointsOffset, n * d),
    labels: labelView(task.labels, task.labelBytes, n),
    previous: labelView(task.previous, task.labelBytes, n),
    centers: new Float64Array(task.centers),
    partials: new Float64Array(task.partials),
  };
  const acc = new Float64Array(Math.max(k * (d + 1), candidates));
  const width = task.op === 'assign' ? k : centerCount;
  for (let b = task.firstBlock; b < task.endBlock; b++) runBlock(views, task.op, b, n, d, width, blockSize, stride, acc, candidates);
  return task.endBlock - task.firstBlock;
}

// ---------------------------------------------------------------------------------------------
// The coordinator side

/** Options of {@link KMeansRunner}. */
export interface RunnerOptions {
  pool?: SegflowPool;
  blockSize?: number;
  blocksPerTask?: number;
  signal?: AbortSignal;
}

/** The reduced partials of one assignment pass. */
export interface AssignPass {
  inertia: number;
  changed: boolean;
  /** Points per cluster. */
  counts: Float64Array;
  /** Coordinate sums per cluster, k x d. */
  sums: Float64Array;
}

/**
 * The shared state of a fit and the block passes over it: the points, labels, centres, partials
 * and k-means++ distances in SharedArrayBuffers, and the pool (or none: inline). Exported for the
 * benchmark, which times {@link KMeansRunner.lloydStep} alone.
 */
export class KMeansRunner {
  readonly n: number;
  readonly d: number;
  readonly k: number;
  readonly blockSize: number;
  readonly blocks: number;
  /** The points, in shared memory. */
  readonly points: Float64Array;
  /** The two label arrays: [the last assignment's, the one before]. */
  #labelPair: [Labels, Labels];
  readonly #views: BlockViews;
  readonly #task: Omit<BlockTask, 'op' | 'firstBlock' | 'endBlock' | 'centerCount' | 'candidates'>;
  readonly #stride: number;
  readonly #pool: SegflowPool | undefined;
  readonly #blocksPerTask: number;
  readonly #signal: AbortSignal | undefined;
  readonly #acc: Float64Array;

  /**
   * @param points Row-major points; copied into a SharedArrayBuffer when a pool is given and they
   *   are not in one already.
   * @param n Points.
   * @param d Features.
   * @param k Clusters.
   * @param options Pool, block size, blocks per task, abort signal.
   */
  constructor(points: Float64Array, n: number, d: number, k: number, options: RunnerOptions = {}) {
    this.n = n;
    this.d = d;
    this.k = k;
    this.blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
    this.blocks = Math.max(1, Math.ceil(n / this.blockSize));
    // a single block is not worth a round trip to a worker
    this.#pool = this.blocks > 1 ? options.pool : undefined;
    this.#signal = options.signal;
    const workers = this.#pool?.workers ?? 1;
    this.#blocksPerTask = options.blocksPerTask ?? Math.ceil(this.blocks / workers);
    if (this.#pool && !(points.buffer instanceof SharedArrayBuffer)) {
      const shared = new Float64Array(new SharedArrayBuffer(n * d * 8));
      shared.set(points.subarray(0, n * d));
      points = shared;
    }
    this.points = points.subarray(0, n * d);
    const labelBytes: 1 | 4 = k <= 256 ? 1 : 4;
    this.#labelPair = [
      labelView(new SharedArrayBuffer(Math.max(1, n * labelBytes)), labelBytes, n),
      labelView(new SharedArrayBuffer(Math.max(1, n * labelBytes)), labelBytes, n),
    ];
    const candidates = kppCandidates(k);
    this.#stride = Math.max(assignStride(k, d), candidates, 2 * d);
    // assign reads k centres; kpp-pots the chosen ones (up to k - 1) and the candidates after them
    const centersBuf = new SharedArrayBuffer(Math.max(k, k - 1 + candidates) * d * 8);
    const partialsBuf = new SharedArrayBuffer(this.blocks * this.#stride * 8);
    this.#views = {
      points: this.points,
      labels: this.#labelPair[1],
      previous: this.#labelPair[0],
      centers: new Float64Array(centersBuf),
      partials: new Float64Array(partialsBuf),
    };
    this.#task = {
      n, d, k,
      blockSize: this.blockSize,
      stride: this.#stride,
      // a plain ArrayBuffer only when there is no pool: then no task is ever sent
      points: this.points.buffer as SharedArrayBuffer,
      pointsOffset: this.points.byteOffset,
      labels: this.#labelPair[1].buffer as SharedArrayBuffer,
      previous: this.#labelPair[0].buffer as SharedArrayBuffer,
      labelBytes,
      centers: centersBuf,
      partials: partialsBuf,
    };
    this.#acc = new Float64Array(Math.max(k * (d + 1), candidates));
  }

  /**
   * The mean of the per-feature population variances (scikit-learn's `_tolerance` divided by tol):
   * one pool pass of per-block two-pass moments, merged in block order with Chan's formula.
   *
   * @returns The mean variance; NaN or Infinity when a coordinate is not finite (or overflows).
   */
  async meanVariance(): Promise<number> {
    const { n, d, blockSize } = this;
    await this.pass('moments', [], 0);
    const out = this.#views.partials;
    const mean = new Float64Array(d);
    const m2 = new Float64Array(d);
    let count = 0;
    for (let b = 0, o = 0; b < this.blocks; b++, o += this.#stride) {
      const m = Math.min(n, (b + 1) * blockSize) - b * blockSize;
      const total = count + m;
      for (let t = 0; t < d; t++) {
        const delta = out[o + t] - mean[t];
        mean[t] += (delta * m) / total;
        m2[t] += out[o + d + t] + ((delta * delta * count) / total) * m;
      }
      count = total;
    }
    let sum = 0;
    for (let t = 0; t < d; t++) sum += m2[t] / count;
    return sum / d;
  }

  /** The labels of the last assignment, in shared memory. */
  get labels(): Labels {
    return this.#labelPair[0];
  }

  /** The per-block partials of the last pass (shared), `blocks x stride`. */
  get partials(): Float64Array {
    return this.#views.partials;
  }

  /** Float64 slots per block in {@link KMeansRunner.partials}. */
  get stride(): number {
    return this.#stride;
  }

  /**
   * Run one pass over every block with `centers` (rows of d) as the centres the op reads.
   *
   * @param op The pass.
   * @param centers The centres, row-major.
   * @param centerCount Rows in `centers` the op reads as centres (kpp-pots: the chosen ones).
   * @param candidates kpp-pots: candidate rows in `centers` after the chosen ones.
   */
  async pass(op: BlockOp, centers: ArrayLike<number>, centerCount: number, candidates = 0): Promise<void> {
    if (this.#signal?.aborted) throw abortError();
    const C = this.#views.centers;
    for (let i = 0; i < (centerCount + candidates) * this.d; i++) C[i] = centers[i];
    const pool = this.#pool;
    if (!pool) {
      warmKernels();
      const width = op === 'assign' ? this.k : centerCount;
      for (let b = 0; b < this.blocks; b++) {
        runBlock(this.#views, op, b, this.n, this.d, width, this.blockSize, this.#stride, this.#acc, candidates);
      }
      return;
    }
    const runs: Promise<number>[] = [];
    for (let first = 0; first < this.blocks; first += this.#blocksPerTask) {
      const task: BlockTask = { ...this.#task, op, centerCount, candidates, firstBlock: first, endBlock: Math.min(this.blocks, first + this.#blocksPerTask) };
      runs.push(pool.run<number>('kmeans-assign', task, { signal: this.#signal, label: `${op} blocks ${task.firstBlock}-${task.endBlock}` }));
    }
    await Promise.all(runs);
  }

  /**
   * Assign every point to its nearest centre and reduce the block partials in block order.
   *
   * @param centers k x d centres, row-major.
   * @returns Inertia, changed flag, counts and sums of the pass.
   */
  async assign(centers: ArrayLike<number>): Promise<AssignPass> {
    // write into the older array, compare with the newer; then they swap roles
    const [previous, next] = this.#labelPair;
    this.#views.labels = next;
    this.#views.previous = previous;
    this.#task.labels = next.buffer as SharedArrayBuffer;
    this.#task.previous = previous.buffer as SharedArrayBuffer;
    await this.pass('assign', centers, this.k);
    this.#labelPair = [next, previous];
    const { k, d } = this;
    const out = this.#views.partials;
    const counts = new Float64Array(k);
    const sums = new Float64Array(k * d);
    let inertia = 0;
    let changed = false;
    for (let b = 0, o = 0; b < this.blocks; b++, o += this.#stride) {
      inertia += out[o + P_INERTIA];
      if (out[o + P_CHANGED] !== 0) changed = true;
      for (let j = 0; j < k; j++) counts[j] += out[o + P_COUNTS + j];
      for (let q = 0; q < k * d; q++) sums[q] += out[o + P_COUNTS + k + q];
    }
    return { inertia, changed, counts, sums };
  }

  /**
   * One Lloyd iteration: assignment with `centers`, empty clusters relocated, new centres into
   * `next`. scikit-learn's `lloyd_iter_chunked_dense` with `update_centers=True`.
   *
   * @param centers The current centres (k x d).
   * @param next Receives the new centres (k x d).
   * @returns The assignment pass (counts before relocation: the sizes of the labels as written)
   *   and the sum of squared centre shifts.
   */
  async lloydStep(centers: Float64Array, next: Float64Array): Promise<AssignPass & { shift: number }> {
    const pass = await this.assign(centers);
    const { k, d } = this;
    const counts = pass.counts.slice();
    const sums = pass.sums.slice();
    relocateEmptyClusters(this.points, this.n, d, k, this.labels, centers, counts, sums);
    let shift = 0;
    for (let j = 0; j < k; j++) {
      const c = j * d;
      if (counts[j] > 0) {
        const alpha = 1 / counts[j];
        for (let t = 0; t < d; t++) next[c + t] = sums[c + t] * alpha;
      } else {
        // no point to re-seed from (fewer distinct points than k): keep the centre, never NaN
        for (let t = 0; t < d; t++) next[c + t] = centers[c + t];
      }
      let s = 0;
      for (let t = 0; t < d; t++) {
        const a = next[c + t] - centers[c + t];
        s += a * a;
      }
      const cs = Math.sqrt(s); // scikit-learn sums the squares of the Euclidean shifts
      shift += cs * cs;
    }
    return { ...pass, shift };
  }
}

/**
 * scikit-learn's `_relocate_empty_clusters_dense`: each empty cluster takes the point farthest
 * from its centre (distance to the centre of its label, farthest first, lowest index on ties);
 * the point moves its count and coordinates from its old cluster's sums. Labels are not changed
 * (the next assignment does that). Nothing happens when every point sits on its centre.
 */
function relocateEmptyClusters(
  P: Float64Array, n: number, d: number, k: number, labels: Labels,
  centersOld: Float64Array, counts: Float64Array, sums: Float64Array,
): void {
  const empty: number[] = [];
  for (let j = 0; j < k; j++) if (counts[j] === 0) empty.push(j);
  if (empty.length === 0) return;
  const m = empty.length;
  // the m largest distances, kept sorted: farthest first, lower index first on ties
  const topDist: number[] = [];
  const topIdx: number[] = [];
  for (let i = 0, p = 0; i < n; i++, p += d) {
    const v = rowDist(P, p, centersOld, labels[i] * d, d);
    if (topDist.length === m && v <= topDist[m - 1]) continue;
    let at = topDist.length;
    while (at > 0 && topDist[at - 1] < v) at--;
    topDist.splice(at, 0, v);
    topIdx.splice(at, 0, i);
    if (topDist.length > m) {
      topDist.pop();
      topIdx.pop();
    }
  }
  if (topDist.length === 0 || topDist[0] === 0) return;
  for (let e = 0; e < m && e < topIdx.length; e++) {
    const j = empty[e];
    const far = topIdx[e];
    const old = labels[far];
    for (let t = 0; t < d; t++) {
      const x = P[far * d + t];
      sums[old * d + t] -= x;
      sums[j * d + t] = x;
    }
    counts[j] = 1;
    counts[old] -= 1;
  }
}

/**
 * Seeded greedy k-means++ (scikit-learn's `_kmeans_plusplus`): the first centre uniformly, then
 * per step `2 + floor(ln k)` candidates drawn with probability proportional to the squared
 * distance to the nearest chosen centre, keeping the one that lowers the potential most.
 *
 * @param runner The shared state (its pool runs the distance passes).
 * @param rng The random stream of this restart.
 * @returns k x d initial centres.
 */
export async function kmeansPlusPlus(runner: KMeansRunner, rng: SeededRandom): Promise<Float64Array> {
  const { n, d, k, blocks } = runner;
  const P = runner.points;
  const stride = runner.stride;
  const L = kppCandidates(k);
  // rows [0, c) hold the chosen centres, rows [c, c + L) the candidates of step c
  const rows = new Float64Array((k - 1 + L) * d);
  const blockSums = new Float64Array(blocks);
  copyRow(P, rng.nextInt(n), rows, 0, d);
  await runner.pass('kpp-seed', rows, 1);
  let pot = 0;
  for (let b = 0; b < blocks; b++) {
    blockSums[b] = runner.partials[b * stride];
    pot += blockSums[b];
  }
  const candidateIds = new Array<number>(L);
  const candidatePots = new Float64Array(L);
  for (let c = 1; c < k; c++) {
    for (let l = 0; l < L; l++) {
      candidateIds[l] = searchPotential(P, d, rows, c, blockSums, runner.blockSize, n, rng.nextDouble() * pot);
      copyRow(P, candidateIds[l], rows, c + l, d);
    }
    await runner.pass('kpp-pots', rows, c, L);
    candidatePots.fill(0);
    for (let b = 0; b < blocks; b++) {
      for (let l = 0; l < L; l++) candidatePots[l] += runner.partials[b * stride + l];
    }
    let best = 0;
    for (let l = 1; l < L; l++) if (candidatePots[l] < candidatePots[best]) best = l;
    // the winner's block sums are the potential's blocks for the next draws
    for (let b = 0; b < blocks; b++) blockSums[b] = runner.partials[b * stride + best];
    pot = candidatePots[best];
    copyRow(P, candidateIds[best], rows, c, d);
  }
  return rows.slice(0, k * d);
}

/**
 * The distance of point i to the nearest of the first `chosen` rows of `C`: the same doubles the
 * kpp kernels compute (same operations; a minimum is exact whatever the order).
 */
function closestDistance(P: Float64Array, i: number, d: number, C: Float64Array, chosen: number): number {
  let cur = rowDist(P, i * d, C, 0, d);
  for (let j = 1; j < chosen; j++) {
    const v = rowDist(P, i * d, C, j * d, d);
    if (v < cur) cur = v;
  }
  return cur;
}

/**
 * numpy's `searchsorted(cumsum(closest), r)` (first index whose running sum reaches r), over the
 * block sums first, then within the block, recomputing each point's distance to the chosen
 * centres. Within the block the running sum restarts at 0, as the kernel summed it, so the block
 * that the block sums point to always holds the index. Clipped to n - 1.
 */
function searchPotential(
  P: Float64Array, d: number, C: Float64Array, chosen: number, blockSums: Float64Array, blockSize: number, n: number, r: number,
): number {
  let before = 0;
  for (let b = 0; b < blockSums.length; b++) {
    if (before + blockSums[b] >= r) {
      let local = 0;
      const end = Math.min(n, (b + 1) * blockSize);
      for (let i = b * blockSize; i < end; i++) {
        local += closestDistance(P, i, d, C, chosen);
        if (before + local >= r) return i;
      }
    }
    before += blockSums[b];
  }
  return n - 1;
}

function copyRow(src: ArrayLike<number>, row: number, dst: Float64Array, dstRow: number, d: number): void {
  for (let t = 0; t < d; t++) dst[dstRow * d + t] = src[row * d + t];
}

function abortError(): SegflowError {
  return new SegflowError('ERR_ABORTED', 'the job was aborted');
}

function checkInteger(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new SegflowError('ERR_USAGE', `${name} must be an integer >= ${min}, got ${value}`);
  }
}

/**
 * Fit k-means: seeded k-means++ and Lloyd iterations as scikit-learn's `KMeans(algorithm="lloyd")`,
 * with the passes over the points split into fixed blocks run on the pool. Identical results for
 * any pool size and blocks per task.
 *
 * @param points Row-major n x d points, ideally in a SharedArrayBuffer (copied into one otherwise
 *   when a pool is used).
 * @param n Points.
 * @param d Features per point.
 * @param options k, seed, restarts, iterations, tol, pool, blocks, abort signal, callback.
 * @returns Centroids, labels (shared), inertia, iterations, sizes and convergence of the restart
 *   with the lowest inertia.
 * @throws SegflowError ERR_USAGE for bad options, ERR_TOO_FEW_POINTS when k > n or n = 0,
 *   ERR_BAD_INPUT for NaN or infinite coordinates, ERR_ABORTED when the signal fires.
 */
export async function fitKMeans(points: Float64Array, n: number, d: number, options: KMeansOptions): Promise<KMeansResult> {
  const { k, seed = 42, maxIter = 300, tol = 1e-4, blockSize = DEFAULT_BLOCK_SIZE } = options;
  let nInit = options.nInit ?? 1;
  checkInteger('k', k, 1);
  checkInteger('d', d, 1);
  checkInteger('n', n, 0);
  checkInteger('maxIter', maxIter, 1);
  checkInteger('nInit', nInit, 1);
  checkInteger('blockSize', blockSize, 1);
  if (options.blocksPerTask !== undefined) checkInteger('blocksPerTask', options.blocksPerTask, 1);
  if (!Number.isFinite(seed)) throw new SegflowError('ERR_USAGE', `seed must be a number, got ${seed}`);
  if (!(tol >= 0) || !Number.isFinite(tol)) throw new SegflowError('ERR_USAGE', `tol must be a number >= 0, got ${tol}`);
  if (points.length < n * d) throw new SegflowError('ERR_USAGE', `points hold ${points.length} values, need n * d = ${n * d}`);
  if (n === 0 || k > n) {
    throw new SegflowError('ERR_TOO_FEW_POINTS', `k = ${k} clusters need at least ${k} points, got ${n}`, { k, n });
  }
  if (options.init !== undefined) {
    if (options.init.length !== k * d) throw new SegflowError('ERR_USAGE', `init must hold k * d = ${k * d} values, got ${options.init.length}`);
    nInit = 1;
  }
  const runner = new KMeansRunner(points, n, d, k, { pool: options.pool, blockSize, blocksPerTask: options.blocksPerTask, signal: options.signal });
  const variance = await runner.meanVariance();
  if (!Number.isFinite(variance)) {
    throw new SegflowError('ERR_BAD_INPUT', 'the points hold NaN or infinite values (or values too large to square)');
  }
  const tolAbs = tol === 0 ? 0 : variance * tol;

  const restarts: KMeansResult['restarts'] = [];
  let best: Omit<KMeansResult, 'restarts'> | undefined;
  for (let r = 0; r < nInit; r++) {
    const init = options.init !== undefined ? Float64Array.from(options.init) : await kmeansPlusPlus(runner, new SeededRandom([seed, r]));
    const run = await lloyd(runner, init, maxIter, tolAbs, r, options.onIteration);
    restarts.push({ inertia: run.inertia, iterations: run.iterations, converged: run.converged });
    if (best === undefined || run.inertia < best.inertia) {
      // keep the winner's labels: the next restart overwrites the shared ones
      const labels = nInit === 1 ? runner.labels : copyLabels(runner.labels);
      best = { ...run, labels };
    }
  }
  if (best === undefined) throw new SegflowError('ERR_INTERNAL', 'no restart ran');
  return { ...best, restarts };
}

function copyLabels(labels: Labels): Labels {
  const copy = labels instanceof Uint8Array
    ? new Uint8Array(new SharedArrayBuffer(Math.max(1, labels.length)), 0, labels.length)
    : new Int32Array(new SharedArrayBuffer(Math.max(1, labels.length * 4)), 0, labels.length);
  copy.set(labels);
  return copy;
}

/** One restart of Lloyd's algorithm from `init`: `_kmeans_single_lloyd`. */
async function lloyd(
  runner: KMeansRunner, init: Float64Array, maxIter: number, tolAbs: number, restart: number,
  onIteration: KMeansOptions['onIteration'],
): Promise<Omit<KMeansResult, 'labels' | 'restarts'>> {
  const { k, d } = runner;
  let centers: Float64Array = init;
  let next: Float64Array = new Float64Array(k * d);
  let strict = false;
  let converged = false;
  let iterations = 0;
  let last: AssignPass | undefined;
  let lastCenters: Float64Array = init; // the centres the last assignment used
  for (let i = 0; i < maxIter; i++) {
    const step = await runner.lloydStep(centers, next);
    last = step;
    lastCenters = centers;
    [centers, next] = [next, centers];
    iterations = i + 1;
    // the first pass compares against labels of -1 in scikit-learn: never "unchanged"
    const changed = i === 0 || step.changed;
    onIteration?.({ restart, iteration: iterations, inertia: step.inertia, shift: step.shift, changed });
    if (!changed) {
      strict = true;
      converged = true;
      break;
    }
    if (step.shift <= tolAbs) {
      converged = true;
      break;
    }
  }
  // Labels and inertia must belong to the final centres. After strict convergence they do when the
  // centres did not move (same labels give the same sums bit for bit); a relocation can move them.
  if (last === undefined || !strict || !sameValues(centers, lastCenters)) {
    last = await runner.assign(centers);
  }
  return {
    centroids: centers,
    inertia: last.inertia,
    iterations,
    sizes: Array.from(last.counts),
    converged,
  };
}

function sameValues(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/**
 * The nearest centre of one row (streaming: scale a new user, then assign). Ties go to the lower
 * index, as in the fit.
 *
 * @param centroids k x d centres, row-major, in the space of `row`.
 * @param k Centres.
 * @param d Features.
 * @param row One point of d values.
 * @returns The index of the nearest centre.
 */
export function assignNearest(centroids: ArrayLike<number>, k: number, d: number, row: ArrayLike<number>): number {
  let best = rowDist(row, 0, centroids, 0, d);
  let lab = 0;
  for (let j = 1; j < k; j++) {
    const v = rowDist(row, 0, centroids, j * d, d);
    if (v < best) {
      best = v;
      lab = j;
    }
  }
  return lab;
}

/** Options of {@link silhouetteScore}. */
export interface SilhouetteOptions {
  /** Points sampled without replacement (default 10,000; all points when n is smaller). */
  sampleSize?: number;
  /** Seed of the sample (default 42). */
  seed?: number;
}

/**
 * The mean silhouette coefficient (Euclidean), as scikit-learn's `silhouette_score` with
 * `sample_size`: on a seeded sample of the points, with the clusters as they fall in the sample;
 * a point alone in its cluster scores 0. O(s^2 d) for s sampled points.
 *
 * @param points Row-major n x d points.
 * @param n Points.
 * @param d Features.
 * @param labels The cluster of each point.
 * @param k Clusters.
 * @param options Sample size and seed.
 * @returns The score in [-1, 1], or NaN when the sample holds fewer than 2 clusters.
 */
export function silhouetteScore(
  points: ArrayLike<number>, n: number, d: number, labels: ArrayLike<number>, k: number, options: SilhouetteOptions = {},
): number {
  const { sampleSize = 10_000, seed = 42 } = options;
  const idx = sampleIndices(n, Math.min(n, sampleSize), new SeededRandom([seed, 0x5111]));
  const s = idx.length;
  const X = new Float64Array(s * d);
  const lab = new Int32Array(s);
  const sizes = new Float64Array(k);
  for (let a = 0; a < s; a++) {
    copyRow(points, idx[a], X, a, d);
    lab[a] = labels[idx[a]];
    sizes[lab[a]]++;
  }
  let distinct = 0;
  for (let j = 0; j < k; j++) if (sizes[j] > 0) distinct++;
  if (distinct < 2) return NaN;
  // per sampled point, the sum of distances to each cluster (each pair computed once)
  const sums = new Float64Array(s * k);
  for (let a = 0; a < s; a++) {
    const la = lab[a];
    const pa = a * d;
    for (let b = a + 1; b < s; b++) {
      const dist = Math.sqrt(sqDist(X, pa, X, b * d, d));
      sums[a * k + lab[b]] += dist;
      sums[b * k + la] += dist;
    }
  }
  let total = 0;
  for (let a = 0; a < s; a++) {
    const la = lab[a];
    if (sizes[la] <= 1) continue; // scores 0
    const intra = sums[a * k + la] / (sizes[la] - 1);
    let inter = Infinity;
    for (let j = 0; j < k; j++) {
      if (j === la || sizes[j] === 0) continue;
      const m = sums[a * k + j] / sizes[j];
      if (m < inter) inter = m;
    }
    const denom = Math.max(intra, inter);
    if (denom > 0) total += (inter - intra) / denom;
  }
  return total / s;
}

/** Floyd's sampling of m distinct indices in [0, n), sorted. */
function sampleIndices(n: number, m: number, rng: SeededRandom): Int32Array {
  const out = new Int32Array(m);
  if (m === n) {
    for (let i = 0; i < n; i++) out[i] = i;
    return out;
  }
  const chosen = new Set<number>();
  for (let j = n - m; j < n; j++) {
    const t = rng.nextInt(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  let i = 0;
  for (const v of chosen) out[i++] = v;
  return out.sort();
}
