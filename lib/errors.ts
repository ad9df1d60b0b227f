/**
 * Every error segflow raises, in one table. Errors cross the worker-thread boundary as data
 * (a class and a `code` thrown inside a worker are lost on the way: piscina#141, #1143), so a
 * worker returns {@link TaskFailure} and the coordinator rebuilds a {@link SegflowError}.
 */

/** Error codes, with the exit code the CLI uses for each. */
export const ERROR_CODES = {
  /** Bad flag or flag combination. */
  ERR_USAGE: 2,
  /** An input path, glob or folder that names no readable file. */
  ERR_INPUT_NOT_FOUND: 2,
  /** A file that cannot be read as the expected format (binary, empty, no header...). */
  ERR_BAD_INPUT: 2,
  /** A named or auto-detected column is not in the header. */
  ERR_COLUMN: 2,
  /** --out already holds a result and --force was not given. */
  ERR_OUT_EXISTS: 2,
  /** k larger than the number of points, or no points at all. */
  ERR_TOO_FEW_POINTS: 2,
  /** Rejected rows passed --max-bad-ratio. */
  ERR_TOO_MANY_REJECTS: 1,
  /** A task failed on every attempt. */
  ERR_TASK_FAILED: 1,
  /** The job was aborted (AbortSignal, SIGINT). */
  ERR_ABORTED: 130,
  /** Anything else: a bug or an I/O failure. */
  ERR_INTERNAL: 1,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable `code` and structured details. */
export class SegflowError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'SegflowError';
    this.code = code;
    this.details = details;
  }
  /** The process exit code for this error (2 bad usage or input, 1 job failure, 130 aborted). */
  get exitCode(): number {
    return ERROR_CODES[this.code];
  }
}

/** A failure as it crosses the thread boundary. */
export interface TaskFailure {
  ok: false;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** What a worker task returns: a tagged union, never a thrown error. */
export type TaskResult<T> = { ok: true; value: T } | TaskFailure;

/** Turn anything thrown inside a worker into a {@link TaskFailure}. */
export function toFailure(err: unknown): TaskFailure {
  if (err instanceof SegflowError) {
    return { ok: false, code: err.code, message: err.message, details: err.details };
  }
  const e = err as { message?: unknown; code?: unknown; stack?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const sys = typeof e?.code === 'string' ? e.code : undefined;
  if (sys === 'ENOENT') return { ok: false, code: 'ERR_INPUT_NOT_FOUND', message };
  return { ok: false, code: 'ERR_INTERNAL', message, details: sys ? { sysCode: sys } : {} };
}

/** Rebuild the coordinator-side error from a {@link TaskFailure}. */
export function fromFailure(f: TaskFailure): SegflowError {
  return new SegflowError(f.code, f.message, f.details ?? {});
}

/** Wrap a worker handler so that it returns a {@link TaskResult} instead of throwing. */
export function tagged<A, T>(fn: (arg: A) => T | Promise<T>): (arg: A) => Promise<TaskResult<T>> {
  return async (arg: A) => {
    try {
      return { ok: true, value: await fn(arg) };
    } catch (err) {
      return toFailure(err);
    }
  };
}
