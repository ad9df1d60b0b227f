/**
 * k-means speed: one Lloyd iteration over 2,000,000 points (d = 2, k = 3, log1p + z-score of a
 * skewed purchases/total distribution) inline, with 1 and 2 workers, and the whole fit including
 * k-means++; scikit-learn on the same points when python3 with scikit-learn is installed.
 *
 *   node dist/bench/kmeans.bench.js [--n 2000000] [--rounds 5] [--time 400] [--json] [--no-sklearn]
 *
 * Each round runs every task once more (tinybench, `time` ms per task for iterations), so that
 * tasks interleave on a noisy machine; the figure is the median over rounds of each round's median.
 */
import { Bench } from 'tinybench';
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { SegflowPool } from '../lib/pool.js';
import { fitKMeans, kmeansPlusPlus, KMeansRunner, SeededRandom, DEFAULT_BLOCK_SIZE } from '../lib/kmeans.js';
import { applyScaler, fitScaler } from '../lib/scale.js';

interface Args {
  n: number;
  rounds: number;
  time: number;
  json: boolean;
  sklearn: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { n: 2_000_000, rounds: 5, time: 400, json: false, sklearn: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') args.json = true;
    else if (a === '--no-sklearn') args.sklearn = false;
    else if (a === '--n' || a === '--rounds' || a === '--time') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      args[a.slice(2) as 'n' | 'rounds' | 'time'] = v;
    } else throw new Error(`unknown argument ${a}; use --n N --rounds R --time MS --json --no-sklearn`);
  }
  return args;
}

/**
 * Seeded users with skewed spend: 60% light (about 15 purchases), 30% regular (60), 10% heavy
 * (250), lognormal within a tier; total = purchases x a lognormal price around 9,000. Returns the
 * log1p + z-score features in shared memory.
 */
function makePoints(n: number, seed: number): Float64Array {
  const rng = new SeededRandom(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rng.nextDouble())) * Math.cos(2 * Math.PI * rng.nextDouble());
  const raw = new Float64Array(n * 2);
  for (let i = 0; i < n; i++) {
    const tier = rng.nextDouble();
    const [median, sigma] = tier < 0.6 ? [15, 0.6] : tier < 0.9 ? [60, 0.5] : [250, 0.5];
    const purchases = Math.max(1, Math.round(median * Math.exp(sigma * normal())));
    raw[2 * i] = purchases;
    raw[2 * i + 1] = Math.round(purchases * 9000 * Math.exp(0.35 * normal()));
  }
  const scaler = fitScaler(raw, n, 2, 'log-zscore');
  return applyScaler(scaler, raw, new Float64Array(new SharedArrayBuffer(n * 16)));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface SklearnResult {
  sklearn: string;
  threads: Record<'1' | '2', { iterationMs: number; fitMs: number; fitIterations: number }>;
}

/** scikit-learn on the same points, or why not. */
function runSklearn(points: Float64Array, n: number, rounds: number): SklearnResult | { skipped: string } {
  const script = new URL('../../bench/kmeans_sklearn.py', import.meta.url).pathname;
  const pythons = [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  const python = pythons.find((p) => spawnSync(p, ['-c', 'import sklearn, threadpoolctl'], { stdio: 'ignore' }).status === 0);
  if (!python) return { skipped: 'no python3 with scikit-learn (apt-get install python3-sklearn)' };
  const file = path.join(os.tmpdir(), `segflow-kmeans-bench-${process.pid}.f64`);
  fs.writeFileSync(file, new Uint8Array(points.buffer, points.byteOffset, points.byteLength));
  try {
    const r = spawnSync(python, [script, file, String(n), '2', '3', String(rounds)], { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) return { skipped: `scikit-learn run failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
    return JSON.parse(r.stdout) as SklearnResult;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string): void => {
    if (!args.json) process.stderr.write(s + '\n');
  };
  const { n } = args;
  const d = 2;
  const k = 3;
  log(`generating ${n.toLocaleString('en')} users (log1p + z-score of purchases and total)...`);
  const points = makePoints(n, 2024);
  const pool1 = new SegflowPool({ workers: 1 });
  const pool2 = new SegflowPool({ workers: 2 });
  const runners = {
    inline: new KMeansRunner(points, n, d, k),
    '1 worker': new KMeansRunner(points, n, d, k, { pool: pool1 }),
    '2 workers': new KMeansRunner(points, n, d, k, { pool: pool2 }),
  };
  const init = await kmeansPlusPlus(runners.inline, new SeededRandom([42, 0]));
  const next = new Float64Array(k * d);
  const fits: Record<string, { iterations: number; inertia: number }> = {};
  const fitOf = (name: string, pool?: SegflowPool) => async (): Promise<void> => {
    const fit = await fitKMeans(points, n, d, { k, seed: 42, pool });
    fits[name] = { iterations: fit.iterations, inertia: fit.inertia };
  };

  const iterationRounds: Record<string, number[]> = {};
  const fitRounds: Record<string, number[]> = {};
  for (let round = 0; round < args.rounds; round++) {
    const iterations = new Bench({ time: args.time, iterations: 20, warmupIterations: 5 });
    for (const [name, runner] of Object.entries(runners)) {
      iterations.add(`Lloyd iteration, ${name}`, async () => {
        await runner.lloydStep(init, next);
      });
    }
    const whole = new Bench({ time: 0, iterations: 3, warmupIterations: 1 });
    whole.add('fit incl. k-means++, inline', fitOf('inline'));
    whole.add('fit incl. k-means++, 1 worker', fitOf('1 worker', pool1));
    whole.add('fit incl. k-means++, 2 workers', fitOf('2 workers', pool2));
    for (const [bench, into] of [[iterations, iterationRounds], [whole, fitRounds]] as const) {
      await bench.run();
      for (const task of bench.tasks) {
        const r = task.result;
        if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state === 'errored' ? r.error.message : r.state}`);
        (into[task.name] ??= []).push(r.latency.p50);
      }
    }
    log(`round ${round + 1}/${args.rounds}: ` + Object.entries({ ...iterationRounds, ...fitRounds }).map(([name, xs]) => `${name.replace('fit incl. k-means++', 'fit')} ${xs[xs.length - 1].toFixed(1)}`).join(', '));
  }
  await pool1.destroy();
  await pool2.destroy();

  let sklearn: SklearnResult | { skipped: string } = { skipped: '--no-sklearn' };
  if (args.sklearn) {
    log('scikit-learn on the same points...');
    sklearn = runSklearn(points, n, args.rounds);
    if ('skipped' in sklearn) log(`scikit-learn skipped: ${sklearn.skipped}`);
  }

  const rows: { task: string; medianMs: number; rounds: number; iterations?: number }[] = [];
  for (const [name, xs] of Object.entries(iterationRounds)) rows.push({ task: name, medianMs: median(xs), rounds: xs.length });
  for (const [name, xs] of Object.entries(fitRounds)) rows.push({ task: name, medianMs: median(xs), rounds: xs.length, iterations: fits[name.replace('fit incl. k-means++, ', '')]?.iterations });
  if (!('skipped' in sklearn)) {
    for (const t of ['1', '2'] as const) {
      const s = sklearn.threads[t];
      rows.push({ task: `scikit-learn ${sklearn.sklearn} Lloyd iteration, ${t} thread${t === '1' ? '' : 's'}`, medianMs: s.iterationMs, rounds: args.rounds * 4 });
      rows.push({ task: `scikit-learn ${sklearn.sklearn} fit, ${t} thread${t === '1' ? '' : 's'}`, medianMs: s.fitMs, rounds: args.rounds, iterations: s.fitIterations });
    }
  }
  const get = (task: string): number | undefined => rows.find((r) => r.task === task)?.medianMs;
  const ratio = (a?: number, b?: number): number | null => (a !== undefined && b !== undefined ? Math.round((a / b) * 100) / 100 : null);
  const sk2 = 'skipped' in sklearn ? undefined : sklearn.threads['2'];
  const ratios = {
    iterationSpeedup1to2Workers: ratio(get('Lloyd iteration, 1 worker'), get('Lloyd iteration, 2 workers')),
    fitSpeedup1to2Workers: ratio(get('fit incl. k-means++, 1 worker'), get('fit incl. k-means++, 2 workers')),
    iterationSklearn2ThreadsOverSegflow2Workers: ratio(sk2?.iterationMs, get('Lloyd iteration, 2 workers')),
    fitSklearn2ThreadsOverSegflow2Workers: ratio(sk2?.fitMs, get('fit incl. k-means++, 2 workers')),
  };
  const result = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.arch()}` },
    n, d, k, blockSize: DEFAULT_BLOCK_SIZE,
    data: 'seeded skewed users: purchases in 3 lognormal tiers, total = purchases x lognormal price; log1p + z-score',
    memory: {
      pointsBytes: n * d * 8,
      // two label arrays (the previous pass is read, the next written)
      labelsBytes: 2 * n,
      partialsBytes: Math.ceil(n / DEFAULT_BLOCK_SIZE) * (2 + k + k * d) * 8,
    },
    rows: rows.map((r) => ({ ...r, medianMs: Math.round(r.medianMs * 100) / 100 })),
    fits,
    ratios,
    sklearn: 'skipped' in sklearn ? sklearn : { version: sklearn.sklearn },
  };
  if (args.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  console.table(result.rows.map((r) => ({ task: r.task, 'median ms': r.medianMs, rounds: r.rounds, 'fit iterations': r.iterations ?? '' })));
  console.log(`speedup 1 -> 2 workers: iteration ${ratios.iterationSpeedup1to2Workers}x, fit ${ratios.fitSpeedup1to2Workers}x`);
  if (sk2) console.log(`scikit-learn (2 threads) / segflow (2 workers): iteration ${ratios.iterationSklearn2ThreadsOverSegflow2Workers}x, fit ${ratios.fitSklearn2ThreadsOverSegflow2Workers}x`);
  console.log(`memory: points ${(result.memory.pointsBytes / 2 ** 20).toFixed(1)} MiB, labels 2 x ${(n / 2 ** 20).toFixed(1)} MiB, block partials ${(result.memory.partialsBytes / 1024).toFixed(1)} KiB (k-means++ keeps no per-point state)`);
  console.log(`${result.machine.cpus} x ${result.machine.model}, Node ${result.machine.node}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
