/**
 * The `segflow` command line (its entry is cli.ts). Each command maps its flags (camelCased) onto the library function
 * of the same name. `--json` prints one JSON object on stdout and nothing else there; progress and
 * logs go to stderr. Exit codes: 0 done, 1 the job failed, 2 bad usage or bad input, 130 SIGINT.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SegflowError } from './errors.js';
import { dropPrestarted } from './pool.js';
import { aggregate } from './aggregate.js';
import { parseBytes } from './util/units.js';
import { aggregateOptions, inputOptions, runJob } from './commands/common.js';
import { VERSION } from './version.js';
import { registerExtraCommands } from './cli-commands.js';

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

/**
 * yargs renders the whole help text after it starts a command's handler, to have it at hand for a
 * failure message (`cacheHelpMessage`): 35-60 ms on the main thread right when a job dispatches
 * its first tasks, for nothing, since our .fail() prints no help. `--help` renders its own. The
 * hook is internal to yargs (pinned at 18.2.0); when it is missing, yargs keeps its behaviour.
 */
function skipHelpCache(cli: unknown): void {
  type Usage = { cacheHelpMessage?: () => void };
  const internal = (cli as { getInternalMethods?: () => { getUsageInstance?: () => Usage } }).getInternalMethods?.();
  const usage = internal?.getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

export async function main(): Promise<void> {
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
            for (const w of s.warnings) reporter.log(`warning: ${w}`);
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
      async (a) => {
        const { generate } = await import('./generate.js');
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
  skipHelpCache(cli);
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
  // a pool cli.ts started for a job that did not run (--help, a usage error caught by a command)
  await dropPrestarted();
}

export { fail };
