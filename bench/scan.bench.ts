/**
 * The scan and merge hot paths on one thread, for before/after comparisons of a change:
 *  - scan: the file split into `--ranges` ranges, all folded into one held table (as one worker
 *    of a job does), then the table handed over as sections (the flush);
 *  - merge: the file's two halves held as two tables (two workers), their 8 partitions merged
 *    into shards under a temp folder.
 * With `--builds A,B` (folders that each hold a build: `dist` of two checkouts) the builds run
 * interleaved in one process, round by round, so the machine's noise hits both alike; report the
 * best and the median per build.
 *
 * With `--window BASE:SPAN` the tables fold the integer ids in [BASE, BASE + SPAN) into dense
 * rows (lib/dense.ts; a job picks the window from a sample, `segflow aggregate --json` prints it)
 * and the merge adds them as they are.
 *
 *   node dist/bench/scan.bench.js [--file F] [--size 256MiB] [--ranges 4] [--rounds 4]
 *                                 [--window 1000000:2353000] [--builds dist,/tmp/other/dist] [--json]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const ranges = Number(flag('ranges', '4'));
const rounds = Number(flag('rounds', '4'));
const builds = flag('builds', path.resolve(here, '..')).split(',').map((b) => path.resolve(b));
const json = args.includes('--json');
const win = flag('window', '');
const dense = win ? { base: Number(win.split(':')[0]), span: Number(win.split(':')[1]) } : undefined;

type Mod = Record<string, (...a: never[]) => unknown>;
interface Build {
  dir: string;
  scan: Mod;
  schema: Mod;
  merge: Mod;
}
const loaded: Build[] = [];
for (const dir of builds) {
  const load = async (m: string): Promise<Mod> => (await import(pathToFileURL(path.join(dir, 'lib', m)).href)) as Mod;
  const b = { dir, scan: await load('scan.js'), schema: await load('schema.js'), merge: await load('merge.js') };
  if (typeof b.scan.flushHeld !== 'function') {
    process.stderr.write(`scan.bench: ${dir} has no held tables (a build from before them); compare it with \`segflow bench\` instead\n`);
    process.exit(2);
  }
  loaded.push(b);
}

let file = flag('file', '');
if (!file) {
  const { generate } = await import('../lib/generate.js');
  const { parseBytes } = await import('../lib/util/units.js');
  const size = parseBytes(flag('size', '256MiB'), '--size')!;
  file = path.join(here, '..', '..', 'bench', 'data', `bf-${size}.csv`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    generate({ out: file, size, users: Math.max(1000, Math.round((size / (1 << 30)) * 1_900_000)), seed: 1 });
  }
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-scanbench-'));

interface Flushed {
  sections: SharedArrayBuffer[];
  keys: number;
  dense?: unknown;
  scale: number;
}

/** Scan ranges [from, to) of the file into one held table of `job`. */
async function holdRanges(b: Build, job: string, from: number, to: number): Promise<void> {
  const s = (b.schema.readSchema as (f: string, o: object) => { dataStart: number })(file, {});
  const size = fs.statSync(file).size;
  const step = Math.ceil((size - s.dataStart) / ranges);
  for (let i = from; i < to; i++) {
    const start = s.dataStart + i * step;
    const end = Math.min(size, start + step);
    const task = (b.scan.scanTaskOf as (...a: unknown[]) => Record<string, unknown>)(file, s, { fileIndex: 0, rangeIndex: i, start, end, atRecordStart: i === 0, weight: end - start }, 8, i);
    task.hold = { job, maxBytes: 1e12, ended: [] };
    task.dense = dense;
    await (b.scan.scanRange as (t: unknown) => Promise<unknown>)(task);
  }
}

/** Hand over the held table of `job` as 8 partitions. */
function flush(b: Build, job: string): Flushed[] {
  return (b.scan.flushHeld as (t: unknown) => Flushed[])({ job, partitions: 8, discard: false, barrier: new SharedArrayBuffer(4), workers: 1, waitMs: 0 });
}

const results = new Map<string, { scan: number[]; flush: number[]; merge: number[]; keys: number; users: number }>();
for (let round = 0; round < rounds; round++) {
  for (const b of loaded) {
    const r = results.get(b.dir) ?? { scan: [], flush: [], merge: [], keys: 0, users: 0 };
    results.set(b.dir, r);
    // scan: every range into one table, then the flush
    const job = `r${round}`;
    let t0 = performance.now();
    await holdRanges(b, job, 0, ranges);
    let t1 = performance.now();
    const outs = flush(b, job);
    r.scan.push(t1 - t0);
    r.flush.push(performance.now() - t1);
    r.keys = outs.reduce((a, o) => a + o.keys, 0);
    // merge: the two halves as two workers' tables, 8 partitions
    const half = Math.ceil(ranges / 2);
    await holdRanges(b, `${job}a`, 0, half);
    const a = flush(b, `${job}a`);
    await holdRanges(b, `${job}b`, half, ranges);
    const halves = a.concat(flush(b, `${job}b`));
    t0 = performance.now();
    let users = 0;
    for (let p = 0; p < 8; p++) {
      const m = (b.merge.mergePartition as (t: unknown) => { users: number })({
        partition: p,
        partitions: 8,
        segments: halves.map((o) => ({ shared: o.sections[p] })),
        dense: halves.flatMap((o) => (o.dense ? [o.dense] : [])),
        flags: 0,
        // the job's scale: the most decimal places either half saw
        scale: Math.max(...halves.map((o) => o.scale)),
        qscale: 0,
        dateHasTime: false,
        outFile: path.join(tmp, `u${p}.csv`),
        memory: 4e9,
        scratchDir: tmp,
      });
      users += m.users;
    }
    t1 = performance.now();
    r.merge.push(t1 - t0);
    r.users = users;
  }
}
fs.rmSync(tmp, { recursive: true, force: true });

const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)];
const best = (a: number[]): number => Math.min(...a);
const rows = [...results].map(([dir, r]) => ({
  build: dir,
  keys: r.keys,
  users: r.users,
  scanBestMs: Math.round(best(r.scan)),
  scanMedianMs: Math.round(med(r.scan)),
  flushMedianMs: Math.round(med(r.flush)),
  mergeBestMs: Math.round(best(r.merge)),
  mergeMedianMs: Math.round(med(r.merge)),
}));
if (json) process.stdout.write(JSON.stringify({ file, ranges, rounds, rows }, null, 2) + '\n');
else {
  process.stdout.write(`${file}: ${ranges} ranges into one table, ${rounds} rounds per build (interleaved), one thread\n`);
  console.table(rows);
}
