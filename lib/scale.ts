/**
 * Feature scaling for k-means: `log-zscore` (signed log1p, then z-score), `zscore`, `none`.
 *
 * A {@link Scaler} is plain data (`{method, mean, std}`), so it is saved with the model and scales
 * new users (streaming) exactly as the users the model was fitted on. Means and variances are
 * computed per block with a two-pass sum and merged with Chan's formula: stable on spend columns
 * whose values are large and close together, where the sum-of-squares formula cancels.
 */
import { SegflowError } from './errors.js';

/** The scaling methods, as the `--scale` flag spells them. */
export type ScaleMethod = 'log-zscore' | 'zscore' | 'none';

/** Every {@link ScaleMethod}, in the order `--help` lists them. */
export const SCALE_METHODS: readonly ScaleMethod[] = ['log-zscore', 'zscore', 'none'];

/**
 * A fitted scaler, JSON-serialisable. `mean` and `std` are per feature, in the transformed space
 * (after the signed log for `log-zscore`); `none` stores mean 0 and std 1.
 */
export interface Scaler {
  method: ScaleMethod;
  mean: number[];
  std: number[];
}

/** Per-feature mean and population variance of a row-major `n x d` matrix. */
export interface Moments {
  /** Rows seen. */
  count: number;
  mean: Float64Array;
  /** Population variance (divided by n, as numpy's `var` and scikit-learn's StandardScaler). */
  variance: Float64Array;
}

/** Rows per block of the two-pass moments: small enough for the block to stay in L1/L2. */
const MOMENT_BLOCK = 4096;

/**
 * The signed log: `sign(x) * log1p(|x|)`. Equal to `log1p` for x >= 0 and odd, so that net-negative
 * spend (refunds) is scaled symmetrically instead of producing NaN.
 *
 * @param x A finite number.
 * @returns The transformed value.
 */
export function signedLog1p(x: number): number {
  return x < 0 ? -Math.log1p(-x) : Math.log1p(x);
}

/**
 * The inverse of {@link signedLog1p}: `sign(y) * expm1(|y|)`.
 *
 * @param y A transformed value.
 * @returns The value in original units.
 */
export function signedExpm1(y: number): number {
  return y < 0 ? -Math.expm1(-y) : Math.expm1(y);
}

/**
 * Check that a string names a scaling method.
 *
 * @param value The `--scale` value.
 * @returns The method.
 * @throws SegflowError ERR_USAGE when it names none.
 */
export function parseScaleMethod(value: unknown): ScaleMethod {
  if (typeof value === 'string' && (SCALE_METHODS as readonly string[]).includes(value)) return value as ScaleMethod;
  throw new SegflowError('ERR_USAGE', `scale must be one of ${SCALE_METHODS.join(', ')}, got ${String(value)}`);
}

/**
 * Per-feature mean and population variance of a row-major `n x d` matrix, optionally of the
 * signed log of each value. Blocks of rows are summed in two passes (mean, then squared
 * deviations) and merged in order with Chan's parallel formula, so the result does not depend on
 * anything but the values and their order.
 *
 * @param points Row-major values, at least `n * d` long.
 * @param n Rows.
 * @param d Features per row.
 * @param logTransform Take {@link signedLog1p} of each value first.
 * @returns The moments; NaN or Infinity in the input shows as a non-finite mean or variance.
 */
export function featureMoments(points: ArrayLike<number>, n: number, d: number, logTransform = false): Moments {
  const mean = new Float64Array(d);
  const m2 = new Float64Array(d);
  const blockSum = new Float64Array(d);
  const blockM2 = new Float64Array(d);
  let count = 0;
  for (let start = 0; start < n; start += MOMENT_BLOCK) {
    const end = Math.min(n, start + MOMENT_BLOCK);
    const m = end - start;
    blockSum.fill(0);
    blockM2.fill(0);
    for (let i = start * d, e = end * d; i < e; i += d) {
      for (let j = 0; j < d; j++) blockSum[j] += logTransform ? signedLog1p(points[i + j]) : points[i + j];
    }
    for (let j = 0; j < d; j++) blockSum[j] /= m; // now the block mean
    for (let i = start * d, e = end * d; i < e; i += d) {
      for (let j = 0; j < d; j++) {
        const q = (logTransform ? signedLog1p(points[i + j]) : points[i + j]) - blockSum[j];
        blockM2[j] += q * q;
      }
    }
    // Chan et al.: merge (count, mean, m2) with the block's (m, blockMean, blockM2)
    const total = count + m;
    for (let j = 0; j < d; j++) {
      const delta = blockSum[j] - mean[j];
      mean[j] += (delta * m) / total;
      m2[j] += blockM2[j] + ((delta * delta * count) / total) * m;
    }
    count = total;
  }
  const variance = new Float64Array(d);
  for (let j = 0; j < d; j++) variance[j] = count > 0 ? m2[j] / count : 0;
  return { count, mean, variance };
}

/**
 * Fit a scaler on a row-major `n x d` matrix.
 *
 * @param points Row-major values in original units, at least `n * d` long.
 * @param n Rows.
 * @param d Features per row.
 * @param method The scaling method.
 * @returns The scaler; a feature with standard deviation 0 (or no rows) gets std 1, so that it
 *   scales to 0 instead of NaN.
 * @throws SegflowError ERR_BAD_INPUT when a value is NaN or infinite.
 */
export function fitScaler(points: ArrayLike<number>, n: number, d: number, method: ScaleMethod): Scaler {
  parseScaleMethod(method);
  if (method === 'none') {
    return { method, mean: new Array<number>(d).fill(0), std: new Array<number>(d).fill(1) };
  }
  const { mean, variance } = featureMoments(points, n, d, method === 'log-zscore');
  const std: number[] = [];
  for (let j = 0; j < d; j++) {
    if (!Number.isFinite(mean[j]) || !Number.isFinite(variance[j])) {
      throw new SegflowError('ERR_BAD_INPUT', `feature ${j + 1} has a non-finite value (NaN or Infinity) or overflows`);
    }
    const s = Math.sqrt(variance[j]);
    std.push(s > 0 ? s : 1);
  }
  return { method, mean: Array.from(mean), std };
}

/**
 * Fit a scaler and scale the rows in one go: for `log-zscore` the signed log of each value is
 * taken once (into `out`), not once to fit and again to apply. The same numbers as
 * `applyScaler(fitScaler(points, n, d, method), points, out)`.
 *
 * @param points Row-major values in original units, at least `n * d` long.
 * @param n Rows.
 * @param d Features per row.
 * @param method The scaling method.
 * @param out Where to write the `n * d` scaled values (may be `points` itself).
 * @returns The fitted scaler.
 * @throws SegflowError ERR_BAD_INPUT when a value is NaN or infinite.
 */
export function fitApplyScaler(points: ArrayLike<number>, n: number, d: number, method: ScaleMethod, out: Float64Array): Scaler {
  parseScaleMethod(method);
  checkWidth(n * d, d, out.length);
  let scaler: Scaler;
  let src: ArrayLike<number> = points;
  if (method === 'log-zscore') {
    for (let i = 0; i < n * d; i++) out[i] = signedLog1p(points[i]);
    const z = fitScaler(out, n, d, 'zscore');
    scaler = { method, mean: z.mean, std: z.std };
    src = out;
  } else {
    scaler = fitScaler(points, n, d, method);
  }
  for (let j = 0; j < d; j++) {
    const mean = scaler.mean[j];
    const std = scaler.std[j];
    for (let i = j; i < n * d; i += d) out[i] = (src[i] - mean) / std;
  }
  return scaler;
}

/**
 * Scale rows with a fitted scaler: `(t(x) - mean) / std` per feature, where `t` is
 * {@link signedLog1p} for `log-zscore` and the identity otherwise.
 *
 * @param scaler The fitted scaler (its `mean.length` is the row width d).
 * @param values One row (length d) or row-major rows (a multiple of d).
 * @param out Where to write (default: a new array); may be `values` itself to scale in place.
 * @returns `out`.
 */
export function applyScaler(scaler: Scaler, values: ArrayLike<number>, out: Float64Array = new Float64Array(values.length)): Float64Array {
  const d = scaler.mean.length;
  checkWidth(values.length, d, out.length);
  const log = scaler.method === 'log-zscore';
  for (let j = 0; j < d; j++) {
    const mean = scaler.mean[j];
    const std = scaler.std[j];
    for (let i = j; i < values.length; i += d) {
      const v = log ? signedLog1p(values[i]) : values[i];
      out[i] = (v - mean) / std;
    }
  }
  return out;
}

/**
 * Map scaled rows back to original units: the inverse of {@link applyScaler}. Used to report
 * centroids in original units (for `log-zscore` a centroid maps back to a geometric-style centre,
 * not the arithmetic mean of its members).
 *
 * @param scaler The fitted scaler.
 * @param values One scaled row (length d) or row-major scaled rows.
 * @param out Where to write (default: a new array); may be `values` itself.
 * @returns `out`.
 */
export function invertScaler(scaler: Scaler, values: ArrayLike<number>, out: Float64Array = new Float64Array(values.length)): Float64Array {
  const d = scaler.mean.length;
  checkWidth(values.length, d, out.length);
  const log = scaler.method === 'log-zscore';
  for (let j = 0; j < d; j++) {
    const mean = scaler.mean[j];
    const std = scaler.std[j];
    for (let i = j; i < values.length; i += d) {
      const v = values[i] * std + mean;
      out[i] = log ? signedExpm1(v) : v;
    }
  }
  return out;
}

function checkWidth(length: number, d: number, outLength: number): void {
  if (d === 0 || length % d !== 0) {
    throw new SegflowError('ERR_USAGE', `values of length ${length} are not rows of ${d} features`);
  }
  if (outLength < length) throw new SegflowError('ERR_USAGE', `out holds ${outLength} values, need ${length}`);
}
