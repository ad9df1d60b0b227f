/**
 * report.html as text: self-contained, escaped, deterministic, sampled above MAX_POINTS with small
 * segments kept whole, totals <= 0 placed and noted, and the k-range charts when asked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_POINTS, elbowK, renderReport, samplePoints, symlog, type ReportData } from '../lib/report.js';

/** n users in three segments; every 50th user has a total of 0 or less. */
function data(n: number, extra: Partial<ReportData> = {}): ReportData {
  const purchases = new Float64Array(n);
  const total = new Float64Array(n);
  const label = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const l = i % 100 === 0 ? 0 : i % 3 === 0 ? 1 : 2;
    label[i] = l;
    purchases[i] = [150, 30, 4][l] + (i % 7);
    total[i] = i % 50 === 0 ? -(i % 13) : [50_000, 5_000, 400][l] * (1 + (i % 11) / 10);
  }
  const names = ['High', 'Medium', 'Low'];
  return {
    title: 'segments of <sales>.csv',
    segments: names.map((name, l) => ({ name, users: 1, shareOfUsers: 1 / 3, revenue: '1234567.5', shareOfRevenue: 1 / 3, centroid: { purchases: [150, 30, 4][l], total: [50_000, 5_000, 400][l] } })),
    points: { purchases, total, label },
    names,
    centroids: [{ purchases: 150, total: 50_000 }, { purchases: 30, total: 5_000 }, { purchases: 4, total: 400 }],
    metrics: { rows: 1000, rejected: 10, users: n, workers: 2, mbPerSec: 41.25, timings: { plan: 5, scan: 100, merge: 20, total: 130 }, inputs: ['a&b.csv'] },
    ...extra,
  };
}

const circles = (html: string): number => (html.match(/<circle cx=/g) ?? []).length;

test('self-contained: no external resource, no network URL but the SVG namespace', () => {
  const html = renderReport(data(300));
  assert.not.match(html, /<link\b|<script[^>]+src=|<img\b|@import|url\(/i);
  const urls = (html.match(/https?:\/\/[^\s"'<>]+/g) ?? []).filter((u) => u !== 'http://www.w3.org/2000/svg');
  assert.equal(urls, []);
  assert.ok(html.startsWith('<!doctype html>'));
});

test('every user drawn when few, grouped by segment, with the centroids', () => {
  const html = renderReport(data(300));
  assert.is(circles(html), 300);
  for (const l of [0, 1, 2]) assert.ok(html.includes(`class="points seg-${l}"`), `group ${l}`);
  assert.is((html.match(/<g class="centroid seg-/g) ?? []).length, 3);
  assert.ok(html.includes('All 300 users.'));
});

test('strings are escaped', () => {
  const html = renderReport(data(10));
  assert.ok(html.includes('<title>segments of &#60;sales&#62;.csv</title>'));
  assert.ok(html.includes('a&#38;b.csv'));
  assert.not.ok(html.includes('<sales>'));
});

test('the same data gives the same bytes', () => {
  assert.is(renderReport(data(50_000)), renderReport(data(50_000)));
});

test('above MAX_POINTS: a seeded sample that keeps small segments whole', () => {
  const n = 100_000;
  const d = data(n);
  const idx = samplePoints(d.points.label);
  assert.ok(idx.length <= MAX_POINTS * 1.05 && idx.length >= MAX_POINTS * 0.95, `${idx.length}`);
  // segment 0 has 1,000 users (over the keep-whole limit): sampled; rebuild with a tiny one
  const label = new Uint8Array(n).fill(2);
  for (let i = 0; i < 40; i++) label[i * 997] = 0;
  const kept = samplePoints(label);
  assert.is([...kept].filter((i) => label[i] === 0).length, 40);
  const html = renderReport(d);
  assert.is(circles(html), idx.length);
  assert.match(html, /seeded sample of [\d,]+ of 100,000 users/);
});

test('totals of 0 or less are placed on the symlog axis and counted in a note', () => {
  assert.is(symlog(0), 0);
  assert.is(symlog(-9), -1);
  assert.is(symlog(99), 2);
  const html = renderReport(data(500));
  assert.ok(html.includes('10 users have a total of 0 or less'), 'the note');
  assert.not.match(html, /NaN|Infinity/);
});

test('mismatched point arrays are refused', () => {
  const d = data(10);
  d.points.total = [1, 2];
  assert.throws(() => renderReport(d), /differ in length/);
});

test('k-range: elbow and silhouette charts, with the suggested k marked', () => {
  const kRange = [2, 3, 4, 5, 6, 7, 8].map((k) => ({ k, inertia: k <= 4 ? 1000 / (k - 1) : 333 - 10 * (k - 4), silhouette: k === 4 ? 0.61 : 0.4 }));
  assert.is(elbowK(kRange), 4);
  const html = renderReport(data(100, { kRange }));
  assert.ok(html.includes('id="elbow"') && html.includes('id="silhouette"'));
  assert.is((html.match(/class="k-point/g) ?? []).length, 14);
  assert.is((html.match(/class="k-point chosen"/g) ?? []).length, 2);
  assert.ok(html.includes('highest at k = 4'));
  // silhouette null (k = 1) is left out of its chart, not drawn as 0
  const withNull = renderReport(data(100, { kRange: [{ k: 1, inertia: 10, silhouette: null }, ...kRange] }));
  assert.is((withNull.match(/class="k-point/g) ?? []).length, 15);
  assert.not.ok(renderReport(data(100)).includes('id="k-range"'));
  // the caller's suggestion wins (kmeans --k-range computes its own elbow)
  const told = renderReport(data(100, { kRange, suggestedK: { elbow: 3, silhouette: 4 } }));
  assert.ok(told.includes('bends most at k = 3'));
});

test.run();
