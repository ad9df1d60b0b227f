/**
 * Shards are in byte order of the user id's text whichever merge path runs: integer ids take a
 * fast path (a table keyed by value, a radix sort on the value scaled to 15 digits), other ids
 * the general one; a tiny --memory forces the general path through sorted runs. All must agree.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aggregate, SegflowPool } from '../lib/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-order-'));
const pool = new SegflowPool({ workers: 2 });

// ids that sort differently as text and as numbers: prefixes, zeros, 15 digits, and ids that are
// not plain integers (a leading zero, 16 digits, letters) so some shards mix both kinds
const tricky = ['0', '9', '90', '900', '10', '1', '100', '99', '999999999999999', '100000000000000', '123456789012345', '5', '50', '500000000000000', '49'];
// and 3,000 more integers of 1 to 15 digits
for (let i = 0, x = 99; tricky.length < 3015; i++) {
  x = (Math.imul(x, 747796405) + 2891336453) >>> 0;
  const digits = 1 + (x % 15);
  let id = String(1 + (x % 9));
  for (let d = 1; d < digits; d++) {
    x = (Math.imul(x, 747796405) + 2891336453) >>> 0;
    id += String(x % 10);
  }
  if (!tricky.includes(id)) tricky.push(id);
}
const other = ['007', '0009', '1234567890123456', 'u9', 'A', '9a'];

function write(file: string, ids: string[], rows: number, seed: number): Map<string, { n: number; cents: bigint }> {
  const want = new Map<string, { n: number; cents: bigint }>();
  let x = seed;
  const lines = ['user_id,amount'];
  for (let i = 0; i < rows; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const id = ids[x % ids.length];
    const cents = BigInt(x % 100000);
    lines.push(`${id},${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`);
    const w = want.get(id) ?? { n: 0, cents: 0n };
    w.n++;
    w.cents += cents;
    want.set(id, w);
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return want;
}

/** Every shard's rows, checked for byte order; all rows by id. */
function readShards(dir: string): Map<string, string> {
  const all = new Map<string, string>();
  for (const f of fs.readdirSync(dir).filter((n) => n.startsWith('users-')).sort()) {
    const ids = fs.readFileSync(path.join(dir, f), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    for (let i = 1; i < ids.length; i++) assert.ok(Buffer.compare(Buffer.from(ids[i - 1][0]), Buffer.from(ids[i][0])) < 0, `${f}: ${ids[i - 1][0]} before ${ids[i][0]}`);
    for (const [id, count, total] of ids) all.set(id, `${count},${total}`);
  }
  return all;
}

for (const [name, ids] of [
  ['integer ids', tricky],
  ['integer and other ids', tricky.concat(other)],
] as const) {
  test(`${name}: byte order and exact sums on every path`, async () => {
    const input = path.join(tmp, `${name.replace(/ /g, '-')}.csv`);
    const want = write(input, [...ids], 20_000, 7);
    const runs = [
      { out: path.join(tmp, `${name}-a`), rangeSize: 4096 },
      { out: path.join(tmp, `${name}-b`), rangeSize: 1 << 20 },
      // sections spilled, partitions merged through sorted runs: the general path
      { out: path.join(tmp, `${name}-c`), rangeSize: 4096, memory: 256 * 1024 },
    ];
    const got = [];
    for (const r of runs) {
      const summary = await aggregate({ input, pool, shards: 3, ...r });
      if (r.memory) assert.ok(summary.spilled.partitions > 0, 'the tiny budget spills');
      got.push(readShards(r.out));
    }
    assert.is(got[0].size, want.size);
    for (const [id, w] of want) {
      const cents = `${w.cents / 100n}.${String(w.cents % 100n).padStart(2, '0')}`;
      assert.is(got[0].get(id), `${w.n},${cents}`, `user ${id}`);
    }
    for (const g of got.slice(1)) assert.equal([...g], [...got[0]]);
    for (const r of runs.slice(1)) {
      for (const f of fs.readdirSync(r.out).filter((n) => n.startsWith('users-'))) {
        assert.ok(fs.readFileSync(path.join(r.out, f)).equals(fs.readFileSync(path.join(runs[0].out, f))), `${f} differs`);
      }
    }
  });
}

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
