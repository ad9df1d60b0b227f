/**
 * Feature scaling: log-zscore, zscore and none; round trips, constant features, negative spend,
 * stable moments on large close values.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyScaler, featureMoments, fitApplyScaler, fitScaler, invertScaler, parseScaleMethod, signedExpm1, signedLog1p } from '../lib/scale.js';

const close = (a: number, b: number, tol = 1e-12): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('zscore: mean 0 and std 1 per feature (population std, as StandardScaler)', () => {
  // purchases, total: column 0 = 1..4 (mean 2.5, std sqrt(1.25)); column 1 = 10, 10, 30, 30 (mean 20, std 10)
  const raw = Float64Array.from([1, 10, 2, 10, 3, 30, 4, 30]);
  const s = fitScaler(raw, 4, 2, 'zscore');
  assert.equal(s.mean, [2.5, 20]);
  assert.ok(close(s.std[0], Math.sqrt(1.25)));
  assert.is(s.std[1], 10);
  const z = applyScaler(s, raw);
  assert.equal(Array.from(z.filter((_, i) => i % 2 === 1)), [-1, -1, 1, 1]);
});

test('log-zscore: log1p first, then z-score; the round trip gives the original values', () => {
  const raw = Float64Array.from([1, 12.5, 3, 80, 40, 1999.99, 250, 31000]);
  const s = fitScaler(raw, 4, 2, 'log-zscore');
  const logs = [1, 3, 40, 250].map(Math.log1p);
  const mean = logs.reduce((a, b) => a + b) / 4;
  assert.ok(close(s.mean[0], mean));
  const back = invertScaler(s, applyScaler(s, raw));
  for (let i = 0; i < raw.length; i++) assert.ok(close(back[i], raw[i], 1e-12), `${back[i]} vs ${raw[i]}`);
});

test('log-zscore takes net-negative spend: sign(x) * log1p(|x|), odd and invertible', () => {
  assert.is(signedLog1p(-5), -Math.log1p(5));
  assert.is(signedLog1p(0), 0);
  for (const x of [-1234.5, -1, -1e-9, 0, 2, 1e6]) assert.ok(close(signedExpm1(signedLog1p(x)), x, 1e-12));
  const raw = Float64Array.from([2, -50, 3, 20, 1, 0, 5, 400]);
  const s = fitScaler(raw, 4, 2, 'log-zscore');
  const z = applyScaler(s, raw);
  for (const v of z) assert.ok(Number.isFinite(v));
  const back = invertScaler(s, z);
  for (let i = 0; i < raw.length; i++) assert.ok(close(back[i], raw[i], 1e-12));
});

test('a constant feature gets std 1 (scales to 0, never NaN); none is the identity', () => {
  const raw = Float64Array.from([7, 1, 7, 2, 7, 3]);
  const s = fitScaler(raw, 3, 2, 'zscore');
  assert.is(s.std[0], 1);
  assert.equal(Array.from(applyScaler(s, raw)).filter((_, i) => i % 2 === 0), [0, 0, 0]);
  const none = fitScaler(raw, 3, 2, 'none');
  assert.equal(none, { method: 'none', mean: [0, 0], std: [1, 1] });
  assert.equal(Array.from(applyScaler(none, raw)), Array.from(raw));
});

test('applyScaler scales one row, and in place when out is the input', () => {
  const s = { method: 'zscore' as const, mean: [1, 10], std: [2, 5] };
  assert.equal(Array.from(applyScaler(s, [3, 0])), [1, -2]);
  const rows = Float64Array.from([3, 0, 1, 10]);
  assert.is(applyScaler(s, rows, rows), rows);
  assert.equal(Array.from(rows), [1, -2, 0, 0]);
});

test('moments are stable on large values close together (Chan merge of two-pass blocks)', () => {
  const n = 10_001;
  const raw = new Float64Array(n);
  for (let i = 0; i < n; i++) raw[i] = 1e9 + (i % 2 === 0 ? 0.5 : -0.5);
  const m = featureMoments(raw, n, 1);
  assert.ok(close(m.mean[0], 1e9 + 0.5 / n, 1e-15), `mean ${m.mean[0]}`);
  // exact population variance: 0.25 - (0.5 / n)^2
  assert.ok(Math.abs(m.variance[0] - (0.25 - (0.5 / n) ** 2)) < 1e-9, `variance ${m.variance[0]}`);
});

test('bad input: NaN or Infinity, unknown method, rows of the wrong width', () => {
  assert.throws(() => fitScaler(Float64Array.from([1, NaN]), 2, 1, 'zscore'), (e: Error & { code?: string }) => e.code === 'ERR_BAD_INPUT');
  assert.throws(() => fitScaler(Float64Array.from([1, Infinity]), 2, 1, 'log-zscore'), (e: Error & { code?: string }) => e.code === 'ERR_BAD_INPUT');
  assert.throws(() => parseScaleMethod('minmax'), (e: Error & { code?: string }) => e.code === 'ERR_USAGE' && /log-zscore/.test(e.message));
  assert.throws(() => applyScaler({ method: 'none', mean: [0, 0], std: [1, 1] }, [1, 2, 3]), (e: Error & { code?: string }) => e.code === 'ERR_USAGE');
});

test('fitApplyScaler gives the numbers of fitScaler then applyScaler, bit for bit', () => {
  const raw = Float64Array.from([1, 12.5, 3, -80, 40, 1999.99, 250, 31000, 0, 7]);
  for (const method of ['log-zscore', 'zscore', 'none'] as const) {
    const out = new Float64Array(raw.length);
    const s = fitApplyScaler(raw, 5, 2, method, out);
    assert.equal(s, fitScaler(raw, 5, 2, method));
    assert.equal(Array.from(out), Array.from(applyScaler(s, raw)));
  }
});

test('the scaler is plain JSON: it survives a save and load', () => {
  const raw = Float64Array.from([1, 2, 3, 40, 5, 600]);
  const s = fitScaler(raw, 3, 2, 'log-zscore');
  const loaded = JSON.parse(JSON.stringify(s)) as typeof s;
  assert.equal(Array.from(applyScaler(loaded, raw)), Array.from(applyScaler(s, raw)));
});

test.run();
