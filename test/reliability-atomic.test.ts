/**
 * Atomic output: a job killed with SIGKILL leaves nothing under the final names, and a rerun
 * clears its stale temp folder and writes the right result; SIGINT stops a job cleanly (temp
 * folder removed, exit 130); --out that holds a result needs --force (else exit 2).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregate, generate, SegflowPool } from '../lib/index.js';
import { assertSameOutput } from './helpers/output.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-atomic-'));
const input = path.join(tmp, 'sales.csv');
// ~6.7 MB: one worker in 256 KiB ranges takes a second or more, long enough to be caught running
generate({ out: input, rows: 150_000, seed: 11 });
const JOB = ['--workers', '1', '--range-size', '256KiB'];
const pool = new SegflowPool({ workers: 2 });

/** Temp folders of `out` (hidden, beside it). */
const temps = (out: string): string[] => fs.readdirSync(path.dirname(out)).filter((f) => f.startsWith(`.${path.basename(out)}.segflow-tmp-`));

/** Poll until `cond` holds (every 5 ms, at most `ms`). */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolve with the exit code (or signal) once the child ends. */
const exited = (child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
  new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

const ref = path.join(tmp, 'ref');

test('the reference result', async () => {
  await aggregate({ input, out: ref, pool });
});

test('SIGKILL mid-job: nothing under the final name; a rerun clears the temp folder and is right', async () => {
  const out = path.join(tmp, 'killed');
  const child = spawn(process.execPath, [CLI, 'aggregate', input, '--out', out, ...JOB], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const done = exited(child);
  // the scan has started once its progress line is out
  await until(() => /scan/.test(stderr), 20_000, 'the scan to start');
  child.kill('SIGKILL');
  const { signal } = await done;
  assert.is(signal, 'SIGKILL', `the job ended before the kill: ${stderr}`);
  assert.not.ok(fs.existsSync(out), 'no output under the final name');
  assert.is(temps(out).length, 1, 'the killed job left its temp folder');

  const r = spawnSync(process.execPath, [CLI, 'aggregate', input, '--out', out, '-q', '--workers', '2'], { encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  assert.equal(temps(out), [], 'the stale temp folder is gone');
  assertSameOutput(out, ref);
  assert.ok(fs.existsSync(path.join(out, 'summary.json')));
});

test('SIGINT: the job stops, its temp folder is removed, exit 130', async () => {
  const out = path.join(tmp, 'interrupted');
  const child = spawn(process.execPath, [CLI, 'aggregate', input, '--out', out, ...JOB], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const done = exited(child);
  await until(() => /scan/.test(stderr), 20_000, 'the scan to start');
  const t = Date.now();
  child.kill('SIGINT');
  const { code } = await done;
  assert.is(code, 130, stderr);
  // the workers were stopped, not waited for: the process ends well before the job would
  assert.ok(Date.now() - t < 5_000, `took ${Date.now() - t} ms to stop`);
  assert.match(stderr, 'aborted');
  assert.not.match(stderr, /\n\s+at /);
  assert.not.ok(fs.existsSync(out));
  assert.equal(temps(out), []);
});

test('an AbortSignal stops a library job: ERR_ABORTED, temp folder removed', async () => {
  const out = path.join(tmp, 'aborted');
  const ac = new AbortController();
  try {
    await aggregate({ input, out, pool, rangeSize: 256 * 1024, signal: ac.signal, onProgress: (e) => e.stage === 'scan' && ac.abort() });
    assert.unreachable('should abort');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_ABORTED');
  }
  assert.not.ok(fs.existsSync(out));
  assert.equal(temps(out), []);
});

test('--out holding a result: exit 2 without --force, replaced with it', async () => {
  const small = path.join(tmp, 'small.csv');
  generate({ out: small, rows: 1_000, seed: 2 });
  const out = path.join(tmp, 'existing');
  await aggregate({ input: small, out, pool, shards: 2 });
  const before = fs.readFileSync(path.join(out, 'summary.json'), 'utf8');
  const args = ['aggregate', small, '--out', out, '-q', '--workers', '1', '--shards', '3'];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 2);
  assert.is(r.stderr, `segflow: --out ${out} already holds files; pass --force to replace them\n`);
  assert.is(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'), before, 'the old result is untouched');
  assert.equal(temps(out), []);
  const f = spawnSync(process.execPath, [CLI, ...args, '--force'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(f.status, 0, f.stderr);
  assert.equal(temps(out), []);
  // the new result replaced the old one whole: 3 shards, not 2
  assert.equal(fs.readdirSync(out).sort(), ['rejects.jsonl', 'summary.json', 'users-00000-of-00003.csv', 'users-00001-of-00003.csv', 'users-00002-of-00003.csv']);
});

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
