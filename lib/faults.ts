/**
 * Fault injection for tests and for users who want to see retries work. The environment variable
 * SEGFLOW_FAULTS holds comma-separated rules `STAGE:KIND:WHEN`:
 *   STAGE  scan | merge
 *   KIND   crash (the worker thread exits) | throw (the task throws) | hang (the task never ends)
 *   WHEN   a probability 0..1 per attempt (seeded by SEGFLOW_FAULTS_SEED, default 1),
 *          every=N (the first attempt of every Nth task), or always
 * e.g. SEGFLOW_FAULTS=scan:crash:0.3 or SEGFLOW_FAULTS=scan:crash:every=3,merge:throw:0.1
 */

interface Rule {
  stage: string;
  kind: 'crash' | 'throw' | 'hang';
  p: number;
  every: number;
  always: boolean;
}

function parseRules(spec: string | undefined): Rule[] {
  if (!spec) return [];
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const [stage, kind, when = 'always'] = s.split(':');
      if (kind !== 'crash' && kind !== 'throw' && kind !== 'hang') throw new Error(`SEGFLOW_FAULTS: unknown kind in "${s}" (crash, throw or hang)`);
      const every = when.startsWith('every=') ? Number(when.slice(6)) : 0;
      const always = when === 'always';
      const p = !always && !every ? Number(when) : 0;
      if (!always && !(every > 0) && !(p >= 0 && p <= 1)) throw new Error(`SEGFLOW_FAULTS: bad WHEN in "${s}"`);
      return { stage, kind, p, every, always };
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

/**
 * Maybe fail the current task, per SEGFLOW_FAULTS. `taskIndex` numbers the task within its stage;
 * `attempt` is 1-based.
 */
export async function injectFault(stage: string, taskIndex: number, attempt: number): Promise<void> {
  const rules = parseRules(process.env.SEGFLOW_FAULTS);
  const seed = process.env.SEGFLOW_FAULTS_SEED ?? '1';
  for (const r of rules) {
    if (r.stage !== stage) continue;
    const hit = r.always || (r.every > 0 ? attempt === 1 && taskIndex % r.every === 0 : unit(`${seed}:${stage}:${taskIndex}:${attempt}`) < r.p);
    if (!hit) continue;
    const msg = `injected fault (${stage}:${r.kind}) in task ${taskIndex}, attempt ${attempt}`;
    if (r.kind === 'crash') process.exit(70); // ends this worker thread only
    if (r.kind === 'hang') await new Promise(() => {});
    throw new Error(msg);
  }
}
