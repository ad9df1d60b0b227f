/** The `segflow stream` command (yargs registration): lib/stream/. */
import type { Argv } from 'yargs';
import { SegflowError } from '../errors.js';
import { formatBytes } from '../util/units.js';
import type { StreamMetrics } from '../stream/options.js';

const n = (x: number): string => Math.round(x).toLocaleString('en-US');

/** One metrics line for people. */
export function metricsLine(m: StreamMetrics): string {
  return `stream: ${n(m.recordsPerSec)} records/s · lag ${formatBytes(m.lagBytes)} · ${n(m.users)} users · ${n(m.moves)} moves · ${n(m.rows)} rows, ${n(m.rejected)} rejected · batch ${m.batchMs} ms`;
}

/** Add the command to the CLI. */
export function register(cli: Argv): Argv {
  return cli.command(
    'stream',
    'keep the users and segments of a segment output current from a growing file, a folder or stdin; emit segment changes',
    (y) =>
      y
        .usage(
          '$0 stream --from DIR --state DIR [--follow FILE | --watch DIR | < records]\n$0 stream --state DIR --export OUT\n\n' +
            'Segment changes go to stdout (or --changes FILE) as JSON lines {user_id, from, to, purchases, total, at}; metrics and logs to stderr.',
        )
        .option('from', { describe: 'a finished segment output: its users shards, model.json and summary.json (needed on the first run)', type: 'string' })
        .option('state', { describe: 'state folder: checkpoint, rejects.jsonl, stdin spool (a restart resumes from it)', type: 'string', demandOption: true })
        .option('follow', { describe: 'follow a growing file (like tail -F: survives rotation and truncation)', type: 'string' })
        .option('watch', { describe: 'read each new file dropped into this folder once (place files atomically: write elsewhere, then rename)', type: 'string' })
        .option('export', { describe: 'write the state as an aggregate output (users-*.csv, segments-*.csv, summary.json) into this folder, and exit', type: 'string' })
        .option('changes', { describe: 'append the changes to this file instead of stdout (cut back to the checkpoint on restart: exactly once; a pipe or device is written to, not cut back)', type: 'string' })
        .option('batch-ms', { describe: 'micro-batch interval in ms', type: 'number', default: 500 })
        .option('batch-rows', { describe: 'cut a batch early once about this many rows wait (estimated from bytes per row)', type: 'number' })
        .option('recluster-every', { describe: 're-fit k-means on the whole state: a duration (60s, 5m) or a share of new rows (0.1 or 10%)', type: 'string' })
        .option('checkpoint-ms', { describe: 'checkpoint interval in ms (also on SIGINT/SIGTERM)', type: 'number', default: 10_000 })
        .option('start', { describe: 'where a first run starts in the file or folder: auto (after what --from read), beginning, end', choices: ['auto', 'beginning', 'end'], default: 'auto' })
        .option('once', { describe: 'take in what the source holds now, checkpoint and exit', type: 'boolean', default: false })
        .option('workers', { describe: 'worker threads (default: the cores)', type: 'number' })
        .option('format', { describe: 'input format (default: from the file name; stdin: as --from read)', choices: ['csv', 'jsonl'] as const })
        .option('delimiter', { describe: 'field delimiter: one byte, "tab" or "whitespace" (default: detected from the header)', type: 'string' })
        .option('header', { describe: 'the files have a header row (--no-header: columns are 1, 2, ...)', type: 'boolean' })
        .option('user-col', { describe: 'user id column (default: the one --from used)', type: 'string' })
        .option('amount-col', { describe: 'amount column (default: the one --from used)', type: 'string' })
        .option('quantity-col', { describe: 'quantity column (default: the one --from used)', type: 'string' })
        .option('date-col', { describe: 'date column (default: the one --from used)', type: 'string' })
        .option('shards', { describe: 'with --export: output shards (default: those of --from)', type: 'number' })
        .option('force', { describe: 'with --export: replace an existing result', type: 'boolean', default: false })
        .option('metrics', { describe: 'metrics on stderr', choices: ['text', 'json', 'none'], default: 'text' })
        .option('metrics-ms', { describe: 'metrics interval in ms', type: 'number', default: 1000 })
        .option('json', { describe: 'with --export: print the summary as JSON on stdout', type: 'boolean', default: false })
        .option('quiet', { alias: 'q', describe: 'no metrics or messages on stderr', type: 'boolean', default: false }),
    async (a) => {
      const quiet = a.quiet as boolean;
      const log = (m: string): void => {
        if (!quiet) process.stderr.write(`segflow stream: ${m}\n`);
      };
      if (a.export !== undefined) {
        if (a.follow || a.watch) throw new SegflowError('ERR_USAGE', '--export takes no source: it writes the state of the last checkpoint and exits');
        const { exportState } = await import('../stream/export.js');
        const s = await exportState({ state: a.state as string, out: a.export as string, shards: a.shards as number | undefined, force: a.force as boolean, workers: a.workers as number | undefined });
        if (a.json) process.stdout.write(JSON.stringify(s) + '\n');
        else log(`exported ${s.users} users (${s.rows.counted} rows, ${s.rows.rejected} rejected, total ${s.total}) as of ${s.stream.checkpointAt} to ${s.out}`);
        return;
      }
      const useStdin = !a.follow && !a.watch;
      if (useStdin && process.stdin.isTTY) {
        throw new SegflowError('ERR_USAGE', 'no source: give --follow FILE, --watch DIR, or pipe records into standard input');
      }
      const { stream } = await import('../stream/stream.js');
      const metrics = a.metrics as 'text' | 'json' | 'none';
      let idleTicks = 0;
      const handle = await stream({
        from: a.from as string | undefined,
        state: a.state as string,
        follow: a.follow as string | undefined,
        watch: a.watch as string | undefined,
        input: useStdin ? process.stdin : undefined,
        start: a.start as 'auto' | 'beginning' | 'end',
        // (- or /dev/stdout: the process's stdout stream, which may be a socket that cannot be opened by name)
        changes: a.changes === undefined || a.changes === '-' || a.changes === '/dev/stdout' ? process.stdout : (a.changes as string),
        batchMs: a.batchMs as number,
        batchRows: a.batchRows as number | undefined,
        reclusterEvery: a.reclusterEvery as string | undefined,
        checkpointMs: a.checkpointMs as number,
        metricsMs: quiet || metrics === 'none' ? 0 : (a.metricsMs as number),
        once: a.once as boolean,
        workers: a.workers as number | undefined,
        format: a.format as 'csv' | 'jsonl' | undefined,
        delimiter: a.delimiter as string | undefined,
        header: a.header as boolean | undefined,
        userCol: a.userCol as string | undefined,
        amountCol: a.amountCol as string | undefined,
        quantityCol: a.quantityCol as string | undefined,
        dateCol: a.dateCol as string | undefined,
        onLog: log,
        onMetrics: (m) => {
          if (metrics === 'json') return void process.stderr.write(JSON.stringify(m) + '\n');
          // text: a busy stream reports every interval, an idle one every 60
          const busy = m.recordsPerSec > 0 || m.lagBytes > 0;
          if (!busy && idleTicks++ % 60 !== 0) return;
          if (busy) idleTicks = 0;
          process.stderr.write(metricsLine(m) + '\n');
        },
      });
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals): void => {
        if (++signals > 1) {
          process.stderr.write(`segflow stream: ${sig} again, exiting without a checkpoint\n`);
          process.exit(130);
        }
        log(`${sig}: finishing the batch in progress and writing a checkpoint (again to exit now)`);
        void handle.stop();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const s = await handle.done;
        if (metrics === 'json' && !quiet) process.stderr.write(JSON.stringify({ done: true, ...s }) + '\n');
        log(`stopped: ${n(s.records)} records read, ${n(s.moves)} moves, ${n(s.users)} users, ${s.checkpoints} checkpoints`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        if (useStdin) process.stdin.destroy();
      }
    },
  );
}
