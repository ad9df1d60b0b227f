/**
 * The stream's sources through the library and the CLI: a watched folder (new files read once,
 * gzip, a file with a bad header skipped with a reject, temp names ignored, decimals that raise the
 * state's scale), a followed file that is rotated and then truncated, and standard input. Each
 * ends with an export compared byte for byte with `aggregate` over the same rows.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { generate } from '../lib/generate.js';
import { aggregate } from '../lib/aggregate.js';
import { segment } from '../lib/segment.js';
import { exportState, stream, type StreamHandle } from '../lib/stream/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-stream-sources-'));
const at = (...p: string[]): string => path.join(tmp, ...p);

/** Rows of a generated file (without the header), and the header. */
function rowsOf(name: string, rows: number, seed: number, decimals = 0): { header: string; rows: string[] } {
  const f = at(`${name}.gen.csv`);
  generate({ out: f, rows, users: 800, seed, decimals });
  const ls = fs.readFileSync(f, 'utf8').split('\n');
  fs.rmSync(f);
  return { header: ls[0], rows: ls.slice(1, -1) };
}
const csv = (header: string, rows: string[]): string => [header, ...rows].join('\n') + '\n';

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The users shards of two folders are byte-identical. */
function sameUsers(a: string, b: string): void {
  const names = fs.readdirSync(a).filter((n) => n.startsWith('users-'));
  assert.ok(names.length > 0);
  for (const n of names) assert.ok(fs.readFileSync(path.join(a, n)).equals(fs.readFileSync(path.join(b, n))), `${n} differs`);
}

const read = (h: StreamHandle): number => h.metrics().rows + h.metrics().rejected;

const hist = rowsOf('hist', 4000, 1);
const history = at('history.csv');
fs.writeFileSync(history, csv(hist.header, hist.rows));

test('watch: new files read once, gzip, a bad header skipped, decimals raise the scale; no model.json: fitted', async () => {
  // an aggregate output (no model): the stream fits k = 3 on its users
  const from = at('agg-history');
  await aggregate({ input: history, out: from, workers: 2 });
  const dir = at('drop');
  fs.mkdirSync(dir);
  const a = rowsOf('a', 3000, 2);
  const b = rowsOf('b', 2000, 3);
  const c = rowsOf('c', 1500, 4, 2);
  fs.writeFileSync(path.join(dir, 'a.csv'), csv(a.header, a.rows));
  fs.writeFileSync(path.join(dir, 'b.csv.gz'), zlib.gzipSync(csv(b.header, b.rows)));
  fs.writeFileSync(path.join(dir, 'bad.csv'), 'who,what\n1,2\n');
  fs.writeFileSync(path.join(dir, 'c.csv.tmp'), csv(c.header, c.rows));
  fs.writeFileSync(path.join(dir, '.c.csv'), csv(c.header, c.rows));
  const logs: string[] = [];
  const state = at('watch-state');
  const h = await stream({ from, state, watch: dir, workers: 2, batchMs: 30, onLog: (m) => logs.push(m) });
  await until(() => read(h) === 4000 + 3000 + 2000, 15_000, 'a and b to be read');
  // a file placed atomically while the stream runs
  fs.renameSync(path.join(dir, 'c.csv.tmp'), path.join(dir, 'c.csv'));
  await until(() => read(h) === 4000 + 3000 + 2000 + 1500, 15_000, 'c to be read');
  const s = await h.stop();
  assert.is(s.rows, 10_500);
  assert.ok(logs.some((l) => /no model\.json; fitting k = 3/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /bad\.csv: skipped/.test(l)), logs.join('\n'));
  // a restart reads nothing again
  const again = await stream({ state, watch: dir, workers: 2, batchMs: 30, once: true });
  const s2 = await again.done;
  assert.is(s2.records, 0);
  assert.is(s2.rows, 10_500);
  const ref = at('watch-ref');
  await aggregate({ input: [history, path.join(dir, 'a.csv'), path.join(dir, 'b.csv.gz'), path.join(dir, 'c.csv')], out: ref, shards: 3, workers: 2 });
  const exp = at('watch-export');
  const sum = await exportState({ state, out: exp, shards: 3, workers: 2 });
  sameUsers(ref, exp);
  assert.is(sum.scale, 2);
  assert.is(sum.total, (JSON.parse(fs.readFileSync(path.join(ref, 'summary.json'), 'utf8')) as { total: string }).total);
  const rejects = fs.readFileSync(path.join(exp, 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file: string; reason: string });
  assert.is(rejects.length, 1);
  assert.match(rejects[0].reason, /^file skipped: .*no user id column/);
  assert.equal(sum.segments.map((g) => g.name), ['High', 'Medium', 'Low']);
});

test('follow: rotation (the old file read to its end, then the new one) and truncation', async () => {
  const seg = at('seg');
  await segment({ input: history, out: seg, workers: 2, noReport: true });
  const live = at('live.csv');
  const all: string[] = []; // every row the stream should count, for the reference
  const x = rowsOf('x', 6000, 5);
  const write = (file: string, rows: string[], withHeader = false): void => {
    fs.appendFileSync(file, (withHeader ? x.header + '\n' : '') + rows.join('\n') + '\n');
    all.push(...rows);
  };
  write(live, x.rows.slice(0, 1000), true);
  const state = at('follow-state');
  const logs: string[] = [];
  const h = await stream({ from: seg, state, follow: live, workers: 2, batchMs: 30, onLog: (m) => logs.push(m) });
  await until(() => read(h) === 5000, 15_000, 'the first rows');
  // logrotate's rename: the writer still appends to the old inode for a moment
  fs.renameSync(live, `${live}.1`);
  write(`${live}.1`, x.rows.slice(1000, 1500));
  write(live, x.rows.slice(1500, 3000), true);
  await until(() => read(h) === 7000, 15_000, 'the rotated and the new file');
  // copytruncate: the same inode, emptied, then written again from its header
  fs.truncateSync(live, 0);
  await new Promise((r) => setTimeout(r, 150));
  write(live, x.rows.slice(3000, 6000), true);
  await until(() => read(h) === 10_000, 15_000, 'the truncated file');
  await h.stop();
  assert.ok(logs.some((l) => /rotated/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => /truncated/.test(l)), logs.join('\n'));
  const rows = at('follow-all.csv');
  fs.writeFileSync(rows, csv(x.header, all));
  const ref = at('follow-ref');
  await aggregate({ input: [history, rows], out: ref, workers: 2 });
  const exp = at('follow-export');
  await exportState({ state, out: exp, workers: 2 });
  sameUsers(ref, exp);
});

/** `segflow stream ARGS` as a child with piped stdio: its stdout and stderr text so far, and its exit code. */
function streamCli(args: string[]): { child: ReturnType<typeof spawn>; io: { out: string; err: string }; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'stream', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const io = { out: '', err: '' };
  child.stdout!.on('data', (d: Buffer) => (io.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (io.err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // a child that dies early fails the exit-code assertion, not the runner with EPIPE
  child.stdin!.on('error', () => {});
  return { child, io, exit };
}

test('stdin: records piped into the CLI; changes on stdout; exit 0 at the end of input', async () => {
  const seg = at('seg');
  const y = rowsOf('y', 5000, 6);
  const state = at('stdin-state');
  const { child, io, exit } = streamCli(['--from', seg, '--state', state, '--workers', '2', '--batch-ms', '30', '--quiet']);
  const text = csv(y.header, y.rows);
  // a header and a record cut across writes
  child.stdin!.write(text.slice(0, 30));
  await new Promise((r) => setTimeout(r, 80));
  child.stdin!.write(text.slice(30, 100_000));
  await new Promise((r) => setTimeout(r, 80));
  child.stdin!.end(text.slice(100_000));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  assert.is(await exit, 0, io.err);
  clearTimeout(timer);
  const events = io.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(events.length > 0);
  assert.equal(Object.keys(events[0]), ['user_id', 'from', 'to', 'purchases', 'total', 'at']);
  // the spool is gone once read
  assert.equal(fs.readdirSync(path.join(state, 'spool')).filter((n) => n.endsWith('.spool')), []);
  const rows = at('stdin-all.csv');
  fs.writeFileSync(rows, text);
  const ref = at('stdin-ref');
  await aggregate({ input: [history, rows], out: ref, workers: 2 });
  const exp = at('stdin-export');
  await exportState({ state, out: exp, workers: 2 });
  sameUsers(ref, exp);
});

test('--changes to /dev/stdout, a named pipe or /dev/null: written, no fsync error, exit 0', async () => {
  const seg = at('seg');
  const y = rowsOf('y', 2000, 7);
  const text = csv(y.header, y.rows);
  const fifo = at('changes.fifo');
  execFileSync('mkfifo', [fifo]);
  for (const target of ['/dev/stdout', fifo, '/dev/null']) {
    const state = at(`dev-state-${path.basename(target)}`);
    // a reader for the named pipe (opening it to write waits for one)
    let piped = '';
    const reader = target === fifo ? spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
    reader?.stdout!.on('data', (d: Buffer) => (piped += d.toString()));
    const readerDone = reader ? new Promise((resolve) => reader.once('exit', resolve)) : Promise.resolve();
    const { child, io, exit } = streamCli(['--from', seg, '--state', state, '--changes', target, '--batch-ms', '30', '--quiet']);
    child.stdin!.end(text);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    assert.is(await exit, 0, `${target}: ${io.err}`);
    clearTimeout(timer);
    await readerDone;
    const lines = (target === fifo ? piped : io.out).trim();
    const events = lines === '' ? [] : lines.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    if (target === '/dev/null') assert.is(events.length, 0);
    else assert.ok(events.length > 0, `${target}: changes came through`);
  }
});

test('a Readable input: string chunks are read as UTF-8; a bad column is ERR_COLUMN, not a second close of the spool', async () => {
  const seg = at('seg');
  const y = rowsOf('y', 300, 8);
  const text = csv(y.header, y.rows);
  const state = at('readable-state');
  const h = await stream({ from: seg, state, workers: 1, once: true, input: Readable.from([text.slice(0, 77), text.slice(77)]) });
  const r = await h.done;
  assert.is(r.records, 300);
  const bad = await stream({ from: seg, state: at('readable-bad'), workers: 1, once: true, userCol: 'nope', input: Readable.from([Buffer.from(text)]) })
    .then((x) => x.done)
    .catch((e: unknown) => e);
  assert.is((bad as { code?: string }).code, 'ERR_COLUMN', String(bad));
});

test.after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
