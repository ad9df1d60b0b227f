/** The `segflow kmeans` command: cluster any CSV with numeric columns. */
import type { Argv } from 'yargs';
import { runJob } from './common.js';
import { kmeansFitOptions } from './segment.js';

/** Add the command to the CLI. */
export function register(cli: Argv): Argv {
  return cli.command(
    'kmeans <input..>',
    'k-means on numeric columns of CSV files (e.g. the users-*.csv shards)',
    (y) =>
      kmeansFitOptions(y, 'zscore')
        .positional('input', { describe: 'CSV files, folders or globs', type: 'string', array: true })
        .option('features', { describe: 'numeric columns to cluster on, comma-separated', type: 'string', demandOption: true })
        .option('id-col', { describe: 'id column for assignments.csv (default: the first column)', type: 'string' })
        .option('k-range', { describe: 'also fit each k of a range, e.g. 2..8, for an elbow and silhouette chart', type: 'string' })
        .option('delimiter', { describe: 'field delimiter (default: detected)', type: 'string' })
        .option('workers', { describe: 'worker threads (default: the cores)', type: 'number' })
        .option('out', { describe: 'write assignments.csv and model.json here', type: 'string' })
        .option('force', { describe: 'replace an existing result in --out', type: 'boolean', default: false })
        .option('json', { describe: 'print the result as JSON on stdout', type: 'boolean', default: false })
        .option('quiet', { alias: 'q', describe: 'no progress on stderr', type: 'boolean', default: false }),
    async (a) => {
      await runJob(
        a,
        async (signal, reporter) =>
          (await import('../kmeans-job.js')).kmeans({
            input: a.input as string[],
            features: a.features as string,
            k: a.k as number,
            seed: a.seed as number,
            nInit: a.nInit as number,
            maxIter: a.maxIter as number,
            tol: a.tol as number,
            scale: a.scale as 'zscore',
            idCol: a.idCol as string | undefined,
            kRange: a.kRange as string | undefined,
            delimiter: a.delimiter as string | undefined,
            workers: a.workers as number | undefined,
            out: a.out as string | undefined,
            force: a.force as boolean,
            signal,
            onProgress: reporter.progress,
          }),
        (r) => {
          const lines = [`k = ${r.k} on ${r.n} points (${r.features.join(', ')}): inertia ${r.inertia.toPrecision(8)} after ${r.iterations} iterations`];
          r.centroidsOriginal.forEach((c, j) => lines.push(`  cluster ${j}: ${r.sizes[j]} points, centroid ${c.map((v) => v.toPrecision(6)).join(', ')}`));
          for (const e of r.kRange ?? []) lines.push(`  k=${e.k}: inertia ${e.inertia.toPrecision(6)}, silhouette ${e.silhouette === null ? '-' : e.silhouette.toFixed(4)}`);
          if (r.suggestedK) lines.push(`  suggested k: silhouette ${r.suggestedK.silhouette ?? '-'}, elbow ${r.suggestedK.elbow ?? '-'}`);
          process.stdout.write(lines.join('\n') + '\n');
        },
      );
    },
  );
}
