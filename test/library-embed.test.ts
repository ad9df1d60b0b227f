/**
 * The library as an app embeds it, through its public entry only: two jobs on one kept pool, one
 * aborted midway with an AbortSignal. The aborted job rejects with ERR_ABORTED and leaves nothing
 * behind; the other finishes with the right numbers; progress events arrive in order; the pool
 * still serves a job afterwards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as segflow from '../lib/index.js';
import { SegflowError, SegflowPool, aggregate, generate, type AggregateSummary, type ProgressEvent, type Stage } from '../lib/index.js';

const STAGES: Stage[] = ['plan', 'scan', 'merge', 'cluster', 'report'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-library-'));
const inputs = path.join(tmp, 'in');
const outs = path.join(tmp, 'out'); // the parent of both jobs' --out: nothing else may appear here
fs.mkdirSync(inputs);
fs.mkdirSync(outs);
const bigFile = path.join(inputs, 'big.csv');
const smallFile = path.join(inputs, 'small.csv');
generate({ out: bigFile, rows: 200_000, seed: 11 });
generate({ out: smallFile, rows: 60_000, seed: 12 });

/** The reference: rows, users and the exact total of the Purchase column, read plainly. */
function reference(file: string): { rows: number; users: number; total: bigint } {
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(1);
  const users = new Set<string>();
  let total = 0n;
  for (const line of lines) {
    users.add(line.slice(0, line.indexOf(',')));
    total += BigInt(line.slice(line.lastIndexOf(',') + 1));
  }
  return { rows: lines.length, users: users.size, total };
}

/** Check events are in stage order and bytes and records never go back. */
function assertInOrder(events: ProgressEvent[]): void {
  assert.ok(events.length > 0, 'no progress events');
  for (let i = 1; i < events.length; i++) {
    const [a, b] = [events[i - 1], events[i]];
    assert.ok(STAGES.indexOf(b.stage) >= STAGES.indexOf(a.stage), `stage ${a.stage} then ${b.stage}`);
    assert.ok(b.bytes >= a.bytes, `bytes ${a.bytes} then ${b.bytes} (${a.stage} -> ${b.stage})`);
    assert.ok(b.records >= a.records, `records ${a.records} then ${b.records}`);
    assert.ok(b.elapsedMs >= a.elapsedMs, 'elapsedMs goes forward');
  }
}

test('two jobs on one pool: one aborted midway, the other unaffected', async () => {
  const pool = new SegflowPool({ workers: 2 });
  try {
    const controller = new AbortController();
    const eventsA: ProgressEvent[] = [];
    const eventsB: ProgressEvent[] = [];
    const jobA = aggregate({
      input: bigFile,
      out: path.join(outs, 'a'),
      pool,
      rangeSize: 256 * 1024, // ~40 ranges: the abort lands with most still queued
      signal: controller.signal,
      onProgress: (e) => {
        eventsA.push(e);
        if (e.stage === 'scan' && !controller.signal.aborted) controller.abort();
      },
    });
    const jobB = aggregate({ input: smallFile, out: path.join(outs, 'b'), pool, rangeSize: 256 * 1024, onProgress: (e) => eventsB.push(e) });
    const [a, b] = await Promise.allSettled([jobA, jobB]);

    assert.is(a.status, 'rejected');
    const err = (a as PromiseRejectedResult).reason;
    assert.instance(err, SegflowError);
    assert.is(err.code, 'ERR_ABORTED');
    const scansA = eventsA.filter((e) => e.stage === 'scan');
    assert.ok(scansA.length >= 1 && scansA[scansA.length - 1].bytes < scansA[0].totalBytes, 'A stopped midway through its scan');

    assert.is(b.status, 'fulfilled', String((b as PromiseRejectedResult).reason));
    const summary = (b as PromiseFulfilledResult<Awaited<typeof jobB>>).value;
    const want = reference(smallFile);
    assert.is(summary.rows.counted, want.rows);
    assert.is(summary.rows.rejected, 0);
    assert.is(summary.users, want.users);
    assert.is(summary.total, want.total.toString());
    assertInOrder(eventsB);
    assert.is(eventsB[eventsB.length - 1].bytes, eventsB[eventsB.length - 1].totalBytes, 'B read all its bytes');

    // nothing of A's remains: no --out, no temp folder, no spill file beside them
    assert.equal(fs.readdirSync(outs).sort(), ['b']);
    assert.ok(fs.existsSync(path.join(outs, 'b', 'summary.json')));

    // the kept pool still serves jobs after an abort
    const again = await aggregate({ input: smallFile, out: path.join(outs, 'c'), pool });
    assert.is(again.total, summary.total);
    assert.equal(fs.readdirSync(outs).sort(), ['b', 'c']);
  } finally {
    await pool.destroy();
  }
});

test('columns by number from JavaScript (a number, not a string) pick the same columns; other types are usage errors', async () => {
  const header = fs.readFileSync(smallFile, 'utf8').split('\n')[0].split(',');
  const byName = await aggregate({ input: smallFile, out: path.join(tmp, 'cols-name'), workers: 1, force: true, userCol: header[0], amountCol: header[header.length - 1] });
  const byNumber = await aggregate({
    input: smallFile,
    out: path.join(tmp, 'cols-number'),
    workers: 1,
    force: true,
    ...({ userCol: 1, amountCol: header.length } as unknown as { userCol: string; amountCol: string }),
  });
  assert.equal([byNumber.rows, byNumber.users, byNumber.total], [byName.rows, byName.users, byName.total]);
  const err = await aggregate({ input: smallFile, out: path.join(tmp, 'cols-bad'), workers: 1, force: true, ...({ userCol: {} } as unknown as { userCol: string }) }).catch((e: unknown) => e);
  assert.instance(err, SegflowError);
  assert.is((err as SegflowError).code, 'ERR_USAGE');
});

test('an already aborted signal rejects at once, and writes nothing', async () => {
  try {
    await aggregate({ input: smallFile, out: path.join(tmp, 'never'), workers: 1, signal: AbortSignal.abort() });
    assert.unreachable('should reject');
  } catch (err) {
    assert.instance(err, SegflowError);
    assert.is((err as SegflowError).code, 'ERR_ABORTED');
  }
  assert.not.ok(fs.readdirSync(tmp).some((n) => n.includes('never')));
});

test('generate writes the rows asked for, also with fewer users than spend tiers', () => {
  for (const [rows, users] of [[10, undefined], [7, 1], [30, 2]] as const) {
    const file = path.join(tmp, `few-${rows}.csv`);
    const s = generate({ out: file, rows, users, seed: 3 });
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    assert.is(s.rows, rows);
    assert.is(lines.length, rows + 1, `${rows} rows and a header`);
    assert.ok(new Set(lines.slice(1).map((l) => l.split(',')[0])).size <= Math.max(1, users ?? 1));
  }
});

test('options of the wrong type from JavaScript are usage errors naming the option, not TypeErrors', async () => {
  const good = { input: smallFile, out: path.join(tmp, 'shapes'), workers: 1 };
  const cases: [unknown, RegExp][] = [
    [undefined, /the options must be an object/],
    [{ ...good, input: 5 }, /^input must be/],
    [{ ...good, out: 7 }, /^out must be a folder path/],
    [{ ...good, delimiter: 5 }, /^delimiter must be a string/],
    [{ ...good, pool: {} }, /^pool must be a SegflowPool/],
    [{ ...good, signal: 'x' }, /^signal must be an AbortSignal/],
    [{ ...good, onProgress: 5 }, /^onProgress must be a function/],
  ];
  for (const [o, msg] of cases) {
    const err = await aggregate(o as Parameters<typeof aggregate>[0]).catch((e: unknown) => e);
    assert.instance(err, SegflowError, String(err));
    assert.is((err as SegflowError).code, 'ERR_USAGE');
    assert.match((err as SegflowError).message, msg);
  }
});

test('generate: a count that is not a whole number in range is a usage error, and no file is written', () => {
  const file = path.join(tmp, 'bad-generate.csv');
  for (const bad of [{ rows: 2.5 }, { rows: 5, users: 2.5 }, { rows: 5, users: Number.NaN }, { rows: 5, decimals: 30 }, { rows: 5, decimals: 2.5 }, { rows: 5, seed: -1 }, { rows: Infinity }, { size: -1 }]) {
    try {
      generate({ out: file, ...bad });
      assert.unreachable(`${JSON.stringify(bad)} accepted`);
    } catch (err) {
      assert.instance(err, SegflowError, JSON.stringify(bad));
      assert.is((err as SegflowError).code, 'ERR_USAGE', JSON.stringify(bad));
    }
    assert.not.ok(fs.existsSync(file), 'no file');
  }
});

test('segment on a kept pool: progress through cluster and report, in order', async () => {
  // `segment` joins the public entry with issue 6; until then this test has nothing to check
  const segment = (segflow as Record<string, unknown>).segment as ((o: object) => Promise<AggregateSummary>) | undefined;
  if (!segment) {
    console.log('  (skipped: segment is not exported from lib/index.ts yet)');
    return;
  }
  const pool = new SegflowPool({ workers: 2 });
  const events: ProgressEvent[] = [];
  try {
    const summary = await segment({ input: smallFile, out: path.join(outs, 'seg'), pool, onProgress: (e: ProgressEvent) => events.push(e) });
    assert.is(summary.segments?.length, 3);
    assert.is(summary.segments?.reduce((n, s) => n + s.users, 0), summary.users);
    assertInOrder(events);
    const stages = events.map((e) => e.stage).filter((st, i, all) => st !== all[i - 1]);
    assert.equal(stages, ['plan', 'scan', 'merge', 'cluster', 'report']);
    assert.ok(fs.existsSync(path.join(outs, 'seg', 'report.html')));
  } finally {
    await pool.destroy();
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
