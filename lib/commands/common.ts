/** Flags and job plumbing shared by the commands. */
import type { Argv } from 'yargs';
import { parseBytes } from '../util/units.js';
import { createReporter, type Reporter } from '../progress.js';
import type { AggregateOptions } from '../types.js';

/** Options shared by aggregate and segment. */
export function inputOptions(y: Argv): Argv {
  return y
    .positional('input', { describe: 'input files, folders or globs (CSV, TSV, whitespace text, JSON Lines; .gz too)', type: 'string', array: true })
    .option('out', { describe: 'output folder', type: 'string', demandOption: true })
    .option('workers', { describe: 'worker threads (default: the cores)', type: 'number' })
    .option('format', { describe: 'input format (default: from the file name)', choices: ['csv', 'jsonl'] as const })
    .option('delimiter', { describe: 'field delimiter: one byte, "tab" or "whitespace" (default: detected from the header)', type: 'string' })
    .option('header', { describe: 'the files have a header row (--no-header: columns are 1, 2, ...)', type: 'boolean', default: true })
    .option('user-col', { describe: 'user id column, by name or 1-based number (default: user_id, customer_id, ...)', type: 'string' })
    .option('amount-col', { describe: 'amount column (default: purchase, amount, price, unitprice, sales, total, ...)', type: 'string' })
    .option('quantity-col', { describe: 'quantity column: amount = price x quantity ("none" to disable; default: Quantity when the amount is a unit price)', type: 'string' })
    .option('date-col', { describe: 'date column: adds first_date and last_date', type: 'string' })
    .option('shards', { describe: 'output shards (hash partitions)', type: 'number', default: 8 })
    .option('range-size', { describe: 'bytes per scan task (default: 4+ ranges per worker, 1-64 MiB)', type: 'string' })
    .option('memory', { describe: 'budget for partial tables before they spill to disk (default: 1/4 of RAM)', type: 'string' })
    .option('dense-keys', { describe: 'integer user ids in a narrow range go into direct-indexed arrays (--no-dense-keys: hash tables only; default: for inputs of 64 MiB+)', type: 'boolean' })
    .option('max-bad-ratio', { describe: 'fail once rejected rows / rows read passes this (0..1)', type: 'number', default: 1 })
    .option('force', { describe: 'replace an existing result in --out', type: 'boolean', default: false })
    .option('json', { describe: 'print the summary as JSON on stdout', type: 'boolean', default: false })
    .option('quiet', { alias: 'q', describe: 'no progress or messages on stderr', type: 'boolean', default: false })
    .option('cluster', { describe: 'run on `segflow worker` processes: redis://HOST:PORT of their queue', type: 'string', implies: 'store' })
    .option('store', { describe: 'with --cluster: s3://bucket/prefix or file:///path for partials and the commit manifest', type: 'string', implies: 'cluster' })
    .option('run-id', { describe: 'with --cluster: name the run; the same id again resumes it', type: 'string', implies: 'cluster' });
}

/** The library options from parsed flags. */
export function aggregateOptions(a: Record<string, unknown>): AggregateOptions {
  return {
    input: (a.input as string[]) ?? [],
    out: a.out as string,
    workers: a.workers as number | undefined,
    format: a.format as 'csv' | 'jsonl' | undefined,
    delimiter: a.delimiter as string | undefined,
    header: a.header as boolean,
    userCol: a.userCol as string | undefined,
    amountCol: a.amountCol as string | undefined,
    quantityCol: a.quantityCol as string | undefined,
    dateCol: a.dateCol as string | undefined,
    shards: a.shards as number,
    rangeSize: parseBytes(a.rangeSize as string | undefined, '--range-size'),
    memory: parseBytes(a.memory as string | undefined, '--memory'),
    maxBadRatio: a.maxBadRatio as number,
    denseKeys: a.denseKeys as boolean | undefined,
    force: a.force as boolean,
    cluster: a.cluster as string | undefined,
    store: a.store as string | undefined,
    runId: a.runId as string | undefined,
  };
}

/** Run a job with SIGINT wired to an AbortSignal, a progress reporter, and --json output. */
export async function runJob<T>(
  a: Record<string, unknown>,
  job: (signal: AbortSignal, reporter: Reporter) => Promise<T>,
  human: (result: T, reporter: Reporter) => void,
): Promise<void> {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const reporter = createReporter({ quiet: !!a.quiet });
  try {
    const result = await job(controller.signal, reporter);
    reporter.done();
    if (a.json) process.stdout.write(JSON.stringify(result) + '\n');
    else human(result, reporter);
  } catch (err) {
    reporter.done({ failed: true }); // the last line says "stopped", not "done"
    throw err;
  } finally {
    reporter.done();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

