/**
 * Determinism: the same fit inline, with 1 and 2 workers and with any blocks per task gives
 * bit-identical centroids, labels and inertia (blocks are fixed; partials reduce in block order).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SegflowPool } from '../lib/pool.js';
import { fitKMeans, KMeansRunner, runBlock, SeededRandom, type BlockViews, type KMeansResult } from '../lib/kmeans.js';
import { applyScaler, fitScaler } from '../lib/scale.js';

/** Skewed purchases and spend, log1p + z-score, in shared memory. */
function skewed(n: number, seed: number): Float64Array {
  const rng = new SeededRandom(seed);
  const raw = new Float64Array(n * 2);
  for (let i = 0; i < n; i++) {
    const tier = rng.nextDouble();
    const base = tier < 0.6 ? 5 : tier < 0.9 ? 40 : 200;
    const purchases = Math.max(1, Math.round(base * Math.exp(rng.nextDouble() * 2 - 1)));
    raw[2 * i] = purchases;
    raw[2 * i + 1] = purchases * (5 + rng.nextDouble() * 100);
  }
  const scaler = fitScaler(raw, n, 2, 'log-zscore');
  return applyScaler(scaler, raw, new Float64Array(new SharedArrayBuffer(n * 16)));
}

function gaussian3(n: number, seed: number): Float64Array {
  const rng = new SeededRandom(seed);
  const P = new Float64Array(new SharedArrayBuffer(n * 24));
  for (let i = 0; i < n * 3; i++) {
    const centre = (i % 3) * 2 + ((i / 3) % 5);
    P[i] = centre + (rng.nextDouble() + rng.nextDouble() + rng.nextDouble() - 1.5);
  }
  return P;
}

function assertSame(a: KMeansResult, b: KMeansResult, what: string): void {
  assert.is(a.inertia, b.inertia, `${what}: inertia`);
  assert.is(a.iterations, b.iterations, `${what}: iterations`);
  assert.equal(a.sizes, b.sizes, `${what}: sizes`);
  assert.equal(Array.from(a.centroids), Array.from(b.centroids), `${what}: centroids`);
  assert.ok(Buffer.compare(Buffer.from(a.labels.buffer, a.labels.byteOffset, a.labels.byteLength),
    Buffer.from(b.labels.buffer, b.labels.byteOffset, b.labels.byteLength)) === 0, `${what}: labels`);
}

const pool1 = new SegflowPool({ workers: 1 });
const pool2 = new SegflowPool({ workers: 2 });

for (const [name, make, d, k, nInit] of [
  ['d=2 k=3 (the specialised kernel)', () => skewed(150_001, 7), 2, 3, 2],
  ['d=3 k=5 (the generic kernel)', () => gaussian3(60_013, 9), 3, 5, 1],
] as const) {
  test(`identical for any worker count and blocks per task: ${name}`, async () => {
    const P = make();
    const n = P.length / d;
    const opts = { k, nInit, seed: 3, blockSize: 8192 };
    const inline = await fitKMeans(P, n, d, opts);
    assert.ok(inline.iterations > 2);
    const runs: [string, KMeansResult][] = [
      ['1 worker', await fitKMeans(P, n, d, { ...opts, pool: pool1 })],
      ['2 workers', await fitKMeans(P, n, d, { ...opts, pool: pool2 })],
      ['2 workers, 1 block per task', await fitKMeans(P, n, d, { ...opts, pool: pool2, blocksPerTask: 1 })],
      ['2 workers, 5 blocks per task', await fitKMeans(P, n, d, { ...opts, pool: pool2, blocksPerTask: 5 })],
      ['1 worker, 3 blocks per task', await fitKMeans(P, n, d, { ...opts, pool: pool1, blocksPerTask: 3 })],
    ];
    for (const [what, run] of runs) assertSame(run, inline, what);
  });
}

test('the same seed gives the same fit; another seed draws other initial centres', async () => {
  const P = skewed(20_000, 11);
  const a = await fitKMeans(P, 20_000, 2, { k: 3, seed: 1, maxIter: 1 });
  const b = await fitKMeans(P, 20_000, 2, { k: 3, seed: 1, maxIter: 1 });
  const c = await fitKMeans(P, 20_000, 2, { k: 3, seed: 2, maxIter: 1 });
  assertSame(a, b, 'same seed');
  assert.not.equal(Array.from(a.centroids), Array.from(c.centroids));
});

test('the d=2 k=3 kernel equals the generic kernel bit for bit', () => {
  const n = 5000;
  const P = skewed(n, 5);
  const centers = Float64Array.from([0.3, 0.2, -1.1, -0.9, 1.4, 1.5]);
  const stride = 2 + 3 + 6;
  const run = (labels: Uint8Array | Int32Array): Float64Array => {
    const previous = labels instanceof Uint8Array ? new Uint8Array(n).fill(1) : new Int32Array(n).fill(1);
    const views: BlockViews = { points: P, labels, previous, centers, partials: new Float64Array(stride) };
    runBlock(views, 'assign', 0, n, 2, 3, n, stride, new Float64Array(9));
    return views.partials;
  };
  const u8 = new Uint8Array(n);
  const i32 = new Int32Array(n);
  const special = run(u8); // Uint8Array labels take the d=2 k=3 kernel
  const generic = run(i32); // Int32Array labels take the generic one
  assert.equal(Array.from(special).slice(2), Array.from(generic).slice(2));
  assert.is(special[0], generic[0]);
  assert.equal(Array.from(u8), Array.from(i32));
});

test('an assign task run twice (a retry after a worker died) gives the same labels, flag and sums', () => {
  const n = 20_000;
  const P = skewed(n, 13);
  const stride = 2 + 3 + 6;
  const previous = new Uint8Array(n); // all in cluster 0 before this pass
  const views: BlockViews = {
    points: P, labels: new Uint8Array(n), previous,
    centers: Float64Array.from([0.3, 0.2, -1.1, -0.9, 1.4, 1.5]), partials: new Float64Array(stride),
  };
  runBlock(views, 'assign', 0, n, 2, 3, n, stride, new Float64Array(9));
  const first = Array.from(views.partials);
  const labels = Array.from(views.labels);
  runBlock(views, 'assign', 0, n, 2, 3, n, stride, new Float64Array(9));
  assert.is(first[1], 1, 'labels changed against the previous pass');
  assert.equal(Array.from(views.partials), first);
  assert.equal(Array.from(views.labels), labels);
  assert.ok(previous.every((v) => v === 0), 'the previous labels are only read');
});

test('the runner swaps label arrays: the same centres twice report no change', async () => {
  const n = 40_000;
  const runner = new KMeansRunner(skewed(n, 13), n, 2, 3, { pool: pool2, blockSize: 4096 });
  const centers = Float64Array.from([0.3, 0.2, -1.1, -0.9, 1.4, 1.5]);
  const first = await runner.assign(centers);
  const again = await runner.assign(centers);
  assert.ok(first.changed);
  assert.not.ok(again.changed);
  assert.is(again.inertia, first.inertia);
});

test.after(async () => {
  await pool1.destroy();
  await pool2.destroy();
});

test.run();
