/**
 * Writing a users shard fast: the keys sorted by byte order with a radix sort on their first eight
 * bytes (ties finished by comparing the rest), and the CSV rows formatted straight into one byte
 * buffer (no string per row). Exact totals are summed in limbs, never in float or per-row BigInt.
 */
import { KeyTable, COUNT, SUM } from './table.js';
import { addLimbs, formatScaled, limbsToBig } from './util/exact.js';
import { formatDate } from './util/bytes.js';

/** Ids of a table in byte order of their keys. */
export function sortedIds(t: KeyTable): Uint32Array {
  const n = t.size;
  const { keyEnds, arena } = t;
  // the first 8 bytes (each + 1, so a shorter key sorts first) as four 16-bit digits
  const d0 = new Uint16Array(n);
  const d1 = new Uint16Array(n);
  const d2 = new Uint16Array(n);
  const d3 = new Uint16Array(n);
  for (let id = 0; id < n; id++) {
    const s = id === 0 ? 0 : keyEnds[id - 1];
    const e = keyEnds[id];
    const b = (k: number): number => (s + k < e ? arena[s + k] + 1 : 0);
    // 257 values per byte do not fit 8 bits: pack pairs as b0 * 257 + b1 (< 66049, fits with clamping below)
    d0[id] = pair(b(0), b(1));
    d1[id] = pair(b(2), b(3));
    d2[id] = pair(b(4), b(5));
    d3[id] = pair(b(6), b(7));
  }
  let ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[i] = i;
  let tmp = new Uint32Array(n);
  const counts = new Uint32Array(65537);
  for (const digit of [d3, d2, d1, d0]) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[digit[ids[i]] + 1]++;
    for (let c = 1; c <= 65536; c++) counts[c] += counts[c - 1];
    for (let i = 0; i < n; i++) tmp[counts[digit[ids[i]]]++] = ids[i];
    const x = ids;
    ids = tmp;
    tmp = x;
  }
  // keys equal in their first eight bytes (and the clamped pairs): finish by full comparison
  const cmp = (a: number, b: number): number => {
    const as = a === 0 ? 0 : keyEnds[a - 1];
    const ae = keyEnds[a];
    const bs = b === 0 ? 0 : keyEnds[b - 1];
    const be = keyEnds[b];
    const len = Math.min(ae - as, be - bs);
    for (let k = 0; k < len; k++) {
      const x = arena[as + k] - arena[bs + k];
      if (x !== 0) return x;
    }
    return ae - as - (be - bs);
  };
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && d0[ids[j]] === d0[ids[i]] && d1[ids[j]] === d1[ids[i]] && d2[ids[j]] === d2[ids[i]] && d3[ids[j]] === d3[ids[i]]) j++;
    if (j - i > 1) {
      const run = Array.from(ids.subarray(i, j)).sort(cmp);
      for (let k = 0; k < run.length; k++) ids[i + k] = run[k];
    }
    i = j;
  }
  return ids;
}

/** Two byte values (0..256 each) as one 16-bit digit, order-preserving up to ties the caller finishes. */
function pair(a: number, b: number): number {
  // a * 256 + b would overflow for a = 256; bytes 0xff (a = 256) are rare in UTF-8 (never valid):
  // clamp them to 255, and let the full comparison order what the clamp ties
  return Math.min(a, 255) * 256 + Math.min(b, 255);
}

/** The header of a users shard. */
export function shardHeader(flags: number): string {
  let h = 'user_id,purchases,total';
  if (flags & 1) h += ',quantity';
  if (flags & 2) h += ',first_date,last_date';
  return h + '\n';
}

/** The text of a key as a CSV field (quoted when it holds a comma, quote or line break, or edge blanks). */
export function csvField(s: string): string {
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A growable output byte buffer with fast integer and decimal writers. */
class Out {
  buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(Math.max(size, 1024));
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
  }
  ascii(s: string): void {
    this.ensure(s.length * 3);
    this.pos += this.buf.write(s, this.pos);
  }
  /** A non-negative integer below 2^53. */
  uint(v: number): void {
    this.ensure(17);
    const buf = this.buf;
    if (v < 10) {
      buf[this.pos++] = 48 + v;
      return;
    }
    let len = 0;
    for (let x = v; x >= 1; x = Math.floor(x / 10)) len++;
    let p = this.pos + len;
    this.pos = p;
    while (v >= 1) {
      const q = Math.floor(v / 10);
      buf[--p] = 48 + (v - q * 10);
      v = q;
    }
  }
  /** An integer |v| < 2^53 as a decimal with `scale` places. */
  scaled(v: number, scale: number): void {
    if (scale === 0) {
      if (v < 0) {
        this.ensure(1);
        this.buf[this.pos++] = 45;
        v = -v;
      }
      this.uint(v);
      return;
    }
    this.ensure(20 + scale);
    const buf = this.buf;
    if (v < 0) {
      buf[this.pos++] = 45;
      v = -v;
    }
    let len = 0;
    for (let x = v; x >= 1; x = Math.floor(x / 10)) len++;
    if (len <= scale) len = scale + 1; // at least one digit before the point
    let p = this.pos + len + 1;
    this.pos = p;
    for (let k = 0; k < len; k++) {
      if (k === scale) buf[--p] = 46;
      const q = Math.floor(v / 10);
      buf[--p] = 48 + (v - q * 10);
      v = q;
    }
  }
}

const TWO53 = 2 ** 53;

/** Format a merged table as a users shard (sorted), and its exact totals. */
export function formatShard(t: KeyTable, dateHasTime: boolean): { text: Buffer; total: bigint; quantity: bigint; rows: number } {
  const ids = sortedIds(t);
  const { acc, keyEnds, arena } = t;
  const w = t.width;
  const out = new Out(t.arenaUsed + t.size * 24 + 64);
  out.ascii(shardHeader(t.flags));
  const totals = new Float64Array(4); // total lo, hi, quantity lo, hi
  let rows = 0;
  const dec = new TextDecoder();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const o = id * w;
    const s = id === 0 ? 0 : keyEnds[id - 1];
    const e = keyEnds[id];
    let plain = true;
    for (let k = s; k < e; k++) {
      const c = arena[k];
      if (c === 44 || c === 34 || c === 10 || c === 13) plain = false;
    }
    // a blank, control or non-ASCII byte at either end: let csvField decide (it quotes any edge
    // white space, as String.prototype.trim sees it)
    if (e > s && (arena[s] <= 32 || arena[s] >= 128 || arena[e - 1] <= 32 || arena[e - 1] >= 128)) plain = false;
    if (plain) {
      out.ensure(e - s);
      for (let k = s; k < e; k++) out.buf[out.pos++] = arena[k];
    } else out.ascii(csvField(dec.decode(arena.subarray(s, e))));
    out.ensure(1);
    out.buf[out.pos++] = 44;
    const count = acc[o + COUNT];
    rows += count;
    out.uint(count);
    out.buf[out.pos++] = 44;
    const lo = acc[o + SUM];
    const hi = acc[o + SUM + 1];
    if (hi === 0 && lo < TWO53 && lo > -TWO53) out.scaled(lo, t.scale);
    else out.ascii(formatScaled(limbsToBig(lo, hi), t.scale));
    addLimbs(totals, 0, lo, hi, 0, 0);
    if (t.qtyOff >= 0) {
      const ql = acc[o + t.qtyOff];
      const qh = acc[o + t.qtyOff + 1];
      out.ensure(1);
      out.buf[out.pos++] = 44;
      if (qh === 0) out.scaled(ql, t.qscale);
      else out.ascii(formatScaled(limbsToBig(ql, qh), t.qscale));
      addLimbs(totals, 2, ql, qh, 0, 0);
    }
    if (t.dateOff >= 0) out.ascii(`,${formatDate(acc[o + t.dateOff], dateHasTime)},${formatDate(acc[o + t.dateOff + 1], dateHasTime)}`);
    out.ensure(1);
    out.buf[out.pos++] = 10;
  }
  return { text: out.buf.subarray(0, out.pos), total: limbsToBig(totals[0], totals[1]), quantity: limbsToBig(totals[2], totals[3]), rows };
}
