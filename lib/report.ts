/**
 * report.html: one self-contained page (inline SVG, CSS and a few lines of JS; no network, no
 * CDN) that opens from disk. It shows
 * - a scatter plot of users by purchases and total spend on symmetric-log axes (log10 beyond ±1,
 *   linear inside, so totals of zero and refunds below zero still have a place), coloured by
 *   segment, with the centroids marked; over {@link MAX_POINTS} users, a seeded sample that keeps
 *   every member of a small segment;
 * - the segment table (users, revenue, shares, centroid);
 * - the job metrics (rows, rejects, users, workers, MB/s, inputs, stage times);
 * - with k-range data, the elbow (inertia against k) and the silhouette against k.
 *
 * The plot is drawn here as SVG markup rather than by script in the page, so it shows with
 * JavaScript off, prints, and can be checked in the DOM. The page is deterministic: the same data
 * gives the same bytes.
 */
import fs from 'node:fs';
import { Random } from './util/random.js';
import type { SegmentSummary } from './types.js';
import { VERSION } from './version.js';

/** What a report shows. `points`, `names` and `centroids` are indexed by label. */
export interface ReportData {
  title: string;
  segments: SegmentSummary[];
  points: {
    purchases: Float64Array | number[];
    total: Float64Array | number[];
    label: Uint8Array | Int32Array | number[];
  };
  /** The segment name of each label. */
  names: string[];
  /** Centroids in original units, per label. */
  centroids: { purchases: number; total: number }[];
  metrics: {
    rows: number;
    rejected: number;
    users: number;
    workers: number;
    mbPerSec: number;
    /** Milliseconds per stage, and `total`. */
    timings: Record<string, number>;
    inputs: string[];
  };
  /** One entry per k tried (`segflow kmeans --k-range`); silhouette null where undefined. */
  kRange?: { k: number; inertia: number; silhouette: number | null }[];
  /** The k the caller suggests (e.g. `kmeans --k-range`); computed here from `kRange` when absent. */
  suggestedK?: { silhouette: number | null; elbow: number | null };
}

/** Users drawn at most; above this a seeded sample is drawn. */
export const MAX_POINTS = 20_000;
/** A segment this small is drawn whole even when the rest is sampled. */
const KEEP_SMALL_SEGMENT = 500;
/** The sample's seed: fixed, so a report is reproducible. */
const SAMPLE_SEED = 20_240_601;

/** Tableau 10: distinct in print and for the common colour-vision deficiencies. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** The colour of a label. */
export function segmentColor(label: number): string {
  return PALETTE[label % PALETTE.length];
}

/** Symmetric log: log10(1 + |v|) with v's sign. Defined for every total, including <= 0. */
export function symlog(v: number): number {
  return Math.sign(v) * Math.log10(1 + Math.abs(v));
}

/** Write `report.html` for `data` to `file`. */
export function writeReport(file: string, data: ReportData): void {
  fs.writeFileSync(file, renderReport(data));
}

/** The indices of the users to draw: all of them, or a seeded sample keeping small segments whole. */
export function samplePoints(labels: ArrayLike<number>, max = MAX_POINTS, seed = SAMPLE_SEED): Uint32Array {
  const n = labels.length;
  if (n <= max) return Uint32Array.from({ length: n }, (_, i) => i);
  const sizes = new Map<number, number>();
  for (let i = 0; i < n; i++) sizes.set(labels[i], (sizes.get(labels[i]) ?? 0) + 1);
  let kept = 0;
  for (const size of sizes.values()) if (size <= KEEP_SMALL_SEGMENT) kept += size;
  const p = Math.max(0, max - kept) / Math.max(1, n - kept);
  const rng = new Random(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if ((sizes.get(labels[i]) as number) <= KEEP_SMALL_SEGMENT || rng.next() < p) out.push(i);
  }
  return Uint32Array.from(out);
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const int = new Intl.NumberFormat('en-US');
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const r1 = (x: number): string => (Math.round(x * 10) / 10).toString();

/** 12345678.5 -> 12,345,678.5, keeping an exact decimal string exact. */
function groupDigits(decimal: string): string {
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(decimal);
  if (!m) return decimal;
  return m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (m[3] ?? '');
}

/** 1, 10, 100, 1k, 10k, 1M: tick labels. */
function short(v: number): string {
  const a = Math.abs(v);
  const s = a >= 1e9 ? `${a / 1e9}G` : a >= 1e6 ? `${a / 1e6}M` : a >= 1e3 ? `${a / 1e3}k` : `${a}`;
  return v < 0 ? `\u2212${s}` : s;
}

/** A number for a table: integers grouped, others to 2 decimals. */
function num(v: number): string {
  return Number.isInteger(v) ? int.format(v) : int.format(Math.round(v * 100) / 100);
}

/** A linear map from [d0, d1] to [r0, r1]. */
function linear(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** The symlog ticks (0 and ±10^e) inside [lo, hi] (symlog units), thinned to at most ~9. */
function symlogTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const maxExp = Math.ceil(Math.max(Math.abs(lo), Math.abs(hi)));
  for (let e = maxExp; e >= 0; e--) ticks.push(-(10 ** e));
  ticks.push(0);
  for (let e = 0; e <= maxExp; e++) ticks.push(10 ** e);
  const inside = ticks.filter((t) => symlog(t) >= lo - 1e-9 && symlog(t) <= hi + 1e-9);
  const step = Math.ceil(inside.length / 9);
  return inside.filter((t, i) => t === 0 || i % step === 0);
}

/** The domain of symlog(values) with a little padding. */
function symlogDomain(values: ArrayLike<number>, extra: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = symlog(values[i]);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  for (const e of extra) {
    lo = Math.min(lo, symlog(e));
    hi = Math.max(hi, symlog(e));
  }
  if (!Number.isFinite(lo)) return [0, 1];
  const pad = (hi - lo) * 0.04 || 0.5;
  return [lo - pad, hi + pad];
}

const W = 960;
const H = 600;
const M = { left: 72, right: 24, top: 16, bottom: 52 };

/** The scatter plot as SVG, its legend, and the notes under it. */
function scatter(d: ReportData): string {
  const { purchases, total, label } = d.points;
  const n = label.length;
  if (purchases.length !== n || total.length !== n) {
    throw new Error(`report: points.purchases (${purchases.length}), points.total (${total.length}) and points.label (${n}) differ in length`);
  }
  const [x0, x1] = symlogDomain(purchases, d.centroids.map((c) => c.purchases));
  const [y0, y1] = symlogDomain(total, d.centroids.map((c) => c.total));
  const sx = linear(x0, x1, M.left, W - M.right);
  const sy = linear(y0, y1, H - M.bottom, M.top);
  const X = (v: number): string => sx(symlog(v)).toFixed(1);
  const Y = (v: number): string => sy(symlog(v)).toFixed(1);

  const grid: string[] = [];
  for (const t of symlogTicks(x0, x1)) {
    const x = X(t);
    grid.push(`<line class="grid" x1="${x}" x2="${x}" y1="${M.top}" y2="${H - M.bottom}"/><text class="tick" x="${x}" y="${H - M.bottom + 16}" text-anchor="middle">${short(t)}</text>`);
  }
  for (const t of symlogTicks(y0, y1)) {
    const y = Y(t);
    grid.push(`<line class="grid${t === 0 ? ' zero' : ''}" x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}"/><text class="tick" x="${M.left - 8}" y="${y}" dy="0.32em" text-anchor="end">${short(t)}</text>`);
  }

  // one group per segment, the biggest drawn first so small segments stay visible on top
  const shown = samplePoints(label);
  const byLabel = new Map<number, string[]>();
  // whole purchase counts are jittered by up to ±0.4 so users with the same count do not stack
  const jitter = new Random(SAMPLE_SEED + 1);
  for (const i of shown) {
    const l = label[i];
    let list = byLabel.get(l);
    if (!list) byLabel.set(l, (list = []));
    const p = purchases[i];
    const px = Number.isInteger(p) ? p + (jitter.next() - 0.5) * 0.8 : p;
    list.push(`<circle cx="${X(px)}" cy="${Y(total[i])}" r="2.2"/>`);
  }
  const order = [...byLabel.keys()].sort((a, b) => (byLabel.get(b) as string[]).length - (byLabel.get(a) as string[]).length || a - b);
  const groups = order.map((l) => `<g class="points seg-${l}" data-label="${l}" fill="${segmentColor(l)}">${(byLabel.get(l) as string[]).join('')}</g>`);

  const marks = d.centroids.map((c, l) => {
    const x = X(c.purchases);
    const y = Y(c.total);
    const name = esc(d.names[l] ?? `Segment ${l + 1}`);
    return (
      `<g class="centroid seg-${l}" data-label="${l}"><title>${name}: ${num(c.purchases)} purchases, total ${num(c.total)}</title>` +
      `<path d="M${x} ${y}m-11 0l11-11l11 11l-11 11z" fill="${segmentColor(l)}" stroke="#1d2330" stroke-width="2"/>` +
      `<text class="centroid-label" x="${x}" y="${y}" dx="15" dy="0.32em">${name}</text></g>`
    );
  });

  let nonPositive = 0;
  for (let i = 0; i < n; i++) if (total[i] <= 0) nonPositive++;
  const notes = [
    n > shown.length
      ? `Showing a seeded sample of ${int.format(shown.length)} of ${int.format(n)} users (segments under ${KEEP_SMALL_SEGMENT} users are shown whole).`
      : `All ${int.format(n)} users.`,
    'Axes are symmetric-log: log10 beyond ±1, linear within, so totals of 0 and negative totals (refunds) are placed, not dropped.',
    nonPositive > 0 ? `${int.format(nonPositive)} users have a total of 0 or less (below the dashed line).` : '',
    'Whole purchase counts are jittered by up to ±0.4 so that users with the same count do not hide each other.',
    'Diamonds mark the centroids. Click a legend entry to hide or show a segment.',
  ].filter(Boolean);

  const legend = d.names
    .map((name, l) => {
      const seg = d.segments.find((s) => s.name === name);
      const count = seg ? ` <span class="muted">${int.format(seg.users)}</span>` : '';
      return `<button type="button" class="legend-item" data-label="${l}" aria-pressed="true"><span class="swatch" style="background:${segmentColor(l)}"></span>${esc(name)}${count}</button>`;
    })
    .join('');

  return `<section id="scatter">
<h2>Users by purchases and total spend</h2>
<div class="legend">${legend}</div>
<svg id="scatter-plot" viewBox="0 0 ${W} ${H}" role="img" aria-label="Scatter plot of users by purchases and total spend, coloured by segment" xmlns="http://www.w3.org/2000/svg">
<g class="axes">${grid.join('')}<rect class="frame" x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}"/></g>
${groups.join('\n')}
${marks.join('')}
<text class="axis-title" x="${(M.left + W - M.right) / 2}" y="${H - 10}" text-anchor="middle">purchases (rows per user)</text>
<text class="axis-title" transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">total spend</text>
</svg>
<ul class="notes">${notes.map((t) => `<li>${esc(t)}</li>`).join('')}</ul>
</section>`;
}

/** The segment table. */
function segmentTable(d: ReportData): string {
  const rows = d.segments.map((s) => {
    const l = d.names.indexOf(s.name);
    const swatch = l >= 0 ? `<span class="swatch" style="background:${segmentColor(l)}"></span>` : '';
    return `<tr><th scope="row">${swatch}${esc(s.name)}</th><td>${int.format(s.users)}</td><td>${pct(s.shareOfUsers)}</td><td>${esc(groupDigits(s.revenue))}</td><td>${pct(s.shareOfRevenue)}</td><td>${num(s.centroid.purchases)}</td><td>${num(s.centroid.total)}</td></tr>`;
  });
  return `<section id="segments">
<h2>Segments</h2>
<table class="segments"><thead><tr><th scope="col">segment</th><th scope="col">users</th><th scope="col">share of users</th><th scope="col">revenue</th><th scope="col">share of revenue</th><th scope="col">centroid purchases</th><th scope="col">centroid total</th></tr></thead>
<tbody>${rows.join('')}</tbody></table>
<p class="muted">Revenue is the exact sum of the users' totals. Centroids are in original units.</p>
</section>`;
}

/** Rows, rejects, workers, throughput, inputs and the time of each stage. */
function metricsSection(d: ReportData): string {
  const m = d.metrics;
  const readRows = m.rows || 0;
  const stat = (label: string, value: string): string => `<div class="stat"><div class="stat-value">${value}</div><div class="stat-label">${label}</div></div>`;
  const stages = Object.entries(m.timings).filter(([k]) => k !== 'total');
  const total = m.timings.total ?? stages.reduce((s, [, v]) => s + v, 0);
  const bars = stages.map(
    ([k, v]) =>
      `<tr><th scope="row">${esc(k)}</th><td class="num">${(v / 1000).toFixed(2)} s</td><td class="bar-cell"><span class="bar" style="width:${total > 0 ? Math.max(0.5, (100 * v) / total).toFixed(1) : 0}%"></span></td></tr>`,
  );
  return `<section id="metrics">
<h2>Job</h2>
<div class="stats">
${stat('rows read', int.format(m.rows))}
${stat('rejected', `${int.format(m.rejected)}${readRows > 0 ? ` <span class="muted">(${pct(m.rejected / readRows)})</span>` : ''}`)}
${stat('users', int.format(m.users))}
${stat('workers', int.format(m.workers))}
${stat('MB/s', m.mbPerSec.toFixed(1))}
${stat('total time', `${(total / 1000).toFixed(2)} s`)}
</div>
<table class="stages"><thead><tr><th scope="col">stage</th><th scope="col">time</th><th scope="col"></th></tr></thead><tbody>${bars.join('')}</tbody></table>
<p class="muted">Inputs: ${m.inputs.map((f) => `<code>${esc(f)}</code>`).join(', ') || 'none'}</p>
</section>`;
}

/** The k at the elbow: the point farthest from the chord between the first and last inertia. */
export function elbowK(entries: { k: number; inertia: number }[]): number | undefined {
  if (entries.length < 3) return undefined;
  const pts = [...entries].sort((a, b) => a.k - b.k);
  const first = pts[0];
  const last = pts[pts.length - 1];
  // normalise both axes so the distance does not depend on the units of inertia
  const kx = (k: number): number => (k - first.k) / (last.k - first.k || 1);
  const iy = (v: number): number => (v - last.inertia) / (first.inertia - last.inertia || 1);
  let best: number | undefined;
  let bestDist = 0;
  for (const p of pts) {
    // distance below the chord from (0,1) to (1,0)
    const dist = (1 - kx(p.k) - iy(p.inertia)) / Math.SQRT2;
    if (dist > bestDist + 1e-12) {
      bestDist = dist;
      best = p.k;
    }
  }
  return best;
}

/** A small line chart of y against k, with one k circled. */
function kChart(id: string, title: string, pts: { k: number; y: number }[], mark: number | undefined, yFormat: (v: number) => string): string {
  const w = 440;
  const h = 260;
  const m = { left: 64, right: 16, top: 16, bottom: 40 };
  const ks = pts.map((p) => p.k);
  const ys = pts.map((p) => p.y);
  const kMin = Math.min(...ks);
  const kMax = Math.max(...ks);
  let yMin = Math.min(...ys);
  let yMax = Math.max(...ys);
  const pad = (yMax - yMin) * 0.08 || Math.abs(yMax) * 0.1 || 1;
  yMin -= pad;
  yMax += pad;
  const sx = linear(kMin - 0.5, kMax + 0.5, m.left, w - m.right);
  const sy = linear(yMin, yMax, h - m.bottom, m.top);
  const path = pts.map((p, i) => `${i ? 'L' : 'M'}${sx(p.k).toFixed(1)} ${sy(p.y).toFixed(1)}`).join('');
  const dots = pts.map((p) => `<circle class="k-point${p.k === mark ? ' chosen' : ''}" cx="${sx(p.k).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="${p.k === mark ? 6 : 4}"><title>k = ${p.k}: ${yFormat(p.y)}</title></circle>`);
  const xTicks = ks.map((k) => `<text class="tick" x="${sx(k).toFixed(1)}" y="${h - m.bottom + 16}" text-anchor="middle">${k}</text>`);
  const yTicks = [0, 0.5, 1].map((f) => {
    const v = yMin + pad + f * (yMax - yMin - 2 * pad);
    const y = sy(v).toFixed(1);
    return `<line class="grid" x1="${m.left}" x2="${w - m.right}" y1="${y}" y2="${y}"/><text class="tick" x="${m.left - 6}" y="${y}" dy="0.32em" text-anchor="end">${yFormat(v)}</text>`;
  });
  return `<figure class="k-chart" id="${id}"><figcaption>${esc(title)}</figcaption>
<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">
${yTicks.join('')}${xTicks.join('')}<path class="k-line" d="${path}"/>${dots.join('')}
<text class="axis-title" x="${(m.left + w - m.right) / 2}" y="${h - 6}" text-anchor="middle">k</text>
</svg></figure>`;
}

/** The elbow and silhouette charts that help choose k. */
function kRangeSection(entries: NonNullable<ReportData['kRange']>, suggested: ReportData['suggestedK']): string {
  const pts = [...entries].sort((a, b) => a.k - b.k);
  const elbow = suggested ? (suggested.elbow ?? undefined) : elbowK(pts);
  const sil = pts.filter((p): p is { k: number; inertia: number; silhouette: number } => p.silhouette !== null && Number.isFinite(p.silhouette));
  const bestSil = sil.length ? sil.reduce((a, b) => (b.silhouette > a.silhouette ? b : a)).k : undefined;
  const best = suggested ? (suggested.silhouette ?? undefined) : bestSil;
  const sci = (v: number): string => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(2) : r1(v));
  const advice = [
    elbow !== undefined ? `The inertia curve bends most at k = ${elbow} (the elbow).` : '',
    best !== undefined ? `The mean silhouette is highest at k = ${best}.` : '',
    'Prefer the smallest k past the elbow whose silhouette is close to the best, and whose segments you can act on.',
  ].filter(Boolean);
  return `<section id="k-range">
<h2>Choosing k</h2>
<div class="k-charts">
${kChart('elbow', 'Inertia against k (elbow)', pts.map((p) => ({ k: p.k, y: p.inertia })), elbow, sci)}
${sil.length ? kChart('silhouette', 'Mean silhouette against k (higher is better)', sil.map((p) => ({ k: p.k, y: p.silhouette })), best, (v) => v.toFixed(2)) : ''}
</div>
<p>${esc(advice.join(' '))}</p>
</section>`;
}

const CSS = `
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#fff;--panel:#f8f9fb;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
body{margin:0 auto;max-width:1100px;padding:24px 28px 48px;line-height:1.45}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.15rem;margin:28px 0 10px}
.muted{color:var(--muted)}.sub{margin:0;color:var(--muted)}
svg{width:100%;height:auto;display:block;background:var(--bg)}
.grid{stroke:var(--line);stroke-width:1}.grid.zero{stroke:#98a2b3;stroke-dasharray:4 3}
.frame{fill:none;stroke:#d0d5dd}.tick{font-size:11px;fill:var(--muted)}.axis-title{font-size:13px;fill:var(--fg)}
.points circle{fill-opacity:.55}.points.hidden,.centroid.hidden{display:none}
.centroid-label{font-size:13px;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:4px;fill:var(--fg)}
.legend{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 8px}
.legend-item{font:inherit;font-size:.9rem;border:1px solid var(--line);background:var(--panel);border-radius:14px;padding:2px 10px;cursor:pointer}
.legend-item[aria-pressed=false]{opacity:.4}
.swatch{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:baseline}
.notes{margin:6px 0 0;padding-left:18px;font-size:.85rem;color:var(--muted)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right}
th:first-child,td:first-child{text-align:left}thead th{font-size:.8rem;color:var(--muted);font-weight:600}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin-bottom:12px}
.stat{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.stat-value{font-size:1.25rem;font-weight:600}.stat-value .muted{font-size:.75em;font-weight:400}.stat-label{font-size:.8rem;color:var(--muted)}
.stages{max-width:640px}.stages td.bar-cell{width:60%;text-align:left}.bar{display:inline-block;height:10px;background:#4e79a7;border-radius:2px}
.k-charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
.k-chart{margin:0}.k-chart figcaption{font-size:.9rem;color:var(--muted);margin-bottom:4px}
.k-line{fill:none;stroke:#4e79a7;stroke-width:2}.k-point{fill:#4e79a7}.k-point.chosen{fill:#e15759;stroke:#fff;stroke-width:2}
code{font-size:.85em;background:var(--panel);padding:1px 4px;border-radius:4px}
footer{margin-top:32px;font-size:.8rem;color:var(--muted)}
`;

// legend toggles: hide or show a segment's points and centroid (the page works without it)
const SCRIPT = `
document.querySelectorAll('.legend-item').forEach(function (b) {
  b.addEventListener('click', function () {
    var on = b.getAttribute('aria-pressed') !== 'true';
    b.setAttribute('aria-pressed', String(on));
    document.querySelectorAll('#scatter-plot .seg-' + b.dataset.label).forEach(function (g) { g.classList.toggle('hidden', !on); });
  });
});
`;

/** The whole page for `data`. */
export function renderReport(data: ReportData): string {
  const k = data.names.length;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="segflow ${esc(VERSION)}">
<title>${esc(data.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${esc(data.title)}</h1>
<p class="sub">${int.format(data.metrics.users)} users in ${k} segment${k === 1 ? '' : 's'} from ${int.format(data.metrics.rows)} rows</p></header>
<main>
${scatter(data)}
${segmentTable(data)}
${data.kRange && data.kRange.length > 0 ? kRangeSection(data.kRange, data.suggestedK) : ''}
${metricsSection(data)}
</main>
<footer>Written by segflow ${esc(VERSION)}. This page is self-contained: it loads nothing from the network.</footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
