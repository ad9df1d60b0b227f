/**
 * A deliberately simple single-threaded reference for `aggregate`: whole-file RFC 4180 parsing
 * with strings, BigInt decimal arithmetic. Tests compare the pool's output with it.
 */
import fs from 'node:fs';

export interface RefUser {
  purchases: number;
  /** Scaled to `scale` places. */
  total: bigint;
}

export interface RefResult {
  users: Map<string, RefUser>;
  scale: number;
  rows: number;
  rejected: number;
  /** 1-based line numbers of rejected records. */
  rejectLines: number[];
}

interface Rec {
  fields: string[];
  line: number;
  quoted: boolean[];
}

/** Parse CSV text into records (RFC 4180, CRLF or LF, BOM skipped, empty lines skipped). */
export function parseCsv(text: string, delim = ','): Rec[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: Rec[] = [];
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const startLine = line;
    // empty line?
    if (text[i] === '\n' || (text[i] === '\r' && text[i + 1] === '\n')) {
      i += text[i] === '\r' ? 2 : 1;
      line++;
      continue;
    }
    const fields: string[] = [];
    const quoted: boolean[] = [];
    let cur = '';
    let inQ = false;
    let begin = true;
    let q = false;
    for (;;) {
      if (i >= text.length) {
        fields.push(cur);
        quoted.push(q);
        break;
      }
      const c = text[i];
      if (inQ) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            cur += '"';
            i += 2;
          } else {
            inQ = false;
            i++;
          }
          continue;
        }
        if (c === '\n') line++;
        cur += c;
        i++;
        continue;
      }
      if (c === '"' && begin) {
        inQ = true;
        q = true;
        begin = false;
        i++;
        continue;
      }
      if (c === delim) {
        fields.push(cur);
        quoted.push(q);
        cur = '';
        q = false;
        begin = true;
        i++;
        continue;
      }
      if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
        fields.push(cur);
        quoted.push(q);
        i += c === '\r' ? 2 : 1;
        line++;
        break;
      }
      cur += c;
      begin = false;
      i++;
    }
    out.push({ fields, line: startLine, quoted });
  }
  return out;
}

/** An exact decimal: [value, places] or undefined. */
export function parseDec(s: string): [bigint, number] | undefined {
  const m = /^[ \t]*([+-]?)(\d*)(?:\.(\d*))?[ \t]*$/.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  const frac = m[3] ?? '';
  let v = BigInt((m[2] || '0') + frac);
  if (m[1] === '-') v = -v;
  return [v, frac.length];
}

/** The reference aggregate of one CSV file with a header. Amount = price x quantity when `quantity` is given. */
export function referenceAggregate(file: string, userCol: string, amountCol: string, quantityCol?: string, delim = ','): RefResult {
  const recs = parseCsv(fs.readFileSync(file, 'utf8'), delim);
  const header = recs.shift()!.fields.map((h) => h.trim());
  const ui = header.indexOf(userCol);
  const ai = header.indexOf(amountCol);
  const qi = quantityCol ? header.indexOf(quantityCol) : -1;
  const raw = new Map<string, { n: number; parts: [bigint, number][] }>();
  let rows = 0;
  let rejected = 0;
  const rejectLines: number[] = [];
  let scale = 0;
  for (const r of recs) {
    const user = r.fields[ui]?.replace(/^[ \t]+|[ \t]+$/g, '');
    const a = r.fields.length === header.length ? parseDec(r.fields[ai]) : undefined;
    const q = qi >= 0 && r.fields.length === header.length ? parseDec(r.fields[qi]) : [1n, 0] as [bigint, number];
    if (r.fields.length !== header.length || !user || !a || !q) {
      rejected++;
      rejectLines.push(r.line);
      continue;
    }
    const v: [bigint, number] = [a[0] * q[0], a[1] + q[1]];
    scale = Math.max(scale, v[1]);
    rows++;
    const u = raw.get(user) ?? { n: 0, parts: [] };
    u.n++;
    u.parts.push(v);
    raw.set(user, u);
  }
  const users = new Map<string, RefUser>();
  for (const [k, u] of raw) {
    let t = 0n;
    for (const [v, dp] of u.parts) t += v * 10n ** BigInt(scale - dp);
    users.set(k, { purchases: u.n, total: t });
  }
  return { users, scale, rows, rejected, rejectLines };
}

/** Read every users shard of an output folder into a map (checking the sort order). */
export function readShards(dir: string): { users: Map<string, { purchases: number; total: string }>; sorted: boolean } {
  const users = new Map<string, { purchases: number; total: string }>();
  let sorted = true;
  for (const f of fs.readdirSync(dir).filter((x) => /^users-\d{5}-of-\d{5}\.csv$/.test(x)).sort()) {
    const recs = parseCsv(fs.readFileSync(`${dir}/${f}`, 'utf8'));
    recs.shift();
    let prev: Buffer | undefined;
    for (const r of recs) {
      const key = Buffer.from(r.fields[0]);
      if (prev && Buffer.compare(prev, key) >= 0) sorted = false;
      prev = key;
      users.set(r.fields[0], { purchases: Number(r.fields[1]), total: r.fields[2] });
    }
  }
  return { users, sorted };
}

/** Format a scaled BigInt like segflow does. */
export function fmt(v: bigint, scale: number): string {
  const neg = v < 0n;
  let s = (neg ? -v : v).toString();
  if (scale > 0) {
    s = s.padStart(scale + 1, '0');
    s = s.slice(0, -scale) + '.' + s.slice(-scale);
  }
  return (neg ? '-' : '') + s;
}
