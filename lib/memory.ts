/**
 * How a job divides its memory budget (`--memory`) between the runtime, the partials held between
 * scan and merge, and the tasks that run at once (README, "Reliability").
 */
import os from 'node:os';
import { MiB } from './split.js';

/** The default memory budget for partials held between scan and merge: a quarter of RAM. */
export function defaultMemory(): number {
  return Math.floor(os.totalmem() / 4);
}

/**
 * Scan-task bytes per input byte the plan allows for. When every row brings a new key, the
 * integer-key parts (~39 bytes a slot at 35-70% load) reach ~2.5x a range's bytes of Black Friday
 * rows just after they double, and the sections encoded at the end add ~1x, so such input can pass
 * a task's share by a sixth (README, "Memory budget"); a larger factor halves the ranges and cost
 * a third more time on the 4 GiB run for 4% less memory, so it stays 3.
 */
export const SCAN_EXPANSION = 3;

/** How a job divides `--memory` (see the README, "Reliability"). */
export interface MemoryPlan {
  /** Partial sections held in shared memory between scan and merge; the rest spill to files. */
  hold: number;
  /** Bytes one running task may use for its table (a scan range's or a merge pass's). */
  task: number;
  /** The largest byte range a scan task gets unless --range-size says otherwise. */
  maxRangeSize: number;
  /** The V8 heap limit of each worker in MiB (a worker over it is stopped and its task retried). */
  workerHeapMb: number;
}

/**
 * Memory the runtime takes whatever the data: Node and its heap, and per worker an isolate, its
 * read buffer, the scan's staging area for integer keys (scan-table.ts) and the arrays a worker
 * keeps between tasks.
 */
export function runtimeBytes(workers: number): number {
  return 64 * MiB + 64 * MiB * workers;
}

/**
 * Divide the budget: first the runtime's own share ({@link runtimeBytes}, when the budget is at
 * least twice that), then half of the rest for sections held between the stages and half for the
 * tables of the `workers` tasks that run at once. Peak RSS then stays near the budget.
 */
export function planMemory(memory: number, workers: number): MemoryPlan {
  const runtime = runtimeBytes(workers);
  const data = memory >= 2 * runtime ? memory - runtime : memory / 2;
  const hold = Math.floor(data / 2);
  const task = Math.max(1, Math.floor(data / 2 / workers));
  return {
    hold,
    task,
    maxRangeSize: Math.max(MiB, Math.floor(task / SCAN_EXPANSION)),
    // rejected rows are JS objects on the heap: give the heap room for a range of them
    workerHeapMb: Math.max(256, Math.ceil(task / MiB)),
  };
}

