/**
 * The options of `segflow stream` and `segflow stream --export`, their defaults and their checks.
 * Checked once, when the stream starts (never per batch).
 */
import type { Writable, Readable } from 'node:stream';
import { SegflowError } from '../errors.js';
import type { CommonOptions } from '../types.js';

/** A segment change, as one JSON line on the changes output. */
export interface ChangeEvent {
  user_id: string;
  /** The segment before (null for a user the state had not seen). */
  from: string | null;
  to: string;
  purchases: number;
  /** The user's exact total, as decimal text with the state's decimal places. */
  total: string;
  /** When the batch (or re-clustering) that moved the user was applied, ISO 8601. */
  at: string;
}

/** Metrics of the stream, as printed on stderr (one object per `metricsMs`). */
export interface StreamMetrics {
  /** Milliseconds since the stream started. */
  elapsedMs: number;
  /** Records (counted + rejected rows) read since the stream started, and per second lately. */
  records: number;
  recordsPerSec: number;
  /** Bytes the source holds that the state has not taken in yet (followed file: bytes behind its end). */
  lagBytes: number;
  users: number;
  /** Segment changes emitted since the stream started (batches and re-clustering). */
  moves: number;
  /** Rows counted and rejected in the state, since the history began. */
  rows: number;
  rejected: number;
  batches: number;
  /** Duration of the last batch (scan + fold + assign), ms. */
  batchMs: number;
  reclusters: number;
}

/** Options of {@link stream}. Keys are the CLI flags in camelCase. */
export interface StreamOptions extends CommonOptions {
  /** The state folder (checkpoint, rejects, stdin spool). Created when missing. */
  state: string;
  /** A finished `segment` output: its users shards, model.json and summary.json. Needed on the first start. */
  from?: string;
  /** Follow a growing file (like `tail -F`: survives rotation and truncation). */
  follow?: string;
  /** Read each new file dropped into this folder once. */
  watch?: string;
  /** Read records from this stream (the CLI passes process.stdin when neither follow nor watch is given). */
  input?: Readable;
  /** Where a followed file or a watched folder starts on the first run: `auto` (after what --from read), `beginning`, `end`. */
  start?: 'auto' | 'beginning' | 'end';
  /** Changes: a file (appended; cut back to the checkpoint on restart), a writable stream, or none. */
  changes?: string | Writable;
  /** Called for each change (in addition to `changes`). */
  onChange?: (event: ChangeEvent) => void;
  /** Micro-batch interval in ms (default 500). */
  batchMs?: number;
  /** Cut a batch early once about this many rows are waiting (estimated from bytes per row). */
  batchRows?: number;
  /** Re-fit k-means on the whole state: a duration (`60s`, `5m`, ms as a number > 1) or a share of new rows (`0.1`, `10%`). */
  reclusterEvery?: string | number;
  /** Checkpoint interval in ms (default 10000). */
  checkpointMs?: number;
  /** Metrics interval in ms (default 1000; 0 = none). */
  metricsMs?: number;
  onMetrics?: (m: StreamMetrics) => void;
  /** Process what the source holds now, checkpoint and stop (standard input: until its end). */
  once?: boolean;
  format?: 'csv' | 'jsonl';
  delimiter?: string;
  header?: boolean;
  userCol?: string;
  amountCol?: string;
  quantityCol?: string;
  dateCol?: string;
  /** Bytes one batch takes at most (default 32 MiB x workers, at most 256 MiB). */
  maxBatchBytes?: number;
  /** Log lines (warnings, re-clustering) go here (default: none). */
  onLog?: (message: string) => void;
}

/** Options of {@link exportState}. */
export interface StreamExportOptions extends CommonOptions {
  state: string;
  out: string;
  /** Shards of the users and segments files (default: the shards of --from). */
  shards?: number;
  force?: boolean;
}

/** A re-clustering trigger. */
export type Recluster = { kind: 'none' } | { kind: 'time'; ms: number } | { kind: 'share'; share: number };

/**
 * Parse `--recluster-every`: a duration (`500ms`, `60s`, `5m`, `1h`, or a number of ms above 1) or a
 * share of new rows against the rows at the last fit (`0.1`, `10%`).
 *
 * @param v The flag value.
 * @returns The trigger.
 * @throws SegflowError ERR_USAGE when it is neither.
 */
export function parseRecluster(v: string | number | undefined): Recluster {
  if (v === undefined || v === '' || v === 0 || v === '0' || v === 'off' || v === 'never') return { kind: 'none' };
  if (typeof v === 'number') {
    if (v > 0 && v <= 1) return { kind: 'share', share: v };
    if (v > 1 && Number.isFinite(v)) return { kind: 'time', ms: v };
  } else {
    const s = v.trim();
    const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(s);
    if (pct && Number(pct[1]) > 0 && Number(pct[1]) <= 100) return { kind: 'share', share: Number(pct[1]) / 100 };
    const ms = parseDuration(s);
    if (ms !== undefined && ms > 0) return { kind: 'time', ms };
    if (/^\d*\.?\d+$/.test(s)) {
      const x = Number(s);
      if (x > 0 && x <= 1) return { kind: 'share', share: x };
    }
  }
  throw new SegflowError('ERR_USAGE', `--recluster-every must be a duration (60s, 5m, 1h) or a share of new rows (0.1 or 10%), got ${JSON.stringify(v)}`);
}

/** A duration with a unit (ms, s, m, h) in ms, or undefined. */
export function parseDuration(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)$/i.exec(s.trim());
  if (!m) return undefined;
  const unit = m[2].toLowerCase();
  const mult = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'h' ? 3600_000 : 60_000;
  return Number(m[1]) * mult;
}

/** A duration flag given as ms or with a unit. */
export function durationMs(v: string | number | undefined, flag: string, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  const ms = typeof v === 'number' ? v : /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : parseDuration(v);
  if (ms === undefined || !Number.isFinite(ms) || ms < min) {
    throw new SegflowError('ERR_USAGE', `${flag} must be a duration in ms (or with a unit: 500ms, 2s) of at least ${min}, got ${JSON.stringify(v)}`);
  }
  return ms;
}

/** The settled options of a stream. */
export interface Settled {
  batchMs: number;
  batchRows: number;
  checkpointMs: number;
  metricsMs: number;
  recluster: Recluster;
  start: 'auto' | 'beginning' | 'end';
  source: 'follow' | 'watch' | 'stdin';
}

/** Check the options of {@link stream}. */
export function settle(o: StreamOptions): Settled {
  if (!o.state) throw new SegflowError('ERR_USAGE', '--state DIR is required');
  const sources = [o.follow ? 'follow' : '', o.watch ? 'watch' : '', o.input ? 'stdin' : ''].filter(Boolean);
  if (sources.length > 1) throw new SegflowError('ERR_USAGE', `give one source: --follow FILE, --watch DIR or standard input (got ${sources.join(' and ')})`);
  if (sources.length === 0) throw new SegflowError('ERR_USAGE', 'no source: give --follow FILE, --watch DIR or records on standard input');
  const batchRows = o.batchRows ?? 0;
  if (!Number.isInteger(batchRows) || batchRows < 0) throw new SegflowError('ERR_USAGE', `--batch-rows must be a positive integer, got ${o.batchRows}`);
  if (o.maxBatchBytes !== undefined && !(Number.isInteger(o.maxBatchBytes) && o.maxBatchBytes >= 4096)) {
    throw new SegflowError('ERR_USAGE', `maxBatchBytes must be an integer of at least 4096, got ${o.maxBatchBytes}`);
  }
  const start = o.start ?? 'auto';
  if (start !== 'auto' && start !== 'beginning' && start !== 'end') throw new SegflowError('ERR_USAGE', `--start must be auto, beginning or end, got ${o.start}`);
  if (o.format !== undefined && o.format !== 'csv' && o.format !== 'jsonl') throw new SegflowError('ERR_USAGE', `--format must be csv or jsonl, got ${o.format}`);
  return {
    batchMs: durationMs(o.batchMs, '--batch-ms', 500),
    batchRows,
    checkpointMs: durationMs(o.checkpointMs, '--checkpoint-ms', 10_000, 1),
    metricsMs: durationMs(o.metricsMs, '--metrics-ms', 1000),
    recluster: parseRecluster(o.reclusterEvery),
    start,
    source: sources[0] as Settled['source'],
  };
}
