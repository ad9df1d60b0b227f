/**
 * Exactness as a property: random files (columns in any order, extra columns, quoted commas and
 * quotes, multi-byte ids, BOM, CRLF, empty lines, bad rows, no final newline) aggregated on the
 * pool with random range sizes (smaller than a line, splitting CRLF pairs and multi-byte
 * characters) must equal a simple single-threaded reference: same users, counts, exact totals,
 * and every row counted or rejected.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { aggregate, SegflowPool } from '../lib/index.js';
import { Random } from '../lib/util/random.js';
import { fmt, readShards, referenceAggregate } from './helpers/reference.js';
import { assertSameOutput } from './helpers/output.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-exact-'));
const pool2 = new SegflowPool({ workers: 2 });
const pool1 = new SegflowPool({ workers: 1 });

const USER_NAMES = ['user_id', 'CustomerID', 'User_ID', 'customer_id'];
const AMOUNT_NAMES = ['amount', 'Purchase', 'sales', 'total'];
const IDS = ['17850', '00123', '123', 'Zoë', 'ÅSA-9', 'a,b', 'say "hi"', '日本-1', 'x', '0', '1000001', '  42  '];

function csvQuote(s: string, force: boolean): string {
  return force || /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A random CSV file; returns its path and column names. */
function randomFile(rnd: Random, i: number, multiline: boolean): { file: string; user: string; amount: string } {
  const nExtra = rnd.int(4);
  const cols = ['U', 'A', ...Array.from({ length: nExtra }, (_, k) => `X${k}`)];
  for (let k = cols.length - 1; k > 0; k--) {
    const j = rnd.int(k + 1);
    [cols[k], cols[j]] = [cols[j], cols[k]];
  }
  const user = USER_NAMES[rnd.int(USER_NAMES.length)];
  const amount = AMOUNT_NAMES[rnd.int(AMOUNT_NAMES.length)];
  const names = cols.map((c) => (c === 'U' ? user : c === 'A' ? amount : `extra ${c} ü`));
  const eol = rnd.next() < 0.5 ? '\r\n' : '\n';
  let text = (rnd.next() < 0.3 ? '\ufeff' : '') + names.map((n) => csvQuote(n, rnd.next() < 0.2)).join(',') + eol;
  const rows = 20 + rnd.int(150);
  const maxDp = rnd.int(4);
  for (let r = 0; r < rows; r++) {
    if (rnd.next() < 0.04) {
      text += eol; // an empty line
      continue;
    }
    const bad = rnd.next();
    const cells = cols.map((c) => {
      if (c === 'U') {
        if (bad < 0.03) return '';
        return csvQuote(IDS[rnd.int(IDS.length)], rnd.next() < 0.1);
      }
      if (c === 'A') {
        if (bad > 0.97) return 'n/a';
        const dp = rnd.int(maxDp + 1);
        const whole = rnd.int(100000);
        let s = String(whole);
        if (dp > 0) s += '.' + String(rnd.int(10 ** dp)).padStart(dp, '0');
        if (rnd.next() < 0.1) s = '-' + s;
        return csvQuote(s, rnd.next() < 0.1);
      }
      const t = rnd.next();
      if (multiline && t < 0.05) return '"line one\nline two, ""quoted"""';
      if (t < 0.2) return '"a, b and ""c"""';
      if (t < 0.3) return 'żółw 🐢';
      return String(rnd.int(1000));
    });
    if (bad > 0.5 && bad < 0.52) cells.push('extra'); // wrong number of fields
    text += cells.join(',') + (r === rows - 1 && rnd.next() < 0.5 ? '' : eol);
  }
  const file = path.join(tmp, `random-${i}.csv`);
  fs.writeFileSync(file, text);
  return { file, user, amount };
}

test('random files: pool output equals the reference for random range sizes and worker counts', async () => {
  const rnd = new Random(20261128);
  for (let i = 0; i < 24; i++) {
    const { file, user, amount } = randomFile(rnd, i, i % 6 === 5);
    const ref = referenceAggregate(file, user, amount);
    const rangeSize = [1, 3, 7, 50, 333, 4096, 1 << 20][rnd.int(7)];
    const pool = i % 2 === 0 ? pool2 : pool1;
    const out = path.join(tmp, `out-${i}`);
    const s = await aggregate({ input: file, out, pool, rangeSize, shards: 1 + rnd.int(5), force: true, userCol: user, amountCol: amount });
    const ctx = `file ${i} (range ${rangeSize}, ${pool.workers} workers)`;
    assert.is(s.rows.counted, ref.rows, `${ctx}: rows counted`);
    assert.is(s.rows.rejected, ref.rejected, `${ctx}: rows rejected`);
    assert.is(s.users, ref.users.size, `${ctx}: users`);
    assert.is(s.scale, ref.scale, `${ctx}: scale`);
    const got = readShards(out);
    assert.ok(got.sorted, `${ctx}: shards sorted by user_id`);
    for (const [k, u] of ref.users) {
      const g = got.users.get(k);
      assert.ok(g, `${ctx}: user ${JSON.stringify(k)} missing`);
      assert.is(g!.purchases, u.purchases, `${ctx}: purchases of ${k}`);
      assert.is(g!.total, fmt(u.total, ref.scale), `${ctx}: total of ${k}`);
    }
    const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(rejects.map((r) => r.line), ref.rejectLines, `${ctx}: reject line numbers`);
    for (const r of rejects) {
      assert.is(r.file, file);
      assert.type(r.reason, 'string');
      assert.type(r.offset, 'number');
    }
  }
});

test('quote-free lines with any one-byte delimiter, field layout and alignment equal the reference', async () => {
  // the line kernel reads sixteen bytes at a time, the JavaScript loop four: fields of every
  // length from 0 to 13 bytes put delimiters, newlines and the wanted fields at every position
  // within a block
  const rnd = new Random(20261129);
  const delims = [',', ';', '\t', '|'];
  for (let i = 0; i < 16; i++) {
    const delim = delims[i % delims.length];
    const nf = 1 + rnd.int(14);
    const ui = rnd.int(nf);
    let ai = rnd.int(nf);
    if (nf > 1) while (ai === ui) ai = rnd.int(nf);
    const names = Array.from({ length: nf }, (_, k) => (k === ui ? 'user' : k === ai ? 'amount' : `c${k}`));
    if (nf === 1) continue; // a user and an amount need two columns
    const eol = rnd.next() < 0.3 ? '\r\n' : '\n';
    const filler = (): string => 'abcdefghijklm'.slice(0, rnd.int(14));
    let text = names.join(delim) + eol;
    const rows = 200 + rnd.int(400);
    for (let r = 0; r < rows; r++) {
      if (rnd.next() < 0.02) {
        text += eol;
        continue;
      }
      const cells = names.map((_, k) => {
        if (k === ui) return rnd.next() < 0.02 ? '' : String(rnd.int(3) === 0 ? rnd.int(100) : 1000 + rnd.int(5000));
        if (k === ai) return rnd.next() < 0.02 ? 'x' : `${rnd.int(100000)}${rnd.next() < 0.3 ? '.' + String(rnd.int(100)).padStart(2, '0') : ''}`;
        return filler();
      });
      const t = rnd.next();
      if (t < 0.02) cells.push(filler()); // too many fields
      else if (t < 0.04) cells.pop(); // too few
      text += cells.join(delim) + (r === rows - 1 && rnd.next() < 0.5 ? '' : eol);
    }
    const file = path.join(tmp, `plain-${i}.txt`);
    fs.writeFileSync(file, text);
    const ref = referenceAggregate(file, 'user', 'amount', undefined, delim);
    const rangeSize = [5, 64, 997, 1 << 20][rnd.int(4)];
    // each file twice: lines found by the SIMD line kernel (lib/kernel/lines.wat), and by the
    // JavaScript loop alone (SEGFLOW_KERNEL=js)
    for (const kernel of ['simd', 'js']) {
      if (kernel === 'js') process.env.SEGFLOW_KERNEL = 'js';
      const out = path.join(tmp, `plain-out-${i}-${kernel}`);
      const delimiter = delim === '\t' ? 'tab' : delim;
      const s = await aggregate({ input: file, out, pool: pool2, rangeSize, force: true, userCol: 'user', amountCol: 'amount', delimiter }).finally(() => {
        delete process.env.SEGFLOW_KERNEL;
      });
      const ctx = `file ${i} (${JSON.stringify(delim)}, ${nf} fields, user ${ui}, amount ${ai}, range ${rangeSize}, ${kernel})`;
      assert.is(s.rows.counted, ref.rows, `${ctx}: rows counted`);
      assert.is(s.rows.rejected, ref.rejected, `${ctx}: rows rejected`);
      const got = readShards(out);
      assert.is(got.users.size, ref.users.size, `${ctx}: users`);
      for (const [k, u] of ref.users) {
        const g = got.users.get(k);
        assert.ok(g, `${ctx}: user ${k} missing`);
        assert.is(g!.purchases, u.purchases, `${ctx}: purchases of ${k}`);
        assert.is(g!.total, fmt(u.total, ref.scale), `${ctx}: total of ${k}`);
      }
      const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(rejects.map((r) => r.line), ref.rejectLines, `${ctx}: reject line numbers`);
    }
  }
});

test('lines between 1 and 2 MiB: the line kernel and the JavaScript loop reject the same ones', async () => {
  // whether a line past --max-record-bytes (1 MiB) is cut off depends on the read buffer's
  // length, which grows for such a line: both paths must read with buffers of the same length
  // (the kernel's lives in its own memory)
  const file = path.join(tmp, 'long-lines.csv');
  const parts = ['user_id,amount,note\n'];
  for (let round = 0; round < 6; round++) {
    parts.push(`${100 + round},5,${'b'.repeat(1_500_000)}\n`);
    for (let r = 0, bytes = 0; bytes < 700_000; r++) {
      const line = `${2 + (r % 50)},1,zz\n`;
      parts.push(line);
      bytes += line.length;
    }
  }
  fs.writeFileSync(file, parts.join(''));
  // (a fresh worker: its read buffer starts at its first size)
  const fresh = new SegflowPool({ workers: 1 });
  try {
    const outs: string[] = [];
    for (const kernel of ['simd', 'js']) {
      if (kernel === 'js') process.env.SEGFLOW_KERNEL = 'js';
      const out = path.join(tmp, `long-lines-${kernel}`);
      await aggregate({ input: file, out, pool: fresh, rangeSize: 2_000_000, force: true }).finally(() => {
        delete process.env.SEGFLOW_KERNEL;
      });
      outs.push(out);
    }
    assertSameOutput(outs[0], outs[1], 'the kernel and the JavaScript loop differ');
    assert.equal(fs.readFileSync(path.join(outs[0], 'rejects.jsonl'), 'utf8'), fs.readFileSync(path.join(outs[1], 'rejects.jsonl'), 'utf8'));
  } finally {
    await fresh.destroy();
  }
});

test('shards are byte-identical for 1 and 2 workers and any range size', async () => {
  const file = path.join(tmp, 'ident.csv');
  const rnd = new Random(7);
  let text = 'Purchase,junk,User_ID\r\n';
  for (let r = 0; r < 3000; r++) text += `${rnd.int(10000)}.${rnd.int(100)},"q,${r}",${1000 + rnd.int(400)}\r\n`;
  fs.writeFileSync(file, text);
  const digest = async (pool: SegflowPool, rangeSize: number): Promise<string> => {
    const out = path.join(tmp, `ident-${pool.workers}-${rangeSize}`);
    await aggregate({ input: file, out, pool, rangeSize, shards: 4, force: true });
    return fs
      .readdirSync(out)
      .filter((f) => f.startsWith('users-') || f === 'rejects.jsonl')
      .sort()
      .map((f) => fs.readFileSync(path.join(out, f), 'latin1'))
      .join('|');
  };
  const base = await digest(pool1, 1 << 20);
  for (const [pool, rs] of [[pool2, 1 << 20], [pool2, 997], [pool1, 64], [pool2, 5]] as const) {
    assert.ok((await digest(pool, rs)) === base, `differs with ${pool.workers} workers, range ${rs}`);
  }
});

test('JSON Lines: string and number ids, escapes, nested values, bad lines', async () => {
  const file = path.join(tmp, 'sales.jsonl');
  fs.writeFileSync(
    file,
    [
      '{"user_id": "00123", "amount": 10.5, "meta": {"a": [1, 2, "}"]}}',
      '{"amount": "2.25", "user_id": 123}',
      '{"user_id": "a\\"b", "amount": -1}',
      '{"user_id": "00123", "amount": 1e2}',
      'not json',
      '{"user_id": null, "amount": 3}',
      '',
      '{"user_id": "Zoë", "amount": 0.001}',
    ].join('\n'),
  );
  const out = path.join(tmp, 'jsonl-out');
  const s = await aggregate({ input: file, out, pool: pool2, force: true, shards: 1 });
  assert.is(s.rows.counted, 5);
  assert.is(s.rows.rejected, 2);
  assert.is(s.rows.emptyLines, 1);
  const got = readShards(out).users;
  assert.equal(got.get('00123'), { purchases: 2, total: '110.500' });
  assert.equal(got.get('123'), { purchases: 1, total: '2.250' });
  assert.equal(got.get('a"b'), { purchases: 1, total: '-1.000' });
  assert.equal(got.get('Zoë'), { purchases: 1, total: '0.001' });
  const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rejects.map((r) => r.line), [5, 6]);
});

test('price x quantity with decimals in both, and quantity / date columns', async () => {
  const file = path.join(tmp, 'pq.csv');
  fs.writeFileSync(file, 'when;who;qty;price\n2011-01-02 10:00;7;1.5;2.25\n12/1/2010 8:45;7;-2;0.1\n20100105;8;3;1\nbad-date;8;1;1\n');
  const out = path.join(tmp, 'pq-out');
  const s = await aggregate({ input: file, out, pool: pool1, force: true, shards: 1, userCol: 'who', amountCol: 'price', quantityCol: 'qty', dateCol: 'when' });
  assert.is(s.rows.counted, 3);
  assert.is(s.rows.rejected, 1);
  assert.is(s.total, '6.175');
  assert.is(s.quantity, '2.5');
  const text = fs.readFileSync(path.join(out, 'users-00000-of-00001.csv'), 'utf8');
  assert.is(text, 'user_id,purchases,total,quantity,first_date,last_date\n7,2,3.175,-0.5,2010-12-01 08:45:00,2011-01-02 10:00:00\n8,1,3.000,3.0,2010-01-05 00:00:00,2010-01-05 00:00:00\n');
});

test('an exponent adds no significant digits: 1e15 and 12e14 are counted; past 2^53 units it is rejected as too large', async () => {
  const file = path.join(tmp, 'exponents.csv');
  fs.writeFileSync(file, 'user_id,amount\na,1e15\nb,12e14\nc,900719925474099e1\nd,1.5e2\ne,25E-2\nf,999999999999999e10\ng,1e16\nh,1234567890123456\ni,1e500\n');
  const out = path.join(tmp, 'exponents-out');
  const s = await aggregate({ input: file, out, pool: pool2, force: true, shards: 1, rangeSize: 40 });
  assert.is(fs.readFileSync(path.join(out, 'users-00000-of-00001.csv'), 'utf8'), 'user_id,purchases,total\na,1,1000000000000000.00\nb,1,1200000000000000.00\nc,1,9007199254740990.00\nd,1,150.00\ne,1,0.25\n');
  assert.is(s.rows.rejected, 4);
  const reasons = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x).reason);
  assert.equal(reasons, [
    'amount is past 2^53 units of its last decimal place: "999999999999999e10" (amount)',
    'amount is past 2^53 units of its last decimal place: "1e16" (amount)',
    'amount has more than 15 significant digits: "1234567890123456" (amount)',
    'amount is past 2^53 units of its last decimal place: "1e500" (amount)',
  ]);
});

test('dates that are not on the calendar are rejected: day past the month, Feb 29 outside leap years', async () => {
  const file = path.join(tmp, 'calendar.csv');
  const good = ['2020-02-29', '2000-02-29', '2021-04-30', '1/31/2021', '20240229', '2021/12/31 23:59:59'];
  const bad = ['2021-02-29', '1900-02-29', '2020-04-31', '2020-02-30', '2/30/2020', '20210229', '2021-06-31 10:00', '2021-00-10', '2021-13-01', '2021-01-00'];
  fs.writeFileSync(file, 'user_id,amount,date\n' + [...good, ...bad].map((d, i) => `${i < good.length ? 1 : 2},1,${d}\n`).join(''));
  const out = path.join(tmp, 'calendar-out');
  const s = await aggregate({ input: file, out, pool: pool1, force: true, shards: 1, dateCol: 'date' });
  assert.equal(s.rows, { read: good.length + bad.length, counted: good.length, rejected: bad.length, emptyLines: 0 });
  const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x));
  assert.equal(rejects.map((r) => r.line), bad.map((_, i) => good.length + i + 2));
  for (const r of rejects) assert.match(r.reason, 'date is not a date');
});

test('semicolon files may use a decimal comma; a comma after a point is rejected, not guessed', async () => {
  const file = path.join(tmp, 'eu.csv');
  fs.writeFileSync(file, 'kunde;betrag\n1;12,50\n1;1,25\n2;3\n2;1.234,50\n');
  const out = path.join(tmp, 'eu-out');
  const s = await aggregate({ input: file, out, pool: pool1, force: true, shards: 1, userCol: 'kunde', amountCol: 'betrag' });
  assert.equal(s.rows, { read: 4, counted: 3, rejected: 1, emptyLines: 0 });
  assert.is(s.total, '16.75');
  assert.is(fs.readFileSync(path.join(out, 'users-00000-of-00001.csv'), 'utf8'), 'user_id,purchases,total\n1,2,13.75\n2,1,3.00\n');
});

test('a line longer than the record limit is rejected, and the next lines are read', async () => {
  const file = path.join(tmp, 'long.csv');
  fs.writeFileSync(file, 'user_id,amount\n1,2.5\n2,' + '9'.repeat(20_000_000) + '\n3,1\n');
  for (const rangeSize of [64 << 20, 1_000_000]) {
    const out = path.join(tmp, `long-${rangeSize}`);
    const s = await aggregate({ input: file, out, pool: pool2, force: true, rangeSize });
    assert.equal(s.rows, { read: 3, counted: 2, rejected: 1, emptyLines: 0 });
    assert.is(s.total, '3.5');
    const r = JSON.parse(fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8'));
    assert.is(r.line, 3);
    assert.is(r.reason, 'line longer than 1048576 bytes');
  }
});

test('sums past 2^85 units stay exact for any worker count and range size; past the exact range the job fails and names the file', async () => {
  // 18 places: 4e7 is 4e25 units, past 2^85 (3.9e25); 200 x (1e15 - 1) at 9 places is 2e26 units
  const cases: [string, string, Record<string, string>][] = [
    ['user_id,amount\n1,40000000\n1,0.000000000000000001\n', '1,2,40000000.000000000000000001', {}],
    ['user_id,amount\n1,0.000000001\n' + '1,999999999999999\n'.repeat(200) + '2,-0.5\n' + '2,-999999999999999\n'.repeat(200), '1,201,199999999999999800.000000001\n2,201,-199999999999999800.500000000', {}],
    ['CustomerID,UnitPrice,Quantity\n1,999999999999999,123456789012345\n', '1,1,123456789012344876543210987655,123456789012345', {}],
  ];
  for (const [i, [text, rows, cols]] of cases.entries()) {
    const file = path.join(tmp, `wide-${i}.csv`);
    fs.writeFileSync(file, text);
    for (const [pool, rangeSize] of [[pool1, undefined], [pool2, 1000], [pool2, 64]] as const) {
      const out = path.join(tmp, `wide-${i}-${pool.workers}-${rangeSize}`);
      await aggregate({ input: file, out, pool, force: true, shards: 1, rangeSize, ...cols });
      const got = fs.readFileSync(path.join(out, 'users-00000-of-00001.csv'), 'utf8').split('\n').slice(1).join('\n').trim();
      assert.is(got, rows, `case ${i}, ${pool.workers} workers, ranges of ${rangeSize}`);
    }
  }
  // 1e15 at 18 places is 1e33 units, past 2^103
  const file = path.join(tmp, 'too-wide.csv');
  fs.writeFileSync(file, 'user_id,amount\n1,0.000000000000000001\n2,999999999999999\n');
  try {
    await aggregate({ input: file, out: path.join(tmp, 'too-wide'), pool: pool2, force: true });
    assert.unreachable('a sum past the exact range was accepted');
  } catch (err) {
    const e = err as { code?: string; message: string };
    assert.is(e.code, 'ERR_BAD_INPUT');
    assert.match(e.message, file);
    assert.match(e.message, 'past the exact range');
  }
});

test('a user id that is not UTF-8 is rejected with its line; UTF-8 ids of any script are counted, byte for byte', async () => {
  // Latin-1 ids (caf\xe9 and caf\xe8 would both print as caf\ufffd), plain and quoted, among valid ones
  const ids = [Buffer.from('café'), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from([0x63, 0x61, 0x66, 0xe8]), Buffer.from('€'), Buffer.from([0x78, 0xe9, 0x78]), Buffer.from('😀x'), Buffer.from('42'), Buffer.from([0xc3])];
  const rnd = new Random(11);
  const parts: Buffer[] = [Buffer.from('user_id,amount\n')];
  const bad: number[] = [];
  const want = new Map<string, [number, number]>();
  for (let line = 2; line < 3002; line++) {
    const id = ids[rnd.int(ids.length)];
    const quoted = rnd.int(4) === 0;
    const cents = rnd.int(10000);
    parts.push(quoted ? Buffer.concat([Buffer.from('"'), id, Buffer.from('"')]) : id, Buffer.from(`,${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}\n`));
    if (!Buffer.from(id.toString('utf8')).equals(id)) bad.push(line);
    else {
      const w = want.get(id.toString('utf8')) ?? [0, 0];
      want.set(id.toString('utf8'), [w[0] + 1, w[1] + cents]);
    }
  }
  const file = path.join(tmp, 'latin1-ids.csv');
  fs.writeFileSync(file, Buffer.concat(parts));
  const expected = Buffer.from(
    'user_id,purchases,total\n' +
      [...want]
        .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
        .map(([k, [n, c]]) => `${k},${n},${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}\n`)
        .join(''),
  );
  for (const [pool, rangeSize] of [[pool1, undefined], [pool2, 4096], [pool2, 300]] as const) {
    const out = path.join(tmp, `latin1-${pool.workers}-${rangeSize}`);
    const s = await aggregate({ input: file, out, pool, force: true, shards: 1, rangeSize });
    const what = `${pool.workers} workers, ranges of ${rangeSize}`;
    assert.is(s.rows.rejected, bad.length, what);
    const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x));
    assert.equal(rejects.map((r) => r.line), bad, what);
    for (const r of rejects) assert.is(r.reason, 'user id is not valid UTF-8 (user_id)', what);
    assert.ok(fs.readFileSync(path.join(out, 'users-00000-of-00001.csv')).equals(expected), what);
  }
});

test('a line is rejected by its own length, whatever read buffer holds it or held lines before', async () => {
  // lines of exactly the limit and just past it, and of 1.5, 1.9 and 2.5 MiB, at varied offsets
  // in the read buffer; the same verdicts on a fresh pool and on pools whose buffers grew for a
  // 20 MB line (the previous test), for each worker count and range size
  const limit = 1 << 20;
  const line = (user: number, len: number): string => {
    const head = `${user},1.25,`;
    return head + 'x'.repeat(len - head.length) + '\n';
  };
  const lens = [limit, limit + 1, 1.5 * limit, 1.9 * limit, 2.5 * limit, limit - 1];
  let body = 'user_id,amount,note\n';
  const expected: { line: number; user: number }[] = [];
  let lineNo = 1;
  let counted = 0;
  lens.forEach((len, i) => {
    // short lines before each long one, a different number each time
    for (let k = 0; k < 1000 * (i + 1) + 37 * i; k++) {
      body += `${100 + i},0.5,n\n`;
      lineNo++;
      counted++;
    }
    body += line(i + 1, len);
    lineNo++;
    if (len > limit) expected.push({ line: lineNo, user: i + 1 });
    else counted++;
  });
  const file = path.join(tmp, 'near-limit.csv');
  fs.writeFileSync(file, body);
  const gz = path.join(tmp, 'near-limit.csv.gz');
  fs.writeFileSync(gz, zlib.gzipSync(body));
  const fresh = new SegflowPool({ workers: 1 });
  try {
    for (const pool of [fresh, pool1, pool2]) {
      for (const rangeSize of [64 << 20, 1_000_000, 300_000, 0]) {
        // (0: the gzip file, read whole)
        const input = rangeSize === 0 ? gz : file;
        const out = path.join(tmp, `near-${pool.workers}-${rangeSize}`);
        const s = await aggregate({ input, out, pool, force: true, rangeSize: rangeSize || undefined, shards: 1 });
        const what = `${pool === fresh ? 'fresh pool' : `${pool.workers} workers`}, ${rangeSize ? `ranges of ${rangeSize}` : 'gzip'}`;
        assert.equal(s.rows, { read: counted + expected.length, counted, rejected: expected.length, emptyLines: 0 }, what);
        const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').trim().split('\n').map((x) => JSON.parse(x));
        assert.equal(rejects.map((r) => r.line), expected.map((e) => e.line), what);
        for (const r of rejects) assert.is(r.reason, 'line longer than 1048576 bytes', what);
        const users = fs.readFileSync(path.join(out, 'users-00000-of-00001.csv'), 'utf8');
        assert.ok(users.includes('\n1,1,1.25\n') && users.includes('\n6,1,1.25\n'), `${what}: the lines of the limit and under it are counted`);
        for (const e of expected) assert.not.ok(users.includes(`\n${e.user},`), `${what}: user ${e.user}'s only line is rejected`);
      }
    }
  } finally {
    await fresh.destroy();
  }
});

test.after(async () => {
  if (process.env.KEEP) return;
  await pool1.destroy();
  await pool2.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
