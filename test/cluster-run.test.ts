/**
 * Cluster runs without faults, on a redis-server and an S3 stand-in of their own and three
 * `segflow worker` processes: the output is byte-identical to the local run with the same --shards
 * (input on a shared path with a folder store; input and store on S3), a committed run restarted
 * with its --run-id rebuilds the output from the store alone, `segment --cluster` gives the local
 * segments, and an input the workers cannot read fails its task after 4 attempts with `file:range`
 * in the error and no manifest.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Redis } from 'ioredis';
import { aggregate, generate } from '../lib/index.js';
import { openStore } from '../lib/cluster/store.js';
import { BUCKET, CLI, ClusterEnv, hasRedis, readDir, within, type Proc } from './helpers/cluster-env.js';
import { checkCommitted, finish, runDriver } from './helpers/cluster-checks.js';

const test = suite('cluster run');
const env = new ClusterEnv('cluster-run');
const SHARDS = 6;
let input = '';
let local: Map<string, Buffer>;
let localSummary: Record<string, unknown>;
let workers: Proc[] = [];
let redis: Redis;

test.before(async () => {
  await env.startRedis();
  await env.startS3();
  redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => {}); // Redis restarts in a test
  // ~1.4 MB with a few bad rows, in 24 KiB ranges: about 60 scan tasks
  input = path.join(env.dir, 'sales.csv');
  generate({ out: input, rows: 30_000, seed: 11, decimals: 2 });
  const lines = fs.readFileSync(input, 'utf8').split('\n');
  lines.splice(5, 0, 'a,row,with,too,few');
  lines.splice(12_000, 0, '1000001,P00069042,F,0-17,10,A,2,0,3,,,12.5.0');
  lines.splice(25_000, 0, ',P00069042,F,0-17,10,A,2,0,3,,,7');
  fs.writeFileSync(input, lines.join('\n'));
  const s = await aggregate({ input, out: path.join(env.dir, 'local'), shards: SHARDS, workers: 2 });
  localSummary = s as unknown as Record<string, unknown>;
  local = readDir(path.join(env.dir, 'local'));
  workers = await Promise.all(['w1', 'w2', 'w3'].map((n) => env.worker(n)));
});

test.after(async () => {
  redis?.disconnect();
  await env.close();
});

/** The output files but summary.json. */
function data(files: Map<string, Buffer>): Map<string, Buffer> {
  const out = new Map(files);
  out.delete('summary.json');
  return out;
}

const fields = (s: Record<string, unknown>): unknown => ({ rows: s.rows, users: s.users, total: s.total, scale: s.scale, shards: s.shards, files: s.files });

test('input on a shared path, folder store: byte-identical to the local run', async () => {
  const store = `file://${path.join(env.dir, 'store')}`;
  const out = path.join(env.dir, 'out-file');
  const { summary } = await runDriver(env, 'd-file', { input, out, store, runId: 'clean-file', shards: SHARDS, rangeSize: 24 << 10 }, 60_000);
  const files = readDir(out);
  assert.equal([...files.keys()], [...local.keys()]);
  for (const [name, bytes] of data(local)) assert.ok(files.get(name)!.equals(bytes), `${name} is byte-identical`);
  assert.equal(fields(summary), fields(localSummary));
  const s = summary as { rows: { rejected: number }; inputs: { file: string; ranges: number }[]; cluster: { tasks: { scan: number }; threads: number } };
  assert.is(s.rows.rejected, 3);
  assert.is(s.inputs[0].file, input);
  assert.ok(s.cluster.tasks.scan >= 50, `${s.cluster.tasks.scan} scan tasks`);
  assert.is(s.cluster.threads, 3);
  await checkCommitted(openStore(store), 'clean-file', s.cluster.tasks.scan, SHARDS);
  // the run's jobs are gone from Redis
  assert.equal(await redis.keys('bull:segflow*:clean-file.*'), []);
});

test('inputs and store on S3 (a prefix of two objects): identical output, rejects name the objects', async () => {
  // the same rows in two files (each with the header): the same users; rejects per file
  const lines = fs.readFileSync(input, 'utf8').split('\n');
  const cut = 15_000;
  const parts = [lines.slice(0, cut), [lines[0], ...lines.slice(cut)]].map((l, i) => {
    const f = path.join(env.dir, `part-${'ab'[i]}.csv`);
    fs.writeFileSync(f, l.join('\n') + (i === 0 ? '\n' : ''));
    return f;
  });
  await aggregate({ input: parts, out: path.join(env.dir, 'local-parts'), shards: SHARDS, workers: 2 });
  const localParts = readDir(path.join(env.dir, 'local-parts'));
  const bucket = openStore(`s3://${BUCKET}`);
  for (const f of parts) await bucket.put(`inputs/parts/${path.basename(f)}`, fs.readFileSync(f));
  const out = path.join(env.dir, 'out-s3');
  const { summary } = await runDriver(env, 'd-s3', { input: `s3://${BUCKET}/inputs/parts/`, out, store: `s3://${BUCKET}/runs`, runId: 'clean-s3', shards: SHARDS, rangeSize: 24 << 10 }, 60_000);
  const files = readDir(out);
  for (const [name, bytes] of data(local)) if (name !== 'rejects.jsonl') assert.ok(files.get(name)!.equals(bytes), `${name} is byte-identical to the one-file run`);
  let rejects = localParts.get('rejects.jsonl')!.toString('utf8');
  for (const f of parts) rejects = rejects.split(JSON.stringify(f)).join(JSON.stringify(`s3://${BUCKET}/inputs/parts/${path.basename(f)}`));
  assert.is(files.get('rejects.jsonl')!.toString('utf8'), rejects);
  assert.equal(fields(summary), fields(localSummary));
  const s = summary as { cluster: { tasks: { scan: number } } };
  await checkCommitted(openStore(`s3://${BUCKET}/runs`), 'clean-s3', s.cluster.tasks.scan, SHARDS);
});

test('quoted fields across lines (read again whole), gzip and JSON Lines: identical to local', async () => {
  const quoted = path.join(env.dir, 'quoted.csv');
  let text = 'user_id,note,amount\n';
  for (let i = 0; i < 3000; i++) text += i % 97 === 5 ? `u${i % 300},"two\nlines, and ""quotes""",${i % 50}.25\n` : `u${i % 300},plain,${i % 50}.25\n`;
  fs.writeFileSync(quoted, text);
  const jsonl = path.join(env.dir, 'more.jsonl.gz');
  let j = '';
  for (let i = 0; i < 2000; i++) j += JSON.stringify({ user_id: `u${i % 400}`, amount: (i % 70) + 0.5 }) + '\n';
  fs.writeFileSync(jsonl, zlib.gzipSync(j));
  const inputs = [quoted, jsonl];
  const ref = await aggregate({ input: inputs, out: path.join(env.dir, 'local-mixed'), shards: SHARDS, workers: 2, rangeSize: 4096 });
  const out = path.join(env.dir, 'out-mixed');
  const { summary } = await runDriver(env, 'd-mixed', { input: inputs, out, store: `file://${path.join(env.dir, 'store')}`, runId: 'mixed', shards: SHARDS, rangeSize: 4096 }, 60_000);
  const want = readDir(path.join(env.dir, 'local-mixed'));
  const files = readDir(out);
  for (const [name, bytes] of data(want)) assert.ok(files.get(name)!.equals(bytes), `${name} is byte-identical`);
  assert.equal((summary as { warnings: string[] }).warnings, ref.warnings);
  assert.match(ref.warnings.join('\n'), /read again in one range/);
});

test('the CLI: a committed run restarted with its --run-id rebuilds the output from the store', async () => {
  const before = workers.map((w) => w.lines.length);
  const out = path.join(env.dir, 'out-again');
  const store = `file://${path.join(env.dir, 'store')}`;
  const cli = env.spawn('cli-again', process.execPath, [CLI, 'aggregate', input, '--out', out, '--cluster', env.redisUrl, '--store', store, '--run-id', 'clean-file', '--shards', String(SHARDS), '--json', '--quiet'], env.env);
  const summary = await finish(cli, 30_000);
  assert.is((summary as { cluster: { resumed: boolean } }).cluster.resumed, true);
  const files = readDir(out);
  for (const [name, bytes] of data(local)) assert.ok(files.get(name)!.equals(bytes), `${name} is byte-identical`);
  assert.equal(
    workers.map((w, i) => w.lines.slice(before[i]).filter((l) => / start /.test(l))),
    [[], [], []],
    'no task ran again',
  );
  // the same --run-id for another job (another amount column) is refused, not answered with this run
  const other = env.spawn('cli-other', process.execPath, [CLI, 'aggregate', input, '--out', path.join(env.dir, 'out-other'), '--cluster', env.redisUrl, '--store', store, '--run-id', 'clean-file', '--shards', String(SHARDS), '--amount-col', 'Product_Category_1', '--quiet'], env.env);
  assert.is(await within(other.exited, 30_000), 2, other.lines.join('\n'));
  assert.match(other.lines.join('\n'), /run clean-file in .* was planned for other inputs or options/);
  assert.not.ok(fs.existsSync(path.join(env.dir, 'out-other')));
});

test('the CLI: segment --cluster gives the local segments', async () => {
  const out = path.join(env.dir, 'seg-cluster');
  const args = (o: string): string[] => ['segment', input, '--out', o, '--shards', String(SHARDS), '--json', '--quiet'];
  const cli = env.spawn('cli-segment', process.execPath, [CLI, ...args(out), '--cluster', env.redisUrl, '--store', `file://${path.join(env.dir, 'store')}`, '--range-size', '64KiB'], env.env);
  const ref = env.spawn('cli-segment-local', process.execPath, [CLI, ...args(path.join(env.dir, 'seg-local')), '--workers', '2'], env.env);
  const [s] = await Promise.all([finish(cli, 60_000), finish(ref, 60_000)]);
  assert.ok((s as { cluster?: unknown }).cluster, 'ran on the cluster');
  const mine = readDir(out);
  const want = readDir(path.join(env.dir, 'seg-local'));
  assert.equal([...mine.keys()], [...want.keys()]);
  for (const [name, bytes] of want) if (name !== 'summary.json' && name !== 'report.html') assert.ok(mine.get(name)!.equals(bytes), `${name} is byte-identical`);
});

test('an input the workers cannot read fails after 4 attempts with file:range, and no manifest', async () => {
  const bucket = openStore(`s3://${BUCKET}`);
  const url = `s3://${BUCKET}/inputs/poison.csv`;
  await bucket.put('inputs/poison.csv', fs.readFileSync(input).subarray(0, 50_000));
  const store = openStore(`s3://${BUCKET}/runs`);
  // planned on a queue no worker serves yet; the object goes before any worker reads it
  const out = path.join(env.dir, 'out-poison');
  const d = env.driver('d-poison', { input: url, out, store: store.url, runId: 'poison', shards: SHARDS, rangeSize: 1 << 20, queue: 'poison' });
  await d.waitFor(/^progress scan 0\//, 20_000);
  await bucket.delete(['inputs/poison.csv']);
  await env.worker('w-poison', ['--queue', 'poison']);
  const code = await within(d.exited, 40_000);
  assert.is(code, 1, d.lines.join('\n'));
  const error = d.lines.find((l) => l.startsWith('error '))!;
  assert.match(error, new RegExp(`^error ERR_TASK_FAILED scan task ${url}:\\d+-50000 failed after 4 attempts; last error:`));
  assert.match(error, /NoSuchKey/);
  assert.is(await store.get('runs/poison/_SUCCESS'), undefined);
  assert.equal(await store.list('runs/poison/'), [], 'a failed run leaves nothing in the store');
  assert.not.ok(fs.existsSync(out));
});

if (hasRedis()) test.run();
else console.log('cluster run: skipped, redis-server is not installed (CI installs it with .ci/setup-redis.sh)');
