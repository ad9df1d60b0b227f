/**
 * The test: sales are appended to a followed file in steps; the stream is SIGKILLed between
 * steps (once right after it caught up, once midway, once while sales were still arriving) and
 * restarted on the same --state. At the end the exported per-user totals are byte-identical to
 * `aggregate` over the whole file, the rejects too, and each user's segment is the model's nearest
 * centroid. The changes file, cut back to each checkpoint on restart, reads as one unbroken chain
 * per user: exactly once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../lib/generate.js';
import { aggregate } from '../lib/aggregate.js';
import { segment } from '../lib/segment.js';
import { assignWithModel, type KMeansModel } from '../lib/kmeans-job.js';
import { exportState } from '../lib/stream/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-stream-follow-'));
const sales = path.join(tmp, 'sales.csv');
const seg = path.join(tmp, 'seg');
const state = path.join(tmp, 'state');
const changes = path.join(tmp, 'changes.jsonl');

// 40,000 rows of 3,000 users with cents; 10,000 are the history, the rest arrive in four steps
const full = path.join(tmp, 'full.csv');
generate({ out: full, rows: 40_000, users: 3000, seed: 7, decimals: 2 });
const lines = fs.readFileSync(full, 'utf8').split('\n');
const header = lines[0];
const rows = lines.slice(1, -1);
const BAD = ['1000005,P00001,M,26-35,1,A,1,0,1,,,12.5x', '1000007,P00002,M', '', '1000009,P00003,F,18-25,2,B,0,1,3,,,'];
const steps = [rows.slice(10_000, 17_000), [...rows.slice(17_000, 20_000), ...BAD, ...rows.slice(20_000, 24_000)], rows.slice(24_000, 32_000), rows.slice(32_000)];
fs.writeFileSync(sales, [header, ...rows.slice(0, 10_000)].join('\n') + '\n');
/** Rows read (counted or rejected) once `upTo` steps are in: empty lines are neither. */
const readAfter = (upTo: number): number => 10_000 + steps.slice(0, upTo).reduce((s, x) => s + x.filter((l) => l !== '').length, 0);
const append = (ls: string[]): void => fs.appendFileSync(sales, ls.join('\n') + '\n');

interface Metrics {
  rows: number;
  rejected: number;
}

/** Start the CLI on the followed file; `read()` is the last metrics line's rows + rejected. */
function start(): { child: ChildProcess; read: () => number; exit: Promise<number | null>; stderr: () => string } {
  const child = spawn(
    process.execPath,
    [CLI, 'stream', '--from', seg, '--state', state, '--follow', sales, '--changes', changes, '--workers', '2', '--batch-ms', '50', '--checkpoint-ms', '150', '--metrics', 'json', '--metrics-ms', '40'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  let last: Metrics = { rows: 0, rejected: 0 };
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    const ls = err.split('\n');
    for (const l of ls) if (l.startsWith('{"elapsedMs"')) last = JSON.parse(l) as Metrics;
    err = ls.slice(-50).join('\n');
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, read: () => last.rows + last.rejected, exit, stderr: () => err };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function kill(s: ReturnType<typeof start>): Promise<void> {
  s.child.kill('SIGKILL');
  await s.exit;
}

/** user_id -> line fields, from every shard of a prefix. */
function shardRows(dir: string, prefix: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of fs.readdirSync(dir).filter((n) => n.startsWith(prefix + '-')).sort()) {
    for (const l of fs.readFileSync(path.join(dir, f), 'utf8').split('\n').slice(1)) if (l) out.set(l.split(',')[0], l.split(','));
  }
  return out;
}

test('the history: segment over the first 10,000 rows', async () => {
  await segment({ input: sales, out: seg, workers: 2, noReport: true });
  assert.ok(fs.existsSync(path.join(seg, 'model.json')));
});

test('step 1: caught up, then SIGKILL', async () => {
  append(steps[0]);
  const s = start();
  await until(() => s.read() >= readAfter(1), 20_000, `step 1 to be read (${s.stderr()})`);
  await kill(s);
});

test('step 2 (with bad rows): SIGKILL midway', async () => {
  append(steps[1]);
  const s = start();
  await until(() => s.read() > readAfter(1), 20_000, 'step 2 to start');
  await kill(s);
});

test('step 3: appended while running, then SIGKILL', async () => {
  const s = start();
  await until(() => s.read() >= readAfter(2), 20_000, 'step 2 to be read');
  append(steps[2].slice(0, 4000));
  await new Promise((r) => setTimeout(r, 120));
  append(steps[2].slice(4000));
  await until(() => s.read() >= readAfter(3), 20_000, 'step 3 to be read');
  await kill(s);
});

test('step 4: SIGTERM writes a checkpoint and exits 0', async () => {
  append(steps[3]);
  const s = start();
  await until(() => s.read() >= readAfter(4), 20_000, 'step 4 to be read');
  s.child.kill('SIGTERM');
  assert.is(await s.exit, 0, s.stderr());
});

test('per-user totals and rejects are those of aggregate over the whole file', async () => {
  const ref = path.join(tmp, 'ref');
  const exp = path.join(tmp, 'export');
  await aggregate({ input: sales, out: ref, workers: 2 });
  const sum = await exportState({ state, out: exp, workers: 2 });
  assert.is(sum.rows.read, readAfter(4));
  for (const f of fs.readdirSync(ref).filter((n) => n.startsWith('users-'))) {
    assert.ok(fs.readFileSync(path.join(ref, f)).equals(fs.readFileSync(path.join(exp, f))), `${f} differs`);
  }
  assert.is(fs.readFileSync(path.join(exp, 'rejects.jsonl'), 'utf8'), fs.readFileSync(path.join(ref, 'rejects.jsonl'), 'utf8'));
  assert.is(fs.readFileSync(path.join(ref, 'rejects.jsonl'), 'utf8').trim().split('\n').length, 3);
});

test("each user's segment is the model's nearest centroid; the changes chain without gaps or repeats", () => {
  const model = JSON.parse(fs.readFileSync(path.join(seg, 'model.json'), 'utf8')) as KMeansModel;
  const names = model.names!;
  const nearest = (f: string[]): string => names[assignWithModel(model, [Number(f[1]), Number(f[2])])];
  const users = shardRows(path.join(tmp, 'export'), 'users');
  const segs = shardRows(path.join(tmp, 'export'), 'segments');
  assert.is(segs.size, users.size);
  for (const [id, f] of users) assert.is(segs.get(id)![3], nearest(f), `user ${id}`);
  // the chain: each change starts where the user's last one ended (or from the history's segment)
  const current = new Map<string, string>();
  for (const [id, f] of shardRows(seg, 'users')) current.set(id, nearest(f));
  const events = fs.readFileSync(changes, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { user_id: string; from: string | null; to: string; total: number });
  assert.ok(events.length > 100, `${events.length} changes`);
  for (const e of events) {
    assert.is(e.from, current.get(e.user_id) ?? null, `change of ${e.user_id}`);
    assert.is.not(e.to, e.from);
    current.set(e.user_id, e.to);
  }
  for (const [id, f] of segs) assert.is(current.get(id), f[3], `last change of ${id}`);
});

test.after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
