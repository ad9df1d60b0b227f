/**
 * Byte-level field parsers for the scan hot loop. They read straight from the input buffer and
 * write their result into a reused {@link ParseOut} object: no strings, no allocation per row.
 */

/** Where a parser leaves its result. */
export interface ParseOut {
  /** Scaled integer (exact when |m| < 2^53). */
  m: number;
  /** Decimal places of `m`. */
  dp: number;
  /** A date as yyyymmddhhmmss. */
  date: number;
  /** The date had a time of day. */
  hasTime: boolean;
}

export const OK = 0;
export const EMPTY = 1;
export const INVALID = 2;
export const TOO_PRECISE = 3;
/** Past 2^53 units of its last decimal place once its exponent is applied (`1e16`). */
export const TOO_LARGE = 4;
/** The largest |m| a parser returns: every integer up to it is exact in float64. */
const M_MAX = 2 ** 53;

const SP = 32;
const TAB = 9;

/**
 * Parse a decimal number ([+-]digits[.digits][e[+-]digits], surrounding blanks allowed) exactly
 * into out.m / out.dp. At most 15 significant digits, and with an exponent at most 2^53 units of
 * the last place (so m is exact in float64). With
 * `decimalComma` (files whose delimiter is not a comma), `12,50` is read as 12.50; a comma after a
 * point (`1.234,50`) is still an error, never a guess.
 */
export function parseDecimal(src: Uint8Array, s: number, e: number, out: ParseOut, decimalComma = false): number {
  while (s < e && (src[s] === SP || src[s] === TAB)) s++;
  while (e > s && (src[e - 1] === SP || src[e - 1] === TAB)) e--;
  if (s === e) return EMPTY;
  let neg = false;
  let c = src[s];
  if (c === 45 /* - */ || c === 43 /* + */) {
    neg = c === 45;
    s++;
  }
  let m = 0;
  let digits = 0; // significant digits taken
  let dp = 0;
  let any = false;
  let dot = false;
  let i = s;
  for (; i < e; i++) {
    c = src[i];
    if (c >= 48 && c <= 57) {
      any = true;
      if (m !== 0 || c !== 48) digits++;
      m = m * 10 + (c - 48);
      if (dot) dp++;
    } else if ((c === 46 /* . */ || (decimalComma && c === 44)) /* , */ && !dot) {
      dot = true;
    } else break;
  }
  if (!any) return INVALID;
  if (i < e) {
    if (c !== 101 && c !== 69) return INVALID; // e E
    i++;
    let eneg = false;
    if (i < e && (src[i] === 45 || src[i] === 43)) {
      eneg = src[i] === 45;
      i++;
    }
    let x = 0;
    const xs = i;
    for (; i < e; i++) {
      c = src[i];
      if (c < 48 || c > 57) return INVALID;
      x = x * 10 + (c - 48);
      // (a negative one only adds places: past 18 the row is rejected for them)
      if (x > 400 && !eneg) return TOO_LARGE;
    }
    if (i === xs) return INVALID;
    if (digits > 15) return TOO_PRECISE;
    if (eneg) dp += x;
    else if (x <= dp) dp -= x;
    else {
      // shift left past the decimal point: multiply (each product exact while m stays within
      // M_MAX, and no multiple of 10 is M_MAX itself); the zeros added are not significant digits
      const up = x - dp;
      dp = 0;
      for (let k = 0; k < up && m <= M_MAX; k++) m *= 10;
      if (m > M_MAX) return TOO_LARGE;
    }
  }
  if (digits > 15) return TOO_PRECISE;
  out.m = neg && m !== 0 ? -m : m;
  out.dp = dp;
  return OK;
}

function digitsAt(src: Uint8Array, s: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = src[s + i] - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** Read 1 or 2 digits at s; returns [value, length] packed as value * 4 + length, or -1. */
function smallNum(src: Uint8Array, s: number, e: number): number {
  if (s >= e) return -1;
  const a = src[s] - 48;
  if (a < 0 || a > 9) return -1;
  if (s + 1 < e) {
    const b = src[s + 1] - 48;
    if (b >= 0 && b <= 9) return (a * 10 + b) * 4 + 2;
  }
  return a * 4 + 1;
}

/** Days in month mo (1-12) of year y, in the proleptic Gregorian calendar. */
function daysIn(y: number, mo: number): number {
  if (mo === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
}

/**
 * Parse a date into out.date as yyyymmddhhmmss. Accepts YYYY-MM-DD and YYYY/MM/DD (with an
 * optional [T ]HH:MM[:SS[.fff]] and zone suffix, which is ignored), YYYYMMDD, and US M/D/YYYY
 * [H:MM[:SS]].
 */
export function parseDate(src: Uint8Array, s: number, e: number, out: ParseOut): number {
  while (s < e && (src[s] === SP || src[s] === TAB)) s++;
  while (e > s && (src[e - 1] === SP || src[e - 1] === TAB)) e--;
  if (s === e) return EMPTY;
  let y: number, mo: number, d: number;
  let i: number;
  if (e - s >= 8 && digitsAt(src, s, 4) >= 0 && (src[s + 4] === 45 || src[s + 4] === 47)) {
    y = digitsAt(src, s, 4);
    const a = smallNum(src, s + 5, e);
    if (a < 0) return INVALID;
    mo = a >> 2;
    i = s + 5 + (a & 3);
    if (src[i] !== src[s + 4]) return INVALID;
    const b = smallNum(src, i + 1, e);
    if (b < 0) return INVALID;
    d = b >> 2;
    i = i + 1 + (b & 3);
  } else if (e - s >= 8 && digitsAt(src, s, 8) >= 0 && (e - s === 8 || src[s + 8] === SP || src[s + 8] === 84)) {
    const v = digitsAt(src, s, 8);
    y = Math.floor(v / 10000);
    mo = Math.floor(v / 100) % 100;
    d = v % 100;
    i = s + 8;
  } else {
    const a = smallNum(src, s, e);
    if (a < 0) return INVALID;
    mo = a >> 2;
    i = s + (a & 3);
    if (src[i] !== 47) return INVALID;
    const b = smallNum(src, i + 1, e);
    if (b < 0) return INVALID;
    d = b >> 2;
    i = i + 1 + (b & 3);
    if (src[i] !== 47) return INVALID;
    y = digitsAt(src, i + 1, 4);
    if (y < 0) return INVALID;
    i += 5;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo)) return INVALID;
  let hh = 0;
  let mm = 0;
  let ss = 0;
  let hasTime = false;
  if (i < e) {
    if (src[i] !== SP && src[i] !== 84 /* T */) return INVALID;
    i++;
    while (i < e && src[i] === SP) i++;
    const h = smallNum(src, i, e);
    if (h < 0) return INVALID;
    hh = h >> 2;
    i += h & 3;
    if (src[i] !== 58) return INVALID;
    const m2 = smallNum(src, i + 1, e);
    if (m2 < 0) return INVALID;
    mm = m2 >> 2;
    i += 1 + (m2 & 3);
    if (i < e && src[i] === 58) {
      const s2 = smallNum(src, i + 1, e);
      if (s2 < 0) return INVALID;
      ss = s2 >> 2;
      i += 1 + (s2 & 3);
    }
    if (hh > 23 || mm > 59 || ss > 60) return INVALID;
    hasTime = true;
    // fractional seconds and a zone suffix are accepted and ignored
    while (i < e && src[i] !== SP) {
      const c = src[i];
      if (!((c >= 48 && c <= 57) || c === 46 || c === 90 || c === 43 || c === 45 || c === 58)) return INVALID;
      i++;
    }
    while (i < e && src[i] === SP) i++;
    if (i < e) {
      // an "AM"/"PM" suffix
      const c = src[i] | 32;
      if ((c === 97 || c === 112) && i + 1 < e && (src[i + 1] | 32) === 109 && i + 2 === e) {
        if (c === 112 && hh < 12) hh += 12;
        if (c === 97 && hh === 12) hh = 0;
      } else return INVALID;
    }
  }
  out.date = ((((y * 100 + mo) * 100 + d) * 100 + hh) * 100 + mm) * 100 + ss;
  out.hasTime = hasTime;
  return OK;
}

/** Format yyyymmddhhmmss as ISO: `2010-12-01` or `2010-12-01 08:26:00`. */
export function formatDate(v: number, withTime: boolean): string {
  const s = String(v).padStart(14, '0');
  const date = `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
  return withTime ? `${date} ${s.slice(8, 10)}:${s.slice(10, 12)}:${s.slice(12, 14)}` : date;
}
