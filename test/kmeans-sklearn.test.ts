/**
 * k-means against scikit-learn 1.2 (figures in fixtures/kmeans-sklearn.json, made by
 * fixtures/make_kmeans_fixtures.py): the inertia is no worse than KMeans with the same k and
 * n_init on well-separated data, and from the same initial centres the iterations, sizes, labels
 * and inertia are the same (including a run whose first iteration relocates an empty cluster).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { fitKMeans, silhouetteScore } from '../lib/kmeans.js';

interface Dataset { n: number; d: number; points: number[] }
interface QualityCase { name: string; data: string; k: number; nInit: number; inertia: number; iterations: number; sizes: number[] }
interface InitCase {
  name: string; data: string; k: number; tol: number; maxIter: number; init: number[];
  inertia: number; iterations: number; sizes: number[]; centroids: number[]; labels: number[];
}
interface SilhouetteCase { data: string; k: number; labels: number[]; score: number }
interface Fixtures {
  sklearn: string;
  datasets: Record<string, Dataset>;
  quality: QualityCase[];
  init: InitCase[];
  silhouette: SilhouetteCase[];
}

const fixtures = JSON.parse(
  fs.readFileSync(new URL('../../test/fixtures/kmeans-sklearn.json', import.meta.url), 'utf8'),
) as Fixtures;

function points(name: string): { P: Float64Array; n: number; d: number } {
  const ds = fixtures.datasets[name];
  return { P: Float64Array.from(ds.points), n: ds.n, d: ds.d };
}

const relative = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

for (const c of fixtures.quality) {
  test(`inertia no worse than scikit-learn ${fixtures.sklearn}: ${c.name}`, async () => {
    const { P, n, d } = points(c.data);
    const fit = await fitKMeans(P, n, d, { k: c.k, nInit: c.nInit, seed: 42 });
    assert.ok(fit.inertia <= c.inertia * (1 + 1e-6), `segflow ${fit.inertia} vs scikit-learn ${c.inertia}`);
    assert.equal([...fit.sizes].sort((a, b) => a - b), [...c.sizes].sort((a, b) => a - b));
    assert.ok(fit.converged);
  });
}

for (const c of fixtures.init) {
  test(`same run as scikit-learn from the same centres: ${c.name}`, async () => {
    const { P, n, d } = points(c.data);
    const fit = await fitKMeans(P, n, d, { k: c.k, init: c.init, tol: c.tol, maxIter: c.maxIter });
    assert.is(fit.iterations, c.iterations, 'iterations');
    assert.equal(fit.sizes, c.sizes, 'sizes');
    assert.ok(relative(fit.inertia, c.inertia) <= 1e-10, `inertia ${fit.inertia} vs ${c.inertia}`);
    assert.equal(Array.from(fit.labels), c.labels, 'labels');
    for (let i = 0; i < c.centroids.length; i++) {
      assert.ok(Math.abs(fit.centroids[i] - c.centroids[i]) <= 1e-10, `centroid value ${i}: ${fit.centroids[i]} vs ${c.centroids[i]}`);
    }
    for (const v of fit.centroids) assert.ok(Number.isFinite(v));
  });
}

for (const c of fixtures.silhouette) {
  test(`silhouette equals scikit-learn's on every point: ${c.data} k=${c.k}`, () => {
    const { P, n, d } = points(c.data);
    const score = silhouetteScore(P, n, d, c.labels, c.k, { sampleSize: n });
    assert.ok(Math.abs(score - c.score) <= 1e-12, `${score} vs ${c.score}`);
  });
}

test.run();
