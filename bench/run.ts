/**
 * `npm run bench`: the numbers behind the README, in one run.
 *  1. the worker-count table of `segflow bench` (tinybench, medians);
 *  2. segflow vs DuckDB on the same file and the same threads, whole process to output CSV, as
 *     interleaved runs (median and ratio), with the peak RSS of each (via /usr/bin/time when here);
 *  3. the k-means bench, when built (bench/kmeans.bench.ts).
 * Flags: --file F (default: generate one), --size 1GiB (generated size, default 256MiB),
 *        --rounds N (5), --warmup N (3: untimed table rounds), --workers 1,2 (the table),
 *        --threads 2 (the comparison), --json
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchTable, benchWorkers, defaultWorkerCounts } from '../lib/bench.js';
import { generate } from '../lib/generate.js';
import { parseBytes } from '../lib/util/units.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, def?: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const json = args.includes('--json');
const rounds = Number(flag('rounds', '5'));
const warmup = Number(flag('warmup', '3'));
const threads = Number(flag('threads', '2'));
const workers = (flag('workers') ?? defaultWorkerCounts().join(',')).split(',').map(Number);
const log = (s: string): void => {
  process.stderr.write(s + '\n');
};

let file = flag('file');
if (!file) {
  const size = parseBytes(flag('size', '256MiB'), '--size')!;
  file = path.join(root, 'bench', 'data', `bf-${size}.csv`);
  if (!fs.existsSync(file)) {
    log(`generating ${file} ...`);
    const g = generate({ out: file, size, users: Math.max(1000, Math.round((size / (1 << 30)) * 1_900_000)), seed: 1 });
    log(`  ${g.rows} rows, ${g.users} users in ${(g.ms / 1000).toFixed(1)} s`);
  }
}
const bytes = fs.statSync(file).size;
const tmp = fs.mkdtempSync(path.join(path.dirname(file), '.bench-'));

// 1. worker counts
log(`worker counts ${workers.join(', ')} on ${file}`);
const table = await benchWorkers({ input: file, workers, rounds, warmup, tmpDir: tmp, onRun: (w, ms) => log(`  ${w} workers: ${(ms / 1000).toFixed(3)} s`) });
if (!json) process.stdout.write(benchTable(table) + '\n\n');

// 2. segflow vs DuckDB, interleaved processes
const timeBin = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
function run(cmd: string[]): { seconds: number; rssMiB: number | null; ok: boolean; status: number | null } {
  const t0 = performance.now();
  const full = timeBin ? [timeBin, '-f', 'RSS_KB=%M', ...cmd] : cmd;
  const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8', cwd: root });
  const seconds = (performance.now() - t0) / 1000;
  const m = /RSS_KB=(\d+)/.exec(r.stderr ?? '');
  return { seconds, rssMiB: m ? Number(m[1]) / 1024 : null, ok: r.status === 0, status: r.status };
}
const cli = path.join(root, 'dist', 'lib', 'cli.js');
const duckScript = path.join(root, 'dist', 'bench', 'duckdb-groupby.js');
const seg: ReturnType<typeof run>[] = [];
const duck: ReturnType<typeof run>[] = [];
let duckdbAvailable = true;
for (let i = 0; i < rounds; i++) {
  const s = run([process.execPath, cli, 'aggregate', file, '--out', path.join(tmp, 'seg'), '--force', '--workers', String(threads), '-q']);
  if (!s.ok) throw new Error(`segflow aggregate failed (${s.status})`);
  seg.push(s);
  log(`  segflow ${threads} workers: ${s.seconds.toFixed(3)} s, ${s.rssMiB?.toFixed(0) ?? '?'} MiB`);
  if (duckdbAvailable) {
    const d = run([process.execPath, duckScript, file, path.join(tmp, 'duck.csv'), String(threads)]);
    if (d.status === 3) {
      duckdbAvailable = false;
      log('  DuckDB is not installed: comparison skipped');
      continue;
    }
    if (!d.ok) throw new Error(`duckdb failed (${d.status})`);
    duck.push(d);
    log(`  duckdb  ${threads} threads: ${d.seconds.toFixed(3)} s, ${d.rssMiB?.toFixed(0) ?? '?'} MiB`);
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const peer = {
  file,
  bytes,
  threads,
  rounds,
  segflow: { medianSeconds: median(seg.map((x) => x.seconds)), mbPerSec: bytes / 1e6 / median(seg.map((x) => x.seconds)), peakRssMiB: Math.max(...seg.map((x) => x.rssMiB ?? 0)) },
  duckdb: duck.length ? { medianSeconds: median(duck.map((x) => x.seconds)), mbPerSec: bytes / 1e6 / median(duck.map((x) => x.seconds)), peakRssMiB: Math.max(...duck.map((x) => x.rssMiB ?? 0)) } : null,
  ratio: duck.length ? median(duck.map((x) => x.seconds)) / median(seg.map((x) => x.seconds)) : null,
};
if (!json) {
  process.stdout.write(`segflow vs DuckDB, ${(bytes / 1e6).toFixed(0)} MB, ${threads} threads each, ${rounds} interleaved runs (whole process, to CSV):\n`);
  process.stdout.write(`  segflow  median ${peer.segflow.medianSeconds.toFixed(3)} s  ${peer.segflow.mbPerSec.toFixed(0)} MB/s  peak RSS ${peer.segflow.peakRssMiB.toFixed(0)} MiB\n`);
  if (peer.duckdb) {
    process.stdout.write(`  duckdb   median ${peer.duckdb.medianSeconds.toFixed(3)} s  ${peer.duckdb.mbPerSec.toFixed(0)} MB/s  peak RSS ${peer.duckdb.peakRssMiB.toFixed(0)} MiB\n`);
    process.stdout.write(`  segflow is ${peer.ratio!.toFixed(2)}x DuckDB's speed\n`);
  }
}

// 3. k-means
const km = path.join(root, 'dist', 'bench', 'kmeans.bench.js');
let kmeans: unknown = null;
if (fs.existsSync(km)) {
  const r = spawnSync(process.execPath, [km, ...(json ? ['--json'] : [])], { encoding: 'utf8', cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  if (json) {
    try {
      kmeans = JSON.parse(r.stdout);
    } catch {
      kmeans = null;
    }
  } else process.stdout.write('\n' + r.stdout);
}
fs.rmSync(tmp, { recursive: true, force: true });
if (json) process.stdout.write(JSON.stringify({ workers: table, peer, kmeans }) + '\n');
