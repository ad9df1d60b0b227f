/**
 * Retries: scan and merge tasks whose worker crashes (process.exit in the thread), throws, runs
 * out of heap or hangs past its timeout are retried on a fresh worker, up to 4 attempts in all,
 * and the result is byte-identical to a clean run (nothing counted twice). A task that always
 * fails ends the job after exactly 4 attempts with a message naming the file, the byte range, the
 * attempts and the last error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregate, generate, SegflowPool, type AggregateSummary } from '../lib/index.js';
import { assertSameOutput } from './helpers/output.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-retries-'));
const input = path.join(tmp, 'sales.csv');
// ~2.7 MB in 256 KiB ranges: 11 scan tasks
generate({ out: input, rows: 60_000, users: 20_000, seed: 5 });
const RANGE = 256 * 1024;
// one warm pool for most cases (workers share the process environment, so SEGFLOW_FAULTS set
// later applies to them); a small heap so that the oom fault fills it in milliseconds
const pool = new SegflowPool({ workers: 2, maxOldGenerationSizeMb: 64 });

/** Run aggregate with SEGFLOW_FAULTS set. */
async function withFaults<T>(faults: string | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env.SEGFLOW_FAULTS;
  if (faults === undefined) delete process.env.SEGFLOW_FAULTS;
  else process.env.SEGFLOW_FAULTS = faults;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.SEGFLOW_FAULTS;
    else process.env.SEGFLOW_FAULTS = before;
  }
}

const clean = path.join(tmp, 'clean');
let cleanSummary: AggregateSummary;
/** Scan tasks a rule `every=k` hits: 0, k, 2k, ... */
const tasksHit = (k: number): number => Math.ceil(cleanSummary.inputs[0].ranges / k);

test('a clean run (the reference)', async () => {
  cleanSummary = await withFaults(undefined, () => aggregate({ input, out: clean, pool, rangeSize: RANGE }));
  assert.is(cleanSummary.retries, 0);
  assert.is(cleanSummary.inputs[0].ranges, 11);
  assert.is(cleanSummary.rows.counted, 60_000);
});

test('a third of the scan tasks crash their worker: same bytes as the clean run', async () => {
  const out = path.join(tmp, 'crash-every-3');
  const s = await withFaults('scan:crash:every=3', () => aggregate({ input, out, pool, rangeSize: RANGE }));
  // tasks 0, 3, 6, 9 crash on their first attempt
  assert.is(s.retries, tasksHit(3));
  assert.is(s.rows.counted, cleanSummary.rows.counted);
  assert.is(s.total, cleanSummary.total);
  assertSameOutput(out, clean, 'differs from the clean run');
});

test('a worker that crashes holding the rows of earlier ranges: those ranges are scanned again, same bytes', async () => {
  // one worker folds every range into the table it keeps for the job; the crash of task 3 loses
  // the rows of tasks 0-2 with it, so they must be scanned again (and counted once)
  const out = path.join(tmp, 'crash-held');
  const one = new SegflowPool({ workers: 1 });
  try {
    const seen: { bytes: number; records: number; rejects: number }[] = [];
    const s = await withFaults('scan:crash:every=3', () => aggregate({ input, out, pool: one, rangeSize: RANGE, onProgress: (e) => seen.push(e) }));
    assert.ok(s.rescanned >= 3, `${s.rescanned} ranges scanned again`);
    // the ranges scanned again do not take the progress counts back
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i].bytes >= seen[i - 1].bytes && seen[i].records >= seen[i - 1].records && seen[i].rejects >= seen[i - 1].rejects, `progress went back at event ${i}`);
    }
    assert.is(seen[seen.length - 1].records, s.rows.counted);
    assert.is(s.rows.counted, cleanSummary.rows.counted);
    assert.is(s.total, cleanSummary.total);
    assertSameOutput(out, clean, 'differs from the clean run');
  } finally {
    await one.destroy();
  }
});

test('dense user ids (direct-indexed tables): a crash holding earlier ranges and random crashes give the same bytes', async () => {
  // the rescanned ranges' rows come back as sections holding ids of the dense window: the merge
  // adds them to the dense rows of the other tables
  const one = new SegflowPool({ workers: 1 });
  try {
    const out = path.join(tmp, 'crash-held-dense');
    const s = await withFaults('scan:crash:every=3', () => aggregate({ input, out, pool: one, rangeSize: RANGE, denseKeys: true }));
    assert.ok(s.denseKeys, 'a dense window was chosen');
    assert.ok(s.rescanned >= 3, `${s.rescanned} ranges scanned again`);
    assertSameOutput(out, clean, 'differs from the clean run');
  } finally {
    await one.destroy();
  }
  const out = path.join(tmp, 'crash-random-dense');
  const s = await withFaults('scan:crash:0.3', () => aggregate({ input, out, pool, rangeSize: RANGE, denseKeys: true }));
  assert.ok(s.denseKeys && s.retries > 0, 'dense window and some crashed attempts');
  assertSameOutput(out, clean, 'differs from the clean run');
  // every key in dense rows: each worker's merge task writes a group of shards; one crashes
  const merged = path.join(tmp, 'merge-crash-dense');
  const m = await withFaults('merge:crash:every=1', () => aggregate({ input, out: merged, pool, rangeSize: RANGE, denseKeys: true }));
  assert.ok(m.denseKeys, 'a dense window');
  assert.is(m.retries, 2, 'both group tasks crashed once');
  assertSameOutput(merged, clean, 'differs from the clean run');
});

test('scan tasks crash at random (p = 0.3 per attempt): same bytes', async () => {
  const out = path.join(tmp, 'crash-random');
  const s = await withFaults('scan:crash:0.3', () => aggregate({ input, out, pool, rangeSize: RANGE }));
  assert.ok(s.retries > 0, 'some attempts crashed');
  assertSameOutput(out, clean, 'differs from the clean run');
});

test('scan tasks that throw and merge tasks that crash: same bytes', async () => {
  const out = path.join(tmp, 'throw-and-merge');
  const s = await withFaults('scan:throw:every=2,merge:crash:every=3', () => aggregate({ input, out, pool, rangeSize: RANGE }));
  // scan tasks 0, 2, 4, ... and merge tasks (partitions) 0, 3, 6
  assert.is(s.retries, tasksHit(2) + 3);
  assertSameOutput(out, clean, 'differs from the clean run');
});

test('a worker that runs out of heap is replaced and its task retried', async () => {
  const out = path.join(tmp, 'oom');
  const s = await withFaults('scan:oom:every=4', () => aggregate({ input, out, pool, rangeSize: RANGE }));
  assert.is(s.retries, tasksHit(4)); // tasks 0, 4, 8
  assertSameOutput(out, clean, 'differs from the clean run');
});

test('a task that hangs past its timeout is stopped and retried', async () => {
  const out = path.join(tmp, 'hang');
  const timed = new SegflowPool({ workers: 2, taskTimeoutMs: 1500 });
  try {
    const s = await withFaults('scan:hang:every=6', () => aggregate({ input, out, pool: timed, rangeSize: RANGE }));
    // tasks 0 and 6 hang (on a very loaded machine a slow attempt may time out too)
    assert.ok(s.retries >= tasksHit(6), `${s.retries} retries`);
    assertSameOutput(out, clean, 'differs from the clean run');
  } finally {
    await timed.destroy();
  }
});

test('a task that always fails: exit 1 after exactly 4 attempts, naming file, range and error', () => {
  const small = path.join(tmp, 'one-range.csv');
  generate({ out: small, rows: 2_000, seed: 9 });
  const log = path.join(tmp, 'faults.log');
  const out = path.join(tmp, 'always');
  const r = spawnSync(process.execPath, [CLI, 'aggregate', small, '--out', out, '--workers', '1', '-q'], {
    env: { ...process.env, SEGFLOW_FAULTS: 'scan:throw:always', SEGFLOW_FAULTS_LOG: log },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.is(r.status, 1, r.stderr);
  const size = fs.statSync(small).size;
  const header = fs.readFileSync(small, 'utf8').indexOf('\n') + 1;
  assert.match(r.stderr, `scan task ${small} bytes ${header}-${size} failed after 4 attempts; last error: injected fault (scan:throw) in task 0, attempt 4`);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  // the fault log counts the attempts: 1, 2, 3, 4 and no fifth
  assert.equal(fs.readFileSync(log, 'utf8').trim().split('\n'), ['scan 0 1 throw', 'scan 0 2 throw', 'scan 0 3 throw', 'scan 0 4 throw']);
  // nothing under the final name, no temp folder left
  assert.not.ok(fs.existsSync(out));
  assert.equal(fs.readdirSync(tmp).filter((f) => f.startsWith('.always')), []);
});

test('a worker that always crashes: the last error says the thread exited', async () => {
  const out = path.join(tmp, 'always-crash');
  try {
    await withFaults('merge:crash:always', () => aggregate({ input, out, pool, rangeSize: RANGE }));
    assert.unreachable('the job should fail');
  } catch (err) {
    const e = err as { code?: string; message: string; details: Record<string, unknown> };
    assert.is(e.code, 'ERR_TASK_FAILED');
    assert.is(e.details.attempts, 4);
    assert.match(e.message, /^merge task partition \d \(users-0000\d-of-00008\.csv\) failed after 4 attempts; last error: the worker thread exited with code 70$/);
  }
  assert.not.ok(fs.existsSync(out));
});

test('a bad SEGFLOW_FAULTS is a usage error before anything runs', async () => {
  try {
    await withFaults('scan:explode', () => aggregate({ input, out: path.join(tmp, 'x'), workers: 1 }));
    assert.unreachable('should fail');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_USAGE');
    assert.match((err as Error).message, 'unknown kind');
  }
});

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
