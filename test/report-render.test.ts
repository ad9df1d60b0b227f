/**
 * report.html in a real browser: Debian's chromium, headless, renders a report built from
 * synthetic data. The DOM it builds holds the plot's marks, and the screenshot shows points in
 * each segment's colour. Skipped, with a message, where chromium is not installed (CI installs it
 * with .ci/setup-chromium.sh).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { segmentColor, writeReport, type ReportData } from '../lib/report.js';

const CHROMIUM = ['chromium', 'chromium-browser'].find((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-report-'));

/** Three clouds of users, sized like a real job's sample, with some refunds below zero. */
function synthetic(n: number, withK: boolean): ReportData {
  const purchases = new Float64Array(n);
  const total = new Float64Array(n);
  const label = new Uint8Array(n);
  let s = 12345;
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  const centres = [[200, 60_000], [30, 6_000], [5, 500]];
  for (let i = 0; i < n; i++) {
    const l = i % 9 === 0 ? 0 : i % 3 === 0 ? 1 : 2;
    label[i] = l;
    purchases[i] = Math.max(1, Math.round(centres[l][0] * Math.exp(rnd() - 0.5)));
    total[i] = i % 101 === 0 ? -50 * rnd() : centres[l][1] * Math.exp(1.4 * (rnd() - 0.5));
  }
  const names = ['High', 'Medium', 'Low'];
  return {
    title: 'segflow segments: synthetic',
    segments: names.map((name, l) => ({ name, users: n / 3, shareOfUsers: 1 / 3, revenue: '1000.00', shareOfRevenue: 1 / 3, centroid: { purchases: centres[l][0], total: centres[l][1] } })),
    points: { purchases, total, label },
    names,
    centroids: centres.map(([p, t]) => ({ purchases: p, total: t })),
    metrics: { rows: 10 * n, rejected: n / 10, users: n, workers: 2, mbPerSec: 55.5, timings: { plan: 3, scan: 400, merge: 80, cluster: 120, report: 40, total: 643 }, inputs: ['synthetic.csv'] },
    kRange: withK ? [2, 3, 4, 5, 6].map((k) => ({ k, inertia: 900 / k, silhouette: k === 3 ? 0.6 : 0.45 })) : undefined,
  };
}

/** Run chromium headless on a file; resolves to its stdout. Each run gets its own profile. */
function chromium(args: string[], file: string): Promise<string> {
  const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
  const argv = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--hide-scrollbars', `--user-data-dir=${profile}`, ...args, pathToFileURL(file).href];
  return new Promise((resolve, reject) => {
    const child = spawn(CHROMIUM as string, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`chromium exited with ${code}:\n${Buffer.concat(err).toString('utf8').slice(-2000)}`));
    });
  });
}

/** Decode an 8-bit, non-interlaced RGB or RGBA PNG (what chromium's --screenshot writes). */
function decodePng(buf: Buffer): { width: number; height: number; channels: number; data: Uint8Array } {
  assert.is(buf.subarray(1, 4).toString('latin1'), 'PNG');
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.subarray(pos + 4, pos + 8).toString('latin1');
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      assert.is(body[8], 8, 'bit depth 8');
      assert.is(body[12], 0, 'not interlaced');
      channels = ({ 2: 3, 6: 4 } as Record<number, number>)[body[9]];
      assert.ok(channels, `colour type ${body[9]}`);
    } else if (type === 'IDAT') idat.push(body);
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const data = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? data[y * stride + x - channels] : 0;
      const b = y > 0 ? data[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? data[(y - 1) * stride + x - channels] : 0;
      let v = raw[src + x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      data[y * stride + x] = v & 255;
    }
  }
  return { width, height, channels, data };
}

function hue(r: number, g: number, b: number): number {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const d = max - min || 1;
  const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return (h * 60 + 360) % 360;
}

test('chromium draws the scatter plot, in each segment colour, and the k charts', async () => {
  if (!CHROMIUM) {
    console.log('  (skipped: chromium is not installed; CI installs it with .ci/setup-chromium.sh)');
    return;
  }
  // the screenshot page has no k charts, so every coloured pixel in it belongs to the scatter
  const shotHtml = path.join(tmp, 'shot.html');
  const domHtml = path.join(tmp, 'dom.html');
  writeReport(shotHtml, synthetic(30_000, false));
  writeReport(domHtml, synthetic(30_000, true));
  const png = path.join(tmp, 'report.png');
  const [, dom] = await Promise.all([
    chromium([`--screenshot=${png}`, '--window-size=1200,1600'], shotHtml),
    chromium(['--dump-dom'], domHtml),
  ]);

  // the DOM chromium built: the plot's marks, the centroids, the legend, the k charts
  const plot = /<svg id="scatter-plot"[\s\S]*?<\/svg>/.exec(dom)?.[0] ?? '';
  const marks = (plot.match(/<circle /g) ?? []).length;
  assert.ok(marks > 15_000 && marks <= 21_000, `point marks in the plot: ${marks}`);
  assert.is((plot.match(/class="centroid /g) ?? []).length, 3);
  assert.is((dom.match(/class="legend-item"/g) ?? []).length, 3);
  assert.ok(dom.includes('id="elbow"') && dom.includes('id="silhouette"'), 'k charts');
  assert.is((dom.match(/class="k-point/g) ?? []).length, 10);

  // the pixels: many coloured pixels in the plot, in the hue of each segment
  const img = decodePng(fs.readFileSync(png));
  assert.is(img.width, 1200);
  const targets = [0, 1, 2].map((l) => {
    const c = segmentColor(l);
    return hue(parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16));
  });
  const perSegment = [0, 0, 0];
  // the top 1000 rows hold the title, the legend and the plot; the table and metrics come later
  for (let i = 0; i < img.width * Math.min(1000, img.height); i++) {
    const r = img.data[i * img.channels];
    const g = img.data[i * img.channels + 1];
    const b = img.data[i * img.channels + 2];
    if (Math.max(r, g, b) - Math.min(r, g, b) < 30) continue; // white, grey, black text
    const h = hue(r, g, b);
    const dist = targets.map((t) => Math.min(Math.abs(h - t), 360 - Math.abs(h - t)));
    const best = dist.indexOf(Math.min(...dist));
    if (dist[best] < 25) perSegment[best]++;
  }
  for (const [l, count] of perSegment.entries()) assert.ok(count > 2000, `segment ${l}: ${count} coloured pixels (${perSegment.join(', ')})`);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
