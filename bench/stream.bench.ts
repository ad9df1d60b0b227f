/**
 * Stream speed with a state of 2,000,000 users:
 *  1. sustained throughput: a followed file of `--rows` sales of those users (Black Friday schema,
 *     lib/generate.ts) read from its start, batches of the default size, checkpoints every 10 s,
 *     the changes appended to a file;
 *     records/s from the first batch until every row is in the state (the state load is not timed);
 *  2. latency from append to change event at the default batch (500 ms): the stream is caught up,
 *     one sale of a new user is appended at a random moment, the time until its change event
 *     arrives (a new user always gives one) is taken; `--latency` samples; once on an idle
 *     stream, once while other sales arrive at `--background` records/s.
 * Each throughput round is a tinybench task of one iteration on a fresh state; the figure is the
 * median over rounds.
 *
 *   node dist/bench/stream.bench.js [--users 2000000] [--rows 4000000] [--rounds 3] [--workers 2]
 *                                   [--latency 20] [--batch-ms 500] [--json]
 *
 * The --from folder (users shards, model.json fitted by lib/kmeans-job.ts) and the sales file are
 * generated once under bench/data/.
 */
import { Bench } from 'tinybench';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SegflowPool } from '../lib/pool.js';
import { generate } from '../lib/generate.js';
import { fitSegments } from '../lib/kmeans-job.js';
import { hashBytes, partitionOf } from '../lib/table.js';
import { shardName } from '../lib/aggregate.js';
import { SeededRandom } from '../lib/kmeans.js';
import { stream, type StreamHandle } from '../lib/stream/index.js';

interface Args {
  users: number;
  rows: number;
  rounds: number;
  workers: number;
  latency: number;
  batchMs: number;
  background: number;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { users: 2_000_000, rows: 4_000_000, rounds: 3, workers: 2, latency: 20, batchMs: 500, background: 100_000, json: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--json') a.json = true;
    else if (['--users', '--rows', '--rounds', '--workers', '--latency', '--batch-ms', '--background'].includes(k)) {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0 || (v === 0 && k !== '--background')) throw new Error(`${k} needs a positive integer`);
      const key = k === '--batch-ms' ? 'batchMs' : (k.slice(2) as 'users' | 'rows' | 'rounds' | 'workers' | 'latency' | 'background');
      a[key] = v;
    } else throw new Error(`unknown argument ${k}; use --users N --rows N --rounds R --workers W --latency N --batch-ms MS --background N --json`);
  }
  return a;
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/**
 * A --from folder of `users` users (ids 1000001.. as lib/generate.ts writes them) with skewed
 * purchases and totals, written as the batch job writes its shards, and a model fitted on them.
 */
async function makeFrom(dir: string, users: number, pool: SegflowPool): Promise<void> {
  const P = 8;
  const rng = new SeededRandom([2024, users]);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rng.nextDouble())) * Math.cos(2 * Math.PI * rng.nextDouble());
  const purchases = new Float64Array(users);
  const totals = new Float64Array(users);
  const shards: string[][] = Array.from({ length: P }, () => []);
  const order: number[][] = Array.from({ length: P }, () => []);
  for (let u = 0; u < users; u++) {
    const tier = rng.nextDouble();
    const [med, mean] = tier < 0.6 ? [2, 4000] : tier < 0.9 ? [6, 9000] : [20, 15000];
    const p = Math.max(1, Math.round(med * Math.exp(0.6 * normal())));
    purchases[u] = p;
    totals[u] = Math.round(p * mean * Math.exp(0.3 * normal()));
    const id = String(1000001 + u);
    order[partitionOf(hashBytes(Buffer.from(id), 0, id.length), P)].push(u);
  }
  // ids of equal length: numeric order is byte order, as the shards are sorted
  const fit = await fitSegments(purchases, totals, { pool });
  order.forEach((us, p) => {
    shards[p].push('user_id,purchases,total\n');
    for (const u of us) shards[p].push(`${1000001 + u},${purchases[u]},${totals[u]}\n`);
  });
  fs.mkdirSync(dir, { recursive: true });
  shards.forEach((text, p) => fs.writeFileSync(path.join(dir, shardName('users', p, P)), text.join('')));
  const model = { ...fit.model, columns: { user: 'User_ID', amount: 'Purchase' }, totalScale: 0, shards: P };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(model, null, 2) + '\n');
  const rows = purchases.reduce((s, x) => s + x, 0);
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ command: 'segment', rows: { read: rows, counted: rows, rejected: 0, emptyLines: 0 }, users, scale: 0, shards: P, inputs: [] }) + '\n');
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string): void => {
    if (!args.json) process.stderr.write(s + '\n');
  };
  const data = path.join(root, 'bench', 'data');
  const from = path.join(data, `stream-from-${args.users}`);
  const sales = path.join(data, `stream-sales-${args.users}-${args.rows}.csv`);
  const pool = new SegflowPool({ workers: args.workers });
  if (!fs.existsSync(path.join(from, 'model.json'))) {
    log(`writing a --from folder of ${args.users.toLocaleString('en')} users to ${from} ...`);
    await makeFrom(from, args.users, pool);
  }
  if (!fs.existsSync(sales)) {
    log(`generating ${args.rows.toLocaleString('en')} sales of those users to ${sales} ...`);
    generate({ out: sales, rows: args.rows, users: args.users, seed: 5 });
  }
  const bytes = fs.statSync(sales).size;
  const scratch = fs.mkdtempSync(path.join(data, '.stream-bench-'));
  let handle: StreamHandle | undefined;
  let round = 0;
  const rates: number[] = [];
  const perCpu: number[] = [];
  const loads: number[] = [];
  const follow = path.join(scratch, 'follow.csv');
  try {
    // 1. throughput: one tinybench iteration per round, each on a fresh state
    const bench = new Bench({ time: 0, iterations: args.rounds, warmup: false, throws: true });
    bench.add(
      `catch up ${args.rows.toLocaleString('en')} records, ${args.users.toLocaleString('en')}-user state`,
      async () => {
        const h = handle!;
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        await until(() => h.metrics().records >= args.rows, 600_000, 'the stream to catch up');
        const ms = performance.now() - t0;
        // CPU of every thread of the process (coordinator, workers, GC): less sensitive to a busy machine
        const c = process.cpuUsage(c0);
        const cpuS = (c.user + c.system) / 1e6;
        rates.push(args.rows / (ms / 1000));
        perCpu.push(args.rows / cpuS);
        log(`  round ${round}: ${args.rows.toLocaleString('en')} records in ${(ms / 1000).toFixed(2)} s = ${Math.round(args.rows / (ms / 1000)).toLocaleString('en')} records/s; ${cpuS.toFixed(2)} CPU-s = ${Math.round(args.rows / cpuS).toLocaleString('en')} records per CPU-second (load average ${os.loadavg()[0].toFixed(1)})`);
      },
      {
        beforeEach: async () => {
          round++;
          const state = path.join(scratch, `state-${round}`);
          const t = performance.now();
          // the changes go to a file, as with --changes FILE
          handle = await stream({ from, state, follow: sales, start: 'beginning', pool, batchMs: args.batchMs, changes: path.join(scratch, `changes-${round}.jsonl`) });
          loads.push(performance.now() - t);
        },
        afterEach: async () => {
          await handle!.stop();
          fs.rmSync(path.join(scratch, `state-${round}`), { recursive: true, force: true });
          fs.rmSync(path.join(scratch, `changes-${round}.jsonl`), { force: true });
        },
      },
    );
    log(`throughput: ${args.rounds} rounds, ${args.workers} workers, ${(bytes / 1e6).toFixed(0)} MB followed file`);
    await bench.run();

    // 2. latency: caught up on an empty followed file, one new user's sale at a time; then the same
    //    while other sales arrive at --background records/s (whole lines of the sales file)
    const salesBytes = fs.readFileSync(sales);
    let from0 = salesBytes.indexOf(10) + 1;
    fs.writeFileSync(follow, salesBytes.subarray(0, from0));
    const arrived = new Map<string, number>();
    const h = await stream({ from, state: path.join(scratch, 'state-latency'), follow, pool, batchMs: args.batchMs, onChange: (e) => arrived.set(e.user_id, performance.now()) });
    const rng = new SeededRandom([7, 7]);
    let sample = 0;
    const measure = async (): Promise<number[]> => {
      const latencies: number[] = [];
      for (let i = 0; i < args.latency; i++) {
        await new Promise((r) => setTimeout(r, rng.nextDouble() * args.batchMs));
        const user = `L${sample++}`;
        fs.appendFileSync(follow, `${user},P00000001,M,26-35,1,A,1,0,1,,,${1000 + i}\n`);
        const t = performance.now();
        await until(() => arrived.has(user), 30_000, `the change of ${user}`);
        latencies.push(arrived.get(user)! - t);
      }
      return latencies;
    };
    const idle = await measure();
    let loaded: number[] = [];
    let backgroundRate = 0;
    if (args.background > 0) {
      // every 20 ms, the sales of the last 20 ms at the background rate
      const perTick = Math.max(1, Math.round(args.background / 50));
      const bytesPerRow = salesBytes.length / args.rows;
      const r0 = h.metrics().records;
      const t0 = performance.now();
      const timer = setInterval(() => {
        let end = salesBytes.indexOf(10, Math.min(salesBytes.length - 1, from0 + Math.round(perTick * bytesPerRow)));
        if (end < 0) end = salesBytes.length - 1;
        fs.appendFileSync(follow, salesBytes.subarray(from0, end + 1));
        from0 = end + 1 < salesBytes.length ? end + 1 : salesBytes.indexOf(10) + 1;
      }, 20);
      await new Promise((r) => setTimeout(r, 2000)); // settle
      try {
        loaded = await measure();
      } finally {
        clearInterval(timer);
      }
      backgroundRate = (h.metrics().records - r0) / ((performance.now() - t0) / 1000);
    }
    await h.stop();
    const stats = (xs: number[]) => ({ samples: xs.length, medianMs: Math.round(median(xs)), p90Ms: Math.round(quantile(xs, 0.9)), maxMs: Math.round(Math.max(...xs)) });

    const result = {
      workers: args.workers,
      users: args.users,
      rows: args.rows,
      bytes,
      throughput: { recordsPerSec: Math.round(median(rates)), rounds: rates.map(Math.round), recordsPerCpuSecond: Math.round(median(perCpu)), loadMs: Math.round(median(loads)) },
      loadAverage: os.loadavg()[0],
      latency: { batchMs: args.batchMs, idle: stats(idle), ...(loaded.length ? { underLoad: { recordsPerSec: Math.round(backgroundRate), ...stats(loaded) } } : {}) },
    };
    if (args.json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      console.table([
        { measure: 'sustained records/s (median)', value: result.throughput.recordsPerSec.toLocaleString('en') },
        { measure: 'records per CPU-second, all threads (median)', value: result.throughput.recordsPerCpuSecond.toLocaleString('en') },
        { measure: `append -> change event, idle: median / p90 / max (batch ${args.batchMs} ms)`, value: `${result.latency.idle.medianMs} / ${result.latency.idle.p90Ms} / ${result.latency.idle.maxMs} ms` },
        ...(result.latency.underLoad
          ? [{ measure: `append -> change event at ${result.latency.underLoad.recordsPerSec.toLocaleString('en')} records/s: median / p90 / max`, value: `${result.latency.underLoad.medianMs} / ${result.latency.underLoad.p90Ms} / ${result.latency.underLoad.maxMs} ms` }]
          : []),
        { measure: 'state load (2M users, not timed above)', value: `${result.throughput.loadMs} ms` },
      ]);
    }
  } finally {
    await pool.destroy();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
