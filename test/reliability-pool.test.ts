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
import { workerExecArgv } from '../lib/pool.js';
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

test.run();
