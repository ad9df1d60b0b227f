/**
 * Stage 1b: read each file's header once, decide its format and delimiter, and resolve the
 * columns by name (or by 1-based number for files without a header).
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { SegflowError } from './errors.js';
import { WHITESPACE } from './scan.js';

/** How one file is read. */
export interface FileSchema {
  file: string;
  size: number;
  compressed: boolean;
  format: 'csv' | 'jsonl';
  delimiter: number;
  /** Offset of the first data byte (after a BOM and the header line), in uncompressed bytes. */
  dataStart: number;
  /** Newlines before dataStart (1 with a header, 0 without). */
  headerLines: number;
  header: string[];
  fieldCount: number;
  /** Field indexes (CSV) or -1. */
  user: number;
  amount: number;
  quantity: number;
  date: number;
  /** Column names as resolved: user, amount, quantity, date ('' when unused). */
  names: [string, string, string, string];
}

/** Column choices, as the flags give them. */
export interface ColumnOptions {
  format?: 'csv' | 'jsonl';
  delimiter?: string;
  header?: boolean;
  userCol?: string;
  amountCol?: string;
  quantityCol?: string;
  dateCol?: string;
}

/** Names tried, in order, when no column is named (compared lower-case without punctuation). */
export const USER_NAMES = [
  'user_id', 'userid', 'customer_id', 'customerid', 'User_ID', 'CustomerID', 'user', 'customer', 'client_id', 'client',
  'cust_id', 'customer_no', 'customer_number', 'customer_unique_id', 'member_id', 'buyer_id', 'shopper_id', 'account_id',
];
export const AMOUNT_NAMES = [
  'purchase', 'amount', 'price', 'unitprice', 'sales', 'total', 'dollar_value', 'revenue', 'sale_amount', 'sales_amount',
  'total_amount', 'purchase_amount', 'order_amount', 'order_total', 'order_value', 'line_total', 'net_amount', 'payment_value',
  'spend', 'value',
];
/** An amount column found under one of these names is a unit price: a quantity column is looked for. */
const PRICE_NAMES = ['price', 'unitprice', 'unit_price'];
export const QUANTITY_NAMES = ['quantity', 'qty', 'units', 'number_of_items', 'item_count', 'units_sold'];

const norm = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');

const HEAD_BYTES = 1 << 16;

/** The first bytes of a file, decompressed when it is gzip. */
function readHead(file: string, compressed: boolean, size: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    if (!compressed) {
      const buf = Buffer.alloc(Math.min(size, HEAD_BYTES));
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      return buf.subarray(0, n);
    }
    const raw = Buffer.alloc(Math.min(size, 1 << 20));
    const n = fs.readSync(fd, raw, 0, raw.length, 0);
    try {
      // a partial stream: take what inflates
      return zlib.gunzipSync(raw.subarray(0, n), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).subarray(0, HEAD_BYTES * 4);
    } catch (err) {
      throw new SegflowError('ERR_BAD_INPUT', `${file}: not a readable gzip file (${(err as Error).message})`, { file });
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Bytes below 0x20 other than tab, LF, VT, FF and CR, plus DEL. */
function controlBytes(b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if ((c < 32 && (c < 9 || c > 13)) || c === 127) n++;
  }
  return n;
}

/** A header for an error message: at most 30 names of at most 40 characters, printable. */
function listColumns(header: string[]): string {
  const shown = header.slice(0, 30).map((h) => {
    const t = h.replace(/[\x00-\x1f\x7f]/g, '?');
    return t.length > 40 ? `${t.slice(0, 40)}…` : t;
  });
  return shown.join(', ') + (header.length > 30 ? `, … (${header.length} in all)` : '');
}

/** When a header looks like something else than CSV, say what. */
function formatHint(firstLine: string, header: string[], format: 'csv' | 'jsonl'): string {
  if (format !== 'csv') return '';
  const t = firstLine.trimStart();
  if (t.startsWith('{')) return ' (the file looks like JSON Lines: pass --format jsonl)';
  if (t.startsWith('[')) return ' (the file looks like JSON, which is not read: convert it to JSON Lines)';
  if (t.startsWith('<')) return ' (the file looks like HTML or XML, not CSV)';
  return header.length === 1 ? ' (the header has a single column: not a delimited file, or name the delimiter with --delimiter)' : '';
}

/** Split one header line into names (CSV quoting honoured). */
function splitHeader(line: string, delimiter: number): string[] {
  if (delimiter === WHITESPACE) return line.trim().split(/[ \t]+/);
  const d = String.fromCharCode(delimiter);
  const out: string[] = [];
  let cur = '';
  let inQ = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inQ) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else inQ = false;
      } else cur += c;
    } else if (c === '"' && cur === '') inQ = true;
    else if (c === d) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

/** Guess the delimiter of a header line: the most frequent of , tab ; | outside quotes, else blanks. */
function detectDelimiter(line: string): number {
  const counts = new Map<string, number>([[',', 0], ['\t', 0], [';', 0], ['|', 0]]);
  let inQ = false;
  for (const c of line) {
    if (c === '"') inQ = !inQ;
    else if (!inQ && counts.has(c)) counts.set(c, counts.get(c)! + 1);
  }
  let best = '';
  let bestN = 0;
  for (const [c, n] of counts) {
    if (n > bestN) {
      best = c;
      bestN = n;
    }
  }
  if (bestN > 0) return best.charCodeAt(0);
  if (/\S[ \t]+\S/.test(line.trim())) return WHITESPACE;
  return 44;
}

function parseDelimiter(d: string): number {
  if (d === 'whitespace' || d === 'space' || d === ' ') return WHITESPACE;
  if (d === '\\t' || d === 'tab' || d === '\t') return 9;
  if (Buffer.byteLength(d) !== 1) throw new SegflowError('ERR_USAGE', `--delimiter must be one byte, "tab" or "whitespace"; got ${JSON.stringify(d)}`);
  return d.charCodeAt(0);
}

/**
 * Find a column: by exact name, then case-insensitively ignoring punctuation, then (when the value
 * is a number and no header has that name) by 1-based position.
 */
function findColumn(header: string[], wanted: string): number {
  let i = header.indexOf(wanted);
  if (i >= 0) return i;
  const n = norm(wanted);
  i = header.findIndex((h) => norm(h) === n);
  if (i >= 0) return i;
  if (/^\d+$/.test(wanted)) {
    const k = Number(wanted) - 1;
    if (k >= 0 && k < header.length) return k;
  }
  return -1;
}

function autoColumn(header: string[], names: string[]): number {
  for (const name of names) {
    const i = header.findIndex((h) => norm(h) === norm(name));
    if (i >= 0) return i;
  }
  return -1;
}

/** Read a file's header and resolve its columns. */
export function readSchema(file: string, opts: ColumnOptions): FileSchema {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new SegflowError('ERR_INPUT_NOT_FOUND', `input not found: ${file}`, { file });
  }
  if (!st.isFile()) throw new SegflowError('ERR_BAD_INPUT', `${file}: not a regular file`, { file });
  const magic = Buffer.alloc(2);
  try {
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, magic, 0, 2, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SegflowError('ERR_BAD_INPUT', `${file}: cannot be read (${code === 'EACCES' ? 'permission denied' : (err as Error).message})`, { file, sysCode: code });
  }
  const compressed = magic[0] === 0x1f && magic[1] === 0x8b;
  if (st.size === 0) throw new SegflowError('ERR_BAD_INPUT', `${file}: the file is empty (expected a header line)`, { file });
  const head = readHead(file, compressed, st.size);
  const nul = head.indexOf(0);
  if (nul >= 0) {
    throw new SegflowError('ERR_BAD_INPUT', `${file}: not a text file (a NUL byte at offset ${nul}); expected CSV or JSON Lines`, { file, offset: nul });
  }
  const control = controlBytes(head);
  // text has next to none; random or compressed bytes have about 1 in 9
  if (control > Math.max(2, head.length / 100)) {
    throw new SegflowError('ERR_BAD_INPUT', `${file}: not a text file (${control} of its first ${head.length} bytes are control characters); expected CSV or JSON Lines`, { file });
  }
  const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  const base = file.replace(/\.gz$/i, '');
  const format = opts.format ?? (/\.(jsonl|ndjson|json)$/i.test(base) ? 'jsonl' : 'csv');
  const hasHeader = opts.header ?? format === 'csv';
  // the first line
  let nl = head.indexOf(10, bom);
  if (nl < 0) {
    if (head.length < st.size && !compressed) {
      throw new SegflowError('ERR_BAD_INPUT', `${file}: the first line is longer than ${HEAD_BYTES} bytes; expected a header line`, { file, line: 1 });
    }
    nl = head.length;
  }
  const firstLine = head.toString('utf8', bom, nl).replace(/\r$/, '');
  if (firstLine.trim() === '') throw new SegflowError('ERR_BAD_INPUT', `${file}: line 1 is empty; expected a header line`, { file, line: 1 });

  let header: string[];
  let delimiter = 44;
  let dataStart = bom;
  let headerLines = 0;
  if (format === 'jsonl') {
    let obj: unknown;
    try {
      obj = JSON.parse(firstLine);
    } catch {
      throw new SegflowError('ERR_BAD_INPUT', `${file}:1: not JSON Lines (line 1 is not a JSON object)`, { file, line: 1 });
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new SegflowError('ERR_BAD_INPUT', `${file}:1: not JSON Lines (line 1 is not a JSON object)`, { file, line: 1 });
    }
    header = Object.keys(obj as object);
  } else {
    delimiter = opts.delimiter !== undefined ? parseDelimiter(opts.delimiter) : /\.tsv$/i.test(base) ? 9 : detectDelimiter(firstLine);
    const cells = splitHeader(firstLine, delimiter);
    if (hasHeader) {
      header = cells;
      dataStart = Math.min(nl + 1, compressed ? Number.MAX_SAFE_INTEGER : st.size);
      headerLines = 1;
    } else header = cells.map((_, i) => `column${i + 1}`);
  }
  const fieldCount = header.length;
  const listed = `columns: ${listColumns(header)}${formatHint(firstLine, header, format)}`;
  const resolve = (flag: string, given: string | undefined, auto: string[], what: string, required: boolean): number => {
    // (a JavaScript caller may pass a column number as a number)
    const wanted: unknown = typeof given === 'number' ? String(given) : given;
    if (wanted !== undefined && typeof wanted !== 'string') {
      throw new SegflowError('ERR_USAGE', `${flag} must be a column name or number, got ${typeof wanted}`);
    }
    if (wanted !== undefined && wanted !== '') {
      const i = findColumn(header, wanted);
      if (i < 0) {
        throw new SegflowError('ERR_COLUMN', `${file}: no ${what} column "${wanted}" (${flag}); ${listed}`, { file, column: wanted, header });
      }
      return i;
    }
    if (!required) return -1;
    const i = autoColumn(header, auto);
    if (i < 0) {
      throw new SegflowError('ERR_COLUMN', `${file}: no ${what} column found (tried ${auto.join(', ')}); name it with ${flag}; ${listed}`, { file, header });
    }
    return i;
  };
  const user = resolve('--user-col', opts.userCol, USER_NAMES, 'user id', true);
  const amount = resolve('--amount-col', opts.amountCol, AMOUNT_NAMES, 'amount', true);
  let quantity = -1;
  if (opts.quantityCol === 'none') quantity = -1;
  else if (opts.quantityCol) quantity = resolve('--quantity-col', opts.quantityCol, [], 'quantity', true);
  else if (!opts.amountCol && PRICE_NAMES.map(norm).includes(norm(header[amount]))) {
    // a unit price found by name: amount = price x quantity when a quantity column is there
    quantity = autoColumn(header, QUANTITY_NAMES);
  }
  const date = resolve('--date-col', opts.dateCol, [], 'date', !!opts.dateCol);
  if (user === amount) throw new SegflowError('ERR_COLUMN', `${file}: the user and amount columns are the same (${header[user]})`, { file });
  return {
    file,
    size: st.size,
    compressed,
    format,
    delimiter,
    dataStart,
    headerLines,
    header,
    fieldCount,
    user: format === 'jsonl' ? -1 : user,
    amount: format === 'jsonl' ? -1 : amount,
    quantity: format === 'jsonl' ? -1 : quantity,
    date: format === 'jsonl' ? -1 : date,
    names: [header[user], header[amount], quantity >= 0 ? header[quantity] : '', date >= 0 ? header[date] : ''],
  };
}
