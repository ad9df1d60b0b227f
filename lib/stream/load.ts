/**
 * Read a `users-*.csv` shard (lib/merge.ts `formatShard`'s output) back into a per-key table, so a
 * stream starts from a batch result. Runs as the `load` op of the `stream` pool task, one shard per
 * task; the shard comes back as one partial section, folded into the state like a batch.
 */
import fs from 'node:fs';
import { KeyTable, COUNT, SUM, F_QTY, F_DATE, hashBytes } from '../table.js';
import { encodeSections } from '../partial.js';
import { OK, TOO_PRECISE, parseDate, parseDecimal, type ParseOut } from '../util/bytes.js';
import { addBig, parseScaled } from '../util/exact.js';
import { SegflowError } from '../errors.js';

/** What loading one shard returns. */
export interface LoadOutput {
  section: SharedArrayBuffer;
  users: number;
  rows: number;
  flags: number;
  scale: number;
  qscale: number;
  dateHasTime: boolean;
}

const NL = 10;
const CR = 13;
const COMMA = 44;
const QUOTE = 34;

/** The table flags a shard header names, or -1 when it is not a users shard header. */
export function shardFlags(header: string): number {
  const h = header.replace(/\r$/, '');
  if (h === 'user_id,purchases,total') return 0;
  if (h === 'user_id,purchases,total,quantity') return F_QTY;
  if (h === 'user_id,purchases,total,first_date,last_date') return F_DATE;
  if (h === 'user_id,purchases,total,quantity,first_date,last_date') return F_QTY | F_DATE;
  return -1;
}

/**
 * Parse one users shard into a table and return it as one section.
 *
 * @param file A `users-SSSSS-of-PPPPP.csv` file.
 * @throws SegflowError ERR_BAD_INPUT on a line that is not a shard line.
 */
export function loadUsersShard(file: string): LoadOutput {
  const buf = fs.readFileSync(file);
  let nl = buf.indexOf(NL);
  if (nl < 0) nl = buf.length;
  const flags = shardFlags(buf.toString('utf8', 0, nl));
  if (flags < 0) throw new SegflowError('ERR_BAD_INPUT', `${file}: not a users shard (header ${JSON.stringify(buf.toString('utf8', 0, Math.min(nl, 120)))})`, { file });
  const t = new KeyTable(flags, Math.max(1024, Math.ceil(buf.length / 24)));
  const out: ParseOut = { m: 0, dp: 0, date: 0, hasTime: false };
  const scratch = Buffer.allocUnsafe(4096);
  let dateHasTime = false;
  let rows = 0;
  let line = 1;
  let p = nl + 1;
  const fail = (what: string): never => {
    throw new SegflowError('ERR_BAD_INPUT', `${file}:${line}: ${what}`, { file, line });
  };
  /** Add the decimal in buf[s, e) to the limbs at `at`, raising the table's scale (or qscale) when needed. */
  const addDecimal = (s: number, e: number, at: number, qty: boolean): void => {
    const st = parseDecimal(buf, s, e, out);
    const cur = qty ? t.qscale : t.scale;
    if (st === OK) {
      if (out.dp > cur) qty ? t.rescaleQty(out.dp) : t.rescale(out.dp);
      KeyTable.addScaled(t.acc, at, out.m, out.dp, qty ? t.qscale : t.scale);
      return;
    }
    if (st !== TOO_PRECISE) fail(`not a number: ${JSON.stringify(buf.toString('utf8', s, e))}`);
    // a total past 15 significant digits: exact through BigInt
    const text = buf.toString('latin1', s, e);
    const dot = text.indexOf('.');
    const dp = dot < 0 ? 0 : text.length - dot - 1;
    if (dp > cur) qty ? t.rescaleQty(dp) : t.rescale(dp);
    const to = qty ? t.qscale : t.scale;
    addBig(t.acc, at, parseScaled(text, dp) * 10n ** BigInt(to - dp));
  };
  while (p < buf.length) {
    line++;
    let e = buf.indexOf(NL, p);
    if (e < 0) e = buf.length;
    let ce = e;
    if (ce > p && buf[ce - 1] === CR) ce--;
    if (ce === p) {
      p = e + 1;
      continue;
    }
    // the user id, quoted by csvField when it holds a comma, quote or line break
    let src: Uint8Array = buf;
    let ks = p;
    let ke: number;
    let i: number;
    if (buf[p] === QUOTE) {
      let o = 0;
      i = p + 1;
      for (;;) {
        if (i >= buf.length) fail('unterminated quote');
        const c = buf[i];
        if (c === QUOTE) {
          if (buf[i + 1] === QUOTE) {
            scratch[o++] = QUOTE;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (o >= scratch.length) fail('user id longer than 4096 bytes');
        scratch[o++] = c;
        i++;
      }
      // a quoted id may hold a line break: the record ends at the first newline after the quote
      if (i > e) {
        e = buf.indexOf(NL, i);
        if (e < 0) e = buf.length;
        ce = e > i && buf[e - 1] === CR ? e - 1 : e;
      }
      src = scratch;
      ks = 0;
      ke = o;
      if (buf[i] !== COMMA) fail('expected "," after the user id');
    } else {
      i = buf.indexOf(COMMA, p);
      if (i < 0 || i > ce) fail('expected user_id,purchases,total');
      ke = i;
    }
    // fields after the id: purchases, total[, quantity][, first_date, last_date]
    const f0 = i + 1;
    const f1 = buf.indexOf(COMMA, f0);
    if (f1 < 0 || f1 > ce) fail('expected user_id,purchases,total');
    let num = 0;
    let digits = ke > ks && ke - ks <= 15 && !(src[ks] === 48 && ke - ks > 1);
    for (let k = ks; k < ke && digits; k++) {
      const c = src[k];
      if (c >= 48 && c <= 57) num = num * 10 + (c - 48);
      else digits = false;
    }
    if (!digits) num = -1;
    const id = t.find(hashBytes(src, ks, ke), num, src, ks, ke);
    const o = id * t.width;
    let count = 0;
    for (let k = f0; k < f1; k++) {
      const c = buf[k] - 48;
      if (c < 0 || c > 9) fail('purchases is not a count');
      count = count * 10 + c;
    }
    t.acc[o + COUNT] += count;
    rows += count;
    let fe = f1 + 1;
    let next = flags === 0 ? ce : buf.indexOf(COMMA, fe);
    if (next < 0 || next > ce) fail('too few fields');
    addDecimal(fe, next, o + SUM, false);
    if (flags & F_QTY) {
      fe = next + 1;
      next = flags & F_DATE ? buf.indexOf(COMMA, fe) : ce;
      if (next < 0 || next > ce) fail('too few fields');
      addDecimal(fe, next, o + t.qtyOff, true);
    }
    if (flags & F_DATE) {
      fe = next + 1;
      next = buf.indexOf(COMMA, fe);
      if (next < 0 || next > ce) fail('too few fields');
      if (parseDate(buf, fe, next, out) !== OK) fail('first_date is not a date');
      if (out.date < t.acc[o + t.dateOff]) t.acc[o + t.dateOff] = out.date;
      if (out.hasTime) dateHasTime = true;
      if (parseDate(buf, next + 1, ce, out) !== OK) fail('last_date is not a date');
      if (out.date > t.acc[o + t.dateOff + 1]) t.acc[o + t.dateOff + 1] = out.date;
      if (out.hasTime) dateHasTime = true;
    }
    p = e + 1;
  }
  return {
    section: encodeSections(t, 1)[0],
    users: t.size,
    rows,
    flags,
    scale: t.scale,
    qscale: t.qscale,
    dateHasTime,
  };
}
