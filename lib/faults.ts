/**
 * Fault injection for tests and for users who want to see retries work. The environment variable
 * SEGFLOW_FAULTS holds comma-separated rules `STAGE:KIND[:WHEN]`:
 *   STAGE  scan | merge
 *   KIND   crash (the worker thread exits) | throw (the task throws) | hang (the task never ends;
 *          pair it with SEGFLOW_TASK_TIMEOUT) | oom (the task fills its heap until the worker is
 *          killed for passing its memory limit)
 *   WHEN   a probability 0..1 per attempt (seeded by SEGFLOW_FAULTS_SEED, default 1),
 *          every=N (the first attempt of every Nth task: tasks 0, N, 2N...), or always (default)
 * e.g. SEGFLOW_FAULTS=scan:crash:0.3 or SEGFLOW_FAULTS=scan:crash:every=3,merge:throw:0.1
 * With SEGFLOW_FAULTS_LOG=FILE each injected fault appends a line `stage task attempt kind`.
 */
import fs from 'node:fs';
import { resourceLimits } from 'node:worker_threads';
import { beforeTask } from './util/gc.js';

type Kind = 'crash' | 'throw' | 'hang' | 'oom';

interface Rule {
  stage: string;
  kind: Kind;
  p: number;
  every: number;
  always: boolean;
}

const KINDS: readonly string[] = ['crash', 'throw', 'hang', 'oom'];

/** Parse SEGFLOW_FAULTS (exported for tests and for the coordinator to validate it up front). */
export function parseFaults(spec: string | undefined): Rule[] {
  if (!spec) return [];
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const [stage, kind, when = 'always'] = s.split(':');
      if (stage !== 'scan' && stage !== 'merge') throw new Error(`SEGFLOW_FAULTS: unknown stage in "${s}" (scan or merge)`);
      if (!KINDS.includes(kind)) throw new Error(`SEGFLOW_FAULTS: unknown kind in "${s}" (crash, throw, hang or oom)`);
      const every = when.startsWith('every=') ? Number(when.slice(6)) : 0;
      const always = when === 'always';
      const p = !always && !every ? Number(when) : 0;
      if (!always && !(Number.isInteger(every) && every > 0) && !(when !== '' && p >= 0 && p <= 1)) throw new Error(`SEGFLOW_FAULTS: bad WHEN in "${s}" (a probability, every=N or always)`);
      return { stage, kind: kind as Kind, p, every, always };
    });
}

/** A number in [0, 1) from a string, stable across runs. */
function unit(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return (h >>> 0) / 4294967296;
}

/** Grow the heap until V8 kills this worker for passing its resource limit. */
function exhaustHeap(): never {
  const limit = resourceLimits.maxOldGenerationSizeMb;
  // without a small limit (V8's default is 4 GiB) this would take the machine's memory
  if (!(typeof limit === 'number' && limit > 0 && limit <= 2048)) {
    throw new Error(`injected fault (oom) needs a worker heap limit of at most 2048 MiB, this worker has ${limit} MiB (--memory sets it)`);
  }
  const hoard: number[][] = [];
  for (;;) hoard.push(new Array<number>(1 << 16).fill(hoard.length + 0.5));
}

/**
 * Maybe fail the current task, per SEGFLOW_FAULTS. `taskIndex` numbers the task within its stage;
 * `attempt` is 1-based.
 */
export async function injectFault(stage: string, taskIndex: number, attempt: number): Promise<void> {
  // every scan and merge task calls this first: the place to let go of the shared sections the
  // worker's previous task made or read (see util/gc.ts)
  beforeTask();
  const rules = parseFaults(process.env.SEGFLOW_FAULTS);
  const seed = process.env.SEGFLOW_FAULTS_SEED ?? '1';
  for (const r of rules) {
    if (r.stage !== stage) continue;
    const hit = r.always || (r.every > 0 ? attempt === 1 && taskIndex % r.every === 0 : unit(`${seed}:${stage}:${taskIndex}:${attempt}`) < r.p);
    if (!hit) continue;
    const log = process.env.SEGFLOW_FAULTS_LOG;
    if (log) fs.appendFileSync(log, `${stage} ${taskIndex} ${attempt} ${r.kind}\n`);
    const msg = `injected fault (${stage}:${r.kind}) in task ${taskIndex}, attempt ${attempt}`;
    if (r.kind === 'crash') process.exit(70); // ends this worker thread only
    if (r.kind === 'hang') await new Promise(() => {});
    if (r.kind === 'oom') exhaustHeap();
    throw new Error(msg);
  }
}
