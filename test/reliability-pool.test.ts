/**
 * The pool's worker threads load task modules with import(), not require(esm): Node 20.19+ aborts
 * the whole process (a V8 CHECK, not an exception) when a worker is stopped while require(esm)
 * instantiates a module, which a pool destroyed or a task timed out during a worker's start can do.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { adoptPrestarted, dropPrestarted, prestartPool, workerExecArgv } from '../lib/pool.js';
import { spawnSync } from 'node:child_process';
import { aggregate, generate, SegflowPool } from '../lib/index.js';

const SCAN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../workers/scan.js');
const requireEsmKnown = process.allowedNodeEnvironmentFlags.has('--experimental-require-module');

/** What require() of the scan task module does in a thread started with the pool's flags. */
function requireInWorker(execArgv: string[]): Promise<string> {
  const code = `const { parentPort } = require('node:worker_threads');
try { require(${JSON.stringify(SCAN)}); parentPort.postMessage('loaded') } catch (e) { parentPort.postMessage(e.code) }`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, execArgv });
    w.once('message', (m: string) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

test('pool workers run with require(esm) off, so Piscina loads tasks with import()', async () => {
  const argv = workerExecArgv();
  if (!requireEsmKnown) {
    // Node before 20.17 has no require(esm) at all
    assert.is(await requireInWorker(argv), 'ERR_REQUIRE_ESM');
    return;
  }
  assert.ok(argv.includes('--no-experimental-require-module'), `flags: ${argv.join(' ')}`);
  assert.is(await requireInWorker(argv), 'ERR_REQUIRE_ESM');
});

test('pool options out of range are usage errors before any worker starts', () => {
  for (const bad of [{ workers: 0 }, { workers: 1.5 }, { attempts: 0 }, { taskTimeoutMs: -1 }, { taskTimeoutMs: Number.NaN }, { taskTimeoutMs: 0 }]) {
    try {
      new SegflowPool({ workers: 1, ...bad });
      assert.unreachable(`${JSON.stringify(bad)} accepted`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_USAGE', String(err));
    }
  }
});

test('pools destroyed while their workers start, then a pool that runs a job', async () => {
  for (let i = 0; i < 10; i++) {
    const pool = new SegflowPool({ workers: 2 });
    await new Promise((r) => setTimeout(r, i * 5));
    await pool.destroy();
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-pool-'));
  const pool = new SegflowPool({ workers: 2 });
  try {
    const input = path.join(tmp, 'sales.csv');
    generate({ out: input, rows: 2_000, users: 300, seed: 3 });
    const summary = await aggregate({ input, out: path.join(tmp, 'out'), pool, rangeSize: 8 * 1024 });
    assert.is(summary.rows.counted, 2_000);
  } finally {
    await pool.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('a prestarted pool: adopted by options that match, destroyed for options that do not', async () => {
  prestartPool({ workers: 1, maxOldGenerationSizeMb: 300 });
  // other options: not adopted (and that pool is destroyed)
  assert.is(adoptPrestarted({ workers: 2, maxOldGenerationSizeMb: 300 }), undefined);
  assert.is(adoptPrestarted({ workers: 1, maxOldGenerationSizeMb: 300 }), undefined, 'nothing left to adopt');
  prestartPool({ workers: 1, maxOldGenerationSizeMb: 300 });
  assert.is(adoptPrestarted({ workers: 1, maxOldGenerationSizeMb: 400 }), undefined);
  prestartPool({ workers: 1, maxOldGenerationSizeMb: 300 });
  const pool = adoptPrestarted({ workers: 1, maxOldGenerationSizeMb: 300 });
  assert.ok(pool, 'the same options adopt it');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-prestart-'));
  try {
    const input = path.join(tmp, 'sales.csv');
    generate({ out: input, rows: 3_000, users: 400, seed: 5 });
    const summary = await aggregate({ input, out: path.join(tmp, 'out'), pool, rangeSize: 4 * 1024 });
    assert.is(summary.rows.counted, 3_000);
    assert.is(summary.workers, 1);
  } finally {
    await pool!.destroy();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  prestartPool({ workers: 1 });
  await dropPrestarted();
  assert.is(adoptPrestarted({ workers: 1 }), undefined, 'dropped');
});

test('the command line starts its pool early and still exits promptly on errors and --help', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const cli = path.join(root, 'dist/lib/cli.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-prestart-cli-'));
  try {
    const input = path.join(tmp, 'sales.csv');
    generate({ out: input, rows: 5_000, users: 700, seed: 9 });
    const run = (args: string[]) => {
      const t0 = Date.now();
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });
      return { ...r, ms: Date.now() - t0 };
    };
    // flags in both spellings, read the same way by the early start and by the command line
    const a = run(['aggregate', input, '--out', path.join(tmp, 'a'), '--workers=1', '--memory', '512MiB', '--json']);
    assert.is(a.status, 0, a.stderr);
    const b = run(['aggregate', input, '--out', path.join(tmp, 'b'), '--workers', '2', '--memory=1GiB', '--range-size', '4KiB', '--json']);
    assert.is(b.status, 0, b.stderr);
    const sa = JSON.parse(a.stdout);
    const sb = JSON.parse(b.stdout);
    assert.is(sa.workers, 1);
    assert.is(sb.workers, 2);
    assert.is(sa.total, sb.total);
    assert.is(sa.users, sb.users);
    for (const f of sa.files.filter((f: string) => f.startsWith('users-'))) {
      assert.ok(fs.readFileSync(path.join(tmp, 'a', f)).equals(fs.readFileSync(path.join(tmp, 'b', f))), f);
    }
    // a job that fails before it takes the pool, a bad flag value, and --help: all exit, none hangs
    const exists = run(['aggregate', input, '--out', path.join(tmp, 'a')]);
    assert.is(exists.status, 2, exists.stderr);
    const badShards = run(['aggregate', input, '--out', path.join(tmp, 'c'), '--shards', '0']);
    assert.is(badShards.status, 2, badShards.stderr);
    assert.match(badShards.stderr, /--shards/);
    const badWorkers = run(['segment', input, '--out', path.join(tmp, 'd'), '--workers', 'x']);
    assert.ok(badWorkers.status !== 0 && badWorkers.status !== null, `status ${badWorkers.status}`);
    const help = run(['aggregate', '--help']);
    assert.is(help.status, 0);
    for (const r of [exists, badShards, badWorkers, help]) assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
