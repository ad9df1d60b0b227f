/**
 * The bounded merge writes, in one pass and through sorted runs, the bytes of a plain string
 * reference (rows sorted by id bytes, ids quoted by csvField, exact sums by formatScaled): quoted
 * and multi-byte ids, leading zeros, negative and 15-digit amounts, mixed decimal places,
 * quantities and dates.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { csvField, mergePartition, mergeSections, shardHeader } from '../lib/merge.js';
import { decodeSection } from '../lib/partial.js';
import { scanRange, type ScanOutput } from '../lib/scan.js';
import { readSchema } from '../lib/schema.js';
import { COUNT, F_DATE, F_QTY, SUM, type KeyTable } from '../lib/table.js';
import { formatScaled, limbsToBig } from '../lib/util/exact.js';
import { formatDate } from '../lib/util/bytes.js';
import { Random } from '../lib/util/random.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-merge-'));
const IDS = ['17850', '00123', '123', 'Zoë', 'ÅSA-9', '"a,b"', '"say ""hi"""', '日本-1', 'x', '0', '999999999999999', '1000000000000000000', 'C-1', '"x y"', 'ab\u00a0'];

const rnd = new Random(21);
let text = 'customer_id,price,qty,when\n';
for (let i = 0; i < 4000; i++) {
  const id = i < IDS.length ? IDS[i] : rnd.next() < 0.5 ? IDS[rnd.int(IDS.length)] : String(rnd.int(3000));
  const dp = rnd.int(4);
  const whole = rnd.next() < 0.01 ? 99999999999 : rnd.int(100000);
  const price = `${rnd.next() < 0.1 ? '-' : ''}${whole}${dp ? '.' + String(rnd.int(10 ** dp)).padStart(dp, '0') : ''}`;
  const when = `2024-${String(1 + rnd.int(12)).padStart(2, '0')}-${String(1 + rnd.int(28)).padStart(2, '0')}`;
  text += `${id},${price},${1 + rnd.int(5)},${when}\n`;
}
const input = path.join(tmp, 'tricky.csv');
fs.writeFileSync(input, text);

/** The shard as plain string code writes it, with its exact totals. */
function referenceShard(t: KeyTable): { text: string; total: bigint; quantity: bigint; rows: number } {
  const keys = Array.from({ length: t.size }, (_, id) => ({ id, key: Buffer.from(t.arena.subarray(id === 0 ? 0 : t.keyEnds[id - 1], t.keyEnds[id])) }));
  keys.sort((a, b) => Buffer.compare(a.key, b.key));
  let text = shardHeader(t.flags);
  let total = 0n;
  let quantity = 0n;
  let rows = 0;
  for (const { id, key } of keys) {
    const o = id * t.width;
    const sum = limbsToBig(t.acc[o + SUM], t.acc[o + SUM + 1]);
    const q = limbsToBig(t.acc[o + t.qtyOff], t.acc[o + t.qtyOff + 1]);
    total += sum;
    quantity += q;
    rows += t.acc[o + COUNT];
    text += `${csvField(key.toString())},${t.acc[o + COUNT]},${formatScaled(sum, t.scale)},${formatScaled(q, t.qscale)},${formatDate(t.acc[o + t.dateOff], false)},${formatDate(t.acc[o + t.dateOff + 1], false)}\n`;
  }
  return { text, total, quantity, rows };
}

const P = 3;
const outs: ScanOutput[] = [];
const sch = readSchema(input, { quantityCol: 'qty', dateCol: 'when' });
const step = Math.ceil((sch.size - sch.dataStart) / 4);
const flags = F_QTY | F_DATE;

test('scan in four ranges', async () => {
  for (let i = 0; i < 4; i++) {
    const start = sch.dataStart + i * step;
    const { file, format, delimiter, fieldCount, user, amount, quantity, date, names } = sch;
    outs.push(await scanRange({ file, fileIndex: 0, rangeIndex: i, start, end: Math.min(sch.size, start + step), atRecordStart: i === 0, compressed: false, format, delimiter, fieldCount, user, amount, quantity, date, names, partitions: P }));
  }
  assert.is(outs.reduce((s, o) => s + o.rows + o.rejected, 0), 4000);
});

test('one pass and sorted runs both write what the reference writes', () => {
  const scale = Math.max(...outs.map((o) => o.scale));
  const qscale = Math.max(...outs.map((o) => o.qscale));
  for (let p = 0; p < P; p++) {
    const t = mergeSections(outs.map((o) => decodeSection(o.sections[p])), flags, scale, qscale);
    const expected = referenceShard(t);
    for (const memory of [undefined, 64]) {
      const outFile = path.join(tmp, `users-${p}-${memory}.csv`);
      const r = mergePartition({ partition: p, partitions: P, segments: outs.map((o) => ({ shared: o.sections[p] })), flags, scale, qscale, dateHasTime: false, outFile, memory });
      const got = fs.readFileSync(outFile);
      if (memory) assert.ok(r.subPartitions > 1);
      assert.is(got.toString(), expected.text, `partition ${p}, memory ${memory}`);
      assert.is(r.total, expected.total.toString());
      assert.is(r.quantity, expected.quantity.toString());
      assert.is(r.rows, expected.rows);
      assert.is(r.bytes, got.length);
    }
  }
});

test('ids that need quoting are quoted as csvField quotes them', () => {
  const all = fs.readdirSync(tmp).filter((f) => f.endsWith('-undefined.csv')).map((f) => fs.readFileSync(path.join(tmp, f), 'utf8')).join('');
  assert.match(all, /\n"a,b",/);
  assert.match(all, /\n"say ""hi""",/);
  assert.match(all, /\n"ab\u00a0",/); // a no-break space at the edge: String.prototype.trim would drop it
  assert.match(all, /\nx y,/);
  assert.match(all, /\n00123,/);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
