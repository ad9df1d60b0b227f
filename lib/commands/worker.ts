/** The `segflow worker` command: serve scan and merge tasks of cluster runs (lib/cluster/worker.ts). */
import type { Argv } from 'yargs';
import { parseBytes } from '../util/units.js';

/** Add the command to the CLI. */
export function register(cli: Argv): Argv {
  return cli.command(
    'worker',
    'serve scan and merge tasks of cluster runs (aggregate/segment --cluster) from a BullMQ queue on Redis',
    (y) =>
      y
        .option('redis', { describe: 'the queue: redis://HOST:PORT (the URL the drivers give as --cluster)', type: 'string', demandOption: true })
        .option('store', { describe: 'where this machine reaches the runs\' store, s3://bucket/prefix or file:///path (default: the URL each run gives)', type: 'string' })
        .option('workers', { describe: 'worker threads (default: the cores)', type: 'number' })
        .option('concurrency', { describe: 'tasks held at once (default: 2 per thread, so transfers overlap work)', type: 'number' })
        .option('memory', { describe: 'memory budget, divided as a local run divides it (default: 1/4 of RAM)', type: 'string' })
        .option('queue', { describe: 'queue name', type: 'string', default: 'segflow' })
        .option('lock-ms', { describe: 'lock duration: a frozen or cut-off worker loses its task after this', type: 'number', default: 30_000 })
        .option('stalled-interval-ms', { describe: 'how often lost tasks are looked for (default: --lock-ms)', type: 'number' })
        .option('tmp-dir', { describe: 'folder for byte ranges and shards in transit (default: the OS temp folder)', type: 'string' })
        .option('name', { describe: 'name in logs (default: HOST:PID)', type: 'string' })
        .option('verbose', { alias: 'v', describe: 'log every task on stderr', type: 'boolean', default: false })
        // failover tests: hold each task before completing it, so it can lose its lock meanwhile
        .option('task-delay-ms', { type: 'number', hidden: true }),
    async (a) => {
      const { startWorker } = await import('../cluster/worker.js');
      const handle = await startWorker({
        redis: a.redis as string,
        store: a.store as string | undefined,
        workers: a.workers as number | undefined,
        concurrency: a.concurrency as number | undefined,
        memory: parseBytes(a.memory as string | undefined, '--memory'),
        queue: a.queue as string,
        lockMs: a.lockMs as number,
        stalledIntervalMs: a.stalledIntervalMs as number | undefined,
        tmpDir: a.tmpDir as string | undefined,
        name: a.name as string | undefined,
        verbose: a.verbose as boolean,
        taskDelayMs: a.taskDelayMs as number | undefined,
      });
      // SIGINT/SIGTERM: finish the tasks in hand, then exit; a second signal exits at once (the
      // tasks' locks expire and other workers take them)
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (sig: NodeJS.Signals): void => {
          if (stopping) {
            process.stderr.write(`segflow worker ${handle.id}: ${sig} again, exiting now\n`);
            process.exit(130);
          }
          stopping = true;
          process.stderr.write(`segflow worker ${handle.id}: ${sig}, finishing the tasks in hand (again to exit now)\n`);
          void handle.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    },
  );
}
