/**
 * What the queue and the store cost: the same aggregate job on one machine, local (one process,
 * T x W threads) and on a cluster of W `segflow worker` processes of T threads each (Redis and the
 * store on the same machine, loopback), with the store a folder (file://) and S3 (s3rver, an S3
 * stand-in in this process; input on it too). Each round is a tinybench task of one iteration; the
 * figure is the median over rounds, whole job (plan to committed output), input MB/s.
 *
 *   node dist/bench/cluster.bench.js [--rows 1000000] [--workers 3] [--threads 1] [--rounds 3]
 *                                    [--range-size BYTES] [--no-s3] [--json]
 *
 * Needs redis-server (Debian: apt-get install redis-server). The input is generated once under
 * bench/data/.
 */
import { Bench } from 'tinybench';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregate } from '../lib/aggregate.js';
import { generate } from '../lib/generate.js';
import { aggregateOnCluster } from '../lib/cluster/driver.js';
import { openStore } from '../lib/cluster/store.js';
import { parseBytes } from '../lib/util/units.js';
import { BUCKET, ClusterEnv, hasRedis } from '../test/helpers/cluster-env.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const rows = Number(flag('rows', '1000000'));
const workers = Number(flag('workers', '3'));
const threads = Number(flag('threads', '1'));
const rounds = Number(flag('rounds', '3'));
const rangeSize = args.includes('--range-size') ? parseBytes(flag('range-size', ''), '--range-size') : undefined;
const json = args.includes('--json');
const withS3 = !args.includes('--no-s3');
const log = (s: string): void => void process.stderr.write(s + '\n');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  if (!hasRedis()) {
    log('cluster bench: redis-server is not installed (Debian: apt-get install redis-server)');
    process.exitCode = 2;
    return;
  }
  const input = path.join(root, 'bench', 'data', `cluster-${rows}.csv`);
  if (!fs.existsSync(input)) {
    fs.mkdirSync(path.dirname(input), { recursive: true });
    log(`generating ${input} ...`);
    generate({ out: input, rows, seed: 1 });
  }
  const bytes = fs.statSync(input).size;
  const env = new ClusterEnv('cluster-bench');
  try {
    await env.startRedis();
    if (withS3) {
      await env.startS3();
      await openStore(`s3://${BUCKET}`).put('bench/input.csv', fs.readFileSync(input));
    }
    await Promise.all(Array.from({ length: workers }, (_, i) => env.worker(`bench-w${i}`, [], env.redisUrl, { threads, verbose: false })));
    const out = path.join(env.dir, 'out');
    const common = { out, force: true, shards: 8, rangeSize };
    let n = 0;
    const bench = new Bench({ time: 0, iterations: 1, warmupIterations: 0 });
    const timings: Record<string, { ms: number[]; tasks?: number }> = {};
    const add = (name: string, fn: () => Promise<object>): void => {
      bench.add(name, async () => {
        const t0 = performance.now();
        const s = (await fn()) as { cluster?: { tasks: { scan: number; merge: number } } };
        (timings[name] ??= { ms: [] }).ms.push(performance.now() - t0);
        if (s.cluster) timings[name].tasks = s.cluster.tasks.scan + s.cluster.tasks.merge;
      });
    };
    add(`local, ${workers * threads} threads`, () => aggregate({ ...common, input, workers: workers * threads }));
    add(`cluster, ${workers} workers x ${threads}, file:// store`, () =>
      aggregateOnCluster({ ...common, input, cluster: env.redisUrl, store: `file://${path.join(env.dir, 'store')}`, runId: `bench-file-${n++}` }),
    );
    if (withS3) {
      add(`cluster, ${workers} workers x ${threads}, S3 (s3rver) input and store`, () =>
        aggregateOnCluster({ ...common, input: `s3://${BUCKET}/bench/input.csv`, cluster: env.redisUrl, store: `s3://${BUCKET}/runs`, runId: `bench-s3-${n++}` }),
      );
    }
    // interleaved rounds: a machine that slows down affects every variant alike
    for (let r = 0; r < rounds; r++) {
      await bench.run();
      for (const task of bench.tasks) if (task.result.state === 'errored') throw task.result.error;
      log(`round ${r + 1}/${rounds} done`);
    }
    const local = median(Object.values(timings)[0].ms);
    const rowsOut = Object.entries(timings).map(([task, t]) => {
      const ms = median(t.ms);
      return { task, 'median s': +(ms / 1000).toFixed(2), 'MB/s': +(bytes / 1e6 / (ms / 1000)).toFixed(1), 'vs local': +(ms / local).toFixed(2), tasks: t.tasks ?? '' };
    });
    const result = {
      input: { file: path.relative(root, input), bytes, rows },
      workers,
      threads,
      rounds,
      rows: rowsOut,
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', node: process.version },
    };
    if (json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      console.table(rowsOut);
      console.log(`${(bytes / 1e6).toFixed(1)} MB, ${rows} rows; ${result.machine.cpus} x ${result.machine.model}, Node ${result.machine.node}`);
    }
  } finally {
    await env.close();
  }
}

await main();
