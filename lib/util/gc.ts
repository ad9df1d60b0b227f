/**
 * Release dropped SharedArrayBuffers. V8 does not count shared backing stores as external memory,
 * so dropping the last handle to a 10 MB section never makes an isolate collect; the memory stays
 * until the thread that made the buffer and every thread that received it have collected their
 * handles (measured: 100 sections of 10 MB sent from a worker and dropped kept RSS at 1 GB; with a
 * GC in both isolates, 71 MB). So the coordinator collects after it drops sections (spilled or
 * merged), and every worker task starts with a collection: a minor one (~0.1 ms) frees the
 * handles a scan task made just before it returned; after a merge task, whose sections lived long
 * enough to be promoted, a full one.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (options?: { type?: 'minor' | 'major' }) => void;

let gc: Gc | undefined = (globalThis as { gc?: Gc }).gc;
let fullNext = false;

/**
 * Make `gc()` callable here and in worker threads started afterwards (the flag is process-wide).
 * Called in the main thread before the pool starts its workers.
 */
export function exposeGc(): void {
  if (gc) return;
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('gc') as Gc;
}

/** Collect now, when a collector is available: `major` for handles that may have been promoted. */
export function releaseShared(kind: 'minor' | 'major' = 'major'): void {
  if (!gc) gc = (globalThis as { gc?: Gc }).gc;
  gc?.({ type: kind });
}

/** In a worker: the running task holds shared sections for long; the next task starts with a full GC. */
export function heldShared(): void {
  fullNext = true;
}

/** In a worker, before each task: free the shared sections the previous task made or read. */
export function beforeTask(): void {
  releaseShared(fullNext ? 'major' : 'minor');
  fullNext = false;
}
