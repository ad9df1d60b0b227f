/**
 * `segflow stream --state DIR --export OUT`: the state of the last checkpoint written as an
 * `aggregate` output. The users shards come from the batch job's own code: the state table is cut
 * into hash partitions (lib/partial.ts `encodeSections`) and each partition is merged, sorted and
 * printed by lib/merge.ts (`mergeSections`, `formatShard`), one pool task per shard, so they are
 * byte-identical to `aggregate` over the same rows with the same --shards. Beside them:
 * `segments-*.csv`, rejects.jsonl, model.json and summary.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SegflowError } from '../errors.js';
import { SegflowPool, abortError } from '../pool.js';
import { OutputDir } from '../output.js';
import { DEFAULT_SHARDS, shardName } from '../aggregate.js';
import { encodeSections, decodeSection } from '../partial.js';
import { csvField, formatShard, mergeSections, sortedIds } from '../merge.js';
import { COUNT, SUM, F_QTY, partitionOf } from '../table.js';
import { formatScaled, limbsToBig } from '../util/exact.js';
import { VERSION } from '../version.js';
import type { AggregateSummary, SegmentSummary } from '../types.js';
import { readCheckpoint } from './checkpoint.js';
import { centroidsOriginal, modelJson } from './model.js';
import type { StreamExportOptions } from './options.js';

/** One shard of the export (the `export` op of the `stream` pool task). */
export interface ExportTask {
  op: 'export';
  /** The state's users of this partition, in state order. */
  section: SharedArrayBuffer;
  /** Int32 cluster of each user in the section, same order. */
  labels: SharedArrayBuffer;
  names: string[];
  flags: number;
  scale: number;
  qscale: number;
  dateHasTime: boolean;
  usersFile: string;
  segmentsFile: string;
}

/** What one export shard returns. */
export interface ExportOutput {
  users: number;
  rows: number;
  total: string;
  quantity: string;
  /** Per cluster: users and exact revenue (scaled-integer text). */
  clusters: { users: number; revenue: string }[];
}

/** What the export writes as summary.json: the shape of `aggregate`'s, with the stream's part. */
export interface StreamExportSummary extends Omit<AggregateSummary, 'command'> {
  command: 'stream';
  segments: SegmentSummary[];
  stream: { state: string; checkpointAt: string; from: string; source?: { kind: string; target: string }; moves: number; batches: number; reclusters: number };
}

/**
 * Write the users and segments shards of one partition.
 *
 * @param task The partition's section, labels and output files.
 */
export function writeExportShard(task: ExportTask): ExportOutput {
  const sec = decodeSection(task.section);
  // one section of distinct users: table id i is section row i, so labels[i] is its cluster
  const t = mergeSections([sec], task.flags, task.scale, task.qscale);
  const labels = new Int32Array(task.labels);
  const { text, total, quantity, rows } = formatShard(t, task.dateHasTime);
  fs.writeFileSync(task.usersFile, text);
  const ids = sortedIds(t);
  const { acc, keyEnds, arena } = t;
  const w = t.width;
  const dec = new TextDecoder();
  const parts: string[] = ['user_id,purchases,total,segment\n'];
  const revenue = task.names.map(() => 0n);
  const users = task.names.map(() => 0);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const o = id * w;
    const key = dec.decode(arena.subarray(id === 0 ? 0 : keyEnds[id - 1], keyEnds[id]));
    const lo = acc[o + SUM];
    const hi = acc[o + SUM + 1];
    const sum = hi === 0 ? lo : limbsToBig(lo, hi);
    const label = labels[id];
    if (label >= 0) {
      users[label]++;
      revenue[label] += typeof sum === 'number' ? BigInt(sum) : sum;
    }
    parts.push(`${csvField(key)},${acc[o + COUNT]},${formatScaled(sum, t.scale)},${csvField(label >= 0 ? task.names[label] : '')}\n`);
  }
  fs.writeFileSync(task.segmentsFile, parts.join(''));
  return {
    users: t.size,
    rows,
    total: total.toString(),
    quantity: quantity.toString(),
    clusters: users.map((u, j) => ({ users: u, revenue: revenue[j].toString() })),
  };
}

/**
 * Export the state of a state folder's last checkpoint as an `aggregate` output.
 *
 * @returns What it writes as summary.json.
 * @throws SegflowError ERR_INPUT_NOT_FOUND when the folder holds no checkpoint.
 */
export async function exportState(o: StreamExportOptions): Promise<StreamExportSummary> {
  const t0 = performance.now();
  if (!o.state) throw new SegflowError('ERR_USAGE', '--state DIR is required');
  if (!o.out) throw new SegflowError('ERR_USAGE', '--export OUT is required');
  if (o.signal?.aborted) throw abortError();
  const loaded = readCheckpoint(o.state);
  if (!loaded) throw new SegflowError('ERR_INPUT_NOT_FOUND', `${o.state} holds no stream checkpoint (run segflow stream --from DIR --state ${o.state} first)`, { state: o.state });
  const { state, meta } = loaded;
  const shards = o.shards ?? meta.shards ?? DEFAULT_SHARDS;
  if (!Number.isInteger(shards) || shards < 1 || shards > 65535) throw new SegflowError('ERR_USAGE', `--shards must be an integer from 1 to 65535, got ${o.shards}`);
  const t = state.table;
  const model = state.model;
  const output = OutputDir.create(o.out, o.force);
  const ownPool = !o.pool;
  const pool = o.pool ?? new SegflowPool({ workers: o.workers });
  try {
    const timings: Record<string, number> = {};
    // the state cut into the shards' partitions, with each user's cluster in the same order
    const sections = encodeSections(t, shards);
    const counts = new Uint32Array(shards);
    for (let id = 0; id < t.size; id++) counts[partitionOf(t.hashes[id], shards)]++;
    const labelBufs = Array.from(counts, (c) => new SharedArrayBuffer(Math.max(4, c * 4)));
    const labelViews = labelBufs.map((b) => new Int32Array(b));
    const fill = new Uint32Array(shards);
    for (let id = 0; id < t.size; id++) {
      const p = partitionOf(t.hashes[id], shards);
      labelViews[p][fill[p]++] = state.labels[id];
    }
    const users: string[] = [];
    const segs: string[] = [];
    for (let p = 0; p < shards; p++) {
      users.push(shardName('users', p, shards));
      segs.push(shardName('segments', p, shards));
    }
    const outs = await Promise.all(
      Array.from({ length: shards }, (_, p) => {
        const task: ExportTask = {
          op: 'export',
          section: sections[p],
          labels: labelBufs[p],
          names: model.names,
          flags: t.flags,
          scale: t.scale,
          qscale: t.qscale,
          dateHasTime: state.dateHasTime,
          usersFile: output.file(users[p]),
          segmentsFile: output.file(segs[p]),
        };
        return pool.run<ExportOutput>('stream', task, { signal: o.signal, label: `export shard ${p}` });
      }),
    );
    timings.write = performance.now() - t0;
    // the rejects of the history and the stream, as far as the checkpoint counts them
    const rejectsFile = path.join(o.state, 'rejects.jsonl');
    const rejects = output.file('rejects.jsonl');
    if (fs.existsSync(rejectsFile)) {
      const fd = fs.openSync(rejectsFile, 'r');
      try {
        const buf = Buffer.alloc(Math.min(meta.rejectsBytes, fs.fstatSync(fd).size));
        fs.readSync(fd, buf, 0, buf.length, 0);
        fs.writeFileSync(rejects, buf);
      } finally {
        fs.closeSync(fd);
      }
    } else fs.writeFileSync(rejects, '');
    fs.writeFileSync(output.file('model.json'), modelJson(model, { ...meta.modelInput, scale: t.scale, shards }));
    const total = outs.reduce((s, x) => s + BigInt(x.total), 0n);
    const quantity = outs.reduce((s, x) => s + BigInt(x.quantity), 0n);
    const rows = outs.reduce((s, x) => s + x.rows, 0);
    if (rows !== state.rows) throw new SegflowError('ERR_INTERNAL', `row count mismatch: the state counts ${state.rows}, its shards ${rows}`);
    const centroids = centroidsOriginal(model);
    const segments: SegmentSummary[] = model.names.map((name, j) => {
      const u = outs.reduce((s, x) => s + x.clusters[j].users, 0);
      const r = outs.reduce((s, x) => s + BigInt(x.clusters[j].revenue), 0n);
      return {
        name,
        users: u,
        shareOfUsers: t.size > 0 ? u / t.size : 0,
        revenue: formatScaled(r, t.scale),
        shareOfRevenue: total !== 0n ? Number((r * 1_000_000n) / total) / 1_000_000 : 0,
        centroid: { purchases: centroids[j].purchases ?? 0, total: centroids[j].total ?? 0 },
      };
    });
    // by spend, High first, as `segment` lists them
    segments.sort((a, b) => b.centroid.total - a.centroid.total);
    timings.total = performance.now() - t0;
    const summary: StreamExportSummary = {
      command: 'stream',
      version: VERSION,
      out: output.out,
      inputs: meta.inputs,
      rows: { read: state.rows + state.rejected, counted: state.rows, rejected: state.rejected, emptyLines: state.emptyLines },
      users: t.size,
      total: formatScaled(total, t.scale),
      quantity: t.flags & F_QTY ? formatScaled(quantity, t.qscale) : undefined,
      scale: t.scale,
      shards,
      files: [...users, ...segs, 'rejects.jsonl', 'model.json', 'summary.json'],
      workers: pool.workers,
      rangeSize: 0,
      memory: 0,
      spilled: { partitions: 0, bytes: 0 },
      retries: 0,
      rescanned: 0,
      warnings: [],
      timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v * 10) / 10])),
      mbPerSec: 0,
      segments,
      stream: {
        state: path.resolve(o.state),
        checkpointAt: meta.savedAt,
        from: meta.from,
        source: meta.source ? { kind: meta.source.kind, target: meta.source.target } : undefined,
        moves: meta.counters.moves,
        batches: meta.counters.batches,
        reclusters: meta.counters.reclusters,
      },
    };
    fs.writeFileSync(output.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
    output.commit();
    return summary;
  } catch (err) {
    output.discard();
    if (o.signal?.aborted) throw abortError();
    throw err;
  } finally {
    if (ownPool) await pool.destroy();
  }
}
