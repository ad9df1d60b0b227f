/**
 * The stream's model and options: re-clustering on a share of new rows (segments renamed by spend,
 * every user on its nearest centroid under the exported model), reading model.json in the shapes
 * it may take, `--recluster-every` parsing, and the errors a user can run into.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generate } from '../lib/generate.js';
import { segment } from '../lib/segment.js';
import { aggregate } from '../lib/aggregate.js';
import { assignWithModel, type KMeansModel } from '../lib/kmeans-job.js';
import { readModel } from '../lib/stream/model.js';
import { exportState, parseRecluster, stream, type ChangeEvent } from '../lib/stream/index.js';

type Coded = Error & { code?: string };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-stream-model-'));
const at = (...p: string[]): string => path.join(tmp, ...p);

async function rejects(fn: () => Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const e = err as Coded;
    assert.is(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const all = at('all.csv');
generate({ out: all, rows: 12_000, users: 1000, seed: 9, decimals: 2 });
const lines = fs.readFileSync(all, 'utf8').split('\n');
const history = at('history.csv');
fs.writeFileSync(history, lines.slice(0, 4001).join('\n') + '\n');
const seg = at('seg');

test('--recluster-every: durations and shares', () => {
  assert.equal(parseRecluster(undefined), { kind: 'none' });
  assert.equal(parseRecluster('60s'), { kind: 'time', ms: 60_000 });
  assert.equal(parseRecluster('5m'), { kind: 'time', ms: 300_000 });
  assert.equal(parseRecluster('250ms'), { kind: 'time', ms: 250 });
  assert.equal(parseRecluster('0.1'), { kind: 'share', share: 0.1 });
  assert.equal(parseRecluster('25%'), { kind: 'share', share: 0.25 });
  assert.equal(parseRecluster(0.5), { kind: 'share', share: 0.5 });
  assert.equal(parseRecluster(90_000), { kind: 'time', ms: 90_000 });
  for (const bad of ['soon', '2', '150%', '-1s']) assert.throws(() => parseRecluster(bad), /recluster-every/);
});

test('re-clustering on a share of new rows: renamed by spend, every user on its nearest centroid', async () => {
  await segment({ input: history, out: seg, workers: 2, noReport: true });
  const live = at('live.csv');
  fs.writeFileSync(live, lines[0] + '\n');
  const state = at('recluster-state');
  const events: ChangeEvent[] = [];
  const logs: string[] = [];
  const h = await stream({ from: seg, state, follow: live, workers: 2, batchMs: 30, reclusterEvery: '0.5', onChange: (e) => events.push(e), onLog: (m) => logs.push(m) });
  // 8,000 new rows against 4,000: at least one re-fit
  fs.appendFileSync(live, lines.slice(4001, -1).join('\n') + '\n');
  await until(() => h.metrics().rows === 12_000, 20_000, 'the rows');
  const s = await h.stop();
  assert.ok(s.reclusters >= 1, logs.join('\n'));
  assert.ok(logs.some((l) => /^re-clustered \d+ users/.test(l)), logs.join('\n'));
  assert.ok(events.length > 0);
  const exp = at('recluster-export');
  const sum = await exportState({ state, out: exp, workers: 2 });
  assert.is(sum.stream.reclusters, s.reclusters);
  const model = JSON.parse(fs.readFileSync(path.join(exp, 'model.json'), 'utf8')) as KMeansModel;
  const before = JSON.parse(fs.readFileSync(path.join(seg, 'model.json'), 'utf8')) as KMeansModel;
  assert.is.not(JSON.stringify(model.centroids), JSON.stringify(before.centroids));
  // names by centroid spend
  const spend = (name: string): number => model.centroidsOriginal[model.names!.indexOf(name)][1];
  assert.ok(spend('High') > spend('Medium') && spend('Medium') > spend('Low'));
  let users = 0;
  for (const f of fs.readdirSync(exp).filter((n) => n.startsWith('segments-'))) {
    for (const l of fs.readFileSync(path.join(exp, f), 'utf8').split('\n').slice(1)) {
      if (!l) continue;
      const [, p, t, name] = l.split(',');
      assert.is(name, model.names![assignWithModel(model, [Number(p), Number(t)])]);
      users++;
    }
  }
  assert.is(users, sum.users);
  // the exported model is a --from model: a new stream starts from it
  const again = await stream({ from: exp, state: at('from-export-state'), follow: live, workers: 2, start: 'end', once: true });
  assert.is((await again.done).users, sum.users);
});

test('JSON Lines with --batch-rows: many small batches, the same totals and rejects as aggregate', async () => {
  const hist = at('hist.jsonl');
  const live = at('live.jsonl');
  const line = (u: number, a: string): string => JSON.stringify({ customer_id: `c${u}`, amount: a, note: 'x, "y"' }) + '\n';
  fs.writeFileSync(hist, Array.from({ length: 1500 }, (_, i) => line((i * 7) % 200, `${(i % 97) + 1}.${String(i % 100).padStart(2, '0')}`)).join(''));
  fs.writeFileSync(live, Array.from({ length: 1500 }, (_, i) => line((i * 11) % 260, `${(i % 89) + 2}.5`)).join('') + '{"customer_id": "bad", "amount": "abc"}\n');
  const from = at('jsonl-seg');
  await segment({ input: hist, out: from, workers: 2, noReport: true });
  const h = await stream({ from, state: at('jsonl-state'), follow: live, workers: 2, batchRows: 200, once: true });
  const s = await h.done;
  assert.ok(s.batches >= 5, `${s.batches} batches`);
  const ref = at('jsonl-ref');
  await aggregate({ input: [hist, live], out: ref, workers: 2 });
  const exp = at('jsonl-export');
  await exportState({ state: at('jsonl-state'), out: exp, workers: 2 });
  for (const n of fs.readdirSync(ref).filter((x) => x.startsWith('users-'))) assert.ok(fs.readFileSync(path.join(ref, n)).equals(fs.readFileSync(path.join(exp, n))), n);
  assert.is(fs.readFileSync(path.join(exp, 'rejects.jsonl'), 'utf8'), fs.readFileSync(path.join(ref, 'rejects.jsonl'), 'utf8'));
});

test('model.json: flat centroids with k, a nested model, names from segment objects', () => {
  const write = (name: string, o: unknown): string => {
    const p = at(name);
    fs.writeFileSync(p, JSON.stringify(o));
    return p;
  };
  const scaler = { method: 'zscore', mean: [1, 2], std: [1, 2] };
  const flat = readModel(write('flat.json', { k: 2, centroids: [0, 0, 1, 1], scaler, names: ['Low', 'High'], totalScale: 2 }));
  assert.equal(flat.model.centroids, [0, 0, 1, 1]);
  assert.equal(flat.model.names, ['Low', 'High']);
  assert.is(flat.input.scale, 2);
  const nested = readModel(write('nested.json', { model: { centroids: [[0, 0], [1, 1]], scaler, segments: [{ name: 'B', cluster: 1 }, { name: 'A', cluster: 0 }] }, columns: { user: 'u', amount: 'a' } }));
  assert.equal(nested.model.names, ['A', 'B']);
  assert.equal(nested.input.columns, { user: 'u', amount: 'a' });
  // no names: by spend
  assert.equal(readModel(write('unnamed.json', { centroids: [[0, 5], [0, -5], [0, 0]], scaler })).model.names, ['High', 'Low', 'Medium']);
  assert.throws(() => readModel(write('bad.json', { centroids: [[0, 0], [1]], scaler })), /centroid rows of different lengths/);
  assert.throws(() => readModel(write('nocentroids.json', { scaler })), /no centroids/);
});

test('errors: no source, two sources, no --from, a --from that is no output, a state in use, a bad column, export of nothing', async () => {
  const live = at('live.csv');
  await rejects(() => stream({ state: at('e1') }), 'ERR_USAGE', /no source/);
  await rejects(() => stream({ state: at('e1'), follow: live, watch: tmp }), 'ERR_USAGE', /one source/);
  await rejects(() => stream({ state: at('e2'), follow: live }), 'ERR_USAGE', /--from DIR/);
  await rejects(() => stream({ state: at('e3'), from: tmp, follow: live }), 'ERR_BAD_INPUT', /no users-\*\.csv/);
  await rejects(() => stream({ state: at('e4'), from: seg, follow: live, userCol: 'nope' }), 'ERR_COLUMN', /no user id column "nope"/);
  const h = await stream({ state: at('e5'), from: seg, follow: live, workers: 1 });
  await rejects(() => stream({ state: at('e5'), follow: live, workers: 1 }), 'ERR_USAGE', /in use/);
  await h.stop();
  await rejects(() => exportState({ state: at('e6'), out: at('e6-out') }), 'ERR_INPUT_NOT_FOUND', /no stream checkpoint/);
});

test.after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
