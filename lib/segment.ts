/**
 * The whole job, `segment`: aggregate, then k-means on each user's (purchases, total) — log1p then
 * z-score by default — on the same pool, then the segment files, the model and the report.
 */
import fs from 'node:fs';
import { runAggregate, shardName } from './aggregate.js';
import { fitSegments, type FitOptions, type KMeansModel } from './kmeans-job.js';
import { SegflowError } from './errors.js';
import { abortError } from './pool.js';
import { formatScaled } from './util/exact.js';
import type { AggregateOptions, AggregateSummary, ProgressEvent, SegmentSummary } from './types.js';
import { writeReport } from './report.js';

/** Options of {@link segment}: the aggregate options plus the k-means ones. */
export interface SegmentOptions extends AggregateOptions, Pick<FitOptions, 'k' | 'seed' | 'nInit' | 'maxIter' | 'tol' | 'scale'> {
  /** Skip report.html. */
  noReport?: boolean;
}

/** The model file `segment` writes: the k-means model plus how the input was read. */
export interface SegmentModel extends KMeansModel {
  columns: { user: string; amount: string; quantity?: string; date?: string };
  /** Decimal places of totals. */
  totalScale: number;
  shards: number;
}

/** Users of the shards: the text of each row up to its total, and the features. */
interface ShardUsers {
  /** Per shard, the row prefixes `user_id,purchases,total`. */
  prefixes: string[][];
  purchases: Float64Array;
  totals: Float64Array;
  /** Exact totals as scaled integers. */
  exact: bigint[];
}

/** Read the users shards of a finished aggregate (columns after user_id hold no commas). */
function readUsers(dir: string, shards: number, users: number, trailing: number): ShardUsers {
  const purchases = new Float64Array(users);
  const totals = new Float64Array(users);
  const exact: bigint[] = new Array(users);
  const prefixes: string[][] = [];
  let i = 0;
  for (let p = 0; p < shards; p++) {
    const text = fs.readFileSync(`${dir}/${shardName('users', p, shards)}`, 'utf8');
    const lines = text.split('\n');
    const rows: string[] = [];
    for (let l = 1; l < lines.length; l++) {
      const line = lines[l];
      if (line === '') continue;
      // find the total's end: skip the trailing optional columns from the right
      let end = line.length;
      for (let t = 0; t < trailing; t++) end = line.lastIndexOf(',', end - 1);
      const c2 = line.lastIndexOf(',', end - 1);
      const c1 = line.lastIndexOf(',', c2 - 1);
      const totalText = line.slice(c2 + 1, end);
      purchases[i] = Number(line.slice(c1 + 1, c2));
      totals[i] = Number(totalText);
      // totals carry exactly `scale` decimals: without the point they are the scaled integer
      exact[i] = BigInt(totalText.replace('.', ''));
      rows.push(line.slice(0, end));
      i++;
    }
    prefixes.push(rows);
  }
  if (i !== users) throw new SegflowError('ERR_INTERNAL', `read ${i} users from the shards, expected ${users}`);
  return { prefixes, purchases, totals, exact };
}

/** Run `segment`: resolves to the summary it writes as summary.json (with `segments`). */
export async function segment(options: SegmentOptions): Promise<AggregateSummary> {
  const k = options.k ?? 3;
  if (!Number.isInteger(k) || k < 1) throw new SegflowError('ERR_USAGE', `--k must be a positive integer, got ${options.k}`);
  const tStart = performance.now();
  // the later stages report the scan's byte counts, so bytes never go back
  let last: ProgressEvent | undefined;
  const onProgress = options.onProgress;
  const r = await runAggregate({ ...options, onProgress: onProgress && ((e) => ((last = e), onProgress(e))) }, 'segment');
  const { summary, output, pool } = r;
  try {
    const t0 = performance.now();
    if (summary.users < k) {
      throw new SegflowError('ERR_TOO_FEW_POINTS', `k = ${k} is larger than the number of users (${summary.users})`, { k, users: summary.users });
    }
    const trailing = (summary.quantity !== undefined ? 1 : 0) + (summary.inputs.some((x) => x.columns.date) ? 2 : 0);
    const users = readUsers(output.tmp, summary.shards, summary.users, trailing);
    const progress = (stage: 'cluster' | 'report'): void =>
      onProgress?.({ stage, bytes: last?.bytes ?? 0, totalBytes: last?.totalBytes ?? 0, records: summary.rows.counted, rejects: summary.rows.rejected, done: 0, total: 1, elapsedMs: performance.now() - tStart });
    progress('cluster');
    const fit = await fitSegments(users.purchases, users.totals, {
      k,
      seed: options.seed,
      nInit: options.nInit,
      maxIter: options.maxIter,
      tol: options.tol,
      scale: options.scale,
      pool,
      signal: options.signal,
    });
    if (options.signal?.aborted) throw abortError();
    summary.timings.cluster = Math.round((performance.now() - t0) * 10) / 10;
    const t1 = performance.now();
    const { model, labels } = fit;
    const names = model.names ?? model.centroids.map((_, j) => `Segment ${j + 1}`);

    // segments-*.csv: the users rows with their segment
    let i = 0;
    const segFiles: string[] = [];
    users.prefixes.forEach((rows, p) => {
      const name = shardName('segments', p, summary.shards);
      segFiles.push(name);
      const parts: string[] = ['user_id,purchases,total,segment\n'];
      for (const row of rows) parts.push(`${row},${names[labels[i++]]}\n`);
      fs.writeFileSync(output.file(name), parts.join(''));
    });

    // the segments, by spend (High first)
    const count = new Array<number>(model.k).fill(0);
    const revenue = new Array<bigint>(model.k).fill(0n);
    for (let u = 0; u < summary.users; u++) {
      count[labels[u]]++;
      revenue[labels[u]] += users.exact[u];
    }
    const grand = revenue.reduce((s, v) => s + v, 0n);
    const segments: SegmentSummary[] = model.centroidsOriginal
      .map((c, j) => ({
        name: names[j],
        users: count[j],
        shareOfUsers: count[j] / summary.users,
        revenue: formatScaled(revenue[j], summary.scale),
        shareOfRevenue: grand === 0n ? 0 : Number((revenue[j] * 1_000_000n) / grand) / 1_000_000,
        centroid: { purchases: c[0], total: c[1] },
      }))
      .sort((a, b) => b.centroid.total - a.centroid.total);
    summary.segments = segments;

    const first = summary.inputs[0];
    const saved: SegmentModel = { ...model, names, columns: first.columns, totalScale: summary.scale, shards: summary.shards };
    fs.writeFileSync(output.file('model.json'), JSON.stringify(saved, null, 2) + '\n');
    const files = [...summary.files.filter((f) => f !== 'summary.json'), ...segFiles, 'model.json'];
    if (!options.noReport) {
      progress('report');
      writeReport(output.file('report.html'), {
        title: `segflow segments: ${summary.inputs.map((x) => x.file.split('/').pop()).join(', ')}`,
        segments,
        points: { purchases: users.purchases, total: users.totals, label: labels },
        names,
        centroids: model.centroidsOriginal.map((c) => ({ purchases: c[0], total: c[1] })),
        metrics: {
          rows: summary.rows.read,
          rejected: summary.rows.rejected,
          users: summary.users,
          workers: summary.workers,
          mbPerSec: summary.mbPerSec,
          timings: summary.timings,
          inputs: summary.inputs.map((x) => x.file),
        },
      });
      files.push('report.html');
    }
    summary.files = [...files, 'summary.json'];
    summary.timings.report = Math.round((performance.now() - t1) * 10) / 10;
    summary.timings.total = Math.round((summary.timings.total + summary.timings.cluster + summary.timings.report) * 10) / 10;
    fs.writeFileSync(output.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
    output.commit();
    return summary;
  } catch (err) {
    output.discard();
    if (options.signal?.aborted) throw abortError();
    throw err;
  } finally {
    if (r.ownPool) await pool.destroy();
  }
}
