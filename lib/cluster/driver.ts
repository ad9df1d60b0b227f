/**
 * The cluster driver: `aggregate` / `segment` with `--cluster redis://HOST:PORT --store URL`. It
 * plans byte ranges exactly as a local run does, hands the scans and then the merges to the
 * `segflow worker` processes as two BullMQ flows (a parent job per stage whose children are the
 * tasks; the parent waits in a queue no worker reads, so its state says when every task is done or
 * one has failed for good), follows their progress, and commits:
 *
 *   1. plan.json (once per run id; a restarted driver checks its plan against it)
 *   2. the scan flow; its committed attempts go to scans.json, which every merge reads
 *   3. the merge flow; each merge writes its shard as an object of its own attempt
 *   4. the output folder: shards copied from the store, rejects.jsonl from the scans' indexes
 *   5. _SUCCESS, naming exactly one committed attempt per task (the one whose completion BullMQ
 *      accepted under its lock token), written last
 *   6. orphaned attempts deleted, the run's jobs removed from Redis
 *
 * A driver that dies and restarts with the same --run-id finds the flows in Redis and waits on them
 * again (finished scans are not run again); once _SUCCESS exists it only rebuilds the output from
 * the store.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlowProducer, Job, Queue, type FlowChildJob } from 'bullmq';
import type { Redis } from 'ioredis';
import { SegflowError } from '../errors.js';
import { SegflowPool, abortError } from '../pool.js';
import { defaultRangeSize, planRanges, queueOrder, type Range } from '../split.js';
import type { FileSchema } from '../schema.js';
import { scanTaskOf, type ScanOutput } from '../scan.js';
import { F_DATE, F_QTY } from '../table.js';
import { formatScaled } from '../util/exact.js';
import { OutputDir } from '../output.js';
import { RejectStore, checkConsistent, roundTimings, settle, shardName, writeRejects, type AggregateResult } from '../aggregate.js';
import type { AggregateOptions, AggregateSummary, ProgressEvent, Stage as ProgressStage } from '../types.js';
import { VERSION } from '../version.js';
import { connect, checkRedisUrl } from './redis.js';
import { forEachLimit, openStore, type Store } from './store.js';
import { decodeIndex } from './partial-object.js';
import { readClusterSchema, resolveClusterInputs } from './inputs.js';
import {
  ATTEMPTS,
  DEFAULT_QUEUE,
  RUN_ID,
  decodeFailure,
  jobIds,
  keys,
  newRunId,
  redisKeys,
  runsQueue,
  sha1,
  type MergeJobData,
  type MergeJobResult,
  type ScanCommit,
  type ScanCommits,
  type ScanJobData,
  type ScanJobResult,
  type Stage,
} from './protocol.js';

/** The cluster flags of `aggregate` and `segment`. */
export interface ClusterOptions {
  /** redis://HOST:PORT of the queue the `segflow worker` processes serve. */
  cluster: string;
  /** s3://bucket/prefix or file:///path: where partials, shards and the manifest go. */
  store: string;
  /** Names the run: a driver restarted with the same id resumes it (default: a new id). */
  runId?: string;
  /** The work queue (default `segflow`, as the workers). */
  queue?: string;
  /** Milliseconds between progress polls (default 100). */
  pollMs?: number;
}

/** `aggregate` options with the cluster flags. */
export type ClusterAggregateOptions = AggregateOptions & ClusterOptions;

/** What a cluster run adds to summary.json. */
export interface ClusterInfo {
  runId: string;
  queue: string;
  store: string;
  /** The run was found in progress (or committed) and resumed. */
  resumed: boolean;
  /** Worker threads registered when the run was planned. */
  threads: number;
  tasks: { scan: number; merge: number };
  /** Attempts started beyond one per task (failures and lost locks), and lost locks. */
  retries: number;
  stalls: number;
  /** Completions from attempts that had lost their lock, rejected by the lock-token check. */
  lateCompletionsRejected: number;
  /** Objects of attempts that were not committed, deleted at the commit. */
  orphansDeleted: number;
  /** Bytes of the committed partial objects and shard objects in the store. */
  storedBytes: number;
  manifest: string;
}

/** summary.json of a cluster run. */
export type ClusterSummary = AggregateSummary & { cluster: ClusterInfo };

/** The plan of a run, as plan.json holds it. */
interface Plan {
  version: 1;
  runId: string;
  fingerprint: string;
  shards: number;
  rangeSize: number;
  threads: number;
  flags: number;
  schemas: FileSchema[];
  /** Where the workers read each input: an absolute path or an s3:// URL. */
  sources: string[];
  ranges: Range[];
}

/** The manifest (_SUCCESS). */
interface Manifest {
  version: 1;
  runId: string;
  committedAt: string;
  shards: number;
  ranges: Range[];
  scans: (ScanJobResult & { task: string; file: string; start: number; end: number })[];
  merges: MergeJobResult[];
  files: string[];
  warnings: string[];
}

/** Child job options: 4 attempts with backoff; a task that fails for good fails its stage. */
const CHILD_OPTS = {
  attempts: ATTEMPTS,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: false,
  removeOnFail: false,
  failParentOnFailure: true,
} as const;

const rangeKey = (r: { fileIndex: number; rangeIndex: number }): string => `${r.fileIndex}:${r.rangeIndex}`;

/** Run `aggregate` on a cluster: resolves to the summary it writes as summary.json. */
export async function aggregateOnCluster(options: ClusterAggregateOptions): Promise<ClusterSummary> {
  const r = await runAggregateOnCluster(options, 'aggregate');
  try {
    r.output.commit();
  } finally {
    if (r.ownPool) await r.pool.destroy();
  }
  return r.summary as ClusterSummary;
}

/** Wait for a connection to be ready (the first time only; later outages are waited out). */
async function ready(redis: Redis, url: string, ms: number, signal?: AbortSignal): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onReady = (): void => done();
    const onAbort = (): void => done(abortError());
    const timer = setTimeout(() => done(new SegflowError('ERR_USAGE', `--cluster ${url}: no Redis answered within ${ms / 1000} s`)), ms);
    redis.once('ready', onReady);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The aggregate stage on a cluster, leaving the output uncommitted (so `segment` can add its files)
 * and a local pool open for what follows (k-means runs on the driver's machine).
 */
export async function runAggregateOnCluster(o: AggregateOptions & Partial<ClusterOptions>, command: 'aggregate' | 'segment'): Promise<AggregateResult> {
  const t0 = performance.now();
  const options = o as ClusterAggregateOptions;
  const { shards, memory, maxBadRatio } = settle(options);
  const redisUrl = checkRedisUrl(options.cluster, '--cluster');
  const runId = options.runId ?? newRunId();
  if (!RUN_ID.test(runId)) throw new SegflowError('ERR_USAGE', `--run-id ${runId}: use 1 to 64 letters, digits, '.', '_' or '-'`);
  const store = openStore(options.store ?? '');
  const signal = options.signal;
  if (signal?.aborted) throw abortError();
  const output = OutputDir.create(options.out, options.force);
  const redis = connect(redisUrl);
  const queueName = options.queue ?? DEFAULT_QUEUE;
  let work: Queue | undefined;
  let runs: Queue | undefined;
  let flow: FlowProducer | undefined;
  try {
    await ready(redis, redisUrl, 10_000, signal);
    work = new Queue(queueName, { connection: redis });
    runs = new Queue(runsQueue(queueName), { connection: redis });
    flow = new FlowProducer({ connection: redis });
    const driver = new Driver({ options, command, t0, shards, memory, maxBadRatio, runId, store, redis, work, runs, flow, queueName, output });
    const summary = await driver.run();
    const pool = options.pool ?? new SegflowPool({ workers: options.workers });
    return { summary, output, pool, ownPool: !options.pool };
  } catch (err) {
    output.discard();
    // a run that did not fail for good can be resumed: say how
    const resume = `; resume it with --run-id ${runId}`;
    if (signal?.aborted) throw new SegflowError('ERR_ABORTED', `the job was aborted${resume}`, { runId });
    if (err instanceof SegflowError && err.code === 'ERR_INTERNAL' && !err.details.runId) throw new SegflowError(err.code, err.message + resume, { ...err.details, runId });
    throw err;
  } finally {
    await Promise.allSettled([work?.close(), runs?.close(), flow?.close()]);
    redis.disconnect();
    store.close();
  }
}

interface DriverContext {
  options: ClusterAggregateOptions;
  command: 'aggregate' | 'segment';
  t0: number;
  shards: number;
  memory: number;
  maxBadRatio: number;
  runId: string;
  store: Store;
  redis: Redis;
  work: Queue;
  runs: Queue;
  flow: FlowProducer;
  queueName: string;
  output: OutputDir;
}

/** One cluster run, from plan to commit. */
class Driver {
  private readonly c: DriverContext;
  private readonly timings: Record<string, number> = {};
  private readonly warnings: string[] = [];
  private resumed = false;
  private failedForGood = false;
  private lastProgress = 0;
  private lastStage: ProgressStage | undefined;

  constructor(c: DriverContext) {
    this.c = c;
  }

  private get signal(): AbortSignal | undefined {
    return this.c.options.signal;
  }

  async run(): Promise<AggregateSummary> {
    const { store, runId } = this.c;
    const manifestRaw = await store.get(keys.manifest(runId));
    if (manifestRaw) return this.fromManifest(JSON.parse(manifestRaw.toString('utf8')) as Manifest);
    const plan = await this.plan();
    const totalBytes = plan.schemas.reduce((s, f) => s + (f.compressed ? f.size * 4 : f.size - f.dataStart), 0);
    this.progress('plan', 0, 1, totalBytes, 0, 0, 0);
    this.timings.plan = performance.now() - this.c.t0;

    try {
      // --- scan
      const t1 = performance.now();
      let ranges = plan.ranges;
      const scans = await this.runScans('scan', plan, ranges, totalBytes);
      const whole = new Set<number>();
      for (const r of ranges) {
        const out = scans.get(rangeKey(r))!;
        if (out.quotedNewlines > 0 && ranges.filter((x) => x.fileIndex === r.fileIndex).length > 1) whole.add(r.fileIndex);
      }
      if (whole.size > 0) {
        // a file whose quoted fields span lines cannot be split by bytes: read it again in one range
        const redo: Range[] = [...whole].sort((a, b) => a - b).map((fi) => ({
          fileIndex: fi,
          rangeIndex: 0,
          start: plan.schemas[fi].dataStart,
          end: plan.schemas[fi].size,
          atRecordStart: true,
          weight: plan.schemas[fi].size - plan.schemas[fi].dataStart,
        }));
        for (const fi of whole) this.warnings.push(`${plan.schemas[fi].file}: quoted fields span lines, so byte ranges cannot place every record; the file was read again in one range`);
        for (const r of ranges) if (whole.has(r.fileIndex)) scans.delete(rangeKey(r));
        const again = await this.runScans('rescan', plan, redo, totalBytes);
        for (const [k, v] of again) scans.set(k, v);
        ranges = ranges.filter((r) => !whole.has(r.fileIndex)).concat(redo);
      }
      const outs = [...scans.values()];
      const counted = outs.reduce((s, o) => s + o.rows, 0);
      const rejected = outs.reduce((s, o) => s + o.rejected, 0);
      const seen = counted + rejected;
      if (this.c.maxBadRatio < 1 && seen > 0 && rejected / seen > this.c.maxBadRatio) {
        this.failedForGood = true;
        throw new SegflowError('ERR_TOO_MANY_REJECTS', `rejected ${rejected} of ${seen} rows (${((100 * rejected) / seen).toFixed(2)}%), over --max-bad-ratio ${this.c.maxBadRatio}`, {
          rejected,
          read: seen,
          maxBadRatio: this.c.maxBadRatio,
        });
      }
      this.timings.scan = performance.now() - t1;

      // --- merge
      const t2 = performance.now();
      const merges = await this.runMerges(plan, ranges, scans, totalBytes, counted, rejected);
      this.timings.merge = performance.now() - t2;

      // --- output, manifest, cleanup
      const manifest: Manifest = {
        version: 1,
        runId,
        committedAt: new Date().toISOString(),
        shards: plan.shards,
        ranges,
        scans: ranges.map((r) => {
          const s = scans.get(rangeKey(r))!;
          return { ...s, task: taskName(r, plan.ranges), file: plan.schemas[r.fileIndex].file, start: r.start, end: r.end };
        }),
        merges,
        files: [...shardFiles(plan.shards), 'rejects.jsonl', 'summary.json'],
        warnings: this.warnings,
      };
      return await this.commit(plan, manifest, totalBytes);
    } catch (err) {
      // a run that failed for good (a task, or too many rejects) leaves no manifest, no jobs and no
      // partials; anything else (an abort, the store or Redis failing the driver) leaves the run as
      // it is for a driver restarted with the same --run-id
      if (this.failedForGood && !this.signal?.aborted) await this.removeRun(true);
      throw err;
    }
  }

  /** This job's inputs, their schemas, and the fingerprint a run's plan must match to be this job's. */
  private async fingerprint(): Promise<{ sources: string[]; schemas: Awaited<ReturnType<typeof readClusterSchema>>[]; fingerprint: string }> {
    const { options, shards } = this.c;
    const inputs = await resolveClusterInputs(options.input);
    const schemas = await Promise.all(inputs.map((i) => readClusterSchema(i, options)));
    checkConsistent(schemas, options);
    const sources = inputs.map((i) => i.source);
    const mtimes = sources.map((s) => (s.startsWith('s3://') ? 0 : fs.statSync(s).mtimeMs));
    const fingerprint = sha1(
      JSON.stringify({
        shards,
        sources,
        mtimes,
        schemas: schemas.map((s) => [s.file, s.size, s.compressed, s.format, s.delimiter, s.dataStart, s.headerLines, s.header, s.fieldCount, s.user, s.amount, s.quantity, s.date, s.names]),
      }),
    );
    return { sources, schemas, fingerprint };
  }

  /** Fail when the run's plan was made for other inputs or options than this job's. */
  private checkSameJob(p: Plan, fingerprint: string): void {
    if (p.fingerprint !== fingerprint) {
      const { store, runId } = this.c;
      throw new SegflowError('ERR_USAGE', `run ${runId} in ${store.url} was planned for other inputs or options (inputs, their sizes, columns or --shards differ); use a new --run-id`, { runId });
    }
  }

  /** Plan the run, or load the plan of the run being resumed and check it still holds. */
  private async plan(): Promise<Plan> {
    const { options, store, runId, shards } = this.c;
    const { sources, schemas, fingerprint } = await this.fingerprint();
    const prior = await store.get(keys.plan(runId));
    if (prior) {
      const p = JSON.parse(prior.toString('utf8')) as Plan;
      this.checkSameJob(p, fingerprint);
      this.resumed = true;
      return p;
    }
    const threads = await liveThreads(this.c.redis, this.c.queueName);
    const totalBytes = schemas.reduce((s, f) => s + (f.compressed ? f.size * 4 : f.size - f.dataStart), 0);
    const rangeSize = options.rangeSize ?? defaultRangeSize(totalBytes, Math.max(1, threads));
    const plan: Plan = {
      version: 1,
      runId,
      fingerprint,
      shards,
      rangeSize,
      threads,
      flags: (schemas.some((s) => s.names[2]) ? F_QTY : 0) | (schemas.some((s) => s.names[3]) ? F_DATE : 0),
      schemas,
      sources,
      ranges: planRanges(schemas, rangeSize),
    };
    await store.put(keys.plan(runId), JSON.stringify(plan));
    return plan;
  }

  /** Scan ranges as one flow; resolves to each range's committed attempt. */
  private async runScans(stage: 'scan' | 'rescan', plan: Plan, ranges: Range[], totalBytes: number): Promise<Map<string, ScanJobResult>> {
    const { runId, store } = this.c;
    const indexOf = (r: Range): number => (stage === 'scan' ? plan.ranges.indexOf(r) : r.fileIndex);
    const order = stage === 'scan' ? queueOrder(ranges) : ranges;
    const tasks = order.map((r) => {
      const s = plan.schemas[r.fileIndex];
      const index = indexOf(r);
      const task = scanTaskOf(plan.sources[r.fileIndex], s, r, plan.shards, index);
      const data: ScanJobData = {
        runId,
        store: store.url,
        name: `${stage}.${index}`,
        label: rangeLabel(s, r),
        task,
        inputSize: plan.sources[r.fileIndex].startsWith('s3://') ? s.size : undefined,
      };
      return { index, data: data as unknown as Record<string, unknown> };
    });
    const byIndex = new Map(ranges.map((r) => [indexOf(r), r]));
    const values = await this.runStage<ScanJobResult>(stage, 'scan', tasks, (done, vals) => {
      let bytes = 0;
      let records = 0;
      let rejects = 0;
      for (const [i, v] of vals) {
        bytes += byIndex.get(i)?.weight ?? 0;
        records += v.rows;
        rejects += v.rejected;
      }
      this.progress('scan', done, tasks.length, totalBytes, bytes, records, rejects);
    });
    const out = new Map<string, ScanJobResult>();
    for (const [i, v] of values) out.set(rangeKey(byIndex.get(i)!), v);
    return out;
  }

  /** Write scans.json (the committed scans) and run the merges as one flow. */
  private async runMerges(plan: Plan, ranges: Range[], scans: Map<string, ScanJobResult>, totalBytes: number, records: number, rejects: number): Promise<MergeJobResult[]> {
    const { runId, store, runs } = this.c;
    const commits: ScanCommits = {
      runId,
      partitions: plan.shards,
      scans: ranges.map((r): ScanCommit => {
        const s = scans.get(rangeKey(r))!;
        return { task: taskName(r, plan.ranges), file: plan.schemas[r.fileIndex].file, start: r.start, end: r.end, attempt: s.attempt, key: s.key, sections: s.sections };
      }),
    };
    const text = JSON.stringify(commits);
    // merges in flight read the scans.json they were planned with: never replace it under them
    const merging = (await runs.getJobState(jobIds.parent(runId, 'merge'))) !== 'unknown';
    let digest = sha1(text);
    if (merging) {
      const current = await store.get(keys.scans(runId));
      if (!current) throw new SegflowError('ERR_INTERNAL', `run ${runId}: merges are queued but ${keys.scans(runId)} is missing from the store`);
      digest = sha1(current);
    } else await store.put(keys.scans(runId), text);
    const outs = [...scans.values()];
    const common = {
      runId,
      store: store.url,
      partitions: plan.shards,
      flags: plan.flags,
      scale: Math.max(0, ...outs.map((o) => o.scale)),
      qscale: Math.max(0, ...outs.map((o) => o.qscale)),
      dateHasTime: outs.some((o) => o.dateHasTime),
      scansDigest: digest,
    };
    const names = shardFiles(plan.shards);
    const tasks = names.map((name, p) => {
      const data: MergeJobData = { ...common, partition: p, label: `partition ${p} (${name})` };
      return { index: p, data: data as unknown as Record<string, unknown> };
    });
    const values = await this.runStage<MergeJobResult>('merge', 'merge', tasks, (done) => this.progress('merge', done, tasks.length, totalBytes, totalBytes, records, rejects));
    return names.map((_, p) => values.get(p)!);
  }

  /**
   * Add a stage's flow unless it is already in Redis (a resumed run), then follow it until every
   * task has a committed result, or one has failed for good.
   */
  private async runStage<R>(
    stage: Stage,
    jobName: 'scan' | 'merge',
    tasks: { index: number; data: Record<string, unknown> }[],
    onProgress: (done: number, values: Map<number, R>) => void,
  ): Promise<Map<number, R>> {
    const { runId, runs, flow, queueName } = this.c;
    const parentId = jobIds.parent(runId, stage);
    const add = async (): Promise<void> => {
      const children: FlowChildJob[] = tasks.map((t) => ({
        name: jobName,
        queueName,
        data: t.data,
        opts: { ...CHILD_OPTS, jobId: jobIds.task(runId, stage, t.index) },
      }));
      // one MULTI: the parent and all its tasks appear together or not at all
      await flow.add({ name: stage, queueName: runsQueue(queueName), data: { runId }, opts: { jobId: parentId, removeOnComplete: false, removeOnFail: false }, children });
    };
    if ((await runs.getJobState(parentId)) === 'unknown') await add();
    else this.resumed = true;
    const pollMs = this.c.options.pollMs ?? 100;
    const values = new Map<number, R>();
    let seen = -1;
    let lastFetch = 0;
    let readds = 0;
    // bounded by the job itself: each round either waits pollMs or returns; an abort ends it
    for (;;) {
      if (this.signal?.aborted) throw abortError();
      const parent = await Job.fromId(runs, parentId);
      if (!parent) {
        // the stage vanished from Redis (a Redis restarted without its data): queue it again
        if (++readds > 3) throw new SegflowError('ERR_INTERNAL', `run ${runId}: the ${stage} jobs keep vanishing from Redis`);
        await add();
        continue;
      }
      const counts = (await parent.getDependenciesCount()) as { processed?: number; unprocessed?: number; failed?: number };
      if ((counts.failed ?? 0) > 0) {
        this.failedForGood = true;
        throw await this.stageFailure(parent, stage);
      }
      const processed = counts.processed ?? 0;
      const finished = (counts.unprocessed ?? 0) === 0;
      const now = performance.now();
      // children values are O(tasks): fetch them when they changed, at most every 250 ms + 1 ms/task
      if (finished || (processed !== seen && now - lastFetch >= 250 + tasks.length)) {
        lastFetch = now;
        seen = processed;
        values.clear();
        for (const [k, v] of Object.entries((await parent.getChildrenValues()) ?? {})) {
          const m = /\.(\d+)$/.exec(k);
          if (m) values.set(Number(m[1]), v as R);
        }
        onProgress(values.size, values);
      }
      if (finished) {
        const missing = tasks.filter((t) => !values.has(t.index));
        if (missing.length === 0) return values;
        throw new SegflowError('ERR_INTERNAL', `run ${runId}: ${stage} stage finished without a result for ${missing.length} tasks`);
      }
      try {
        await sleep(pollMs, undefined, { signal: this.signal });
      } catch {
        throw abortError();
      }
    }
  }

  /** The error of a stage whose task failed for good: the task's own code, with `file:range`. */
  private async stageFailure(parent: Job, stage: Stage): Promise<SegflowError> {
    const { work, runId } = this.c;
    const deps = await parent.getDependencies();
    const childKey = (deps.failed ?? [])[0] ?? /child (\S+) failed/.exec(parent.deferredFailure ?? parent.failedReason ?? '')?.[1] ?? '';
    const childId = childKey.slice(childKey.lastIndexOf(':') + 1);
    const child = childId ? await Job.fromId(work, childId) : undefined;
    const label = (child?.data as { label?: string } | undefined)?.label ?? childId;
    const { code, message } = decodeFailure(child?.failedReason);
    const kind = stage === 'merge' ? 'merge' : 'scan';
    if (code !== 'ERR_INTERNAL') return new SegflowError(code as SegflowError['code'], message, { runId, task: childId, label });
    const attempts = child?.attemptsMade ?? ATTEMPTS;
    const stalls = child?.stalledCounter ? ` and ${child.stalledCounter} lost locks` : '';
    return new SegflowError('ERR_TASK_FAILED', `${kind} task ${label} failed after ${attempts} attempts${stalls}; last error: ${message}`, {
      runId,
      task: kind,
      label,
      attempts,
      lastError: message,
    });
  }

  /** Build the output folder, write _SUCCESS, delete orphans, remove the jobs; the summary. */
  private async commit(plan: Plan, manifest: Manifest, totalBytes: number): Promise<AggregateSummary> {
    const { store, runId } = this.c;
    const t3 = performance.now();
    const numbers = await this.materialize(plan, manifest);
    this.timings.write = performance.now() - t3;
    const attempts = await this.attemptStats(manifest);
    const late = Number((await this.c.redis.hget(redisKeys.run(runId), 'lateRejected')) ?? 0);
    // the commit point: everything the manifest names is in place
    await store.put(keys.manifest(runId), JSON.stringify(manifest));
    const orphans = await this.deleteOrphans(manifest);
    await this.removeRun(false);
    return this.summarize(plan, manifest, numbers, totalBytes, { ...attempts, late, orphans });
  }

  /** A run that was committed before: rebuild the output from the store. */
  private async fromManifest(manifest: Manifest): Promise<AggregateSummary> {
    const { store, runId } = this.c;
    this.resumed = true;
    const raw = await store.get(keys.plan(runId));
    if (!raw) throw new SegflowError('ERR_INTERNAL', `run ${runId}: ${keys.plan(runId)} is missing next to its _SUCCESS`);
    const plan = JSON.parse(raw.toString('utf8')) as Plan;
    if (plan.shards !== this.c.shards) throw new SegflowError('ERR_USAGE', `run ${runId} was committed with --shards ${plan.shards}, not ${this.c.shards}`, { runId });
    // a committed run is this job's output only when it was planned for the same inputs and columns
    this.checkSameJob(plan, (await this.fingerprint()).fingerprint);
    const totalBytes = plan.schemas.reduce((s, f) => s + (f.compressed ? f.size * 4 : f.size - f.dataStart), 0);
    this.warnings.push(...manifest.warnings);
    this.timings.plan = performance.now() - this.c.t0;
    const t3 = performance.now();
    const numbers = await this.materialize(plan, manifest);
    this.timings.write = performance.now() - t3;
    const late = Number((await this.c.redis.hget(redisKeys.run(runId), 'lateRejected')) ?? 0);
    const orphans = await this.deleteOrphans(manifest);
    await this.removeRun(false);
    return this.summarize(plan, manifest, numbers, totalBytes, { retries: 0, stalls: 0, late, orphans });
  }

  /** Copy the committed shards into the output folder and write rejects.jsonl; the totals. */
  private async materialize(plan: Plan, m: Manifest) {
    const { store, output } = this.c;
    const names = shardFiles(plan.shards);
    await forEachLimit(m.merges, 4, async (r) => {
      const file = output.file(names[r.partition]);
      await store.download(r.key, file);
      const size = fs.statSync(file).size;
      if (size !== r.bytes) throw new SegflowError('ERR_INTERNAL', `${r.key}: ${size} bytes in the store, the merge wrote ${r.bytes}`);
    });
    // rejected rows: from each partial's index, spilled to files as they arrive (never all in memory)
    const rejects = new RejectStore(output.file('_rejects'));
    const results = new Map<string, ScanOutput>();
    await forEachLimit(m.scans, 8, async (s) => {
      const { attempt: _a, token: _t, key, size: _s, sections: _x, indexOffset, indexLength, worker: _w, task: _k, file: _f, start: _b, end: _e, ...meta } = s;
      const out: ScanOutput = { ...meta, sections: [], rejects: [] };
      if (s.rejected > 0) out.rejects = decodeIndex(await store.getRange(key, indexOffset, indexOffset + indexLength)).rejects;
      rejects.hold(out);
      results.set(rangeKey(s), out);
    });
    const inputs = writeRejects(output.file('rejects.jsonl'), plan.schemas, m.ranges, results, rejects);
    rejects.clear();
    const counted = m.scans.reduce((a, s) => a + s.rows, 0);
    const mergedRows = m.merges.reduce((a, r) => a + r.rows, 0);
    if (mergedRows !== counted) throw new SegflowError('ERR_INTERNAL', `row count mismatch: scanned ${counted}, merged ${mergedRows}`);
    return {
      inputs,
      counted,
      rejected: m.scans.reduce((a, s) => a + s.rejected, 0),
      emptyLines: m.scans.reduce((a, s) => a + s.emptyLines, 0),
      users: m.merges.reduce((a, r) => a + r.users, 0),
      total: m.merges.reduce((a, r) => a + BigInt(r.total), 0n),
      quantity: m.merges.reduce((a, r) => a + BigInt(r.quantity), 0n),
      scale: Math.max(0, ...m.scans.map((s) => s.scale)),
      qscale: Math.max(0, ...m.scans.map((s) => s.qscale)),
      stored: m.scans.reduce((a, s) => a + s.size, 0) + m.merges.reduce((a, r) => a + r.bytes, 0),
    };
  }

  private summarize(
    plan: Plan,
    m: Manifest,
    n: Awaited<ReturnType<Driver['materialize']>>,
    totalBytes: number,
    stats: { retries: number; stalls: number; late: number; orphans: number },
  ): AggregateSummary {
    const { command, output, runId, store, queueName } = this.c;
    this.timings.total = performance.now() - this.c.t0;
    const cluster: ClusterInfo = {
      runId,
      queue: queueName,
      store: store.url,
      resumed: this.resumed,
      threads: plan.threads,
      tasks: { scan: m.scans.length, merge: m.merges.length },
      retries: stats.retries,
      stalls: stats.stalls,
      lateCompletionsRejected: stats.late,
      orphansDeleted: stats.orphans,
      storedBytes: n.stored,
      manifest: `${store.url.replace(/\/$/, '')}/${keys.manifest(runId)}`,
    };
    const summary: ClusterSummary = {
      command,
      version: VERSION,
      out: output.out,
      inputs: n.inputs,
      rows: { read: n.counted + n.rejected, counted: n.counted, rejected: n.rejected, emptyLines: n.emptyLines },
      users: n.users,
      total: formatScaled(n.total, n.scale),
      quantity: plan.flags & F_QTY ? formatScaled(n.quantity, n.qscale) : undefined,
      scale: n.scale,
      shards: plan.shards,
      files: m.files,
      workers: plan.threads,
      rangeSize: plan.rangeSize,
      memory: this.c.memory,
      spilled: { partitions: 0, bytes: 0 },
      retries: stats.retries,
      rescanned: 0,
      warnings: this.warnings,
      timings: roundTimings(this.timings),
      mbPerSec: Math.round((totalBytes / 1e6 / (this.timings.total / 1000)) * 10) / 10,
      cluster,
    };
    if (command === 'aggregate') fs.writeFileSync(output.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
    this.progress('merge', m.merges.length, m.merges.length, totalBytes, totalBytes, n.counted, n.rejected, true);
    return summary;
  }

  /** Attempts beyond one per task, and lost locks, from the tasks' jobs. */
  private async attemptStats(m: Manifest): Promise<{ retries: number; stalls: number }> {
    const { work, runId, redis } = this.c;
    const ids = [
      ...m.scans.map((s) => jobIds.task(runId, s.task.startsWith('rescan') ? 'rescan' : 'scan', Number(s.task.split('.')[1]))),
      ...m.merges.map((r) => jobIds.task(runId, 'merge', r.partition)),
    ];
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hmget(work.toKey(id), 'ats', 'stc');
    let retries = 0;
    let stalls = 0;
    for (const [, v] of (await pipe.exec()) ?? []) {
      const [ats, stc] = (v as (string | null)[]) ?? [];
      retries += Math.max(0, Number(ats ?? 1) - 1);
      stalls += Number(stc ?? 0);
    }
    return { retries, stalls };
  }

  /** Delete every attempt object the manifest does not name. */
  private async deleteOrphans(m: Manifest): Promise<number> {
    const { store, runId } = this.c;
    const keep = new Set([...m.scans.map((s) => s.key), ...m.merges.map((r) => r.key)]);
    const all = [...(await store.list(`${keys.run(runId)}scan/`)), ...(await store.list(`${keys.run(runId)}merge/`))];
    const orphans = all.map((e) => e.key).filter((k) => !keep.has(k));
    await store.delete(orphans);
    return orphans.length;
  }

  /**
   * Remove the run's jobs from Redis (bounded: a task still running holds its lock, so its job is
   * retried a few times, then left to finish; its completion is then rejected as late). After a
   * failure the run's objects go too.
   */
  private async removeRun(failed: boolean): Promise<void> {
    const { runs, work, runId, store } = this.c;
    for (const stage of ['scan', 'rescan', 'merge'] as const) {
      const parentId = jobIds.parent(runId, stage);
      for (let round = 0; round < 10; round++) {
        const state = await runs.getJobState(parentId).catch(() => 'unknown');
        if (state === 'unknown') break;
        const removed = await runs.remove(parentId, { removeChildren: true }).catch(() => 0);
        if (removed === 1) break;
        // a locked child keeps the whole tree: remove the unlocked tasks, wait a little, try again
        const deps = await Job.fromId(runs, parentId).then((p) => p?.getDependencies()).catch(() => undefined);
        for (const k of deps?.unprocessed ?? []) await work.remove(k.slice(k.lastIndexOf(':') + 1)).catch(() => 0);
        await sleep(300);
      }
    }
    if (failed) {
      const left = await store.list(keys.run(runId)).catch(() => []);
      await store.delete(left.map((e) => e.key)).catch(() => {});
    }
  }

  private progress(stage: ProgressStage, done: number, total: number, totalBytes: number, bytes: number, records: number, rejects: number, force = false): void {
    const cb = this.c.options.onProgress;
    if (!cb) return;
    const now = performance.now();
    // at most 10 a second, but always a stage's first and last
    if (!force && stage === this.lastStage && now - this.lastProgress < 100 && done < total) return;
    this.lastProgress = now;
    this.lastStage = stage;
    const e: ProgressEvent = { stage, bytes: Math.min(bytes, totalBytes), totalBytes, records, rejects, done, total, elapsedMs: now - this.c.t0 };
    cb(e);
  }
}

/** The names of the shard files. */
function shardFiles(shards: number): string[] {
  return Array.from({ length: shards }, (_, p) => shardName('users', p, shards));
}

/** A range as errors name it: `FILE:START-END`. */
function rangeLabel(s: FileSchema, r: Range): string {
  return s.compressed ? `${s.file}:${r.start}-end (gzip, whole file)` : `${s.file}:${r.start}-${r.end}`;
}

/** A range's task name in store keys and job ids. */
function taskName(r: Range, planned: Range[]): string {
  const i = planned.indexOf(r);
  return i >= 0 ? `scan.${i}` : `rescan.${r.fileIndex}`;
}

/** Threads of the workers alive on the queue now (their heartbeat keys). */
async function liveThreads(redis: Redis, queue: string): Promise<number> {
  let threads = 0;
  let cursor = '0';
  // bounded: SCAN visits every key once; a few pages for a few hundred workers
  for (let page = 0; page < 10_000; page++) {
    const [next, found] = await redis.scan(cursor, 'MATCH', redisKeys.workers(queue), 'COUNT', 500);
    if (found.length > 0) {
      for (const v of await redis.mget(...found)) {
        try {
          threads += Number((JSON.parse(v ?? '{}') as { threads?: number }).threads ?? 0);
        } catch {
          // a malformed key is not a worker
        }
      }
    }
    cursor = next;
    if (cursor === '0') break;
  }
  return threads;
}
