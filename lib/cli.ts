#!/usr/bin/env node
/**
 * The `segflow` command line's entry. For a job on the local pool (`aggregate`, `segment`) it
 * starts the worker threads first, from a light reading of `--workers` and `--memory`, so that
 * they boot (about 0.2 s) while the main thread imports yargs and the commands (0.16-0.18 s);
 * the job adopts that pool when its own reading of the flags agrees (pool.ts, adoptPrestarted).
 * Then the command line proper (cli-main.ts) runs.
 */
import { defaultWorkers, prestartPool } from './pool.js';
import { defaultMemory, planMemory } from './memory.js';
import { parseBytes } from './util/units.js';

/** The last value given to `--name` (as `--name v` or `--name=v`), before any `--`. */
function flagValue(argv: string[], name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === `--${name}`) v = argv[i + 1];
    else if (a.startsWith(`--${name}=`)) v = a.slice(name.length + 3);
  }
  return v;
}

function prestart(argv: string[]): void {
  if (argv[0] !== 'aggregate' && argv[0] !== 'segment') return;
  if (argv.some((a) => a === '--cluster' || a.startsWith('--cluster=') || a === '--help' || a === '-h')) return;
  try {
    const w = flagValue(argv, 'workers');
    const workers = w === undefined ? defaultWorkers() : Number(w);
    const m = flagValue(argv, 'memory');
    const memory = m === undefined ? defaultMemory() : parseBytes(m, '--memory')!;
    if (!Number.isInteger(workers) || workers < 1 || !(memory > 0)) return;
    prestartPool({ workers, maxOldGenerationSizeMb: planMemory(memory, workers).workerHeapMb });
  } catch {
    // a flag the command line will reject with its own message
  }
}

prestart(process.argv.slice(2));
const { main, fail } = await import('./cli-main.js');
main().catch(fail);
