/** The `segflow segment` command: aggregate, cluster, report. */
import type { Argv } from 'yargs';
import { aggregateOptions, inputOptions, runJob } from './common.js';
import type { AggregateSummary } from '../types.js';

/** Options shared with `kmeans`. */
export function kmeansFitOptions(y: Argv, defaultScale: string): Argv {
  return y
    .option('k', { describe: 'clusters (segments)', type: 'number', default: 3 })
    .option('seed', { describe: 'seed of the k-means++ draws', type: 'number', default: 42 })
    .option('n-init', { describe: 'restarts; the lowest inertia wins', type: 'number', default: 1 })
    .option('max-iter', { describe: 'Lloyd iterations per restart', type: 'number', default: 300 })
    .option('tol', { describe: "convergence tolerance (scikit-learn's: relative to the mean feature variance)", type: 'number', default: 1e-4 })
    .option('scale', { describe: 'feature scaling', choices: ['log-zscore', 'zscore', 'none'], default: defaultScale });
}

/** A table of segments for people. */
export function segmentTable(s: AggregateSummary): string {
  const rows = (s.segments ?? []).map((g) => [
    g.name,
    String(g.users),
    `${(100 * g.shareOfUsers).toFixed(1)}%`,
    g.revenue,
    `${(100 * g.shareOfRevenue).toFixed(1)}%`,
    g.centroid.purchases.toFixed(1),
    g.centroid.total.toFixed(2),
  ]);
  const head = ['segment', 'users', 'users %', 'revenue', 'revenue %', 'purchases (centroid)', 'total (centroid)'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Add the command to the CLI. */
export function register(cli: Argv): Argv {
  return cli.command(
    'segment <input..>',
    'the whole job: aggregate, k-means on purchases and total, segments, model and report',
    (y) => kmeansFitOptions(inputOptions(y), 'log-zscore').option('report', { describe: 'write report.html', type: 'boolean', default: true }),
    async (a) => {
      await runJob(
        a,
        // (the k-means and report modules load when the command runs)
        async (signal, reporter) =>
          (await import('../segment.js')).segment({
            ...aggregateOptions(a),
            k: a.k as number,
            seed: a.seed as number,
            nInit: a.nInit as number,
            maxIter: a.maxIter as number,
            tol: a.tol as number,
            scale: a.scale as 'log-zscore',
            noReport: a.report === false,
            signal,
            onProgress: reporter.progress,
          }),
        (s, reporter) => {
          reporter.log(`${s.rows.counted} rows counted, ${s.rows.rejected} rejected, ${s.users} users, total ${s.total}`);
          process.stdout.write(segmentTable(s) + '\n');
          reporter.log(`wrote ${s.files.length} files to ${s.out} in ${(s.timings.total / 1000).toFixed(2)} s`);
        },
      );
    },
  );
}
