/**
 * k-means edge cases: empty clusters, duplicate points (k larger than the distinct points), k > n,
 * bad options, k-means++ draws, streaming assignment, abort.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assignNearest, fitKMeans, kmeansPlusPlus, KMeansRunner, kppCandidates, SeededRandom } from '../lib/kmeans.js';

type Coded = Error & { code?: string };

test('k-means++ tries 2 + floor(ln k) candidates per step, as scikit-learn', () => {
  assert.equal([1, 2, 3, 7, 8, 20, 100].map(kppCandidates), [2, 2, 3, 3, 4, 4, 6]);
});

test('k-means++ picks k distinct points of well-separated groups, one per group', async () => {
  const P = Float64Array.from([0, 0, 0.1, 0, 0, 0.1, 50, 50, 50.1, 50, 50, 50.1, -50, 50, -50.1, 50, -50, 50.1]);
  const runner = new KMeansRunner(P, 9, 2, 3);
  for (let seed = 0; seed < 20; seed++) {
    const c = await kmeansPlusPlus(runner, new SeededRandom([seed, 0]));
    const groups = new Set([0, 1, 2].map((j) => assignNearest([0, 0, 50, 50, -50, 50], 3, 2, [c[2 * j], c[2 * j + 1]])));
    assert.is(groups.size, 3, `seed ${seed}`);
  }
});

test('an empty cluster takes the farthest point (never NaN)', async () => {
  // two tight groups; the third initial centre is far from both, so it starts empty
  const P = Float64Array.from([0, 0, 1, 0, 0, 1, 1, 1, 10, 10, 11, 10, 10, 11, 30, 30]);
  const fit = await fitKMeans(P, 8, 2, { k: 3, init: [0.5, 0.5, 10.5, 10.5, 1000, 1000] });
  for (const v of fit.centroids) assert.ok(Number.isFinite(v));
  assert.equal(fit.sizes, [4, 3, 1]); // the outlier (30, 30) was the farthest point of cluster 1
  assert.equal([fit.centroids[4], fit.centroids[5]], [30, 30]);
  assert.is(fit.labels[7], 2);
});

test('more clusters than distinct points: no NaN, the extra clusters stay empty', async () => {
  const P = Float64Array.from([1, 1, 1, 1, 1, 1, 5, 5, 5, 5]);
  const fit = await fitKMeans(P, 5, 2, { k: 3, seed: 1 });
  for (const v of fit.centroids) assert.ok(Number.isFinite(v));
  assert.is(fit.inertia, 0);
  assert.is(fit.sizes.reduce((a, b) => a + b), 5);
});

test('k > n and n = 0 fail with ERR_TOO_FEW_POINTS; bad options with ERR_USAGE', async () => {
  const P = Float64Array.from([1, 2, 3, 4]);
  for (const [n, opts, code] of [
    [2, { k: 3 }, 'ERR_TOO_FEW_POINTS'],
    [0, { k: 1 }, 'ERR_TOO_FEW_POINTS'],
    [2, { k: 0 }, 'ERR_USAGE'],
    [2, { k: 2, maxIter: 0 }, 'ERR_USAGE'],
    [2, { k: 2, tol: -1 }, 'ERR_USAGE'],
    [2, { k: 2, nInit: 1.5 }, 'ERR_USAGE'],
    [2, { k: 2, init: [1, 2, 3] }, 'ERR_USAGE'],
  ] as const) {
    try {
      await fitKMeans(P, n, 2, opts);
      assert.unreachable(`${JSON.stringify(opts)} n=${n}`);
    } catch (err) {
      assert.is((err as Coded).code, code, (err as Error).message);
    }
  }
  try {
    await fitKMeans(Float64Array.from([1, NaN, 2, 3]), 2, 2, { k: 1 });
    assert.unreachable();
  } catch (err) {
    assert.is((err as Coded).code, 'ERR_BAD_INPUT');
  }
});

test('n-init keeps the restart with the lowest inertia and reports every restart', async () => {
  const rng = new SeededRandom(4);
  const n = 3000;
  const P = new Float64Array(n * 2);
  for (let i = 0; i < P.length; i++) P[i] = rng.nextDouble() * 10;
  const fit = await fitKMeans(P, n, 2, { k: 6, nInit: 4, seed: 9 });
  assert.is(fit.restarts.length, 4);
  assert.is(fit.inertia, Math.min(...fit.restarts.map((r) => r.inertia)));
  const single = await fitKMeans(P, n, 2, { k: 6, nInit: 1, seed: 9 });
  assert.is(single.inertia, fit.restarts[0].inertia);
});

test('maxIter stops early: not converged, labels and inertia still match the final centres', async () => {
  const rng = new SeededRandom(8);
  const n = 4000;
  const P = new Float64Array(n * 2);
  for (let i = 0; i < P.length; i++) P[i] = rng.nextDouble() ** 3 * 10;
  const fit = await fitKMeans(P, n, 2, { k: 5, maxIter: 2, tol: 0 });
  assert.is(fit.iterations, 2);
  assert.not.ok(fit.converged);
  let inertia = 0;
  for (let i = 0; i < n; i++) {
    const j = assignNearest(fit.centroids, 5, 2, P.subarray(2 * i, 2 * i + 2));
    assert.is(fit.labels[i], j);
    const dx = P[2 * i] - fit.centroids[2 * j];
    const dy = P[2 * i + 1] - fit.centroids[2 * j + 1];
    inertia += dx * dx + dy * dy;
  }
  assert.ok(Math.abs(inertia - fit.inertia) <= 1e-9 * inertia);
});

test('assignNearest: nearest centre, ties to the lower index', () => {
  assert.is(assignNearest([0, 0, 10, 10], 2, 2, [6, 6]), 1);
  assert.is(assignNearest([0, 0, 2, 0], 2, 2, [1, 0]), 0);
});

test('an aborted signal stops the fit with ERR_ABORTED', async () => {
  const controller = new AbortController();
  controller.abort();
  try {
    await fitKMeans(Float64Array.from([1, 2, 3, 4]), 2, 2, { k: 1, signal: controller.signal });
    assert.unreachable();
  } catch (err) {
    assert.is((err as Coded).code, 'ERR_ABORTED');
  }
});

test('onIteration reports each iteration; the first always counts as changed', async () => {
  const P = Float64Array.from([0, 0, 0, 1, 9, 9, 9, 8]);
  const seen: number[] = [];
  const fit = await fitKMeans(P, 4, 2, { k: 2, init: [0, 0, 9, 9], onIteration: (i) => {
    seen.push(i.iteration);
    if (i.iteration === 1) assert.ok(i.changed);
  } });
  assert.equal(seen, Array.from({ length: fit.iterations }, (_, i) => i + 1));
  assert.is(fit.iterations, 2); // labels unchanged on the second pass: strict convergence
});

test.run();
