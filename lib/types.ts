/**
 * Shapes shared by the stages: job options, progress events, and the summary each job writes as
 * summary.json (and resolves to).
 */
import type { SegflowPool } from './pool.js';

/** The stages a job reports progress for. */
export type Stage = 'plan' | 'scan' | 'merge' | 'cluster' | 'report' | 'stream';

/** A progress event. `bytes`/`totalBytes` are input bytes; `records` valid rows so far. */
export interface ProgressEvent {
  stage: Stage;
  bytes: number;
  totalBytes: number;
  records: number;
  rejects: number;
  /** Tasks done and total in this stage (scan ranges, merge partitions, k-means iterations). */
  done: number;
  total: number;
  /** Milliseconds since the job started. */
  elapsedMs: number;
}

/** Options every job takes. */
export interface CommonOptions {
  /** Worker threads (default: the cores). Ignored when `pool` is given. */
  workers?: number;
  /** A pool the app keeps between jobs; the job does not destroy it. */
  pool?: SegflowPool;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
}

/** Options of `aggregate` (the keys are the CLI flags in camelCase). */
export interface AggregateOptions extends CommonOptions {
  input: string | string[];
  out: string;
  format?: 'csv' | 'jsonl';
  delimiter?: string;
  /** The file has no header row: columns are named column1..columnN (or given by 1-based number). */
  header?: boolean;
  userCol?: string;
  amountCol?: string;
  quantityCol?: string;
  dateCol?: string;
  shards?: number;
  rangeSize?: number;
  /** Budget in bytes for partial tables held between scan and merge before they spill to disk. */
  memory?: number;
  /** Fail the job once rejected rows / rows read passes this (0..1, default 1). */
  maxBadRatio?: number;
  /** Overwrite an existing result in `out`. */
  force?: boolean;
  /** Folder for the job's temporary files (default: beside `out`). */
  tmpDir?: string;
  /** Scale-out: redis://HOST:PORT of the `segflow worker` queue (README, "Scale-out"). */
  cluster?: string;
  /** With `cluster`: s3://bucket/prefix or file:///path for partials, shards and the manifest. */
  store?: string;
  /** With `cluster`: the run's name; a driver restarted with the same id resumes the run. */
  runId?: string;
  /**
   * Dense user ids: when a sample of the input shows integer ids filling a narrow range, they are
   * folded into direct-indexed arrays instead of hash tables (faster, same output). Default
   * (undefined): for inputs of 64 MiB or more; true: whenever the sample qualifies; false: never.
   */
  denseKeys?: boolean;
}

/** One input file as the summary reports it. */
export interface InputSummary {
  file: string;
  bytes: number;
  format: 'csv' | 'jsonl';
  compressed: boolean;
  ranges: number;
  rows: number;
  rejected: number;
  emptyLines: number;
  columns: { user: string; amount: string; quantity?: string; date?: string };
}

/** One segment, as `segment` reports it. */
export interface SegmentSummary {
  name: string;
  users: number;
  shareOfUsers: number;
  /** Exact decimal string. */
  revenue: string;
  shareOfRevenue: number;
  /** Centroid in original units: purchases and total. */
  centroid: { purchases: number; total: number };
}

/** What `aggregate` writes as summary.json and resolves to. */
export interface AggregateSummary {
  command: 'aggregate' | 'segment';
  version: string;
  out: string;
  inputs: InputSummary[];
  rows: { read: number; counted: number; rejected: number; emptyLines: number };
  users: number;
  /** Exact decimal sum of every counted amount, printed with `scale` decimal places. */
  total: string;
  /** Exact sum of quantities when a quantity column was used. */
  quantity?: string;
  /** Decimal places of `total` and of every user's total. */
  scale: number;
  shards: number;
  files: string[];
  workers: number;
  rangeSize: number;
  memory: number;
  spilled: { partitions: number; bytes: number };
  retries: number;
  /** Ranges scanned again because the worker table that held their rows was lost (a crash, a timeout). */
  rescanned: number;
  /** The window of integer user ids folded into direct-indexed arrays (first and last id), if any. */
  denseKeys?: { first: number; last: number };
  warnings: string[];
  /** Milliseconds per stage, and `total`. */
  timings: Record<string, number>;
  /** Input megabytes per second over the whole job. */
  mbPerSec: number;
  segments?: SegmentSummary[];
}
