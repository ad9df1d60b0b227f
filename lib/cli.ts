#!/usr/bin/env node
/**
 * The `segflow` command line. Each command maps its flags (camelCased) onto the library function
 * of the same name. `--json` prints one JSON object on stdout and nothing else there; progress and
 * logs go to stderr. Exit codes: 0 done, 1 the job failed, 2 bad usage or bad input, 130 SIGINT.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SegflowError } from './errors.js';
import { aggregate } from './aggregate.js';
import { generate } from './generate.js';
import { parseBytes } from './util/units.js';
import { createReporter, type Reporter } from './progress.js';
import type { AggregateOptions } from './types.js';
import { VERSION } from './version.js';
import { registerExtraCommands } from './cli-commands.js';

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
    .option('max-bad-ratio', { describe: 'fail once rejected rows / rows read passes this (0..1)', type: 'number', default: 1 })
    .option('force', { describe: 'replace an existing result in --out', type: 'boolean', default: false })
    .option('json', { describe: 'print the summary as JSON on stdout', type: 'boolean', default: false })
    .option('quiet', { alias: 'q', describe: 'no progress or messages on stderr', type: 'boolean', default: false });
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
    force: a.force as boolean,
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
  } finally {
    reporter.done();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}

function fail(err: unknown): never {
  if (err instanceof SegflowError) {
    process.stderr.write(`segflow: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const e = err as Error;
  process.stderr.write(`segflow: ${e?.message ?? String(err)}\n`);
  if (process.env.SEGFLOW_DEBUG) process.stderr.write(`${e?.stack}\n`);
  process.exit(e?.message?.startsWith('--') ? 2 : 1);
}

async function main(): Promise<void> {
  let cli = yargs(hideBin(process.argv))
    .scriptName('segflow')
    .usage('$0 <command> [options]\n\nCustomer segments from raw sales records, on one machine.')
    .command(
      'aggregate <input..>',
      'per-user purchases and exact totals (the pre-processing stage)',
      (y) => inputOptions(y),
      async (a) => {
        await runJob(
          a,
          (signal, reporter) => aggregate({ ...aggregateOptions(a), signal, onProgress: reporter.progress }),
          (s, reporter) => {
            reporter.log(`${s.rows.counted} rows counted, ${s.rows.rejected} rejected, ${s.users} users, total ${s.total}`);
            reporter.log(`wrote ${s.files.length} files to ${s.out} in ${(s.timings.total / 1000).toFixed(2)} s (${s.mbPerSec} MB/s)`);
          },
        );
      },
    )
    .command(
      'generate',
      'synthetic sales records in the Black Friday schema (seeded)',
      (y) =>
        y
          .option('out', { describe: 'file to write', type: 'string', demandOption: true })
          .option('size', { describe: 'approximate size, e.g. 1GiB', type: 'string' })
          .option('rows', { describe: 'exact number of rows', type: 'number' })
          .option('users', { describe: 'distinct users (default: rows / 12)', type: 'number' })
          .option('seed', { describe: 'random seed', type: 'number', default: 1 })
          .option('decimals', { describe: 'decimal places of Purchase', type: 'number', default: 0 })
          .option('crlf', { describe: 'CRLF line endings', type: 'boolean', default: false })
          .option('json', { describe: 'print what was written as JSON', type: 'boolean', default: false })
          .check((a) => {
            if (a.size === undefined && a.rows === undefined) throw new Error('give --size or --rows');
            return true;
          }),
      (a) => {
        const s = generate({
          out: a.out,
          size: parseBytes(a.size, '--size'),
          rows: a.rows,
          users: a.users,
          seed: a.seed,
          decimals: a.decimals,
          crlf: a.crlf,
        });
        if (a.json) process.stdout.write(JSON.stringify(s) + '\n');
        else process.stderr.write(`wrote ${s.rows} rows (${s.bytes} bytes, ${s.users} users) to ${s.out} in ${(s.ms / 1000).toFixed(2)} s\n`);
      },
    );
  cli = registerExtraCommands(cli);
  await cli
    .demandCommand(1, 'name a command')
    .strict()
    .version(VERSION)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) fail(err);
      process.stderr.write(`segflow: ${msg}\nRun "segflow --help" for usage.\n`);
      process.exit(2);
    })
    .parseAsync();
}

main().catch(fail);
