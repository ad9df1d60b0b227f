/**
 * The worker pool: one Piscina pool serves every stage (scan, merge, k-means assignment, stream
 * batches). Tasks are named; each name maps to a thin module in workers/. A task returns a tagged
 * {@link TaskResult}; a worker that dies (crash, exit, out of memory) or a task that fails with an
 * internal error is retried on a fresh worker, up to `attempts` in all (Dataflow's rule: 4).
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import { SegflowError, fromFailure, type TaskResult } from './errors.js';

/** The task modules, by name. Paths are relative to this compiled file (dist/lib/pool.js). */
const TASK_FILES = {
  scan: new URL('../workers/scan.js', import.meta.url).href,
  merge: new URL('../workers/merge.js', import.meta.url).href,
  'kmeans-assign': new URL('../workers/kmeans-assign.js', import.meta.url).href,
  stream: new URL('../workers/stream.js', import.meta.url).href,
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
}

/** Options of one {@link SegflowPool.run} call. */
export interface RunTaskOptions {
  signal?: AbortSignal;
  /** Words for the error when every attempt failed, e.g. `sales.csv bytes 0-33554432`. */
  label?: string;
  /** Called before each retry. */
  onRetry?: (attempt: number, error: Error) => void;
  /** Build the payload for an attempt (1-based); tasks receive `attempt` to make faults testable. */
}

/** The number of cores this process may use. */
export function defaultWorkers(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/**
 * A pool of worker threads that an app can keep between jobs. Jobs given no pool make their own
 * and destroy it at the end.
 */
export class SegflowPool {
  readonly workers: number;
  readonly attempts: number;
  #piscina: Piscina;
  #closed = false;

  constructor(options: PoolOptions = {}) {
    const workers = options.workers ?? defaultWorkers();
    if (!Number.isInteger(workers) || workers < 1) {
      throw new SegflowError('ERR_USAGE', `workers must be a positive integer, got ${workers}`);
    }
    this.workers = workers;
    this.attempts = options.attempts ?? 4;
    this.#piscina = new Piscina({
      filename: TASK_FILES.scan,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: 60_000,
      // one task per worker at a time: tasks are CPU-bound
      concurrentTasksPerWorker: 1,
      resourceLimits: options.maxOldGenerationSizeMb ? { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb } : undefined,
    });
    // a worker that dies is replaced by Piscina; its task's promise rejects and we retry it.
    this.#piscina.on('error', () => {});
  }

  /** Tasks waiting for a worker. */
  get queueSize(): number {
    return this.#piscina.queueSize;
  }

  /**
   * Run one task, retrying on a fresh worker when the worker dies or the task reports an internal
   * error. Input errors (bad file, bad column) are not retried: they would fail the same way.
   * `payload` may be a function of the 1-based attempt number.
   */
  async run<T>(
    name: TaskName,
    payload: unknown | ((attempt: number) => unknown),
    options: RunTaskOptions & { transferList?: (attempt: number) => ArrayBuffer[] } = {},
  ): Promise<T> {
    if (this.#closed) throw new SegflowError('ERR_INTERNAL', 'the pool is closed');
    let lastError: Error | undefined;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (options.signal?.aborted) throw abortError();
      const body = typeof payload === 'function' ? (payload as (a: number) => unknown)(attempt) : payload;
      let result: TaskResult<T>;
      try {
        result = (await this.#piscina.run(
          { ...(body as object), attempt },
          { filename: TASK_FILES[name], signal: options.signal, transferList: options.transferList?.(attempt) as never },
        )) as TaskResult<T>;
      } catch (err) {
        if (options.signal?.aborted || (err as Error)?.name === 'AbortError') throw abortError();
        lastError = err instanceof Error ? err : new Error(String(err));
        if (attempt < this.attempts) options.onRetry?.(attempt, lastError);
        continue;
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
    await this.#piscina.destroy();
  }
}

/** The error an aborted job rejects with. */
export function abortError(): SegflowError {
  return new SegflowError('ERR_ABORTED', 'the job was aborted');
}
