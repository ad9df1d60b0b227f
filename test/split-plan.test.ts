/**
 * The range plan: every byte of every file in exactly one range, the first range of a file at a
 * record start, ranges numbered in file order; the last ranges of the queue cut finer (taperRanges)
 * without changing what the ranges cover; and a job's output is the same with and without them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MiB, planRanges, queueOrder, taperRanges, type Range } from '../lib/split.js';
import type { FileSchema } from '../lib/schema.js';
import { aggregate, SegflowPool } from '../lib/index.js';

const file = (size: number, dataStart = 20, compressed = false): FileSchema => ({ size, dataStart, compressed }) as unknown as FileSchema;

/** Each file's ranges tile [dataStart, size) in order, numbered 0.., the first at a record start. */
function assertTiles(files: FileSchema[], ranges: Range[]): void {
  files.forEach((f, fi) => {
    const mine = ranges.filter((r) => r.fileIndex === fi).sort((a, b) => a.start - b.start);
    assert.ok(mine.length > 0, `file ${fi} has ranges`);
    assert.is(mine[0].start, f.dataStart);
    if (!f.compressed) assert.is(mine[mine.length - 1].end, Math.max(f.dataStart, f.size));
    mine.forEach((r, i) => {
      assert.is(r.rangeIndex, i, `file ${fi} range ${i} numbered in order`);
      assert.is(r.atRecordStart, i === 0);
      if (i > 0) assert.is(r.start, mine[i - 1].end, `file ${fi} range ${i} starts where the last ended`);
      if (!f.compressed) assert.is(r.weight, r.end - r.start);
    });
  });
}

test('taperRanges cuts the last ranges of the queue into quarters and keeps the tiling', () => {
  const files = [file(1000 * MiB + 20), file(150 * MiB + 7), file(3 * MiB), file(80 * MiB, 0, true)];
  const planned = planRanges(files, 64 * MiB);
  assertTiles(files, planned);
  for (const workers of [1, 2, 3, 8]) {
    const tapered = taperRanges(planned, workers);
    assertTiles(files, tapered);
    // the ranges cut are the `workers` last of the queue that are plain and at least 4 MiB
    const cut = queueOrder(planned)
      .filter((r) => r.end !== Number.MAX_SAFE_INTEGER && r.end - r.start >= 4 * MiB)
      .slice(-workers);
    assert.is(tapered.length, planned.length + 3 * cut.length, `${workers} workers: ${cut.length} ranges cut in 4`);
    for (const c of cut) {
      const pieces = tapered.filter((r) => r.fileIndex === c.fileIndex && r.start >= c.start && r.end <= c.end);
      assert.is(pieces.length, 4);
      for (const p of pieces) assert.ok(Math.abs(p.weight - (c.end - c.start) / 4) <= 1);
    }
    // the gzip file and the 3 MiB file stay one range each
    assert.is(tapered.filter((r) => r.fileIndex === 3).length, 1);
    assert.is(tapered.filter((r) => r.fileIndex === 2).length, 1);
  }
});

test('taperRanges leaves a plan alone when no range can be cut', () => {
  const files = [file(2 * MiB), file(1 * MiB)];
  const planned = planRanges(files, MiB);
  assert.equal(taperRanges(planned, 2), planned);
});

test('the shards are the same for tapered and untapered plans (any range size)', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-split-'));
  const input = path.join(tmp, 'in.csv');
  const lines = ['user_id,product,amount'];
  let x = 7;
  for (let i = 0; i < 700_000; i++) {
    x = (Math.imul(x, 747796405) + 2891336453) >>> 0;
    lines.push(`${1000 + (x % 5000)},P${i % 13},${(x % 100000) / 100}`);
  }
  fs.writeFileSync(input, lines.join('\n') + '\n');
  const pool = new SegflowPool({ workers: 2 });
  try {
    const shards = (out: string): string[] => fs.readdirSync(out).filter((f) => f.startsWith('users-')).sort().map((f) => fs.readFileSync(path.join(out, f), 'utf8'));
    // (about 11 MiB) one range per worker, no taper; 64 KiB ranges, too small to cut; and 4 MiB
    // ranges, the last two cut in quarters
    assert.ok(fs.statSync(input).size > 8 * MiB);
    await aggregate({ input, out: path.join(tmp, 'a'), pool, rangeSize: 1 << 30 });
    await aggregate({ input, out: path.join(tmp, 'b'), pool, rangeSize: 64 * 1024 });
    await aggregate({ input, out: path.join(tmp, 'c'), pool, rangeSize: 4 * MiB });
    assert.equal(shards(path.join(tmp, 'b')), shards(path.join(tmp, 'a')));
    assert.equal(shards(path.join(tmp, 'c')), shards(path.join(tmp, 'a')));
  } finally {
    await pool.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
