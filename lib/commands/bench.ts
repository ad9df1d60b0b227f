/** The `segflow bench` command: throughput for each worker count. */
import type { Argv } from 'yargs';
import { defaultWorkerCounts } from '../pool.js';
import { parseBytes } from '../util/units.js';

/** Add the command to the CLI. */
export function register(cli: Argv): Argv {
  return cli.command(
    'bench <input..>',
    'throughput of the whole aggregate job for each worker count (tinybench): MB/s, speedup, efficiency',
    (y) =>
      y
        .positional('input', { describe: 'input files, folders or globs', type: 'string', array: true })
        .option('workers', { describe: 'worker counts, comma-separated', type: 'string', default: defaultWorkerCounts().join(',') })
        .option('rounds', { describe: 'timed runs per worker count (after the warm-up runs)', type: 'number', default: 5 })
        .option('warmup', { describe: 'untimed runs per worker count first (a pool compiles its hot code in its first jobs)', type: 'number', default: 3 })
        .option('shards', { describe: 'output shards', type: 'number', default: 8 })
        .option('range-size', { describe: 'bytes per scan task (default: 4+ ranges per worker, 1-64 MiB)', type: 'string' })
        .option('json', { describe: 'print the result as JSON on stdout', type: 'boolean', default: false })
        .option('quiet', { alias: 'q', describe: 'no per-run lines on stderr', type: 'boolean', default: false }),
    async (a) => {
      const workers = String(a.workers)
        .split(',')
        .map((s) => Number(s.trim()));
      // (the engine loads when the command runs: other commands start without it)
      const { benchTable, benchWorkers } = await import('../bench.js');
      const r = await benchWorkers({
        input: a.input as string[],
        workers,
        rounds: a.rounds,
        warmup: a.warmup,
        shards: a.shards,
        rangeSize: parseBytes(a.rangeSize, '--range-size'),
        onRun: (w, ms) => {
          if (!a.quiet) process.stderr.write(`  ${w} workers: ${(ms / 1000).toFixed(3)} s\n`);
        },
      });
      if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(benchTable(r) + '\n');
    },
  );
}
