/**
 * Failover on a cluster of three `segflow worker` processes, each in a network namespace with its
 * own address where the machine allows it (root), else on the loopback with the third one reaching
 * Redis through a relay; short locks (2 s) and slowed tasks, so that every fault hits a task in hand:
 *   - one run survives a SIGKILLed worker, a worker stopped with SIGSTOP past its lock, a worker
 *     whose link goes down for a few seconds, and a SIGKILLed driver restarted with the same
 *     --run-id: identical output, exactly one committed attempt per task, the scans finished before
 *     the driver died are not run again, and the late completions are rejected;
 *   - Redis killed with SIGKILL mid-merge and restarted from its append-only file: identical output.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { aggregate, generate } from '../lib/index.js';
import { openStore } from '../lib/cluster/store.js';
import { ClusterEnv, NetNs, hasRedis, readDir, until, type Proc } from './helpers/cluster-env.js';
import { checkCommitted, finish } from './helpers/cluster-checks.js';

const test = suite('cluster failover');
const env = new ClusterEnv('cluster-failover');
const SHARDS = 4;
const LOCK = ['--lock-ms', '2000', '--stalled-interval-ms', '500', '--concurrency', '1', '--task-delay-ms', '250'];
let input = '';
let local: Map<string, Buffer>;
let redis: Redis;
let store = '';
const w: Record<string, Proc> = {};
let cut: (ms: number) => Promise<void>;

test.before(async () => {
  env.nets = NetNs.make(3);
  console.log(env.nets.length ? `cluster failover: workers in network namespaces ${env.nets.map((n) => `${n.name} (${n.ip})`).join(', ')}` : 'cluster failover: no network namespaces here (needs root): workers on the loopback');
  await env.startRedis();
  await env.startS3();
  redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => {}); // Redis restarts in a test
  input = path.join(env.dir, 'sales.csv');
  generate({ out: input, rows: 25_000, seed: 5 });
  await aggregate({ input, out: path.join(env.dir, 'local'), shards: SHARDS, workers: 2 });
  local = readDir(path.join(env.dir, 'local'));
  store = `file://${path.join(env.dir, 'store')}`;
  if (env.nets.length === 3) {
    // three machines of their own: each worker in a network namespace with its own address
    [w.a, w.b, w.c] = await Promise.all(['wa', 'wb', 'wc'].map((n, i) => env.worker(n, LOCK, undefined, { ns: env.nets[i] })));
    cut = (ms) => env.nets[2].cut(ms);
  } else {
    // on the loopback: the third worker reaches Redis through a relay whose link can be cut
    const link = await env.link(env.redisPort);
    [w.a, w.b, w.c] = await Promise.all([env.worker('wa', LOCK), env.worker('wb', LOCK), env.worker('wc', LOCK, `redis://127.0.0.1:${link.port}`)]);
    cut = (ms) => link.cut(ms);
  }
});

test.after(async () => {
  redis?.disconnect();
  await env.close();
});

function sameAsLocal(out: string): void {
  const files = readDir(out);
  assert.equal([...files.keys()], [...local.keys()]);
  for (const [name, bytes] of local) if (name !== 'summary.json') assert.ok(files.get(name)!.equals(bytes), `${name} is byte-identical`);
}

/** The committed scan attempts so far (the scan stage's processed children). */
async function committedScans(runId: string): Promise<Map<string, string>> {
  const raw = await redis.hgetall(`bull:segflow-runs:${runId}.scan:processed`);
  return new Map(Object.entries(raw).map(([k, v]) => [k.slice(k.lastIndexOf(':') + 1), (JSON.parse(v) as { attempt: string }).attempt]));
}

/** A worker's next `start` line (it holds a task then). */
const holding = (p: Proc): Promise<string> => p.waitFor(/ start /, 10_000, p.lines.length);

test('a killed worker, a frozen worker, a cut link and a killed driver: same output, one attempt per task', async () => {
  const runId = 'failover';
  const out = path.join(env.dir, 'out-failover');
  const options = { input, out, store, runId, shards: SHARDS, rangeSize: 20 << 10 };
  const d1 = env.driver('d1', options);
  await d1.waitFor(/^progress scan ([5-9]|\d\d+)\//, 30_000);
  const before = await committedScans(runId);
  assert.ok(before.size >= 5, `${before.size} scans committed before the driver dies`);
  await d1.kill();

  // the faults, each on a worker with a task in hand
  await holding(w.a);
  await w.a.kill();
  w.a2 = await env.worker('wa2', LOCK, undefined, { ns: env.nets[0] });
  const transit = fs.readdirSync(path.join(env.dir, 'transit'));
  assert.not.ok(transit.some((n) => n.startsWith(`segflow-worker-${w.a.child.pid}-`)), 'a new worker removes the transit folder of a killed one');
  await holding(w.b);
  w.b.signal('SIGSTOP');
  await holding(w.c);
  const linkBack = cut(5_000);
  const d2 = env.driver('d2', options);
  await new Promise((r) => setTimeout(r, 5_000)); // past the 2 s lock and a stalled check
  w.b.signal('SIGCONT');
  await linkBack;

  const summary = (await finish(d2, 90_000)) as { cluster: { resumed: boolean; tasks: { scan: number }; stalls: number; retries: number } };
  sameAsLocal(out);
  assert.is(summary.cluster.resumed, true);
  assert.ok(summary.cluster.stalls >= 1, `${summary.cluster.stalls} lost locks seen`);
  // the late completions of the frozen worker and the cut-off one are rejected (they may come
  // after the commit: bounded wait)
  await until('a rejected late completion', async () => Number(await redis.hget(`segflow:run:${runId}`, 'lateRejected')) >= 1, 20_000, 100);
  const lateLines = [w.b, w.c].flatMap((p) => p.lines.filter((l) => /late completion of .* rejected/.test(l)));
  assert.ok(lateLines.length >= 1, 'a worker logged its rejected late completion');
  // quiet: every late attempt has cleaned up after itself
  const count = (p: Proc, re: RegExp): number => p.lines.filter((l) => re.test(l)).length;
  await until('every task in hand finished', () => [w.a2, w.b, w.c].every((p) => count(p, / start /) === count(p, / done /)), 15_000, 100);
  await new Promise((r) => setTimeout(r, 1_000));
  const m = await checkCommitted(openStore(store), runId, summary.cluster.tasks.scan, SHARDS);
  // the scans committed before the driver died were not run again
  for (const [id, attempt] of before) {
    const task = id.slice(runId.length + 1); // scan.N
    assert.is(m.scans.find((s) => s.task === task)?.attempt, attempt, `${task} kept its first committed attempt`);
  }
});

test('Redis killed with SIGKILL mid-merge and restarted from its append-only file: same output', async () => {
  const runId = 'redis-kill';
  const out = path.join(env.dir, 'out-redis');
  const d = env.driver('d-redis', { input, out, store, runId, shards: SHARDS, rangeSize: 20 << 10 });
  await d.waitFor(/^progress merge 0\//, 60_000);
  await env.redis!.kill();
  await new Promise((r) => setTimeout(r, 1_000));
  await env.startRedis();
  const summary = (await finish(d, 60_000)) as { cluster: { tasks: { scan: number } } };
  sameAsLocal(out);
  await checkCommitted(openStore(store), runId, summary.cluster.tasks.scan, SHARDS);
  assert.ok(fs.existsSync(path.join(env.dir, 'redis', 'appendonlydir')), 'Redis restarted from its append-only file');
});

if (hasRedis()) test.run();
else console.log('cluster failover: skipped, redis-server is not installed (CI installs it with .ci/setup-redis.sh)');
