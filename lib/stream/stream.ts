/**
 * `segflow stream`: keep the per-user state of a finished `segment` output current from a
 * followed file, a watched folder or standard input.
 *
 * The loop, once per micro-batch (every `batchMs`, or earlier when `batchRows` or a full batch is
 * waiting):
 *   1. poll the source (sizes, rotation, new files) and plan byte ranges (lib/stream/cursor.ts);
 *   2. scan them on the pool with the batch job's scan task: same parsing, exact decimals, rejects;
 *   3. fold the partial sections into the state, assign each touched user the nearest centroid
 *      under the stored scaler, write the changes and rejects;
 *   4. now and then: re-fit the model on the whole state (`reclusterEvery`), checkpoint.
 * The coordinator parses no rows: it folds one partial row per distinct user of a range.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SegflowError } from '../errors.js';
import { SegflowPool } from '../pool.js';
import { KeyTable } from '../table.js';
import { decodeSection } from '../partial.js';
import type { ScanOutput } from '../scan.js';
import type { ColumnOptions } from '../schema.js';
import type { AggregateSummary, InputSummary } from '../types.js';
import { CHECKPOINT, SnapshotBuffers, StateLock, packCheckpoint, readCheckpoint, removeStaleTemps, writeAtomic, type CheckpointMeta, type CursorSchema } from './checkpoint.js';
import { planBatch, scanTask, type Cursor, type Piece } from './cursor.js';
import { FollowSource } from './follow.js';
import { WatchSource } from './watch.js';
import { StdinSource } from './stdin.js';
import type { FileReject, Source } from './source.js';
import { StreamState } from './state.js';
import { readModel, refitModel, spendNames, type ModelInput, type StreamModel } from './model.js';
import { AppendFile, ChangeSink } from './sinks.js';
import { LineWriter } from './lines.js';
import { settle, type Settled, type StreamMetrics, type StreamOptions } from './options.js';
import type { LoadOutput } from './load.js';

/** What a stopped stream resolves to. */
export interface StreamSummary {
  state: string;
  users: number;
  /** Rows counted and rejected in the state, since the history began. */
  rows: number;
  rejected: number;
  /** Records read by this run. */
  records: number;
  moves: number;
  batches: number;
  reclusters: number;
  checkpoints: number;
  elapsedMs: number;
}

/** A running stream. */
export interface StreamHandle {
  /** Resolves once the stream has stopped and written its last checkpoint; rejects when it failed. */
  readonly done: Promise<StreamSummary>;
  /** Stop after the batch in progress, checkpoint, release the pool and the state folder. */
  stop(): Promise<StreamSummary>;
  /** Write a checkpoint now. */
  checkpoint(): Promise<void>;
  /** The metrics now. */
  metrics(): StreamMetrics;
}

/** A batch scanned, waiting to be folded. */
interface Scanned {
  pieces: Piece[];
  outs: ScanOutput[];
  /** When its scan started (the batch's duration runs from there to the end of its fold). */
  t0: number;
}

/** Default bytes per batch and worker when the stream is behind (catching up). */
const BATCH_BYTES_PER_WORKER = 16 << 20;

/**
 * Start a stream. Resolves once the state is loaded (from the checkpoint, or from `from` on the
 * first run) and the source is open.
 *
 * @throws SegflowError ERR_USAGE for bad options or a state folder in use, ERR_BAD_INPUT for a
 *   --from folder that is not a segment output, ERR_COLUMN for columns that do not resolve.
 */
export async function stream(options: StreamOptions): Promise<StreamHandle> {
  const settled = settle(options);
  // a state folder this call makes is removed again when the stream fails to start
  const made = !fs.existsSync(options.state);
  try {
    fs.mkdirSync(options.state, { recursive: true });
  } catch (err) {
    throw new SegflowError('ERR_USAGE', `--state ${path.resolve(options.state)} cannot be created: ${(err as Error).message}`, { state: options.state });
  }
  const lock = StateLock.acquire(options.state);
  const ownPool = !options.pool;
  let pool: SegflowPool | undefined;
  let runner: StreamRunner | undefined;
  try {
    removeStaleTemps(options.state);
    pool = options.pool ?? new SegflowPool({ workers: options.workers });
    runner = new StreamRunner(options, settled, pool, ownPool, lock);
    await runner.open();
    return runner.handle();
  } catch (err) {
    runner?.closeFiles();
    lock.release();
    if (ownPool) await pool?.destroy();
    if (made) fs.rmSync(options.state, { recursive: true, force: true });
    throw err;
  }
}

/** The running stream. */
class StreamRunner {
  private readonly o: StreamOptions;
  private readonly s: Settled;
  private readonly pool: SegflowPool;
  private readonly ownPool: boolean;
  private readonly lock: StateLock;
  private readonly log: (m: string) => void;
  private state!: StreamState;
  private meta!: CheckpointMeta;
  private source!: Source;
  private changes!: ChangeSink;
  private rejects!: AppendFile;
  private inputs = new Map<string, InputSummary>();
  private readonly t0 = performance.now();
  private stopping = false;
  private wake: (() => void) | undefined;
  private donePromise!: Promise<StreamSummary>;
  private checkpointing: Promise<void> | undefined;
  private readonly snapshot = new SnapshotBuffers();
  /** Change lines of a batch; reused (fresh memory is costly to touch, see SnapshotBuffers). */
  private readonly lines = new LineWriter(1 << 16);
  private lastCheckpoint = performance.now();
  private dirty = false;
  private lastFit = performance.now();
  private taskSeq = 0;
  private bytesPerRecord = 64;
  private metricsTimer: NodeJS.Timeout | undefined;
  // counters of this run
  private records = 0;
  private moves = 0;
  private batches = 0;
  private reclusters = 0;
  private checkpoints = 0;
  private batchMs = 0;
  private lastMetrics = { at: performance.now(), records: 0 };
  /** Counters of earlier runs (from the checkpoint). */
  private before = { moves: 0, batches: 0, reclusters: 0 };

  constructor(o: StreamOptions, s: Settled, pool: SegflowPool, ownPool: boolean, lock: StateLock) {
    this.o = o;
    this.s = s;
    this.pool = pool;
    this.ownPool = ownPool;
    this.lock = lock;
    this.log = o.onLog ?? (() => {});
  }

  /** Load the state, open the outputs and the source. */
  async open(): Promise<void> {
    const o = this.o;
    const dir = o.state;
    const loaded = readCheckpoint(dir);
    let fresh = false;
    if (loaded) {
      this.state = loaded.state;
      this.meta = loaded.meta;
      this.log(`resumed from ${path.join(dir, CHECKPOINT)} (${loaded.meta.savedAt}): ${this.state.users} users, ${this.state.rows} rows`);
    } else {
      if (!o.from) throw new SegflowError('ERR_USAGE', `${dir} holds no checkpoint: give --from DIR (a finished segment output) on the first run`, { state: dir });
      await this.loadFrom(o.from);
      fresh = true;
    }
    for (const i of this.meta.inputs) this.inputs.set(inputKey(i.file), i);
    const k = this.meta.counters;
    this.before = { moves: k.moves, batches: k.batches, reclusters: k.reclusters };
    this.rejects = new AppendFile(path.join(dir, 'rejects.jsonl'), this.meta.rejectsBytes);
    if (fresh) {
      // the history's rejects first: the state's rejects are those of every row it counts
      const from = path.join(this.meta.from, 'rejects.jsonl');
      if (fs.existsSync(from)) this.rejects.write(fs.readFileSync(from, 'utf8'));
    }
    this.changes = new ChangeSink(o.changes, o.onChange, this.meta.changes);
    this.source = this.openSource();
    // a first look now, so that a file whose columns do not resolve fails the start, not the loop
    this.writeFileRejects(this.source.poll());
    if (fresh) await this.checkpoint();
    if (o.signal) {
      if (o.signal.aborted) this.stopping = true;
      o.signal.addEventListener('abort', () => void this.stop(), { once: true });
    }
    if (this.s.metricsMs > 0 && o.onMetrics) {
      this.metricsTimer = setInterval(() => o.onMetrics?.(this.metrics()), this.s.metricsMs);
      this.metricsTimer.unref();
    }
    this.donePromise = this.run();
    // the caller may only call stop(): a failure is reported through it and `done`
    this.donePromise.catch(() => {});
  }

  handle(): StreamHandle {
    return {
      done: this.donePromise,
      stop: () => this.stop(),
      checkpoint: () => this.checkpoint(),
      metrics: () => this.metrics(),
    };
  }

  private stop(): Promise<StreamSummary> {
    this.stopping = true;
    this.wake?.();
    return this.donePromise;
  }

  /** The first run: the users shards, model and summary of a segment output. */
  private async loadFrom(from: string): Promise<void> {
    let names: string[];
    try {
      names = fs.readdirSync(from);
    } catch {
      throw new SegflowError('ERR_INPUT_NOT_FOUND', `--from: folder not found: ${from}`, { input: from });
    }
    const shards = names.filter((n) => /^users-\d{5}-of-\d{5}\.csv$/.test(n)).sort();
    if (shards.length === 0) throw new SegflowError('ERR_BAD_INPUT', `--from ${from}: no users-*.csv shards; expected a finished segment (or aggregate) output`, { input: from });
    const P = Number(shards[0].slice(-9, -4));
    if (shards.length !== P || shards.some((n) => Number(n.slice(-9, -4)) !== P)) {
      throw new SegflowError('ERR_BAD_INPUT', `--from ${from}: the users shards are incomplete (${shards.length} of ${P})`, { input: from });
    }
    let summary: Partial<AggregateSummary> = {};
    try {
      summary = JSON.parse(fs.readFileSync(path.join(from, 'summary.json'), 'utf8')) as AggregateSummary;
    } catch {
      this.log(`--from ${from}: no readable summary.json; row counts start from the users shards`);
    }
    const modelPath = path.join(from, 'model.json');
    let model: StreamModel | undefined;
    let modelInput: ModelInput = {};
    if (fs.existsSync(modelPath)) ({ model, input: modelInput } = readModel(modelPath));
    const outs = await Promise.all(
      shards.map((n) => this.pool.run<LoadOutput>('stream', { op: 'load', file: path.join(from, n) }, { signal: this.o.signal, label: `load ${n}` })),
    );
    const flags = outs[0].flags;
    if (outs.some((x) => x.flags !== flags)) throw new SegflowError('ERR_BAD_INPUT', `--from ${from}: the users shards have different columns`, { input: from });
    const users = outs.reduce((s, x) => s + x.users, 0);
    const table = new KeyTable(flags, Math.max(1024, Math.ceil(users * 1.25)));
    table.scale = Math.max(0, summary.scale ?? 0, modelInput.scale ?? 0, ...outs.map((x) => x.scale));
    table.qscale = Math.max(0, ...outs.map((x) => x.qscale));
    const placeholder: StreamModel = model ?? defaultModel();
    const state = new StreamState(table, placeholder, undefined, outs.some((x) => x.dateHasTime));
    for (const x of outs) state.fold(decodeSection(x.section), false);
    state.rows = outs.reduce((s, x) => s + x.rows, 0);
    state.rejected = summary.rows?.rejected ?? 0;
    state.emptyLines = summary.rows?.emptyLines ?? 0;
    if (!model) {
      if (users < placeholder.k) throw new SegflowError('ERR_TOO_FEW_POINTS', `--from ${from}: no model.json, and ${users} users are too few to fit k = ${placeholder.k}`, { input: from });
      this.log(`--from ${from}: no model.json; fitting k = ${placeholder.k} on its ${users} users`);
      state.model = await refitModel(placeholder, state.featureMatrix(), users, this.pool, this.o.signal);
    }
    state.assignAll(new Date().toISOString(), undefined);
    state.rowsAtFit = state.rows;
    this.state = state;
    const inputs = (summary.inputs ?? []).map((i) => ({ ...i }));
    const columns = inputs[0]?.columns;
    if (!modelInput.columns && columns) modelInput = { ...modelInput, columns: { ...columns } };
    if (!modelInput.input && inputs[0]) modelInput = { ...modelInput, input: { format: inputs[0].format } };
    this.meta = {
      savedAt: new Date().toISOString(),
      from: path.resolve(from),
      model: state.model,
      modelInput,
      shards: modelInput.shards ?? summary.shards ?? P,
      inputs,
      fromRead: inputs.filter((i) => !i.compressed).map((i) => [path.resolve(i.file), i.bytes] as [string, number]),
      rejectsBytes: 0,
      counters: { rows: state.rows, rejected: state.rejected, emptyLines: state.emptyLines, rowsAtFit: state.rowsAtFit, moves: 0, batches: 0, reclusters: 0 },
      dateHasTime: state.dateHasTime,
    };
    this.log(`loaded ${users} users (${state.rows} rows) from ${from}; segments ${state.model.names.join(', ')}`);
  }

  /** The column options: the flags, else what the --from output used. */
  private columns(): ColumnOptions {
    const o = this.o;
    const mi = this.meta.modelInput;
    const c = mi.columns ?? {};
    const flags = this.state.table.flags;
    const format = o.format ?? (o.input ? (mi.input?.format ?? 'csv') : undefined);
    return {
      format,
      delimiter: o.delimiter ?? mi.input?.delimiter,
      header: o.header,
      userCol: o.userCol ?? c.user,
      amountCol: o.amountCol ?? c.amount,
      quantityCol: o.quantityCol ?? (flags & 1 ? c.quantity : 'none'),
      dateCol: o.dateCol ?? (flags & 2 ? c.date : undefined),
    };
  }

  private openSource(): Source {
    const o = this.o;
    const ctx = { columns: this.columns(), flags: this.state.table.flags, log: this.log };
    const saved = this.meta.source;
    const fromRead = new Map(this.meta.fromRead ?? []);
    const kind = this.s.source;
    if (kind === 'follow') {
      const src = new FollowSource(o.follow!, ctx);
      const target = path.resolve(o.follow!);
      const rec = saved?.kind === 'follow' && saved.target === target ? saved : undefined;
      if (saved && !rec) this.log(`the state was read from ${saved.kind} ${saved.target || '-'}; now following ${o.follow} from its ${this.s.start === 'end' ? 'end' : 'start'}`);
      src.init(rec, { mode: saved && !rec && this.s.start === 'auto' ? 'beginning' : this.s.start, readBytes: fromRead.get(target) });
      return src;
    }
    if (kind === 'watch') {
      const src = new WatchSource(o.watch!, ctx);
      const target = path.resolve(o.watch!);
      const rec = saved?.kind === 'watch' && saved.target === target ? saved : undefined;
      src.init(rec, this.s.start, fromRead);
      return src;
    }
    const src = new StdinSource(path.join(o.state, 'spool'), ctx);
    src.init(saved?.kind === 'stdin' ? saved : undefined, o.input!);
    return src;
  }

  /** The loop. */
  private async run(): Promise<StreamSummary> {
    const s = this.s;
    const workers = this.pool.workers;
    const maxBatch = this.o.maxBatchBytes ?? Math.min(256 << 20, BATCH_BYTES_PER_WORKER * workers);
    let lastCut = -Infinity;
    let failure: unknown;
    // a pipeline of two: the next batch scans on the workers while this one folds on the coordinator
    let inflight: Promise<Scanned> | undefined;
    try {
      while (!this.stopping || inflight) {
        this.writeFileRejects(this.source.poll());
        this.retireFinished();
        const cursors = this.source.cursors();
        let waiting = 0;
        for (const c of cursors) if (c.fd >= 0) waiting += Math.max(0, c.plannableEnd() - c.next);
        const now = performance.now();
        const rowsBytes = s.batchRows > 0 ? Math.ceil(s.batchRows * this.bytesPerRecord) : Infinity;
        const due = !this.stopping && waiting > 0 && (now - lastCut >= s.batchMs || waiting >= maxBatch || waiting >= rowsBytes);
        const next = due ? this.scan(planBatch(cursors, Math.min(maxBatch, s.batchRows > 0 ? Math.max(rowsBytes, 4096) : maxBatch), workers)) : undefined;
        if (next) {
          lastCut = now;
          next.catch(() => {}); // awaited below; a failure is taken there
        }
        if (inflight) {
          const done = inflight;
          inflight = next;
          await this.fold(await done);
          await this.afterBatch();
          continue;
        }
        if (next) {
          inflight = next;
          continue;
        }
        if (this.stopping) break;
        if (waiting === 0 && (this.source.ended() || this.o.once)) break;
        await this.afterBatch();
        // data waiting: until the batch is due; none: poll again after a batch interval (sooner with --batch-rows)
        const idle = s.batchRows > 0 ? Math.min(s.batchMs, 25) : s.batchMs;
        await this.sleep(waiting > 0 ? Math.max(1, lastCut + s.batchMs - now) : Math.max(5, idle));
      }
    } catch (err) {
      failure = err;
      // a batch still scanning folds nothing: its bytes are read again after a restart
      await inflight?.catch(() => {});
    }
    clearInterval(this.metricsTimer);
    try {
      // the last checkpoint: after a failure the state is still consistent (a failed batch folded nothing)
      if (!failure || this.foldSafe) await this.checkpoint();
    } catch (err) {
      failure ??= err;
    }
    this.closeFiles();
    this.lock.release();
    if (this.ownPool) await this.pool.destroy();
    if (failure) throw failure;
    return this.summary();
  }

  /** Close the source's files and the outputs (those opened so far). */
  closeFiles(): void {
    (this.source as Source | undefined)?.close();
    (this.changes as ChangeSink | undefined)?.close();
    (this.rejects as AppendFile | undefined)?.close();
  }

  /** A failure outside a fold leaves the state consistent (checkpointable). */
  private foldSafe = true;

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  /** Scan a batch's ranges on the pool (a CSV file with quoted line breaks again whole). */
  private async scan(planned: Piece[]): Promise<Scanned> {
    const t0 = performance.now();
    const scanned = await Promise.all(
      planned.map((p) => this.pool.run<ScanOutput>('scan', scanTask(p, this.taskSeq++), { label: `${p.cursor.label} bytes ${p.start}-${p.end}` })),
    );
    return { ...(await this.rescanQuoted(planned, scanned)), t0 };
  }

  /** Fold a scanned batch in order, assign the touched users, write the changes and rejects. */
  private async fold({ pieces, outs, t0 }: Scanned): Promise<void> {
    if (pieces.length === 0) return;
    const state = this.state;
    const at = new Date().toISOString();
    const rejectLines: string[] = [];
    this.foldSafe = false;
    state.beginBatch();
    let records = 0;
    let bytes = 0;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      const out = outs[i];
      const c = p.cursor;
      if (out.sections.length > 0) state.fold(decodeSection(out.sections[0]));
      for (const j of out.rejects) {
        rejectLines.push(JSON.stringify({ file: c.label, line: c.lines + j.line + 1, offset: c.base + j.offset, reason: j.reason, text: j.text }) + '\n');
      }
      c.lines += out.newlines;
      state.rows += out.rows;
      state.rejected += out.rejected;
      state.emptyLines += out.emptyLines;
      if (out.dateHasTime) state.dateHasTime = true;
      records += out.rows + out.rejected;
      c.pending--;
      if (p.last) {
        const end = c.schema.compressed ? c.size : c.sealed && p.end >= c.size ? Math.max(p.end, out.endOffset) : p.end;
        bytes += c.schema.compressed ? out.endOffset : end - c.offset;
        c.offset = end;
        if (c.sealed && end > c.next) c.next = end;
      }
      this.account(c, out);
    }
    const lines = this.lines;
    lines.len = 0;
    lines.count = 0;
    // nobody reads the changes: count them, write nothing
    const moves = state.emitChanges(at, this.changes.wanted ? lines : undefined);
    this.foldSafe = true;
    this.rejects.write(rejectLines.join(''));
    await this.changes.write(lines);
    this.moves += moves;
    this.records += records;
    this.batches++;
    this.dirty = true;
    if (records > 0) this.bytesPerRecord = Math.max(8, bytes / records);
    this.batchMs = performance.now() - t0;
  }

  /**
   * A CSV record whose quoted field spans lines cannot be placed by byte ranges (lib/aggregate.ts
   * reads such a file again in one range): a cursor's run that was split is scanned again whole.
   */
  private async rescanQuoted(pieces: Piece[], outs: ScanOutput[]): Promise<{ pieces: Piece[]; outs: ScanOutput[] }> {
    const redo = new Set<Cursor>();
    const count = new Map<Cursor, number>();
    pieces.forEach((p, i) => {
      count.set(p.cursor, (count.get(p.cursor) ?? 0) + 1);
      if (outs[i].quotedNewlines > 0) redo.add(p.cursor);
    });
    for (const c of redo) if ((count.get(c) ?? 0) < 2) redo.delete(c);
    if (redo.size === 0) return { pieces, outs };
    const P: Piece[] = [];
    const O: ScanOutput[] = [];
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      if (!redo.has(p.cursor)) {
        P.push(p);
        O.push(outs[i]);
        continue;
      }
      if (!p.atRecordStart) continue; // folded into the first range of the run
      let last = i;
      while (last + 1 < pieces.length && pieces[last + 1].cursor === p.cursor && !pieces[last + 1].atRecordStart) last++;
      const whole: Piece = { cursor: p.cursor, start: p.start, end: pieces[last].end, atRecordStart: true, last: true };
      p.cursor.pending -= last - i;
      P.push(whole);
      O.push(await this.pool.run<ScanOutput>('scan', scanTask(whole, this.taskSeq++), { label: `${p.cursor.label} bytes ${whole.start}-${whole.end}` }));
    }
    return { pieces: P, outs: O };
  }

  /** Per-file counts, for the export's summary. */
  private account(c: Cursor, out: ScanOutput): void {
    const key = c.label === '-' ? '-' : inputKey(c.label);
    let i = this.inputs.get(key);
    if (!i) {
      const sc: CursorSchema = c.schema;
      i = {
        file: c.label,
        bytes: 0,
        format: sc.format,
        compressed: sc.compressed,
        ranges: 0,
        rows: 0,
        rejected: 0,
        emptyLines: 0,
        columns: { user: sc.names[0], amount: sc.names[1], ...(sc.names[2] ? { quantity: sc.names[2] } : {}), ...(sc.names[3] ? { date: sc.names[3] } : {}) },
      };
      this.inputs.set(key, i);
    }
    i.ranges++;
    i.rows += out.rows;
    i.rejected += out.rejected;
    i.emptyLines += out.emptyLines;
    i.bytes = c.label === '-' ? i.bytes + Math.max(0, out.endOffset - out.firstRecord) : Math.max(i.bytes, c.offset);
  }

  private writeFileRejects(rejects: FileReject[]): void {
    if (rejects.length === 0) return;
    this.rejects.write(rejects.map((r) => JSON.stringify(r) + '\n').join(''));
    this.dirty = true;
  }

  private retireFinished(): void {
    for (const c of [...this.source.cursors()]) if (c.finished) this.source.retire(c);
  }

  /** Re-cluster and checkpoint when due. */
  private async afterBatch(): Promise<void> {
    const r = this.s.recluster;
    const now = performance.now();
    if (r.kind === 'time' && now - this.lastFit >= r.ms && this.dirty) await this.recluster();
    else if (r.kind === 'share' && this.state.rows - this.state.rowsAtFit >= r.share * Math.max(1, this.state.rowsAtFit)) await this.recluster();
    if (this.dirty && performance.now() - this.lastCheckpoint >= this.s.checkpointMs && !this.checkpointing) {
      // in the background: the next batch runs while the file is written
      void this.checkpoint().catch((err) => {
        this.log(`checkpoint failed: ${(err as Error).message}`);
      });
    }
  }

  /** Re-fit the model on the whole state on the pool; emit the moves. */
  private async recluster(): Promise<void> {
    const state = this.state;
    const n = state.users;
    this.lastFit = performance.now();
    if (n < state.model.k) return;
    const t0 = performance.now();
    const prev = state.model;
    state.model = await refitModel(prev, state.featureMatrix(), n, this.pool);
    state.rowsAtFit = state.rows;
    const lines = new LineWriter(1 << 20);
    const moved = state.assignAll(new Date().toISOString(), lines, prev);
    await this.changes.write(lines);
    this.moves += moved;
    this.reclusters++;
    this.dirty = true;
    this.log(`re-clustered ${n} users in ${Math.round(performance.now() - t0)} ms: ${moved} moved; segments ${state.model.names.join(', ')}`);
  }

  /** Write a checkpoint (one at a time; the state is captured synchronously). */
  private async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing;
    this.changes.sync();
    this.rejects.sync();
    const state = this.state;
    const meta: CheckpointMeta = {
      ...this.meta,
      savedAt: new Date().toISOString(),
      model: state.model,
      source: this.source?.record(),
      inputs: [...this.inputs.values()],
      changes: this.changes.record() ?? this.meta.changes,
      rejectsBytes: this.rejects.bytes,
      counters: {
        rows: state.rows,
        rejected: state.rejected,
        emptyLines: state.emptyLines,
        rowsAtFit: state.rowsAtFit,
        moves: this.before.moves + this.moves,
        batches: this.before.batches + this.batches,
        reclusters: this.before.reclusters + this.reclusters,
      },
      dateHasTime: state.dateHasTime,
    };
    const packed = packCheckpoint(state, meta, this.snapshot);
    this.dirty = false;
    this.lastCheckpoint = performance.now();
    const run = (async () => {
      await writeAtomic(path.join(this.o.state, CHECKPOINT), packed.parts);
      this.source?.checkpointed();
      this.checkpoints++;
    })();
    this.checkpointing = run;
    try {
      await run;
    } finally {
      this.checkpointing = undefined;
    }
    this.meta = meta;
  }

  metrics(): StreamMetrics {
    const now = performance.now();
    const dt = (now - this.lastMetrics.at) / 1000;
    const rate = dt > 0 ? (this.records - this.lastMetrics.records) / dt : 0;
    this.lastMetrics = { at: now, records: this.records };
    let lag = 0;
    for (const c of this.source?.cursors() ?? []) lag += Math.max(0, c.size - c.offset);
    return {
      elapsedMs: Math.round(now - this.t0),
      records: this.records,
      recordsPerSec: Math.round(rate),
      lagBytes: lag,
      users: this.state.users,
      moves: this.moves,
      rows: this.state.rows,
      rejected: this.state.rejected,
      batches: this.batches,
      batchMs: Math.round(this.batchMs * 10) / 10,
      reclusters: this.reclusters,
    };
  }

  private summary(): StreamSummary {
    return {
      state: path.resolve(this.o.state),
      users: this.state.users,
      rows: this.state.rows,
      rejected: this.state.rejected,
      records: this.records,
      moves: this.moves,
      batches: this.batches,
      reclusters: this.reclusters,
      checkpoints: this.checkpoints,
      elapsedMs: Math.round(performance.now() - this.t0),
    };
  }
}

/** A model to start from when --from has none: k = 3 on purchases and total, log1p then z-score. */
function defaultModel(): StreamModel {
  const scaler = { method: 'log-zscore' as const, mean: [0, 0], std: [1, 1] };
  const centroids = [0, 0, 1, 1, 2, 2];
  return {
    k: 3,
    d: 2,
    features: ['purchases', 'total'],
    scaler,
    centroids,
    names: spendNames(centroids, 3, 2, scaler, ['purchases', 'total']),
    fit: { seed: 42, nInit: 1, maxIter: 300, tol: 1e-4 },
    extra: {},
  };
}

function inputKey(file: string): string {
  return file === '-' ? '-' : path.resolve(file);
}
