/**
 * Memory budget: under a tiny --memory the partial sections spill to files, the merge runs in
 * sub-partitions through sorted run files, and the output is byte-identical to an unconstrained
 * run; the temp folder's working files are gone from the result.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aggregate, generate, SegflowPool } from '../lib/index.js';
import { SCAN_EXPANSION, planMemory, runtimeBytes } from '../lib/aggregate.js';
import { mergePartition, subPartitionOf, subPartitionsFor, type MergeTask } from '../lib/merge.js';
import { partitionOf } from '../lib/table.js';
import { scanRange, type ScanOutput } from '../lib/scan.js';
import { readSchema } from '../lib/schema.js';
import { assertSameOutput } from './helpers/output.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-spill-'));
const pool = new SegflowPool({ workers: 2 });

// 80,000 rows, most users seen once or twice (the hard case for a merge: little combining),
// plus bad rows, quoted ids and decimals so that rejects.jsonl and totals are compared too
const input = path.join(tmp, 'sales.csv');
generate({ out: input, rows: 80_000, users: 200_000, seed: 3, decimals: 2 });
fs.appendFileSync(input, '17,oops,M,0-17,1,A,1,0,1,,,n/a\n"a,b",P1,M,0-17,1,A,1,0,1,,,12.50\n,P1,M,0-17,1,A,1,0,1,,,3\n');

test('a tiny --memory spills, merges in sub-partitions, and gives the same bytes', async () => {
  const ref = path.join(tmp, 'ref');
  const big = await aggregate({ input, out: ref, pool, rangeSize: 256 * 1024 });
  assert.is(big.spilled.partitions, 0);
  const out = path.join(tmp, 'tiny');
  const s = await aggregate({ input, out, pool, rangeSize: 256 * 1024, memory: 512 * 1024 });
  assert.ok(s.spilled.partitions > 0, 'sections spilled');
  assert.ok(s.spilled.bytes > 0);
  assert.is(s.users, big.users);
  assert.is(s.total, big.total);
  assert.is(s.rows.rejected, 2);
  assertSameOutput(out, ref);
  // the working folders are not part of the result
  assert.equal(fs.readdirSync(out).sort(), [...s.files].sort());
});

test('the default range size shrinks to fit the budget', async () => {
  const out = path.join(tmp, 'auto');
  const s = await aggregate({ input, out, pool, memory: 8 * 1024 * 1024 });
  // (8 MiB / 2) / 2 / 2 workers = 1 MiB per task, a third of it per range, at least 1 MiB
  assert.is(s.rangeSize, 1024 * 1024);
  assertSameOutput(out, path.join(tmp, 'ref'));
});

test("planMemory: the runtime's share, then half held and half for the running tasks", () => {
  const MiB = 1024 ** 2;
  const p = planMemory(1024 * MiB, 2);
  const data = 1024 * MiB - runtimeBytes(2); // 1024 - (64 + 2 * 64) = 832 MiB
  assert.is(data, 832 * MiB);
  assert.is(p.hold, data / 2);
  assert.is(p.task, data / 4);
  assert.is(p.maxRangeSize, Math.floor(p.task / SCAN_EXPANSION));
  assert.is(p.workerHeapMb, 256);
  assert.is(planMemory(16 * 1024 * MiB, 4).workerHeapMb, Math.ceil((16 * 1024 - 64 - 256) / 8));
  // a budget under twice the runtime's share: half of it for data
  assert.is(planMemory(100 * MiB, 2).hold, 25 * MiB);
});

test('sub-partitions split a partition by the hash bits below it', () => {
  const P = 8;
  const S = 5;
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const h = Math.imul(i + 1, 0x9e3779b1) | 0;
    const p = partitionOf(h, P);
    const s = subPartitionOf(h, P, p, S);
    assert.ok(s >= 0 && s < S, `sub ${s} of ${S}`);
    seen.add(`${p}:${s}`);
  }
  assert.is(seen.size, P * S);
  assert.is(subPartitionsFor(1000, undefined), 1);
  // MERGE_EXPANSION (4) bytes of memory per input byte for one pass
  assert.is(subPartitionsFor(1000, 4000), 1);
  assert.is(subPartitionsFor(1000, 3999), 2);
  assert.is(subPartitionsFor(1000, 400), 10);
});

test('mergePartition with a small memory writes the same shard through sorted runs', async () => {
  const sch = readSchema(input, {});
  const P = 4;
  const step = Math.ceil((sch.size - sch.dataStart) / 3);
  const outs: ScanOutput[] = [];
  for (let i = 0; i < 3; i++) {
    const start = sch.dataStart + i * step;
    outs.push(
      await scanRange({
        file: input,
        fileIndex: 0,
        rangeIndex: i,
        start,
        end: Math.min(sch.size, start + step),
        atRecordStart: i === 0,
        compressed: false,
        format: sch.format,
        delimiter: sch.delimiter,
        fieldCount: sch.fieldCount,
        user: sch.user,
        amount: sch.amount,
        quantity: sch.quantity,
        date: sch.date,
        names: sch.names,
        partitions: P,
      }),
    );
  }
  const scale = Math.max(...outs.map((o) => o.scale));
  const base = (p: number, name: string): MergeTask => ({
    partition: p,
    partitions: P,
    segments: outs.map((o) => ({ shared: o.sections[p] })),
    flags: 0,
    scale,
    qscale: 0,
    dateHasTime: false,
    outFile: path.join(tmp, name),
    scratchDir: path.join(tmp, 'scratch'),
  });
  for (let p = 0; p < P; p++) {
    const one = mergePartition(base(p, `one-${p}.csv`));
    const bytes = outs.reduce((s, o) => s + o.sections[p].byteLength, 0);
    const runs = mergePartition({ ...base(p, `runs-${p}.csv`), memory: Math.ceil(bytes / 2), attempt: 2 });
    assert.is(one.subPartitions, 1);
    assert.ok(runs.subPartitions >= 8, `${runs.subPartitions} sub-partitions`);
    assert.equal({ ...runs, subPartitions: 1, bytes: 0 }, { ...one, bytes: 0 });
    assert.ok(fs.readFileSync(path.join(tmp, `runs-${p}.csv`)).equals(fs.readFileSync(path.join(tmp, `one-${p}.csv`))), `shard ${p}`);
  }
  // the run files and the attempt's temp file are gone
  assert.equal(fs.readdirSync(path.join(tmp, 'scratch')), []);
});

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
