/**
 * The worker pool: one Piscina pool serves every stage (scan, merge, k-means assignment, stream
 * batches). Tasks are named; each name maps to a thin module in workers/. A task returns a tagged
 * {@link TaskResult}; a worker that dies (crash, exit, out of memory), a task that runs past its
 * timeout, or a task that fails with an internal error is retried on a fresh worker, up to
 * `attempts` in all (Dataflow's rule: 4).
 *
 * No double counting: an attempt contributes nothing but the value its task returns, and only the
 * value of the attempt that succeeded reaches the caller. A failed, crashed or timed-out attempt
 * leaves at most files under names of its own (see merge.ts), never a counter or a partial.
 */
import os from 'node:os';
import { getMaxListeners, setMaxListeners } from 'node:events';
import { SHARE_ENV } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { SegflowError, fromFailure, type TaskResult } from './errors.js';
import { exposeGc } from './util/gc.js';

/** The task modules, by name. Paths are relative to this compiled file (dist/lib/pool.js). */
const TASK_FILES = {
  scan: new URL('../workers/scan.js', import.meta.url).href,
  merge: new URL('../workers/merge.js', import.meta.url).href,
  'kmeans-assign': new URL('../workers/kmeans-assign.js', import.meta.url).href,
  stream: new URL('../workers/stream.js', import.meta.url).href,
  flush: new URL('../workers/flush.js', import.meta.url).href,
  sample: new URL('../workers/sample.js', import.meta.url).href,
} as const;

export type TaskName = keyof typeof TASK_FILES;

/** Options of {@link SegflowPool}. */
export interface PoolOptions {
  /** Worker threads (default: the number of cores). */
  workers?: number;
  /** Attempts per task before the job fails (default 4). */
  attempts?: number;
  /** Heap limit per worker in MiB (a worker over it is killed and its task retried). */
  maxOldGenerationSizeMb?: number;
  /**
   * Milliseconds one attempt may run before its worker is stopped and the task retried (default:
   * the SEGFLOW_TASK_TIMEOUT environment variable in seconds, else no limit).
   */
  taskTimeoutMs?: number;
}

/** Options of one {@link SegflowPool.run} call. */
export interface RunTaskOptions {
  signal?: AbortSignal;
  /** Words for the error when every attempt failed, e.g. `sales.csv bytes 0-33554432`. */
  label?: string;
  /** Called before each retry with the attempt that failed (1-based) and its error. */
  onRetry?: (attempt: number, error: Error) => void;
  /** Milliseconds per attempt (overrides the pool's `taskTimeoutMs`). */
  timeoutMs?: number;
}

/** The number of cores this process may use. */
export function defaultWorkers(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/** Worker counts 1, 2, 4, ... up to `cores` (and `cores` itself): `segflow bench`'s default. */
export function defaultWorkerCounts(cores = defaultWorkers()): number[] {
  const out: number[] = [];
  for (let w = 1; w < cores; w *= 2) out.push(w);
  out.push(cores);
  return out;
}

function envTimeout(): number | undefined {
  const v = Number(process.env.SEGFLOW_TASK_TIMEOUT);
  return v > 0 ? v * 1000 : undefined;
}

/**
 * A pool of worker threads that an app can keep between jobs. Jobs given no pool make their own
 * and destroy it at the end.
 */
export class SegflowPool {
  readonly workers: number;
  readonly attempts: number;
  readonly taskTimeoutMs: number | undefined;
  #piscina: Piscina;
  #closed = false;
  /**
   * Tasks in Piscina at once: one per worker. The rest wait here, so an attempt's timeout counts
   * from when it starts, not from when it was queued, and a retry goes to the next free worker.
   */
  #running = 0;
  #waiting: (() => void)[] = [];

  constructor(options: PoolOptions = {}) {
    const workers = options.workers ?? defaultWorkers();
    if (!Number.isInteger(workers) || workers < 1) {
      throw new SegflowError('ERR_USAGE', `workers must be a positive integer, got ${workers}`);
    }
    const attempts = options.attempts ?? 4;
    if (!Number.isInteger(attempts) || attempts < 1) throw new SegflowError('ERR_USAGE', `attempts must be a positive integer, got ${attempts}`);
    this.workers = workers;
    this.attempts = attempts;
    const timeout = options.taskTimeoutMs;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0)) {
      throw new SegflowError('ERR_USAGE', `taskTimeoutMs must be a positive number of milliseconds, got ${String(timeout)}`);
    }
    this.taskTimeoutMs = timeout ?? envTimeout();
    // workers free the shared sections of their last task with a GC (see util/gc.ts)
    exposeGc();
    this.#piscina = new Piscina({
      filename: TASK_FILES.scan,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: 60_000,
      // one task per worker at a time: tasks are CPU-bound
      concurrentTasksPerWorker: 1,
      resourceLimits: options.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb } : undefined,
      // one environment for the process: SEGFLOW_FAULTS set after the pool started still applies
      env: SHARE_ENV,
      execArgv: workerExecArgv(),
    });
    // a worker that dies is replaced by Piscina; its task's promise rejects and we retry it.
    this.#piscina.on('error', () => {});
  }

  /** Tasks waiting for a worker. */
  get queueSize(): number {
    return this.#waiting.length + this.#piscina.queueSize;
  }

  async #acquire(): Promise<void> {
    if (this.#running < this.workers) {
      this.#running++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }

  /**
   * Run one task, retrying on a fresh worker when the worker dies, the attempt times out or the
   * task reports an internal error. Input errors (bad file, bad column) are not retried: they would
   * fail the same way. `payload` may be a function of the 1-based attempt number; the task also
   * receives `attempt` in its payload.
   */
  async run<T>(
    name: TaskName,
    payload: unknown | ((attempt: number) => unknown),
    options: RunTaskOptions & { transferList?: (attempt: number) => ArrayBuffer[] } = {},
  ): Promise<T> {
    if (this.#closed) throw new SegflowError('ERR_INTERNAL', 'the pool is closed');
    const signal = options.signal;
    if (signal?.aborted) throw abortError();
    await this.#acquire();
    try {
      return await this.#attempts<T>(name, payload, options);
    } finally {
      this.#release();
    }
  }

  async #attempts<T>(
    name: TaskName,
    payload: unknown | ((attempt: number) => unknown),
    options: RunTaskOptions & { transferList?: (attempt: number) => ArrayBuffer[] },
  ): Promise<T> {
    const signal = options.signal;
    const timeoutMs = options.timeoutMs ?? this.taskTimeoutMs;
    if (signal && getMaxListeners(signal) < this.workers + 10) setMaxListeners(this.workers + 10, signal);
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (signal?.aborted || this.#closed) throw abortError();
      const body = typeof payload === 'function' ? (payload as (a: number) => unknown)(attempt) : payload;
      // one controller per attempt: the job's signal or this attempt's timeout stops it
      const ac = new AbortController();
      const onAbort = (): void => ac.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      let timedOut = false;
      const timer =
        timeoutMs !== undefined
          ? setTimeout(() => {
              timedOut = true;
              ac.abort();
            }, timeoutMs)
          : undefined;
      let result: TaskResult<T>;
      try {
        result = (await this.#piscina.run(
          { ...(body as object), attempt },
          { filename: TASK_FILES[name], signal: ac.signal, transferList: options.transferList?.(attempt) as never },
        )) as TaskResult<T>;
      } catch (err) {
        if (signal?.aborted || this.#closed) throw abortError();
        lastError = timedOut ? new Error(`timed out after ${timeoutMs} ms (the worker was stopped)`) : describeWorkerError(err);
        if (attempt < this.attempts) options.onRetry?.(attempt, lastError);
        continue;
      } finally {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
      if (result.ok) return result.value;
      const error = fromFailure(result);
      if (error.code !== 'ERR_INTERNAL') throw error;
      lastError = error;
      if (attempt < this.attempts) options.onRetry?.(attempt, lastError);
    }
    const label = options.label ? `${name} task ${options.label}` : `${name} task`;
    throw new SegflowError(
      'ERR_TASK_FAILED',
      `${label} failed after ${this.attempts} attempts; last error: ${lastError?.message ?? 'unknown'}`,
      { task: name, label: options.label, attempts: this.attempts, lastError: lastError?.message },
    );
  }

  /** Stop every worker. Running tasks are cancelled. */
  async destroy(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // wake anything queued here: it sees the pool closed and rejects
    for (const w of this.#waiting.splice(0)) w();
    await this.#piscina.destroy();
  }
}

/**
 * A pool started before the command line's modules load (cli.ts): its workers boot while the
 * main thread imports yargs and the commands, and the job adopts it instead of starting its own.
 */
let prestarted: { pool: SegflowPool; key: string } | undefined;

const poolKey = (o: PoolOptions): string => `${o.workers ?? defaultWorkers()}/${o.maxOldGenerationSizeMb ?? ''}`;

/** Start a pool for the job this process is about to run (at most one waits at a time). */
export function prestartPool(options: PoolOptions): void {
  if (prestarted) return;
  prestarted = { pool: new SegflowPool(options), key: poolKey(options) };
}

/**
 * The prestarted pool, when it was started with these options (the caller then owns it); one
 * started with others is destroyed. Undefined when there is none that fits.
 */
export function adoptPrestarted(options: PoolOptions): SegflowPool | undefined {
  const p = prestarted;
  prestarted = undefined;
  if (!p) return undefined;
  if (p.key === poolKey(options)) return p.pool;
  void p.pool.destroy();
  return undefined;
}

/** Destroy a prestarted pool that no job adopted (the command failed early or did not need it). */
export async function dropPrestarted(): Promise<void> {
  const p = prestarted;
  prestarted = undefined;
  await p?.pool.destroy();
}

/**
 * Node flags for the worker threads. Piscina loads a task module with require() first; on Node
 * 20.19+ that is require(esm), and a worker stopped while require(esm) instantiates a module
 * aborts the whole process (V8 CHECK "IsGraphAsync must be used on an instantiated module", seen
 * in CI when a pool was destroyed while a replacement worker was still loading). With require(esm)
 * off in the workers, Piscina falls back to import(), which a termination ends cleanly.
 */
export function workerExecArgv(): string[] {
  const off = '--no-experimental-require-module';
  const known = process.allowedNodeEnvironmentFlags.has('--experimental-require-module');
  return known && !process.execArgv.includes(off) ? [...process.execArgv, off] : process.execArgv;
}

/** Words for a worker that died: Piscina's messages, made plain. */
function describeWorkerError(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return new Error(`the worker ran out of memory (${e.message})`);
  const exit = /worker exited with code:? (\d+)/i.exec(e.message);
  if (exit) return new Error(`the worker thread exited with code ${exit[1]}`);
  return e;
}

/** The error an aborted job rejects with. */
export function abortError(): SegflowError {
  return new SegflowError('ERR_ABORTED', 'the job was aborted');
}
