/** `segflow bench` (lib/bench.ts): every worker count runs every round, in turn, and the table adds up. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchWorkers } from '../lib/index.js';
import { benchTable } from '../lib/bench.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('worker counts take turns, round by round; medians, speedup and efficiency from the runs', async () => {
  const order: number[] = [];
  const r = await benchWorkers({ input: path.join(ROOT, 'data/sample.csv'), workers: [1, 2], rounds: 3, onRun: (w) => order.push(w) });
  assert.equal(order, [1, 2, 1, 2, 1, 2]);
  assert.equal(r.rows.map((x) => x.workers), [1, 2]);
  for (const row of r.rows) {
    assert.is(row.runs.length, 3);
    const sorted = [...row.runs].sort((a, b) => a - b);
    assert.is(row.seconds, sorted[1], 'the median run');
    assert.ok(Math.abs(row.mbPerSec - r.bytes / 1e6 / row.seconds) < 1e-9);
  }
  assert.is(r.rows[0].speedup, 1);
  assert.ok(Math.abs(r.rows[1].speedup - r.rows[0].seconds / r.rows[1].seconds) < 1e-12);
  assert.ok(Math.abs(r.rows[1].efficiency - r.rows[1].speedup / 2) < 1e-12);
  assert.is(r.warmup, 3, 'three untimed rounds by default');
  // the table shows each count's median and its fastest and slowest run
  const table = benchTable(r);
  for (const row of r.rows) {
    const spread = `${Math.min(...row.runs).toFixed(2)}-${Math.max(...row.runs).toFixed(2)}`;
    const esc = (x: string): string => x.replace(/\./g, '\\.');
    assert.match(table, new RegExp(`^\\s+${row.workers}\\s+${esc(row.seconds.toFixed(3))}\\s+${esc(spread)}\\s`, 'm'));
  }
});

test('--warmup sets the untimed rounds; bad counts are usage errors', async () => {
  const input = path.join(ROOT, 'data/sample.csv');
  const order: number[] = [];
  const r = await benchWorkers({ input, workers: [2, 1], rounds: 1, warmup: 0, onRun: (w) => order.push(w) });
  assert.equal(order, [2, 1]);
  assert.is(r.warmup, 0);
  assert.match(benchTable(r), 'after 0 warm-up runs');
  // speedup and efficiency are against the fewest workers, listed second here
  const one = r.rows.find((x) => x.workers === 1)!;
  const two = r.rows.find((x) => x.workers === 2)!;
  assert.is(one.speedup, 1);
  assert.is(one.efficiency, 1);
  assert.ok(Math.abs(two.speedup - one.seconds / two.seconds) < 1e-12);
  for (const bad of [{ warmup: -1 }, { warmup: 1.5 }, { rounds: 0 }, { workers: [1, 1] }, { shards: 0 }, { rangeSize: 0 }]) {
    try {
      await benchWorkers({ input, workers: [1], rounds: 1, ...bad });
      assert.unreachable(`${JSON.stringify(bad)} accepted`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_USAGE', JSON.stringify(bad));
    }
  }
});

test.run();
