/**
 * `segflow worker`: one long-running process per machine. It takes scan and merge tasks from the
 * BullMQ queue and runs them on its local Piscina pool, so the main thread only moves bytes and
 * renews locks (a task never starves the lock renewal). An attempt writes its output under a key of
 * its own (from its lock token), then completes its job; BullMQ's completion script checks the lock
 * token atomically, so when the worker lost its lock meanwhile (it froze, its link went down, Redis
 * lost it) the completion is rejected: the attempt deletes what it wrote and counts a rejected late
 * completion. Exactly one attempt per task is ever committed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Job, Queue, UnrecoverableError, Worker, type WorkerOptions } from 'bullmq';
import { SegflowError } from '../errors.js';
import { SegflowPool, defaultWorkers } from '../pool.js';
import { defaultMemory, planMemory } from '../aggregate.js';
import type { ScanOutput, ScanTask } from '../scan.js';
import type { MergeOutput, MergeTask, SegmentRef } from '../merge.js';
import { connect, checkRedisUrl } from './redis.js';
import { forEachLimit, openStore, type Store } from './store.js';
import { encodePartial } from './partial-object.js';
import { scanObjectRange } from './inputs.js';
import {
  DEFAULT_QUEUE,
  MAX_STALLS,
  attemptId,
  encodeFailure,
  sha1,
  keys,
  redisKeys,
  type MergeJobData,
  type MergeJobResult,
  type ScanCommits,
  type ScanJobData,
  type ScanJobResult,
} from './protocol.js';

/** Options of {@link startWorker} (the flags of `segflow worker`). */
export interface WorkerProcessOptions {
  /** redis://HOST:PORT */
  redis: string;
  /** Where this machine reaches the runs' store (default: the URL each run was started with). */
  store?: string;
  /** Pool threads (default: the cores). */
  workers?: number;
  /** Memory budget in bytes, divided as a local run divides --memory (default: a quarter of RAM). */
  memory?: number;
  /** Jobs held at once (default: 2 per thread, so one job's transfers overlap another's work). */
  concurrency?: number;
  queue?: string;
  /** Lock duration in ms (default 30000): a frozen or cut-off worker loses its task after this. */
  lockMs?: number;
  /** How often stalled jobs are looked for, in ms (default: lockMs). */
  stalledIntervalMs?: number;
  /** Folder for ranges and shards in transit (default: the OS temp folder). */
  tmpDir?: string;
  /** A name for logs (default: host:pid). */
  name?: string;
  /** Log every task (default: only failures and lost locks). */
  verbose?: boolean;
  /** Testing failover: hold each task this long before completing it. */
  taskDelayMs?: number;
  log?: (line: string) => void;
}

/** A running worker process. */
export interface WorkerHandle {
  readonly id: string;
  /** Stop taking tasks, let running ones finish (or not, with `force`), and close everything. */
  close(force?: boolean): Promise<void>;
}

/** Lock-loss errors from BullMQ's completion scripts. */
const LOCK_LOST = /Missing lock for job|Lock mismatch for job|is not in the active state|Missing key for job/;

/** The rejected late completion of an attempt that lost its lock. */
type LateHandler = (job: Job, result: unknown, token: string, err: Error) => Promise<void>;

/**
 * BullMQ's Worker, with lock-loss on completion reported as a rejected late completion rather than
 * as an error (the atomic token check in moveToFinished is the commit guard; see the module note).
 */
class SegflowWorker extends Worker {
  onLate: LateHandler = async () => {};

  protected override async handleCompleted(result: unknown, job: Job, token: string, fetchNextCallback?: () => boolean, span?: unknown): Promise<Job> {
    try {
      return await super.handleCompleted(result, job, token, fetchNextCallback, span as never);
    } catch (err) {
      if (!(err instanceof Error) || !LOCK_LOST.test(err.message)) throw err;
      await this.onLate(job, result, token, err);
      return undefined as unknown as Job;
    }
  }

  protected override async handleFailed(err: Error, job: Job, token: string, fetchNextCallback?: () => boolean, span?: unknown): Promise<Job> {
    try {
      return await super.handleFailed(err, job, token, fetchNextCallback, span as never);
    } catch (e) {
      // a failure reported after the lock was lost changes nothing: the task is someone else's now
      if (e instanceof Error && LOCK_LOST.test(e.message)) return undefined as unknown as Job;
      throw e;
    }
  }
}

/** Start a worker process's queue consumer. */
export async function startWorker(options: WorkerProcessOptions): Promise<WorkerHandle> {
  const redisUrl = checkRedisUrl(options.redis, '--redis');
  const threads = options.workers ?? defaultWorkers();
  if (!Number.isInteger(threads) || threads < 1) throw new SegflowError('ERR_USAGE', `--workers must be a positive integer, got ${options.workers}`);
  const memory = options.memory ?? defaultMemory();
  if (!(memory > 0)) throw new SegflowError('ERR_USAGE', `--memory must be a positive number of bytes, got ${options.memory}`);
  const concurrency = options.concurrency ?? threads * 2;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new SegflowError('ERR_USAGE', `--concurrency must be a positive integer, got ${options.concurrency}`);
  const lockMs = options.lockMs ?? 30_000;
  if (!(lockMs >= 500)) throw new SegflowError('ERR_USAGE', `--lock-ms must be at least 500, got ${options.lockMs}`);
  if (options.stalledIntervalMs !== undefined && !(options.stalledIntervalMs > 0)) {
    throw new SegflowError('ERR_USAGE', `--stalled-interval-ms must be a positive number, got ${options.stalledIntervalMs}`);
  }
  if (options.tmpDir !== undefined && !(fs.existsSync(options.tmpDir) && fs.statSync(options.tmpDir).isDirectory())) {
    throw new SegflowError('ERR_USAGE', `--tmp-dir ${options.tmpDir} is not a folder`);
  }
  const budget = planMemory(memory, threads);
  // one attempt per pool task: BullMQ retries, on any machine
  const pool = new SegflowPool({ workers: threads, attempts: 1, maxOldGenerationSizeMb: budget.workerHeapMb });
  const queueName = options.queue ?? DEFAULT_QUEUE;
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const id = options.name ?? `${os.hostname()}:${process.pid}`;
  const say = (msg: string): void => log(`segflow worker ${id}: ${msg}`);
  const tmpRoot = options.tmpDir ?? os.tmpdir();
  removeStaleTransit(tmpRoot);
  const tmpDir = fs.mkdtempSync(path.join(tmpRoot, `segflow-worker-${process.pid}-`));
  const stores = new Map<string, Store>();
  const storeFor = (url: string): Store => {
    const u = options.store ?? url;
    let s = stores.get(u);
    if (!s) stores.set(u, (s = openStore(u)));
    return s;
  };
  const redis = connect(redisUrl, (err) => say(`redis: ${err.message} (retrying)`));
  const queue = new Queue(queueName, { connection: redis });
  const commits = new Map<string, ScanCommits>();

  const scan = async (job: Job<ScanJobData>, token: string): Promise<ScanJobResult> => {
    const { runId, task, name } = job.data;
    const attempt = attemptId(token);
    const run = (t: ScanTask): Promise<ScanOutput> => pool.run<ScanOutput>('scan', t, { label: job.data.label });
    const out = task.file.startsWith('s3://') ? await scanObjectRange(task, job.data.inputSize ?? 0, tmpDir, run) : await run(task);
    const { pieces, index, indexOffset, indexLength, size } = encodePartial(out);
    const key = keys.scanAttempt(runId, name, attempt);
    await storeFor(job.data.store).put(key, Buffer.concat(pieces, size));
    const { rejects: _rejects, ...meta } = index;
    return { ...meta, attempt, token, key, size, indexOffset, indexLength, worker: id };
  };

  const merge = async (job: Job<MergeJobData>, token: string): Promise<MergeJobResult> => {
    const d = job.data;
    const store = storeFor(d.store);
    const ck = `${d.store}|${d.runId}|${d.scansDigest}`;
    let c = commits.get(ck);
    if (!c) {
      const raw = await store.get(keys.scans(d.runId));
      if (!raw) throw new SegflowError('ERR_INTERNAL', `run ${d.runId}: ${keys.scans(d.runId)} is missing from the store`);
      if (sha1(raw) !== d.scansDigest) throw new SegflowError('ERR_INTERNAL', `run ${d.runId}: ${keys.scans(d.runId)} is not the one this merge was planned with`);
      c = JSON.parse(raw.toString('utf8')) as ScanCommits;
      if (commits.size > 16) commits.clear();
      commits.set(ck, c);
    }
    // this partition's section of every committed scan, by ranged GETs: into shared memory when
    // small, else into a local file that the merge reads in passes within its memory share
    const p = d.partition;
    const wanted = c.scans.filter((s) => s.sections[p][2] > 0);
    const attempt = attemptId(token);
    const work = path.join(tmpDir, `merge-${d.runId}-${p}-${attempt}`);
    const outFile = `${work}.csv`;
    try {
      const bytes = wanted.reduce((n, s) => n + s.sections[p][1], 0);
      const segments: SegmentRef[] = new Array(wanted.length);
      const fetch = (s: (typeof wanted)[number]): Promise<Buffer> => {
        const [off, len] = s.sections[p];
        return store.getRange(s.key, off, off + len).then((b) => {
          if (b.length !== len) throw new SegflowError('ERR_INTERNAL', `${s.key}: short read of section ${p} (${b.length} of ${len} bytes)`);
          return b;
        });
      };
      if (bytes <= budget.task / 4) {
        await forEachLimit(wanted, 16, async (s, i) => {
          const shared = new SharedArrayBuffer(s.sections[p][1]);
          new Uint8Array(shared).set(await fetch(s));
          segments[i] = { shared };
        });
      } else {
        fs.mkdirSync(work, { recursive: true });
        const file = path.join(work, 'sections.bin');
        const fh = await fs.promises.open(file, 'w');
        try {
          let at = 0;
          const offsets = wanted.map((s) => {
            const o = at;
            at = (at + s.sections[p][1] + 7) & ~7; // 8-byte aligned, as decodeSection wants
            return o;
          });
          await forEachLimit(wanted, 16, async (s, i) => {
            const b = await fetch(s);
            for (let done = 0; done < b.length; ) done += (await fh.write(b, done, b.length - done, offsets[i] + done)).bytesWritten;
            segments[i] = { path: file, offset: offsets[i], length: b.length };
          });
        } finally {
          await fh.close();
        }
      }
      const task: MergeTask = {
        partition: p,
        partitions: d.partitions,
        segments,
        flags: d.flags,
        scale: d.scale,
        qscale: d.qscale,
        dateHasTime: d.dateHasTime,
        outFile,
        memory: budget.task,
        scratchDir: work,
      };
      const out = await pool.run<MergeOutput>('merge', task, { label: d.label });
      const key = keys.mergeAttempt(d.runId, p, attempt);
      await store.putFile(key, outFile);
      return { partition: p, users: out.users, rows: out.rows, total: out.total, quantity: out.quantity, bytes: out.bytes, attempt, token, key, worker: id };
    } finally {
      fs.rmSync(outFile, { force: true });
      fs.rmSync(work, { recursive: true, force: true });
    }
  };

  const processor = async (job: Job, token?: string): Promise<unknown> => {
    if (!token) throw new Error('no lock token');
    const t0 = performance.now();
    if (options.verbose) say(`start ${job.id} (attempt ${attemptId(token)})`);
    try {
      const result = job.name === 'scan' ? await scan(job as Job<ScanJobData>, token) : job.name === 'merge' ? await merge(job as Job<MergeJobData>, token) : undefined;
      if (result === undefined) throw new UnrecoverableError(encodeFailure('ERR_INTERNAL', `unknown task ${job.name}`));
      if (options.taskDelayMs) await sleep(options.taskDelayMs);
      if (options.verbose) say(`done ${job.id} in ${Math.round(performance.now() - t0)} ms`);
      return result;
    } catch (err) {
      if (err instanceof UnrecoverableError) throw err;
      const e = err instanceof SegflowError ? err : new SegflowError('ERR_INTERNAL', (err as Error)?.message ?? String(err));
      const message = typeof e.details.lastError === 'string' ? e.details.lastError : e.message;
      say(`${job.id} (${(job.data as { label?: string }).label}) failed: ${message}`);
      // bad data fails the same way on every machine: no retries. An input this machine cannot
      // find may be a mount missing here only: retried, on any machine
      if (e.code !== 'ERR_INTERNAL' && e.code !== 'ERR_TASK_FAILED' && e.code !== 'ERR_INPUT_NOT_FOUND') throw new UnrecoverableError(encodeFailure(e.code, message));
      throw new Error(encodeFailure('ERR_INTERNAL', message));
    }
  };

  const workerOptions: WorkerOptions = {
    connection: redis,
    concurrency,
    lockDuration: lockMs,
    stalledInterval: options.stalledIntervalMs ?? lockMs,
    maxStalledCount: MAX_STALLS,
    autorun: false,
  };
  const worker = new SegflowWorker(queueName, processor, workerOptions);
  worker.onLate = async (job, result, token, err) => {
    const r = result as Partial<ScanJobResult & MergeJobResult> | undefined;
    const data = job.data as { runId?: string; store?: string };
    const attempt = attemptId(token);
    const store = data.store ? storeFor(data.store) : undefined;
    // the reply to a completion that did commit can be lost with the connection, and the resent
    // command then finds no lock: the job's result (or, once the run removed its jobs, the run's
    // manifest) says which attempt committed
    const now = await Job.fromId(queue, job.id!).catch(() => undefined);
    let committed = (now?.returnvalue as { attempt?: string } | undefined)?.attempt === attempt;
    if (!now && store && data.runId && r?.key) {
      const manifest = await store.get(keys.manifest(data.runId)).catch(() => undefined);
      committed = !!manifest && manifest.toString('utf8').includes(JSON.stringify(r.key));
    }
    if (committed) return;
    say(`late completion of ${job.id} rejected: attempt ${attempt} had lost its lock (${err.message.split('. ')[0]})`);
    if (store && r?.key) await store.delete([r.key]).catch(() => {});
    if (data.runId) {
      await redis
        .multi()
        .hincrby(redisKeys.run(data.runId), 'lateRejected', 1)
        .rpush(redisKeys.late(data.runId), JSON.stringify({ job: job.id, attempt, worker: id, at: Date.now() }))
        .expire(redisKeys.run(data.runId), 7 * 86400)
        .expire(redisKeys.late(data.runId), 7 * 86400)
        .exec()
        .catch(() => {});
    }
  };
  worker.on('error', (err) => {
    if (!/could not renew lock/.test(err.message) || options.verbose) say(`${err.message}`);
  });
  worker.on('lockRenewalFailed', (ids: string[]) => say(`lost the lock of ${ids.join(', ')}`));

  // register: the driver sums the threads of live workers to size its ranges
  const heartbeat = async (): Promise<void> => {
    await redis.set(redisKeys.worker(queueName, id), JSON.stringify({ id, host: os.hostname(), pid: process.pid, threads: pool.workers }), 'PX', 15_000).catch(() => {});
  };
  await heartbeat();
  const beat = setInterval(() => void heartbeat(), 5_000);
  beat.unref();
  void worker.run().catch((err) => say(`stopped: ${(err as Error).message}`));
  await worker.waitUntilReady();
  say(`serving queue ${queueName} on ${redisUrl.replace(/\/\/[^@]*@/, '//***@')} with ${pool.workers} threads (${concurrency} tasks at once)`);

  let closing: Promise<void> | undefined;
  return {
    id,
    close: (force = false) =>
      (closing ??= (async () => {
        clearInterval(beat);
        await worker.close(force).catch(() => {});
        await redis.del(redisKeys.worker(queueName, id)).catch(() => {});
        await queue.close().catch(() => {});
        await pool.destroy();
        redis.disconnect();
        fs.rmSync(tmpDir, { recursive: true, force: true });
      })()),
  };
}

/** Remove transit folders of worker processes that no longer run here (a killed worker's). */
function removeStaleTransit(root: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^segflow-worker-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') fs.rmSync(path.join(root, name), { recursive: true, force: true });
    }
  }
}
