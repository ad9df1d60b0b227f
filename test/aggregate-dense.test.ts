/**
 * Dense user ids (lib/dense.ts, scan-table.ts DenseWindow): integer ids in a narrow window fold
 * into direct-indexed arrays that go to the merge as they are. The output must not change: random
 * files whose ids mix window ids with ids outside it (other digit counts, leading zeros, strings,
 * ids past 15 digits), decimal places that grow mid-file, quantity and date columns, and products
 * past 2^52, give the same bytes with and without the window, for 1 and 2 workers, many range
 * sizes, and a memory budget so small that every table leaves as sections.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import zlib from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { aggregate, SegflowPool } from '../lib/index.js';
import { Random } from '../lib/util/random.js';
import { ScanTable, densePartitions, hashOfInteger } from '../lib/scan-table.js';
import { partitionOf } from '../lib/table.js';
import { chooseWindow } from '../lib/dense.js';
import { readSchema } from '../lib/schema.js';
import { sampleRange, scanTaskOf } from '../lib/scan.js';
import { F_DATE, F_QTY } from '../lib/table.js';
import { assertSameOutput } from './helpers/output.js';
import { fmt, readShards, referenceAggregate } from './helpers/reference.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-dense-'));
const pool2 = new SegflowPool({ workers: 2 });
const pool1 = new SegflowPool({ workers: 1 });

test('densePartitions gives each key the partition of its hash', () => {
  const windows: [number, number][] = [
    [0, 10],
    [1, 9],
    [10, 90],
    [995, 5],
    [1000001, 5000],
    [7777770, 123],
    [99999999990, 10],
    [100000000000000, 2000],
    [999999999999000, 1000],
  ];
  for (const [base, span] of windows) {
    for (const P of [1, 3, 8, 256, 65535]) {
      const parts = densePartitions(base, span, P);
      for (let i = 0; i < span; i++) {
        if (parts[i] !== partitionOf(hashOfInteger(base + i), P)) assert.unreachable(`key ${base + i} of P=${P}: ${parts[i]}`);
      }
    }
  }
});

test('chooseWindow: narrow integer ids get a window of one digit count; strings, sparse ids and tight memory do not', () => {
  /** A sample whose integer ids are `n` evenly spaced ids from min to max for each range listed, a row each. */
  const sample = (ranges: [number, number, number][], others = 0, rows = 5000) => {
    const keys: number[] = [];
    for (const [min, max, n] of ranges) for (let i = 0; i < n; i++) keys.push(n === 1 ? min : Math.round(min + ((max - min) * i) / (n - 1)));
    return { rows, bytes: 64 * 1024, others, ints: keys.length, keys, counts: keys.map(() => 1) };
  };
  const big = 64 * 1024 * 1024 * 16;
  const w = chooseWindow([sample([[1000100, 1500000, 900]]), sample([[1000050, 1499000, 900]])], big, 0, 1 << 30)!;
  assert.ok(w, 'a window');
  assert.ok(w.base <= 1000050 && w.base >= 1000000, `base ${w.base}`);
  assert.ok(w.base + w.span - 1 >= 1500000 && w.base + w.span - 1 <= 9999999, `last ${w.base + w.span - 1}`);
  // ids of several digit counts: the window takes the count most ids have
  const m = chooseWindow([sample([[5, 9, 5], [500000, 500400, 400], [1000000, 1000000, 1]])], big, 0, 1 << 30)!;
  assert.ok(m.base >= 100000 && m.base <= 500000 && m.base + m.span - 1 <= 999999 && m.base + m.span > 500400, `${m.base} + ${m.span}`);
  // a few stray ids far away do not widen the window past what the rows can fill
  const s = chooseWindow([sample([[500000, 500400, 400], [100000, 999999, 8]], 0, 1000)], 1 << 20, 0, 1 << 30)!;
  assert.ok(s && s.base >= 100000 && s.span < 5000, `${s?.base} + ${s?.span}`);
  assert.is(chooseWindow([sample([[1, 900, 100]], 20)], big, 0, 1 << 30), undefined, 'too many string ids');
  assert.is(chooseWindow([sample([[1e9, 9e9, 1000]], 0, 1000)], 1 << 20, 0, 1 << 30), undefined, 'ids far sparser than rows');
  assert.is(chooseWindow([sample([[1000000, 1500000, 1000]])], big, F_QTY | F_DATE, 1 << 20), undefined, 'over the memory limit');
  assert.is(chooseWindow([sample([])], big, 0, 1 << 30), undefined, 'no keys');
  // a window wider than a core's cache can serve slice by slice: the hash tables do better
  assert.is(chooseWindow([sample([[10000000, 99999999, 4000]])], 1e12, 0, 1e12), undefined, '90 M ids');
  assert.ok(chooseWindow([sample([[10000000, 19999999, 4000]])], 1e12, 0, 1e12), '10 M ids');
});

/** A random CSV whose ids are mostly in a narrow 6-digit window, the rest anything. */
function randomFile(rnd: Random, i: number, qty: boolean, date: boolean): string {
  const cols = ['user', 'amount', ...(qty ? ['qty'] : []), ...(date ? ['day'] : []), 'note'];
  let text = cols.join(',') + '\n';
  const rows = 200 + rnd.int(3000);
  const odd = ['00123', '123', '99999', '1000000', 'Zoë', '9999999999999999', '500000', ' 500001 ', 'x'];
  for (let r = 0; r < rows; r++) {
    const t = rnd.next();
    const id = t < 0.85 ? String(500000 + rnd.int(400)) : t < 0.93 ? String(100000 + rnd.int(900000)) : odd[rnd.int(odd.length)];
    // places grow mid-file (each table rescales its rows), sometimes a product past 2^52
    const dp = r < rows / 3 ? 0 : rnd.int(4);
    let amount = String(rnd.int(100000));
    if (dp > 0) amount += '.' + String(rnd.int(10 ** dp)).padStart(dp, '0');
    if (rnd.next() < 0.1) amount = '-' + amount;
    if (rnd.next() < 0.02) amount = 'n/a';
    const cells = [id, qty && rnd.next() < 0.01 ? '9007199254740.5' : amount];
    if (qty) cells.push(String(1 + rnd.int(5)) + (rnd.next() < 0.3 ? '.5' : ''));
    if (date) cells.push(`2011-${String(1 + rnd.int(12)).padStart(2, '0')}-${String(1 + rnd.int(28)).padStart(2, '0')}`);
    cells.push(rnd.next() < 0.1 ? '"a, b"' : 'n');
    text += cells.join(',') + '\n';
  }
  const file = path.join(tmp, `dense-${i}.csv`);
  fs.writeFileSync(file, text);
  return file;
}

test('random files: the same bytes with and without the dense window', async () => {
  const rnd = new Random(20261129);
  for (let i = 0; i < 16; i++) {
    const qty = i % 4 === 1 || i % 4 === 3;
    const date = i % 4 >= 2;
    const file = randomFile(rnd, i, qty, date);
    const opts = { input: file, shards: 1 + rnd.int(8), force: true, userCol: 'user', amountCol: 'amount', quantityCol: qty ? 'qty' : 'none', dateCol: date ? 'day' : undefined };
    const ref = path.join(tmp, `ref-${i}`);
    const r = await aggregate({ ...opts, out: ref, pool: pool1, denseKeys: false });
    assert.is(r.denseKeys, undefined);
    if (!qty) {
      // the reference knows amounts only: check the plain files against it too
      const want = referenceAggregate(file, 'user', 'amount');
      const got = readShards(ref).users;
      assert.is(got.size, want.users.size);
      for (const [k, u] of want.users) assert.is(got.get(k)?.total, fmt(u.total, want.scale), `file ${i}: total of ${k}`);
    }
    for (const [pool, rangeSize, memory] of [
      [pool2, 997, undefined],
      [pool1, 4096, undefined],
      [pool2, 64 + rnd.int(3000), undefined],
      [pool2, 2048, 8 << 20], // tables pass their byte limit: dense rows leave as sections
    ] as const) {
      const out = path.join(tmp, `dense-${i}-${pool.workers}-${rangeSize}`);
      const s = await aggregate({ ...opts, out, pool, rangeSize, memory, denseKeys: true });
      const ctx = `file ${i}, ${pool.workers} workers, range ${rangeSize}, memory ${memory}`;
      assert.ok(s.denseKeys, `${ctx}: a dense window`);
      assert.ok(s.denseKeys!.first >= 100000 && s.denseKeys!.last <= 999999, `${ctx}: window of 6-digit ids`);
      assert.is(s.rows.counted, r.rows.counted, ctx);
      assert.is(s.total, r.total, ctx);
      assertSameOutput(out, ref, `differs (${ctx})`);
    }
  }
});

test('lean dense rows: totals past one limb, and places added later, move to the hash parts exactly', async () => {
  // a dense row of the usual layout keeps a count and the total's low limb (16 bytes): a total
  // past 2^51 (a whale of 15-digit amounts), or one that a later decimal place pushes past it,
  // moves to the key's hash-part row, and the merge adds both kinds of row
  const pool3 = new SegflowPool({ workers: 3 });
  try {
    const rnd = new Random(77);
    for (let f = 0; f < 4; f++) {
      const lines = ['user_id,amount'];
      const n = 4000 + rnd.int(3000);
      const decimalsFrom = f % 2 === 0 ? Math.floor(n * (0.3 + 0.5 * rnd.next())) : n; // odd files: integers only
      for (let r = 0; r < n; r++) {
        const id = 100000 + rnd.int(2000);
        // (at most 15 significant digits an amount: longer ones are rejected as too precise)
        let amount: string;
        const t = rnd.next();
        if (id % 97 === 0 || t < 0.01) amount = (rnd.next() < 0.3 ? '-' : '') + String(900000000000000 + rnd.int(99999999)); // 15 digits
        else if (id % 89 === 0 || t < 0.005) amount = String(9 * 10 ** 13 + 1 + 2 * rnd.int(10 ** 6)); // 14 digits, odd: not a double once scaled by 1000
        else {
          amount = String(rnd.int(100000));
          if (r >= decimalsFrom && rnd.next() < 0.2) amount += '.' + String(rnd.int(1000)).padStart(3, '0');
        }
        lines.push(`${id},${amount}`);
      }
      if (f === 3) {
        // ten ids, so that their window slices' stages fill and fold before the decimals come:
        // the rescale then meets totals that 1,000 times no longer fit one limb
        lines.length = 1;
        for (let r = 0; r < 24000; r++) {
          const amount = r < 18000 ? String(10 ** 11 + 1 + 2 * rnd.int(10 ** 9)) : `${rnd.int(1000)}.${String(rnd.int(1000)).padStart(3, '0')}`;
          lines.push(`${100000 + rnd.int(10)},${amount}`);
        }
      }
      const file = path.join(tmp, `lean-${f}.csv`);
      fs.writeFileSync(file, lines.join('\n') + '\n');
      const want = referenceAggregate(file, 'user_id', 'amount');
      const ref = path.join(tmp, `lean-ref-${f}`);
      const r = await aggregate({ input: file, out: ref, pool: pool1, force: true, denseKeys: false });
      const got = readShards(ref).users;
      assert.is(got.size, want.users.size);
      for (const [k, u] of want.users) assert.is(got.get(k)?.total, fmt(u.total, want.scale), `file ${f}: total of ${k}`);
      for (const [pool, rangeSize] of [
        [pool1, 4096],
        [pool2, 997],
        [pool3, 1500], // three dense segments: the merge's general path
        [pool3, 64 + rnd.int(2000)],
      ] as const) {
        const out = path.join(tmp, `lean-${f}-${pool.workers}-${rangeSize}`);
        const s = await aggregate({ input: file, out, pool, rangeSize, force: true, denseKeys: true });
        const ctx = `file ${f}, ${pool.workers} workers, range ${rangeSize}`;
        assert.ok(s.denseKeys, `${ctx}: a dense window`);
        assert.is(s.total, r.total, ctx);
        assertSameOutput(out, ref, `differs (${ctx})`);
      }
    }
  } finally {
    await pool3.destroy();
  }
});

test('lean dense rows hold int32 totals: sums that cross 2^31 either way move to the hash parts exactly', async () => {
  // 50 users, 40,000 rows of amounts near 10^8 (some users only negative ones): each total passes
  // 2^31 many times over, in rows folded one by one, in the merge of two workers' rows, and when
  // two decimal places arrive late (the rescale multiplies every total by 100)
  const rnd = new Random(31);
  for (const late of [false, true]) {
    const lines = ['user_id,amount'];
    for (let r = 0; r < 40000; r++) {
      const id = 500000 + rnd.int(50);
      const sign = id % 5 === 0 ? '-' : '';
      const amount = late && r > 30000 && rnd.next() < 0.5 ? `${sign}${rnd.int(2000000)}.${String(rnd.int(100)).padStart(2, '0')}` : `${sign}${90000000 + rnd.int(20000000)}`;
      lines.push(`${id},${amount}`);
    }
    const file = path.join(tmp, `int32-${late}.csv`);
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const want = referenceAggregate(file, 'user_id', 'amount');
    const ref = path.join(tmp, `int32-ref-${late}`);
    await aggregate({ input: file, out: ref, pool: pool1, force: true, denseKeys: false });
    const got = readShards(ref).users;
    for (const [k, u] of want.users) assert.is(got.get(k)?.total, fmt(u.total, want.scale), `total of ${k}`);
    for (const [pool, rangeSize] of [
      [pool1, 4096],
      [pool2, 997],
    ] as const) {
      const out = path.join(tmp, `int32-${late}-${pool.workers}`);
      const s = await aggregate({ input: file, out, pool, rangeSize, force: true, denseKeys: true });
      assert.ok(s.denseKeys, 'a dense window');
      assertSameOutput(out, ref, `differs (${pool.workers} workers, decimals late: ${late})`);
    }
  }
});

test("a worker's dense rows are zero again for its next job: only the slices a job wrote are cleared", async () => {
  // the same window for all three files (their sampled ids reach the same ends), so each job
  // reuses the array the last one handed back: A writes every slice, B only the ends, then A again
  const rnd = new Random(5);
  const write = (name: string, mid: boolean): string => {
    const lines = ['user_id,amount'];
    for (let r = 0; r < 30000; r++) {
      const k = r % 3;
      const id = k === 0 ? 100000 + rnd.int(50) : k === 1 ? 119950 + rnd.int(50) : mid ? 100000 + rnd.int(20000) : 100000 + rnd.int(50);
      lines.push(`${id},${rnd.int(10000)}`);
    }
    const file = path.join(tmp, name);
    fs.writeFileSync(file, lines.join('\n') + '\n');
    return file;
  };
  const a = write('reuse-a.csv', true);
  const b = write('reuse-b.csv', false);
  const windows: unknown[] = [];
  for (const [i, file] of [a, b, a].entries()) {
    const ref = path.join(tmp, `reuse-ref-${i}`);
    await aggregate({ input: file, out: ref, pool: pool1, force: true, denseKeys: false });
    const out = path.join(tmp, `reuse-${i}`);
    const s = await aggregate({ input: file, out, pool: pool1, rangeSize: 64 * 1024, force: true, denseKeys: true });
    windows.push(s.denseKeys);
    assertSameOutput(out, ref, `job ${i} differs`);
  }
  assert.ok(windows[0], 'a dense window');
  assert.equal(windows[1], windows[0], 'the same window (the array is reused)');
  assert.equal(windows[2], windows[0], 'the same window (the array is reused)');
});

test('a dense array reused for rows of another width is cleared over all it held', async () => {
  // job A has a quantity column (5 doubles a row) and a window of 9,000 ids; job B's lean rows (1
  // double) have a window of 45,000: the same 45,000 doubles, so B reuses A's array
  const rnd = new Random(12345);
  const a = ['user_id,amount,quantity'];
  for (let r = 0; r < 40000; r++) a.push(`${r % 3 === 0 ? 1000 : r % 3 === 1 ? 9999 : 1000 + rnd.int(9000)},${1 + rnd.int(100000)},${1 + rnd.int(50)}`);
  const b = ['user_id,amount'];
  for (let r = 0; r < 80000; r++) b.push(`${r % 3 === 0 ? 10000 : r % 3 === 1 ? 45180 : 10000 + rnd.int(35181)},${1 + rnd.int(1000)}`);
  const fa = path.join(tmp, 'width-a.csv');
  const fb = path.join(tmp, 'width-b.csv');
  fs.writeFileSync(fa, a.join('\n') + '\n');
  fs.writeFileSync(fb, b.join('\n') + '\n');
  const ref = path.join(tmp, 'width-ref');
  await aggregate({ input: fb, out: ref, pool: pool1, force: true, denseKeys: false });
  const sa = await aggregate({ input: fa, out: path.join(tmp, 'width-a'), pool: pool1, quantityCol: 'quantity', rangeSize: 64 * 1024, force: true, denseKeys: true });
  const out = path.join(tmp, 'width-b');
  const sb = await aggregate({ input: fb, out, pool: pool1, rangeSize: 64 * 1024, force: true, denseKeys: true });
  // the case needs windows of these sizes (9,000 rows of 5 doubles, 45,000 of 1)
  assert.equal(sa.denseKeys, { first: 1000, last: 9999 });
  assert.is(sb.denseKeys!.last - sb.denseKeys!.first + 1, 45000);
  assertSameOutput(out, ref, 'job B differs');
});

test('the dense window is the default for a large input only, and --no-dense-keys turns it off', async () => {
  const file = path.join(tmp, 'small.csv');
  fs.writeFileSync(file, 'user_id,amount\n' + Array.from({ length: 5000 }, (_, k) => `${2000 + (k % 300)},${k % 97}.5`).join('\n') + '\n');
  const base = { input: file, pool: pool2, rangeSize: 4096, force: true };
  const auto = await aggregate({ ...base, out: path.join(tmp, 'auto') });
  assert.is(auto.denseKeys, undefined, 'a small input: no window by default');
  const on = await aggregate({ ...base, out: path.join(tmp, 'on'), denseKeys: true });
  assert.equal(on.denseKeys, { first: 1000, last: on.denseKeys!.last });
  assertSameOutput(path.join(tmp, 'on'), path.join(tmp, 'auto'));
});

test("a sample leaves the thread's spare scan table alone, and samples of gzip files may run at once", async () => {
  // a worker (or an app's coordinator) keeps its last scan table's arrays for the next scan
  const big = new ScanTable(0, 4_000_000);
  for (let k = 0; k < 200_000; k++) big.stageInt(hashOfInteger(1_000_000 + k), 1_000_000 + k, 5, 0, 0, 0, 0);
  big.keyStats(1); // folds the staged rows
  big.release(true);
  const kept = ScanTable.spareBytes();
  const rnd = new Random(11);
  const gzOf = (name: string, base: number): string => {
    const text = 'user_id,amount\n' + Array.from({ length: 60_000 }, () => `${base + rnd.int(1000)},${rnd.int(1000)}`).join('\n') + '\n';
    const f = path.join(tmp, name);
    fs.writeFileSync(f, zlib.gzipSync(text));
    return f;
  };
  const files = [gzOf('a.csv.gz', 100_000), gzOf('b.csv.gz', 700_000)];
  const task = (f: string) => {
    const s = readSchema(f, {});
    return { ...scanTaskOf(f, s, { fileIndex: 0, rangeIndex: 0, start: s.dataStart, end: s.dataStart + 32768, atRecordStart: true }, 8, 0), chunkSize: 128 * 1024 };
  };
  const one = [await sampleRange(task(files[0])), await sampleRange(task(files[1]))];
  assert.is(ScanTable.spareBytes(), kept, 'the spare table is still there, whole');
  assert.ok(new ScanTable(0, 4096).reused, 'and the next scan table takes it');
  // two samples at once (two jobs of one process on the coordinator): each sees its own file
  const both = await Promise.all(files.map((f) => sampleRange(task(f))));
  for (let i = 0; i < 2; i++) {
    assert.is(both[i].rows, one[i].rows, `file ${i}: rows`);
    assert.equal([...both[i].keys].sort(), [...one[i].keys].sort(), `file ${i}: keys`);
    assert.ok(both[i].keys.every((k) => k >= [100_000, 700_000][i] && k < [101_000, 701_000][i]), `file ${i}: keys of its own file`);
  }
});

test('sampling a gzip input closes the file (a sample stops after 64 KiB of it)', async () => {
  // large enough (and random enough to stay large compressed) that a sample leaves most unread
  const rnd = new Random(3);
  const text = 'user_id,amount\n' + Array.from({ length: 300000 }, () => `${700000 + rnd.int(5000)},${rnd.int(100000)}.${rnd.int(100)}`).join('\n') + '\n';
  const gz = path.join(tmp, 'sample.csv.gz');
  fs.writeFileSync(gz, zlib.gzipSync(text));
  const s = readSchema(gz, {});
  const range = { fileIndex: 0, rangeIndex: 0, start: s.dataStart, end: s.dataStart + 65536, atRecordStart: true };
  const open = (): number => fs.readdirSync('/proc/self/fd').length;
  const before = open();
  for (let k = 0; k < 5; k++) {
    const got = await sampleRange({ ...scanTaskOf(gz, s, range, 8, 0), chunkSize: 256 * 1024 });
    assert.ok(got.rows > 1000 && got.rows < 300000, `a sample, not the file: ${got.rows} rows`);
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.is(open(), before, 'open files after five samples');
  // and a job over it with a plain file (so that it has more ranges than workers) samples it too
  const plain = path.join(tmp, 'sample-a.csv');
  fs.writeFileSync(plain, text);
  const job = await aggregate({ input: [plain, gz], out: path.join(tmp, 'gz-job'), pool: pool2, rangeSize: 256 * 1024, force: true, denseKeys: true });
  assert.ok(job.denseKeys);
  assert.is(job.rows.counted, 600000);
});

test.after(async () => {
  await pool1.destroy();
  await pool2.destroy();
  if (!process.env.KEEP) fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
