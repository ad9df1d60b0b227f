/**
 * Exact decimal sums as scaled integers held in two float64 limbs: value = hi * 2^51 + lo, with
 * |lo| kept at most 2^51 so every addition of a |v| <= 2^51 is exact, and |hi| at most 2^52, so a
 * sum is exact up to 2^103 (about 1.0e31) units of its last decimal place: 1.0e13 at 18 places,
 * 1.0e29 at 2. A sum past that fails the job with a clear error instead of rounding. Totals are
 * only turned into BigInt at the end (once per user), never accumulated in binary floating point.
 */
import { SegflowError } from '../errors.js';

/** |lo| above this is carried into hi. Also the largest |v| the fast add path accepts. */
export const LIMB_MAX = 2 ** 51;
/** The weight of the high limb: value = hi * LIMB_BASE + lo. */
export const LIMB_BASE = 2 ** 51;
const BIG_BASE = BigInt(LIMB_BASE);
/** The largest |hi|: the sum of two such limbs is still an exact float64 integer. */
const HI_MAX = 2 ** 52;
/** The largest exact sum, in units of its last decimal place. */
export const EXACT_MAX = BigInt(HI_MAX) * BIG_BASE;

function beyondExact(): never {
  throw new SegflowError(
    'ERR_BAD_INPUT',
    'a sum is past the exact range: totals and quantities (of a user, and of all users) are exact up to 2^103 units of their last decimal place (about 1.0e13 when some amount has 18 decimal places, 1.0e29 with 2)',
  );
}

/** Powers of ten that are exact in float64. */
export const POW10: Float64Array = (() => {
  const p = new Float64Array(23);
  p[0] = 1;
  for (let i = 1; i < 23; i++) p[i] = p[i - 1] * 10;
  return p;
})();

/** Largest number of decimal places an amount may have. */
export const MAX_SCALE = 18;

/**
 * Add `v` (an integer, |v| <= LIMB_MAX) to the limbs at acc[i] (lo) and acc[i + 1] (hi).
 * Exact: both limbs stay integers under 2^53.
 */
export function addExact(acc: Float64Array, i: number, v: number): void {
  let lo = acc[i] + v;
  if (lo > LIMB_MAX || lo < -LIMB_MAX) {
    const c = Math.trunc(lo / LIMB_BASE);
    const hi = acc[i + 1] + c;
    if (hi > HI_MAX || hi < -HI_MAX) beyondExact();
    acc[i + 1] = hi;
    lo -= c * LIMB_BASE;
  }
  acc[i] = lo;
}

/** Add an arbitrary BigInt to the limbs at acc[i], acc[i + 1] (slow path, exact). */
export function addBig(acc: Float64Array, i: number, v: bigint): void {
  const total = limbsToBig(acc[i], acc[i + 1]) + v;
  setBig(acc, i, total);
}

/** Store a BigInt into two limbs. */
export function setBig(acc: Float64Array, i: number, v: bigint): void {
  if (v > EXACT_MAX || v < -EXACT_MAX) beyondExact();
  const hi = v / BIG_BASE; // truncates toward zero
  const lo = v - hi * BIG_BASE;
  acc[i] = Number(lo);
  acc[i + 1] = Number(hi);
}

/** The exact value of two limbs. */
export function limbsToBig(lo: number, hi: number): bigint {
  if (hi === 0) return BigInt(lo);
  return BigInt(hi) * BIG_BASE + BigInt(lo);
}

/** The value of two limbs as the nearest float (a feature or a ratio, never a total). */
export function limbsToFloat(lo: number, hi: number): number {
  return hi === 0 ? lo : hi * LIMB_BASE + lo;
}

/** Multiply the limbs at acc[i] by 10^d exactly. */
export function rescaleLimbs(acc: Float64Array, i: number, d: number): void {
  if (d === 0) return;
  const lo = acc[i] * POW10[d];
  if (acc[i + 1] === 0 && lo <= LIMB_MAX && lo >= -LIMB_MAX) {
    acc[i] = lo;
    return;
  }
  setBig(acc, i, limbsToBig(acc[i], acc[i + 1]) * 10n ** BigInt(d));
}

/** Add limbs (lo, hi) at decimal places `from` into the limbs at acc[at] at places `to` >= from (exact). */
export function addLimbs(acc: Float64Array, at: number, lo: number, hi: number, from: number, to: number): void {
  if (from === to) {
    addExact(acc, at, lo);
    const h = acc[at + 1] + hi;
    if (h > HI_MAX || h < -HI_MAX) beyondExact();
    acc[at + 1] = h;
    return;
  }
  const v = lo * POW10[to - from];
  if (hi === 0 && v <= LIMB_MAX && v >= -LIMB_MAX) addExact(acc, at, v);
  else addBig(acc, at, limbsToBig(lo, hi) * 10n ** BigInt(to - from));
}

/** Format a scaled integer with `scale` decimal places: (12345n, 2) -> "123.45". */
export function formatScaled(v: bigint | number, scale: number): string {
  let neg = false;
  let s: string;
  if (typeof v === 'number') {
    if (v < 0) {
      neg = true;
      v = -v;
    }
    s = v.toString();
    if (s.includes('e')) s = BigInt(v).toString();
  } else {
    if (v < 0n) {
      neg = true;
      v = -v;
    }
    s = v.toString();
  }
  if (scale > 0) {
    if (s.length <= scale) s = '0'.repeat(scale - s.length + 1) + s;
    s = s.slice(0, s.length - scale) + '.' + s.slice(s.length - scale);
  }
  return neg ? '-' + s : s;
}

/** Parse a decimal string exactly into a scaled BigInt at `scale` places (for tests and slow paths). */
export function parseScaled(text: string, scale: number): bigint {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`not a decimal: ${text}`);
  const frac = (m[3] ?? '').padEnd(scale, '0');
  if (frac.length > scale) throw new Error(`more than ${scale} decimal places: ${text}`);
  const v = BigInt((m[2] || '0') + frac);
  return m[1] === '-' ? -v : v;
}
