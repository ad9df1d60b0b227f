/**
 * The aggregate job (the coordinator): plan, scan every range on the pool, hold or spill the
 * partial sections, merge every partition on the pool, write rejects and the summary, commit.
 * The coordinator never parses rows.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { SegflowError } from './errors.js';
import { SegflowPool, abortError, adoptPrestarted, defaultWorkers } from './pool.js';
import { defaultMemory, planMemory } from './memory.js';
import { resolveInputs } from './inputs.js';
import { readSchema, type FileSchema } from './schema.js';
import { MiB, defaultRangeSize, planRanges, queueOrder, taperRanges, type Range } from './split.js';
import { rangeKey, scanTaskOf, type FlushTask, type RangeReject, type ScanOutput } from './scan.js';
import { isEmptySegment, type DenseMergeTask, type MergeOutput, type MergeTask, type SegmentRef } from './merge.js';
import { parseFaults } from './faults.js';
import { releaseShared } from './util/gc.js';
import { F_DATE, F_QTY, denseWidthOf } from './table.js';
import { formatScaled } from './util/exact.js';
import { OutputDir } from './output.js';
import type { AggregateOptions, AggregateSummary, InputSummary, ProgressEvent, Stage } from './types.js';
import { VERSION } from './version.js';
import { DENSE_MIN_BYTES, planDenseWindow } from './dense.js';
import { returnDense, type DenseSegment } from './partial.js';

/** The default number of shards (hash partitions), fixed so output does not depend on workers. */
export const DEFAULT_SHARDS = 8;

export { SCAN_EXPANSION, defaultMemory, planMemory, runtimeBytes, type MemoryPlan } from './memory.js';

/**
 * Jobs of this process that ended, newest last: scan tasks carry the list, so a worker drops a
 * table it still holds for one of them (an aborted or failed job never collected it).
 */
const endedJobs: string[] = [];

/** The name of shard p of P. */
export function shardName(prefix: string, p: number, P: number): string {
  return `${prefix}-${String(p).padStart(5, '0')}-of-${String(P).padStart(5, '0')}.csv`;
}

/** What the aggregate stage hands to `segment`. */
export interface AggregateResult {
  summary: AggregateSummary;
  output: OutputDir;
  pool: SegflowPool;
  ownPool: boolean;
}

/** Validate and fill the options. */
export function settle(o: AggregateOptions) {
  checkShapes(o);
  const shards = settleLayout(o);
  const memory = o.memory ?? defaultMemory();
  if (!(memory > 0)) throw new SegflowError('ERR_USAGE', `--memory must be a positive number of bytes, got ${o.memory}`);
  const maxBadRatio = o.maxBadRatio ?? 1;
  if (!(maxBadRatio >= 0 && maxBadRatio <= 1)) throw new SegflowError('ERR_USAGE', `--max-bad-ratio must be between 0 and 1, got ${o.maxBadRatio}`);
  if (o.format !== undefined && o.format !== 'csv' && o.format !== 'jsonl') throw new SegflowError('ERR_USAGE', `--format must be csv or jsonl, got ${o.format}`);
  try {
    parseFaults(process.env.SEGFLOW_FAULTS);
  } catch (err) {
    throw new SegflowError('ERR_USAGE', (err as Error).message);
  }
  return { shards, memory, maxBadRatio };
}

/** Check --shards and --range-size (also for `segflow bench`, before its pools start); the shard count. */
export function settleLayout(o: { shards?: number; rangeSize?: number }): number {
  const shards = o.shards ?? DEFAULT_SHARDS;
  if (!Number.isInteger(shards) || shards < 1 || shards > 65535) throw new SegflowError('ERR_USAGE', `--shards must be an integer from 1 to 65535, got ${o.shards}`);
  if (o.rangeSize !== undefined && (!Number.isInteger(o.rangeSize) || o.rangeSize < 1)) {
    throw new SegflowError('ERR_USAGE', `--range-size must be a positive integer (bytes), got ${o.rangeSize}`);
  }
  return shards;
}

/**
 * The options' types, for JavaScript callers (a TypeError from deep inside a job says nothing):
 * a usage error naming the option instead.
 */
function checkShapes(o: AggregateOptions): void {
  const fail = (name: string, want: string, got: unknown): never => {
    throw new SegflowError('ERR_USAGE', `${name} must be ${want}, got ${got === null ? 'null' : typeof got}`);
  };
  if (typeof o !== 'object' || o === null) fail('the options', 'an object', o);
  const input = o.input as unknown;
  if (!(typeof input === 'string' || (Array.isArray(input) && input.every((x) => typeof x === 'string')))) fail('input', 'a path or an array of paths', input);
  if (typeof o.out !== 'string' || o.out === '') fail('out', 'a folder path', o.out);
  if (o.delimiter !== undefined && typeof o.delimiter !== 'string') fail('delimiter', 'a string', o.delimiter);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') fail('onProgress', 'a function', o.onProgress);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) fail('signal', 'an AbortSignal', o.signal);
  if (o.pool !== undefined && !(o.pool instanceof SegflowPool)) fail('pool', 'a SegflowPool', o.pool);
}

/** Run `aggregate`: resolves to the summary it writes as summary.json. */
export async function aggregate(options: AggregateOptions): Promise<AggregateSummary> {
  const r = await runAggregate(options, 'aggregate');
  try {
    r.output.commit();
  } finally {
    if (r.ownPool) await r.pool.destroy();
  }
  return r.summary;
}

/**
 * The aggregate stage, leaving the output uncommitted (so `segment` can add its files) and the
 * pool open. On failure everything is cleaned up and the error rethrown.
 */
export async function runAggregate(options: AggregateOptions, command: 'aggregate' | 'segment'): Promise<AggregateResult> {
  // (settle checks the options' types, here or in the cluster driver)
  if (options?.cluster) return (await import('./cluster/driver.js')).runAggregateOnCluster(options, command);
  const t0 = performance.now();
  const { shards, memory, maxBadRatio } = settle(options);
  const signal = options.signal;
  if (signal?.aborted) throw abortError();
  const timings: Record<string, number> = {};
  const warnings: string[] = [];

  // --- plan
  const files = resolveInputs(options.input);
  const schemas = files.map((f) => readSchema(f, options));
  const ownPool = !options.pool;
  const workers = options.pool?.workers ?? options.workers ?? defaultWorkers();
  const budget = planMemory(memory, workers);
  const output = OutputDir.create(options.out, options.force);
  let pool: SegflowPool;
  // a pool given or prestarted (cli.ts) has its workers up (or nearly): it samples the input
  let poolUp = false;
  try {
    const early = options.pool ? undefined : adoptPrestarted({ workers, maxOldGenerationSizeMb: budget.workerHeapMb });
    poolUp = !!(options.pool ?? early);
    pool = options.pool ?? early ?? new SegflowPool({ workers, maxOldGenerationSizeMb: budget.workerHeapMb });
  } catch (err) {
    output.discard();
    throw err;
  }
  // the job's own signal: the caller's abort, or the first task that fails for good, stops the rest
  const job = new AbortController();
  const jobId = randomUUID();
  const onAbort = (): void => job.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const spill = new SpillStore(output.file('_spill'), budget.hold);
  /** Dense rows the workers handed over: returned to them when the job ends (its merges are done). */
  const lent: DenseSegment[] = [];
  const rejects = new RejectStore(output.file('_rejects'));
  const cleanup = async (): Promise<void> => {
    job.abort();
    output.discard();
    if (ownPool) await pool.destroy();
  };
  try {
    const totalBytes = schemas.reduce((s, f) => s + (f.compressed ? f.size * 4 : f.size - f.dataStart), 0);
    const rangeSize = options.rangeSize ?? Math.min(defaultRangeSize(totalBytes, pool.workers), budget.maxRangeSize);
    const planned = planRanges(schemas, rangeSize);
    // (a job of one range per worker or fewer keeps them whole: its ranges all start at once)
    let ranges = planned.length > pool.workers ? taperRanges(planned, pool.workers) : planned;
    const flags = (schemas.some((s) => s.names[2]) ? F_QTY : 0) | (schemas.some((s) => s.names[3]) ? F_DATE : 0);
    checkConsistent(schemas, options);
    // with more ranges than workers, each worker folds its ranges into one table that it keeps
    // (scan.ts, HoldOptions) and hands over at the end: every key is encoded and merged once per
    // worker instead of once per range
    let holding = ranges.length > pool.workers;
    // integer ids in a narrow range go into direct-indexed arrays (dense.ts): one per worker, so
    // only with held tables. Such an array stands in for the worker's table and for the sections
    // it would hand over: it may take a task's share while all of them fit in the hold
    const wantDense = options.denseKeys ?? totalBytes >= DENSE_MIN_BYTES;
    const denseMax = Math.min(budget.task, budget.hold / pool.workers);
    const denseWindow = holding && wantDense ? await planDenseWindow(schemas, totalBytes, shards, flags, denseMax, job.signal, poolUp ? pool : undefined) : undefined;
    const denseBytes = denseWindow ? denseWindow.span * denseWidthOf(flags) * 8 : 0;
    timings.plan = performance.now() - t0;
    const progress = new Progress(options.onProgress, t0, totalBytes);
    progress.emit('plan', 0, 1);

    // --- scan
    const t1 = performance.now();
    let retries = 0;
    const results = new Map<string, ScanOutput>();
    const key = rangeKey;
    /** Ranges whose rows went into a held table, and ranges whose rows some output's sections hold. */
    const heldKeys = new Set<string>();
    const covered = new Set<string>();
    /** The held tables handed over at the end of the scan. */
    let collected: ScanOutput[] = [];
    // bytes of input whose row count is not known yet; gzip sizes are estimates, so no early verdict
    const exactSizes = !schemas.some((s) => s.compressed);
    // a range keeps its task number and attempt count when it is scanned again
    let taskIndex = 0;
    const taskIndexes = new Map<string, number>();
    const attempts = new Map<string, number>();
    const runScan = async (r: Range, total: number, hold: boolean): Promise<void> => {
      const s = schemas[r.fileIndex];
      const k = key(r);
      if (!taskIndexes.has(k)) taskIndexes.set(k, taskIndex++);
      const task = scanTaskOf(s.file, s, r, shards, taskIndexes.get(k)!);
      // a held table past a third of the task's share is handed over: encoding it adds its
      // sections (about half its size), and dropped sections wait for a GC (with dense rows, the
      // rest of the table gets what they leave of that third, at least a sixteenth)
      if (hold) {
        task.hold = { job: jobId, maxBytes: Math.max(budget.task / 3 - denseBytes, budget.task / 16), ended: [...endedJobs] };
        task.dense = denseWindow;
      }
      task.priorAttempts = attempts.get(k) ?? 0;
      attempts.set(k, task.priorAttempts + 1);
      const label = s.compressed ? `${s.file} (whole file)` : `${s.file} bytes ${r.start}-${r.end}`;
      // only the attempt that succeeded returns: a failed attempt adds to no counter and no table
      const out = await pool.run<ScanOutput>('scan', task, {
        signal: job.signal,
        label,
        onRetry: () => {
          retries++;
          attempts.set(k, attempts.get(k)! + 1);
        },
      });
      const prev = results.get(k);
      if (prev) {
        spill.release(prev);
        rejects.release(prev);
      }
      results.set(k, out);
      rejects.hold(out);
      if (out.held) heldKeys.add(k);
      else {
        for (const c of out.covers ?? [k]) covered.add(c);
        await spill.hold(out);
      }
      progress.scanned(r.weight, out.rows, out.rejected, total);
      if (maxBadRatio < 1 && progress.rejects > 0 && exactSizes) {
        // fail early only when no rows still to come could bring the ratio back under the limit
        // (a row takes at least 2 bytes), so the verdict never depends on which range ended first
        const unread = Math.max(0, totalBytes - progress.bytes);
        const atMost = progress.records + progress.rejects + Math.floor(unread / 2);
        if (progress.rejects > maxBadRatio * atMost) throw tooManyRejects(progress.rejects, progress.records + progress.rejects, maxBadRatio, rejects.sample(), unread > 0);
      }
    };
    /** Collect (or drop) the held tables: one flush task per worker, each on its own worker. */
    const flushHeld = async (discard: boolean): Promise<ScanOutput[]> => {
      const barrier = new SharedArrayBuffer(4);
      const outs: ScanOutput[] = [];
      const task: FlushTask = { job: jobId, partitions: shards, discard, barrier, workers: pool.workers, waitMs: 10_000 };
      await runAll(
        Array.from({ length: pool.workers }, (_, i) => i),
        async () => {
          const got = await pool.run<ScanOutput[]>('flush', task, { signal: job.signal, label: 'handing over the held tables', onRetry: () => retries++ });
          // dense rows go back to their workers when the job ends, even if another flush fails
          for (const o of got) if (o.dense) lent.push(o.dense);
          outs.push(...got);
        },
        job,
      );
      return outs;
    };
    /** Forget a range's result (it is scanned again). */
    const forget = (r: Range): void => {
      const old = results.get(key(r));
      if (!old) return;
      spill.release(old);
      rejects.release(old);
      progress.unscan(r.weight, old.rows, old.rejected);
      results.delete(key(r));
    };
    await runAll(queueOrder(ranges), (r) => runScan(r, ranges.length, holding), job);

    // a file whose quoted fields span lines cannot be split by bytes: read it again in one range
    const whole = new Set<number>();
    for (const out of results.values()) {
      if (out.quotedNewlines > 0 && ranges.filter((r) => r.fileIndex === out.fileIndex).length > 1) whole.add(out.fileIndex);
    }
    let again: Range[] = [];
    let rescanned = 0;
    if (holding && whole.size > 0) {
      // held tables mix the rows of every file: drop them and scan everything again, unheld
      await flushHeld(true);
      for (const r of ranges) forget(r);
      again = ranges.filter((r) => !whole.has(r.fileIndex));
      holding = false;
    } else if (holding) {
      collected = await flushHeld(false);
      for (const out of collected) {
        for (const k of out.covers ?? []) covered.add(k);
        await spill.hold(out);
      }
      // a table lost with its worker (a crash, a timeout, a failed task): scan its ranges again
      again = ranges.filter((r) => heldKeys.has(key(r)) && !covered.has(key(r)));
      rescanned = again.length;
      for (const r of again) forget(r);
    }
    if (whole.size > 0) {
      for (const fi of whole) {
        warnings.push(`${schemas[fi].file}: quoted fields span lines, so byte ranges cannot place every record; the file was read again in one range`);
        for (const r of ranges.filter((x) => x.fileIndex === fi)) forget(r);
      }
      const redo: Range[] = [...whole].map((fi) => ({
        fileIndex: fi,
        rangeIndex: 0,
        start: schemas[fi].dataStart,
        end: schemas[fi].size,
        atRecordStart: true,
        weight: schemas[fi].size - schemas[fi].dataStart,
      }));
      ranges = ranges.filter((r) => !whole.has(r.fileIndex)).concat(redo);
      again = again.concat(redo);
    }
    if (again.length > 0) await runAll(again, (r) => runScan(r, ranges.length, false), job);
    const outs = [...results.values()];
    // the outputs that carry sections: unheld ranges' and the collected tables
    const partials = outs.filter((o) => !o.held).concat(collected);
    const rowsCounted = outs.reduce((s, o) => s + o.rows, 0);
    const rowsRejected = outs.reduce((s, o) => s + o.rejected, 0);
    const seen = rowsCounted + rowsRejected;
    if (maxBadRatio < 1 && seen > 0 && rowsRejected / seen > maxBadRatio) throw tooManyRejects(rowsRejected, seen, maxBadRatio, rejects.sample(), false);
    timings.scan = performance.now() - t1;

    // --- merge
    const t2 = performance.now();
    const scale = Math.max(0, ...partials.map((o) => o.scale));
    const qscale = Math.max(0, ...partials.map((o) => o.qscale));
    const dateHasTime = outs.some((o) => o.dateHasTime);
    const shardIndexes = Array.from({ length: shards }, (_, p) => p);
    const shardFiles = shardIndexes.map((p) => shardName('users', p, shards));
    const merged: MergeOutput[] = new Array(shards);
    let mergedCount = 0;
    const dense = partials.flatMap((o) => (o.dense ? [o.dense] : []));
    // every key in dense rows (no section holds one): one sweep of the window per worker writes a
    // group of shards, instead of one pass per shard over rows spread across the whole window
    const denseOnly = dense.length > 0 && partials.every((o) => shardIndexes.every((p) => isEmptySegment(spill.ref(o, p))));
    const groups = denseOnly ? Math.min(pool.workers, shards) : 0;
    await runAll(
      Array.from({ length: groups }, (_, g) => g),
      async (g) => {
        const group = shardIndexes.filter((p) => p % groups === g);
        const task: DenseMergeTask = {
          partitions: shards,
          group,
          outFiles: group.map((p) => output.file(shardFiles[p])),
          dense,
          flags,
          scale,
          qscale,
          dateHasTime,
          scratchDir: output.file('_merge'),
        };
        const outs = await pool.run<MergeOutput[]>('merge', task, { signal: job.signal, label: `partitions ${group.join(', ')} (dense rows)`, onRetry: () => retries++ });
        for (const m of outs) {
          merged[m.partition] = m;
          progress.emit('merge', ++mergedCount, shards);
        }
      },
      job,
    );
    await runAll(
      denseOnly ? [] : shardIndexes,
      async (p) => {
        const task: MergeTask = {
          partition: p,
          partitions: shards,
          segments: partials.map((o) => spill.ref(o, p)),
          dense,
          flags,
          scale,
          qscale,
          dateHasTime,
          outFile: output.file(shardFiles[p]),
          memory: budget.task,
          scratchDir: output.file('_merge'),
        };
        merged[p] = await pool.run<MergeOutput>('merge', task, { signal: job.signal, label: `partition ${p} (${shardFiles[p]})`, onRetry: () => retries++ });
        // partition p's sections are no longer needed: let their shared memory go
        spill.dropPartition(partials, p);
        progress.emit('merge', ++mergedCount, shards);
      },
      job,
    );
    spill.clear();
    fs.rmSync(output.file('_merge'), { recursive: true, force: true });
    timings.merge = performance.now() - t2;

    // --- rejects and summary
    const t3 = performance.now();
    const inputs = writeRejects(output.file('rejects.jsonl'), schemas, ranges, results, rejects);
    rejects.clear();
    const mergedRows = merged.reduce((s, m) => s + m.rows, 0);
    if (mergedRows !== rowsCounted) throw new SegflowError('ERR_INTERNAL', `row count mismatch: scanned ${rowsCounted}, merged ${mergedRows}`);
    const total = merged.reduce((s, m) => s + BigInt(m.total), 0n);
    const quantity = merged.reduce((s, m) => s + BigInt(m.quantity), 0n);
    timings.write = performance.now() - t3;
    timings.total = performance.now() - t0;
    const summary: AggregateSummary = {
      command,
      version: VERSION,
      out: output.out,
      inputs,
      rows: { read: seen, counted: rowsCounted, rejected: rowsRejected, emptyLines: outs.reduce((s, o) => s + o.emptyLines, 0) },
      users: merged.reduce((s, m) => s + m.users, 0),
      total: formatScaled(total, scale),
      quantity: flags & F_QTY ? formatScaled(quantity, qscale) : undefined,
      scale,
      shards,
      files: [...shardFiles, 'rejects.jsonl', 'summary.json'],
      workers: pool.workers,
      rangeSize,
      memory,
      spilled: { partitions: spill.spilledSections, bytes: spill.spilledBytes },
      retries,
      rescanned,
      // (not when the held tables were dropped and every range read again without the window)
      denseKeys: denseWindow && holding ? { first: denseWindow.base, last: denseWindow.base + denseWindow.span - 1 } : undefined,
      warnings,
      timings: roundTimings(timings),
      mbPerSec: Math.round((totalBytes / 1e6 / (timings.total / 1000)) * 10) / 10,
    };
    if (command === 'aggregate') fs.writeFileSync(output.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
    progress.emit('merge', shards, shards);
    return { summary, output, pool, ownPool };
  } catch (err) {
    await cleanup();
    if (signal?.aborted) throw abortError();
    throw err;
  } finally {
    for (const d of lent) returnDense(d);
    signal?.removeEventListener('abort', onAbort);
    endedJobs.push(jobId);
    if (endedJobs.length > 16) endedJobs.shift();
  }
}

/** The error for rejects over --max-bad-ratio, with the first reasons as examples. */
function tooManyRejects(rejected: number, read: number, ratio: number, sample: string[], early: boolean): SegflowError {
  const pct = ((100 * rejected) / read).toFixed(2);
  const what = early ? `rejected ${rejected} of the ${read} rows read so far (${pct}%): more than --max-bad-ratio ${ratio} of the file whatever the rest holds` : `rejected ${rejected} of ${read} rows (${pct}%), over --max-bad-ratio ${ratio}`;
  const eg = sample.length ? `; e.g. ${sample.join('; ')}` : '';
  return new SegflowError('ERR_TOO_MANY_REJECTS', `${what}${eg}`, { rejected, read, maxBadRatio: ratio });
}

/** All files must agree on which optional columns they have (the shards have one header). */
export function checkConsistent(schemas: FileSchema[], o: AggregateOptions): void {
  const q = schemas.filter((s) => s.names[2]).length;
  if (q > 0 && q < schemas.length) {
    const missing = schemas.find((s) => !s.names[2])!;
    if (!o.quantityCol) {
      throw new SegflowError('ERR_COLUMN', `some inputs have a quantity column and ${missing.file} has none; pass --quantity-col NAME or --quantity-col none`, { file: missing.file });
    }
  }
}

export function roundTimings(t: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(t)) out[k] = Math.round(v * 10) / 10;
  return out;
}

/**
 * Run `fn` over items, all handed to the pool at once (its queue balances them). The first
 * failure aborts `job`, which stops the tasks still queued or running; this returns once every
 * item has settled (so nothing still writes into the temp folder) and throws that first failure.
 */
export async function runAll<T>(items: T[], fn: (item: T) => Promise<void>, job?: AbortController): Promise<void> {
  if (job?.signal.aborted) throw abortError();
  let failed: unknown;
  await Promise.all(
    items.map((item) =>
      fn(item).catch((err) => {
        if (failed === undefined) {
          failed = err;
          job?.abort();
        }
      }),
    ),
  );
  if (failed !== undefined) throw failed;
}

/** Progress bookkeeping and events. */
class Progress {
  bytes = 0;
  records = 0;
  rejects = 0;
  done = 0;
  constructor(
    private readonly cb: ((e: ProgressEvent) => void) | undefined,
    private readonly t0: number,
    private readonly totalBytes: number,
  ) {}
  scanned(bytes: number, rows: number, rejects: number, total: number): void {
    this.bytes += bytes;
    this.records += rows;
    this.rejects += rejects;
    this.done++;
    this.emit('scan', this.done, total);
  }
  unscan(bytes: number, rows: number, rejects: number): void {
    this.bytes -= bytes;
    this.records -= rows;
    this.rejects -= rejects;
    this.done--;
  }
  /** The counts last shown: a range scanned again (after a lost worker) does not take them back. */
  private shown = { bytes: 0, records: 0, rejects: 0 };
  emit(stage: Stage, done: number, total: number): void {
    if (!this.cb) return;
    const shown = this.shown;
    shown.bytes = Math.max(shown.bytes, Math.min(this.bytes, this.totalBytes));
    shown.records = Math.max(shown.records, this.records);
    shown.rejects = Math.max(shown.rejects, this.rejects);
    this.cb({
      stage,
      bytes: shown.bytes,
      totalBytes: this.totalBytes,
      records: shown.records,
      rejects: shown.rejects,
      done,
      total,
      elapsedMs: performance.now() - this.t0,
    });
  }
}

/**
 * Partial sections between scan and merge: held in shared memory up to the budget, then written
 * to spill files (one per scan task, sections back to back, 8-byte aligned) and read back by the
 * merge tasks. Once spilled, the coordinator keeps only the file's name and offsets.
 */
class SpillStore {
  held = 0;
  spilledSections = 0;
  spilledBytes = 0;
  /** Bytes of shared sections dropped since the last GC. */
  private dropped = 0;
  private readonly files = new Map<ScanOutput, { path: string; offsets: number[]; lengths: number[] }>();
  private n = 0;
  constructor(
    private readonly dir: string,
    private readonly budget: number,
  ) {}

  async hold(out: ScanOutput): Promise<void> {
    // dense rows stay in memory (the plan sized them within the budget); they count as held
    this.held += out.dense?.buf.byteLength ?? 0;
    const bytes = out.sections.reduce((s, b) => s + b.byteLength, 0);
    if (this.held + bytes <= this.budget) {
      // dropped sections not yet collected count too: collect them first when they would pass it
      if (this.held + this.dropped + bytes > this.budget) this.collect(true);
      this.held += bytes;
      return;
    }
    fs.mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, `part-${this.n++}.bin`);
    const offsets: number[] = [];
    const lengths: number[] = [];
    let off = 0;
    const fh = await fs.promises.open(file, 'w');
    try {
      for (const s of out.sections) {
        const view = new Uint8Array(s);
        let done = 0;
        while (done < view.length) done += (await fh.write(view, done, view.length - done, off + done)).bytesWritten;
        offsets.push(off);
        lengths.push(view.length);
        off += view.length;
        // keep sections 8-byte aligned in the file
        off = (off + 7) & ~7;
      }
    } finally {
      await fh.close();
    }
    this.spilledSections += out.sections.length;
    this.spilledBytes += bytes;
    this.files.set(out, { path: file, offsets, lengths });
    out.sections = [];
    this.dropped += bytes;
    this.collect();
  }

  /** Free dropped shared sections once a quarter of the budget (at least 16 MiB) is waiting. */
  private collect(force = false): void {
    if (this.dropped === 0 || (!force && this.dropped < Math.max(16 * MiB, this.budget / 4))) return;
    releaseShared();
    this.dropped = 0;
  }

  release(out: ScanOutput): void {
    // dense rows are not freed by a GC here: their worker keeps them for its next job
    this.held -= out.dense?.buf.byteLength ?? 0;
    out.dense = undefined;
    const f = this.files.get(out);
    if (f) {
      fs.rmSync(f.path, { force: true });
      this.files.delete(out);
    } else {
      const bytes = out.sections.reduce((s, b) => s + b.byteLength, 0);
      this.held -= bytes;
      this.dropped += bytes;
      out.sections = [];
    }
  }

  ref(out: ScanOutput, p: number): SegmentRef {
    const f = this.files.get(out);
    if (f) return { path: f.path, offset: f.offsets[p], length: f.lengths[p] };
    return { shared: out.sections[p] };
  }

  /** Forget partition p's sections held in memory (merged: the shared memory can be freed). */
  dropPartition(outs: ScanOutput[], p: number): void {
    for (const out of outs) {
      if (this.files.has(out) || !out.sections[p]) continue;
      this.held -= out.sections[p].byteLength;
      this.dropped += out.sections[p].byteLength;
      out.sections[p] = EMPTY;
    }
    this.collect();
  }

  clear(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const EMPTY = new SharedArrayBuffer(0);

/**
 * Rejected rows between scan and the end of the job: each range's rejects are written to a file in
 * the temp folder as soon as its task returns (line numbers are relative until every earlier range
 * is known), so the coordinator never holds them all. A few are kept to quote in errors.
 */
export class RejectStore {
  private readonly files = new Map<ScanOutput, string>();
  private readonly first: { file: number; offset: number; text: string }[] = [];
  private n = 0;
  constructor(private readonly dir: string) {}

  hold(out: ScanOutput): void {
    if (out.rejects.length === 0) return;
    for (const j of out.rejects.slice(0, 3)) this.first.push({ file: out.fileIndex, offset: j.offset, text: `${j.reason} at byte ${j.offset}` });
    this.first.sort((a, b) => a.file - b.file || a.offset - b.offset);
    this.first.length = Math.min(this.first.length, 3);
    fs.mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, `rejects-${this.n++}.jsonl`);
    const fd = fs.openSync(file, 'w');
    try {
      let text = '';
      for (const j of out.rejects) {
        text += JSON.stringify([j.line, j.offset, j.reason, j.text]) + '\n';
        if (text.length > 1 << 20) {
          fs.writeSync(fd, text);
          text = '';
        }
      }
      if (text) fs.writeSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    this.files.set(out, file);
    out.rejects = [];
  }

  release(out: ScanOutput): void {
    const f = this.files.get(out);
    if (f) fs.rmSync(f, { force: true });
    this.files.delete(out);
  }

  /** The first few reasons (in file order among the ranges seen), for error messages. */
  sample(): string[] {
    return this.first.map((x) => x.text);
  }

  /** The rejects of one range, in order. */
  *read(out: ScanOutput): Generator<RangeReject> {
    const file = this.files.get(out);
    if (!file) {
      yield* out.rejects;
      return;
    }
    for (const line of readLines(file)) {
      const [l, offset, reason, text] = JSON.parse(line) as [number, number, string, string];
      yield { line: l, offset, reason, text };
    }
  }

  clear(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The lines of a file, read in 1 MiB chunks. */
function* readLines(file: string): Generator<string> {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const dec = new StringDecoder('utf8'); // keeps a UTF-8 sequence cut by a chunk for the next
    let rest = '';
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const lines = (rest + dec.write(buf.subarray(0, n))).split('\n');
      rest = lines.pop()!;
      yield* lines;
    }
    rest += dec.end();
    if (rest) yield rest;
  } finally {
    fs.closeSync(fd);
  }
}

/** Write rejects.jsonl with 1-based line numbers in each file, in file and offset order. */
export function writeRejects(file: string, schemas: FileSchema[], ranges: Range[], results: Map<string, ScanOutput>, store: RejectStore): InputSummary[] {
  const fd = fs.openSync(file, 'w');
  const inputs: InputSummary[] = [];
  try {
    schemas.forEach((s, fi) => {
      const rs = ranges.filter((r) => r.fileIndex === fi).sort((a, b) => a.start - b.start);
      let line = s.headerLines;
      const sum: InputSummary = {
        file: s.file,
        bytes: s.size,
        format: s.format,
        compressed: s.compressed,
        ranges: rs.length,
        rows: 0,
        rejected: 0,
        emptyLines: 0,
        columns: { user: s.names[0], amount: s.names[1], ...(s.names[2] ? { quantity: s.names[2] } : {}), ...(s.names[3] ? { date: s.names[3] } : {}) },
      };
      for (const r of rs) {
        const out = results.get(`${r.fileIndex}:${r.rangeIndex}`);
        if (!out) throw new SegflowError('ERR_INTERNAL', `no result for ${s.file} range ${r.rangeIndex}`);
        sum.rows += out.rows;
        sum.rejected += out.rejected;
        sum.emptyLines += out.emptyLines;
        let text = '';
        for (const j of store.read(out)) {
          text += JSON.stringify({ file: s.file, line: line + j.line + 1, offset: j.offset, reason: j.reason, text: j.text }) + '\n';
          if (text.length > 1 << 20) {
            fs.writeSync(fd, text);
            text = '';
          }
        }
        if (text) fs.writeSync(fd, text);
        line += out.newlines;
      }
      inputs.push(sum);
    });
  } finally {
    fs.closeSync(fd);
  }
  return inputs;
}
