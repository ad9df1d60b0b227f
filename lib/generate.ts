/**
 * `segflow generate`: synthetic sales records in the Black Friday schema, seeded, with skewed spend
 * tiers (a few heavy buyers, many light ones), rows in random user order. Written straight into
 * large byte buffers, fast enough for gigabytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SegflowError } from './errors.js';
import { Random } from './util/random.js';

/** Options of {@link generate}. */
export interface GenerateOptions {
  out: string;
  /** Approximate size in bytes (stops at the first row past it). */
  size?: number;
  /** Exact number of rows. */
  rows?: number;
  /** Distinct users (default: rows / 12, at least 1). */
  users?: number;
  seed?: number;
  /** Decimal places of Purchase (default 0, like the original data). */
  decimals?: number;
  /** Line ending (default "\n"). */
  crlf?: boolean;
}

/** What {@link generate} wrote. */
export interface GenerateSummary {
  out: string;
  rows: number;
  bytes: number;
  users: number;
  seed: number;
  ms: number;
}

export const BLACK_FRIDAY_HEADER =
  'User_ID,Product_ID,Gender,Age,Occupation,City_Category,Stay_In_Current_City_Years,Marital_Status,Product_Category_1,Product_Category_2,Product_Category_3,Purchase';

const AGES = ['0-17', '18-25', '26-35', '36-45', '46-50', '51-55', '55+'];
const STAY = ['0', '1', '2', '3', '4+'];
/** Spend tiers: share of users, share of rows, mean purchase. */
const TIERS = [
  { users: 0.1, rows: 0.45, mean: 15000 },
  { users: 0.3, rows: 0.35, mean: 9000 },
  { users: 0.6, rows: 0.2, mean: 4000 },
];

/** Write a synthetic sales file. */
export function generate(o: GenerateOptions): GenerateSummary {
  const t0 = performance.now();
  if (!o || !o.out || typeof o.out !== 'string') throw new SegflowError('ERR_USAGE', '--out is required');
  if (o.size === undefined && o.rows === undefined) throw new SegflowError('ERR_USAGE', 'give --size BYTES or --rows N');
  const whole = (flag: string, v: unknown, min: number, max: number): void => {
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max)) {
      throw new SegflowError('ERR_USAGE', `${flag} must be an integer from ${min} to ${max}, got ${String(v)}`);
    }
  };
  // (at most 2^32 rows and users: the generator's ids and counters are 32-bit)
  whole('--rows', o.rows, 0, 2 ** 32);
  if (o.size !== undefined && !(typeof o.size === 'number' && o.size >= 0 && o.size <= 2 ** 42)) {
    throw new SegflowError('ERR_USAGE', `--size must be from 0 to 4 TiB, got ${String(o.size)}`);
  }
  whole('--users', o.users, 1, 2 ** 32);
  whole('--seed', o.seed, 0, 2 ** 32 - 1);
  whole('--decimals', o.decimals, 0, 9);
  const avgRow = 48;
  const rowsWanted = o.rows ?? Math.ceil((o.size as number) / avgRow);
  const users = Math.max(1, o.users ?? Math.floor(rowsWanted / 12));
  const seed = o.seed ?? 1;
  const decimals = o.decimals ?? 0;
  const rnd = new Random(seed);
  const eol = o.crlf ? '\r\n' : '\n';
  // users by tier: the first 10% of a shuffled id space are High, etc.
  const cut1 = Math.max(1, Math.floor(users * TIERS[0].users));
  const cut2 = Math.max(cut1 + 1, Math.floor(users * (TIERS[0].users + TIERS[1].users)));
  const perm = new Uint32Array(users);
  for (let i = 0; i < users; i++) perm[i] = i;
  for (let i = users - 1; i > 0; i--) {
    const j = rnd.int(i + 1);
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  const fd = fs.openSync(o.out, 'w');
  const CH = 4 << 20;
  const buf = Buffer.allocUnsafe(CH + 4096);
  let pos = buf.write(BLACK_FRIDAY_HEADER + eol, 0, 'latin1');
  let bytes = 0;
  let rows = 0;
  const pow = 10 ** decimals;
  const limitBytes = o.size;
  const writeInt = (v: number): void => {
    if (v === 0) {
      buf[pos++] = 48;
      return;
    }
    let start = pos;
    while (v > 0) {
      buf[pos++] = 48 + (v % 10);
      v = Math.floor(v / 10);
    }
    for (let end = pos - 1; start < end; start++, end--) {
      const t = buf[start];
      buf[start] = buf[end];
      buf[end] = t;
    }
  };
  for (;;) {
    if (o.rows !== undefined ? rows >= o.rows : bytes + pos >= (limitBytes as number)) break;
    const x = rnd.next();
    const tier = x < TIERS[0].rows ? 0 : x < TIERS[0].rows + TIERS[1].rows ? 1 : 2;
    const lo = tier === 0 ? 0 : tier === 1 ? cut1 : Math.min(cut2, users - 1);
    const hi = tier === 0 ? cut1 : tier === 1 ? Math.min(cut2, users) : users;
    // (with fewer users than tiers, a tier may be empty: its rows go to the last user)
    const u = perm[Math.min(users - 1, lo + rnd.int(Math.max(1, hi - lo)))];
    writeInt(1000001 + u);
    buf[pos++] = 44;
    pos += buf.write('P00', pos, 'latin1');
    writeInt(10000 + rnd.int(90000));
    pos += buf.write(u % 3 === 0 ? ',F,' : ',M,', pos, 'latin1');
    pos += buf.write(AGES[u % 7], pos, 'latin1');
    buf[pos++] = 44;
    writeInt(u % 21);
    buf[pos++] = 44;
    buf[pos++] = 65 + (u % 3);
    buf[pos++] = 44;
    pos += buf.write(STAY[u % 5], pos, 'latin1');
    buf[pos++] = 44;
    buf[pos++] = 48 + (u % 2);
    buf[pos++] = 44;
    const c1 = 1 + rnd.int(18);
    writeInt(c1);
    buf[pos++] = 44;
    const r2 = rnd.int(3);
    if (r2 > 0) writeInt(2 + rnd.int(16));
    buf[pos++] = 44;
    if (r2 > 1) writeInt(3 + rnd.int(15));
    buf[pos++] = 44;
    // log-normal purchase around the tier's mean
    const amount = Math.max(12, Math.min(23961, Math.round(TIERS[tier].mean * Math.exp(0.35 * rnd.normal() - 0.06))));
    if (decimals > 0) {
      const cents = amount * pow + rnd.int(pow);
      writeInt(Math.floor(cents / pow));
      buf[pos++] = 46;
      const frac = String(cents % pow).padStart(decimals, '0');
      pos += buf.write(frac, pos, 'latin1');
    } else writeInt(amount);
    pos += buf.write(eol, pos, 'latin1');
    rows++;
    if (pos >= CH) {
      fs.writeSync(fd, buf, 0, pos);
      bytes += pos;
      pos = 0;
    }
  }
  if (pos > 0) fs.writeSync(fd, buf, 0, pos);
  bytes += pos;
  fs.closeSync(fd);
  return { out: o.out, rows, bytes, users, seed, ms: Math.round(performance.now() - t0) };
}
