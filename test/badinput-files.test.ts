/**
 * Bad input: each case gives one clear message, the right error code (and so exit code), no stack
 * trace and no output folder. Every case runs through the library (fast); the command line, which
 * prints any SegflowError the same way, is checked on a few. (The table in the README, "Reliability" lists
 * these same cases.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { aggregate, ERROR_CODES, SegflowPool, type AggregateOptions } from '../lib/index.js';
import { Random } from '../lib/util/random.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-badinput-'));
const at = (name: string): string => path.join(tmp, name);
const pool = new SegflowPool({ workers: 1 });
const OUT = at('out');

/** No output and no temp folder left. */
function assertNoOutput(): void {
  assert.not.ok(fs.existsSync(OUT));
  assert.equal(fs.readdirSync(tmp).filter((f) => f.startsWith('.out')), [], 'no temp folder');
}

/** The job must fail with `code` (whose exit code is `exit`) and a message matching `msg`. */
async function expectError(input: string, exit: number, code: string, msg: RegExp, o: Partial<AggregateOptions> = {}): Promise<void> {
  const cwd = process.cwd();
  process.chdir(tmp);
  try {
    await aggregate({ input, out: OUT, pool, ...o });
    assert.unreachable(`${input} should fail`);
  } catch (err) {
    const e = err as Error & { code?: keyof typeof ERROR_CODES };
    assert.is(e.code, code, e.message);
    assert.is(ERROR_CODES[e.code!], exit);
    assert.match(e.message, msg);
    assert.not.match(e.message, /\n/, 'one line');
  } finally {
    process.chdir(cwd);
  }
  assertNoOutput();
}

/** The command line: exit code, one line on stderr matching `msg`, no stack trace, no output. */
function expectCli(args: string[], exit: number, msg: RegExp): void {
  fs.rmSync(OUT, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [CLI, 'aggregate', ...args, '--out', OUT, '-q', '--workers', '1'], { encoding: 'utf8', cwd: tmp, timeout: 30_000 });
  assert.is(r.status, exit, r.stderr);
  assert.match(r.stderr, msg);
  assert.ok(r.stderr.startsWith('segflow: '), r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.not.match(r.stderr, /\n\s+at /);
  assertNoOutput();
}

const rnd = new Random(4);
const noise = (n: number, noNul: boolean): Buffer => Buffer.from(Array.from({ length: n }, () => (noNul ? 1 + rnd.int(255) : rnd.int(256))));
fs.writeFileSync(at('garbage.csv'), noise(20_000, false));
fs.writeFileSync(at('garbage-no-nul.csv'), noise(20_000, true));
fs.writeFileSync(at('empty.csv'), '');
fs.writeFileSync(at('blank-header.csv'), '\n1,2\n');
fs.writeFileSync(at('no-columns.csv'), 'name,city\nann,paris\n');
fs.writeFileSync(at('page.csv'), '<!doctype html>\n<html><body>sales</body></html>\n');
fs.writeFileSync(at('records.csv'), '{"user_id":1,"amount":2}\n');
fs.writeFileSync(at('list.txt'), 'apples\npears\nplums\n');
fs.mkdirSync(at('no-inputs'));
fs.writeFileSync(at('no-inputs/notes.md'), '# notes\n');
// numbers that do not compress away, so that the cut falls inside the data, past the header
const rows = Array.from({ length: 20_000 }, () => `${rnd.int(1e6)},${rnd.int(1e5)}.${rnd.int(100)}\n`).join('');
fs.writeFileSync(at('truncated.csv.gz'), zlib.gzipSync('user_id,amount\n' + rows).subarray(0, 20_000));
const SAMPLE = 'user_id,amount\n1,10\n2,20\n2,x\n3,\n4,40\n';
fs.writeFileSync(at('rejects.csv'), SAMPLE);
fs.writeFileSync(at('early.csv'), 'user_id,amount\n1,x\n' + '1,1\n'.repeat(20_000));

test('binary garbage (with NUL bytes)', async () => {
  await expectError('garbage.csv', 2, 'ERR_BAD_INPUT', /^garbage\.csv: not a text file \(a NUL byte at offset \d+\); expected CSV or JSON Lines$/);
  expectCli(['garbage.csv'], 2, /^segflow: garbage\.csv: not a text file \(a NUL byte at offset \d+\); expected CSV or JSON Lines\n$/);
});

test('binary garbage without NUL bytes', async () => {
  await expectError('garbage-no-nul.csv', 2, 'ERR_BAD_INPUT', /^garbage-no-nul\.csv: not a text file \(\d+ of its first 20000 bytes are control characters\); expected CSV or JSON Lines$/);
});

test('an empty file; an empty header line', async () => {
  await expectError('empty.csv', 2, 'ERR_BAD_INPUT', /^empty\.csv: the file is empty \(expected a header line\)$/);
  await expectError('blank-header.csv', 2, 'ERR_BAD_INPUT', /^blank-header\.csv: line 1 is empty; expected a header line$/);
});

test('a header without the needed columns lists the header', async () => {
  await expectError('no-columns.csv', 2, 'ERR_COLUMN', /^no-columns\.csv: no user id column found \(tried user_id, .*\); name it with --user-col; columns: name, city$/);
  expectCli(['no-columns.csv'], 2, /^segflow: no-columns\.csv: no user id column found \(tried user_id, .*\); name it with --user-col; columns: name, city\n$/);
});

test('a named column that is not there', async () => {
  await expectError('rejects.csv', 2, 'ERR_COLUMN', /^rejects\.csv: no amount column "price" \(--amount-col\); columns: user_id, amount$/, { amountCol: 'price' });
});

test('not CSV: an HTML page, JSON Lines named .csv, a plain list', async () => {
  await expectError('page.csv', 2, 'ERR_COLUMN', /columns: <!doctype, html> \(the file looks like HTML or XML, not CSV\)$/);
  await expectError('records.csv', 2, 'ERR_COLUMN', /\(the file looks like JSON Lines: pass --format jsonl\)$/);
  await expectError('list.txt', 2, 'ERR_COLUMN', /no user id column found .*\(the header has a single column: not a delimited file, or name the delimiter with --delimiter\)$/);
});

test('a missing file, a glob that matches nothing, a folder with no inputs', async () => {
  await expectError('missing.csv', 2, 'ERR_INPUT_NOT_FOUND', /^input not found: missing\.csv$/);
  await expectError('nothing-*.csv', 2, 'ERR_INPUT_NOT_FOUND', /^no file matches nothing-\*\.csv$/);
  await expectError('no-inputs', 2, 'ERR_INPUT_NOT_FOUND', /^folder no-inputs holds no input files \(\*\.csv, /);
  expectCli(['missing.csv'], 2, /^segflow: input not found: missing\.csv\n$/);
});

test('--out or --state under a file: a usage error naming the flag (exit 2); a stream that fails to start leaves no state folder', () => {
  fs.writeFileSync(at('plain-file'), 'x');
  fs.writeFileSync(at('ok.csv'), 'user_id,amount\n1,2\n');
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: tmp, timeout: 30_000 });
  const out = run(['aggregate', 'ok.csv', '--out', path.join(at('plain-file'), 'sub'), '-q']);
  assert.is(out.status, 2, out.stderr);
  assert.match(out.stderr, /^segflow: --out .*plain-file\/sub cannot be created: /);
  assert.not.match(out.stderr, /\n\s+at /);
  const st = run(['stream', '--from', at('no-such-segment'), '--state', path.join(at('plain-file'), 'state'), '--quiet']);
  assert.is(st.status, 2, st.stderr);
  assert.match(st.stderr, /^segflow: --state .*plain-file\/state cannot be created: /);
  const gone = run(['stream', '--from', at('no-such-segment'), '--state', at('new-state'), '--quiet']);
  assert.is(gone.status, 2, gone.stderr);
  assert.not.ok(fs.existsSync(at('new-state')), 'the state folder the failed start made is removed');
});

test('segflow worker: bad --workers, --stalled-interval-ms or --tmp-dir exit 2 naming the flag, before connecting', () => {
  for (const [args, msg] of [
    [['--workers', '0'], /^segflow: --workers must be a positive integer/],
    [['--stalled-interval-ms', '0'], /^segflow: --stalled-interval-ms must be a positive number/],
    [['--tmp-dir', at('no-such-folder')], /^segflow: --tmp-dir .* is not a folder/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, 'worker', '--redis', 'redis://127.0.0.1:1', ...args], { encoding: 'utf8', cwd: tmp, timeout: 30_000 });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, msg);
  }
});

test('a truncated gzip file', async () => {
  await expectError('truncated.csv.gz', 2, 'ERR_BAD_INPUT', /^truncated\.csv\.gz: not a readable gzip file \(unexpected end of file\)$/);
});

test('--max-bad-ratio: 2 of 5 rows rejected', async () => {
  // default 1: the job succeeds and rejects.jsonl says why
  const cwd = process.cwd();
  process.chdir(tmp);
  try {
    const s = await aggregate({ input: 'rejects.csv', out: OUT, pool });
    assert.equal(s.rows, { read: 5, counted: 3, rejected: 2, emptyLines: 0 });
    fs.rmSync(OUT, { recursive: true });
    await aggregate({ input: 'rejects.csv', out: OUT, pool, maxBadRatio: 0.4 });
    fs.rmSync(OUT, { recursive: true });
  } finally {
    process.chdir(cwd);
  }
  const over = /^rejected 2 of 5 rows \(40\.00%\), over --max-bad-ratio 0\.3; e\.g\. amount is not a number: "x" \(amount\) at byte 25; missing amount \(amount\) at byte 29$/;
  await expectError('rejects.csv', 1, 'ERR_TOO_MANY_REJECTS', over, { maxBadRatio: 0.3 });
  expectCli(['rejects.csv', '--max-bad-ratio', '0.3'], 1, /^segflow: rejected 2 of 5 rows \(40\.00%\), over --max-bad-ratio 0\.3; e\.g\. /);
  // 0 allows no reject: the first range with one fails the job without waiting for the rest
  await expectError('early.csv', 1, 'ERR_TOO_MANY_REJECTS', /^rejected 1 of the \d+ rows read so far \(\d+\.\d\d%\): more than --max-bad-ratio 0 of the file whatever the rest holds; e\.g\. amount is not a number: "x" \(amount\) at byte 15$/, { maxBadRatio: 0, rangeSize: 1024 });
  await expectError('rejects.csv', 2, 'ERR_USAGE', /^--max-bad-ratio must be between 0 and 1, got 2$/, { maxBadRatio: 2 });
});

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
