/**
 * `segflow bench`: the whole aggregate job for each worker count, with tinybench, reported as
 * median MB/s, speedup and parallel efficiency. One warm pool per worker count; the counts run in
 * turn, round by round; every run writes its finalized shards (plan to commit), as a user's run
 * does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Bench } from 'tinybench';
import { aggregate, settleLayout } from './aggregate.js';
import { SegflowPool, defaultWorkerCounts } from './pool.js';
import { SegflowError } from './errors.js';
import { resolveInputs } from './inputs.js';

/** Options of {@link benchWorkers}. */
export interface BenchOptions {
  input: string | string[];
  /** Worker counts to compare (default 1, 2, 4, ... up to the cores). */
  workers?: number[];
  /** Timed runs per worker count (default 5), after the warm-up runs. */
  rounds?: number;
  /**
   * Untimed runs per worker count first (default 3). A pool's first jobs compile the hot code:
   * V8 optimizes on helper threads, which with every core busy take time from the workers (2
   * workers, 1 GiB: 100-240 ms of helper-thread CPU per job in a pool's first 4 jobs, 20-40 ms
   * after).
   */
  warmup?: number;
  shards?: number;
  rangeSize?: number;
  /** Folder for the runs' output (default: a temp folder, removed after). */
  tmpDir?: string;
  onRun?: (workers: number, ms: number) => void;
}

/** One row of the bench table. */
export interface BenchRow {
  workers: number;
  /** Median seconds per job. */
  seconds: number;
  /** Input MB (10^6 bytes) per second at the median. */
  mbPerSec: number;
  /** Median time of the row with the fewest workers over this row's. */
  speedup: number;
  /** speedup / (workers / that row's workers). */
  efficiency: number;
  /** Every run, in seconds. */
  runs: number[];
}

/** What {@link benchWorkers} resolves to (and `--json` prints). */
export interface BenchResult {
  command: 'bench';
  input: string[];
  bytes: number;
  cores: number;
  cpu: string;
  rounds: number;
  warmup: number;
  rows: BenchRow[];
}

export { defaultWorkerCounts };

/** Run the worker-count benchmark. */
export async function benchWorkers(o: BenchOptions): Promise<BenchResult> {
  if (typeof o !== 'object' || o === null) throw new SegflowError('ERR_USAGE', 'benchWorkers needs its options ({ input, workers, ... })');
  const files = resolveInputs(o.input);
  const bytes = files.reduce((s, f) => s + fs.statSync(f).size, 0);
  const counts = o.workers ?? defaultWorkerCounts();
  if (!Array.isArray(counts) || counts.length === 0 || counts.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new SegflowError('ERR_USAGE', `--workers must list positive integers, got ${String(counts)}`);
  }
  if (new Set(counts).size !== counts.length) throw new SegflowError('ERR_USAGE', `--workers lists a count twice: ${counts.join(',')}`);
  settleLayout(o);
  const rounds = o.rounds ?? 5;
  const warmup = o.warmup ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(warmup) || warmup < 0) {
    throw new SegflowError('ERR_USAGE', `--rounds must be a positive integer and --warmup a non-negative one, got ${rounds} and ${warmup}`);
  }
  const tmp = o.tmpDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-bench-'));
  const pools = new Map<number, SegflowPool>();
  // the counts take turns, round by round (a tinybench run of one iteration each), so that a slow
  // spell of a shared machine hits every count alike; the first `warmup` rounds warm each pool,
  // untimed. A run's time is the job's, from its start to its committed output
  const samples = new Map<number, number[]>(counts.map((w) => [w, []]));
  try {
    for (const w of counts) pools.set(w, new SegflowPool({ workers: w }));
    for (let round = 0; round < warmup + rounds; round++) {
      const bench = new Bench({ iterations: 1, time: 0, warmup: false });
      for (const w of counts) {
        bench.add(`${w}`, async () => {
          const t0 = performance.now();
          await aggregate({ input: files, out: path.join(tmp, `w${w}`), pool: pools.get(w), force: true, shards: o.shards, rangeSize: o.rangeSize });
          const ms = performance.now() - t0;
          if (round >= warmup) {
            samples.get(w)!.push(ms);
            o.onRun?.(w, ms);
          }
        });
      }
      await bench.run();
      for (const task of bench.tasks) {
        const r = task.result;
        if (r.state === 'errored' && r.error instanceof SegflowError) throw r.error;
        if (r.state !== 'completed') throw new SegflowError('ERR_INTERNAL', `bench with ${task.name} workers: ${r.state === 'errored' ? String(r.error) : r.state}`);
      }
    }
  } finally {
    for (const p of pools.values()) await p.destroy();
    if (!o.tmpDir) fs.rmSync(tmp, { recursive: true, force: true });
  }
  const median = (xs: number[]): number => {
    const v = [...xs].sort((x, y) => x - y);
    const m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  };
  const rows: BenchRow[] = counts.map((w) => {
    const runs = samples.get(w)!.map((x) => x / 1000);
    const seconds = median(runs);
    return { workers: w, seconds, mbPerSec: bytes / 1e6 / seconds, speedup: 1, efficiency: 1, runs };
  });
  // speedup and efficiency against the fewest workers, wherever that count is in the list
  const base = rows.reduce((a, b) => (b.workers < a.workers ? b : a));
  for (const row of rows) {
    row.speedup = base.seconds / row.seconds;
    row.efficiency = row.speedup / (row.workers / base.workers);
  }
  return { command: 'bench', input: files, bytes, cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? 'unknown', rounds, warmup, rows };
}

/** The bench table for people. */
export function benchTable(r: BenchResult): string {
  // (the fastest and slowest run: on a shared machine a count's runs may fall in two groups, and
  // the median then says which group most of them fell in)
  const head = ['workers', 'median s', 'runs s', 'MB/s', 'speedup', 'efficiency'];
  const rows = r.rows.map((x) => [
    String(x.workers),
    x.seconds.toFixed(3),
    `${Math.min(...x.runs).toFixed(2)}-${Math.max(...x.runs).toFixed(2)}`,
    x.mbPerSec.toFixed(1),
    `${x.speedup.toFixed(2)}x`,
    `${(100 * x.efficiency).toFixed(0)}%`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (c: string[]): string => c.map((v, i) => v.padStart(widths[i])).join('  ');
  return [
    `${(r.bytes / 1e6).toFixed(1)} MB, ${r.rounds} runs per worker count (median) after ${r.warmup} warm-up runs, ${r.cores} cores (${r.cpu})`,
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}
