/**
 * The kmeans job (`segflow kmeans` as a library function) on small CSV files: --json shape,
 * --out files, shards and .gz, quoting, --k-range, errors; and fitSegments / nameSegments /
 * assignWithModel for `segment` and streaming.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { assignWithModel, fitSegments, kmeans, nameSegments, parseKRange, type KMeansModel } from '../lib/kmeans-job.js';
import { SegflowPool } from '../lib/pool.js';
import { SeededRandom } from '../lib/kmeans.js';

type Coded = Error & { code?: string };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-kmeans-job-'));
const file = (name: string, text: string | Buffer): string => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
};

// three spend tiers, 4 users each
const USERS = [
  ['u01', 1, '12.50'], ['u02', 2, '20.00'], ['u03', 1, '9.99'], ['u04', 3, '31.00'],
  ['u05', 12, '480.00'], ['u06', 15, '610.25'], ['u07', 11, '455.10'], ['u08', 14, '590.00'],
  ['u09', 60, '9800.00'], ['u10', 75, '12000.50'], ['u11', 58, '9100.00'], ['u12', 66, '11050.00'],
] as const;
const csv = (rows: readonly (readonly (string | number)[])[], header = 'user_id,purchases,total'): string =>
  header + '\n' + rows.map((r) => r.join(',')).join('\n') + '\n';

async function rejects(fn: () => Promise<unknown>, code: string, message?: RegExp): Promise<Coded> {
  try {
    await fn();
  } catch (err) {
    const e = err as Coded;
    assert.is(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return e;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

test('kmeans on a CSV: the --json object, and --out writes assignments.csv and model.json', async () => {
  const input = file('users.csv', csv(USERS));
  const out = path.join(tmp, 'out1');
  const r = await kmeans({ input, features: 'purchases,total', k: 3, scale: 'log-zscore', out });
  assert.is(r.command, 'kmeans');
  assert.is(r.n, 12);
  assert.is(r.k, 3);
  assert.equal(r.features, ['purchases', 'total']);
  assert.is(r.idCol, 'user_id');
  assert.equal([...r.sizes].sort(), [4, 4, 4]);
  assert.is(r.centroids.length, 3);
  assert.is(r.centroidsOriginal[0].length, 2);
  assert.ok(r.inertia > 0 && r.inertia < 1, `inertia ${r.inertia}`);
  assert.ok(r.iterations >= 1 && r.converged);
  assert.is(r.scaler.method, 'log-zscore');
  assert.equal(r.files, ['assignments.csv', 'model.json']);
  const lines = fs.readFileSync(path.join(out, 'assignments.csv'), 'utf8').trim().split('\n');
  assert.is(lines[0], 'user_id,purchases,total,cluster');
  assert.is(lines.length, 13);
  // the features as written in the input (12.50 stays 12.50), the tiers in one cluster each
  assert.match(lines[1], /^u01,1,12\.50,\d$/);
  const cluster = lines.slice(1).map((l) => Number(l.split(',')[3]));
  for (const tier of [0, 4, 8]) assert.equal(new Set(cluster.slice(tier, tier + 4)).size, 1);
  assert.is(new Set(cluster).size, 3);
  const model = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8')) as KMeansModel;
  assert.equal(model.centroids, r.centroids);
  assert.equal(model.scaler, r.scaler);
  // the saved model assigns each user to the cluster it was given
  USERS.forEach(([, p, t], i) => assert.is(assignWithModel(model, [p, Number(t)]), cluster[i]));
});

test('--out refuses to replace a result without force', async () => {
  const input = file('users-force.csv', csv(USERS));
  const out = path.join(tmp, 'out1');
  await rejects(() => kmeans({ input, features: ['purchases', 'total'], out }), 'ERR_OUT_EXISTS');
  const r = await kmeans({ input, features: ['purchases', 'total'], out, force: true });
  assert.is(r.n, 12);
});

test('shards by glob, .gz, quoting, CRLF, BOM, empty lines, other column orders and delimiters', async () => {
  const dir = path.join(tmp, 'shards');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'users-00000-of-00003.csv'), '\ufeff' + csv(USERS.slice(0, 4)).replace(/\n/g, '\r\n'));
  fs.writeFileSync(path.join(dir, 'users-00001-of-00003.csv.gz'), zlib.gzipSync(csv(USERS.slice(4, 8).map(([u, p, t]) => [`"${u}"`, `"${t}"`, p]), 'user_id,total,purchases') + '\n\n'));
  fs.writeFileSync(path.join(dir, 'users-00002-of-00003.csv'), csv(USERS.slice(8).map(([u, p, t]) => [u, p, t]), 'user_id;purchases;total').replace(/,/g, ';'));
  const out = path.join(tmp, 'out-shards');
  const r = await kmeans({ input: path.join(dir, 'users-*'), features: 'total,purchases', out, scale: 'log-zscore' });
  assert.is(r.n, 12);
  assert.is(r.inputs.length, 3);
  assert.equal(r.features, ['total', 'purchases']);
  const lines = fs.readFileSync(path.join(out, 'assignments.csv'), 'utf8').trim().split('\n');
  assert.is(lines[0], 'user_id,total,purchases,cluster');
  assert.match(lines[1], /^u01,12\.50,1,\d$/);
  assert.match(lines[5], /^"u05","480\.00",12,\d$/);
  // the same clusters as the plain file, in the same order
  const plain = await kmeans({ input: file('users-same.csv', csv(USERS)), features: 'total,purchases', scale: 'log-zscore' });
  assert.is(r.inertia, plain.inertia);
  assert.equal(r.centroids, plain.centroids);
});

test('errors: unknown column lists the header; a non-number names file:line:column; k > rows', async () => {
  const input = file('bad.csv', csv([...USERS.slice(0, 3), ['u99', 'many', '1.00'], ...USERS.slice(4)]));
  let e = await rejects(() => kmeans({ input, features: 'purchases,spend' }), 'ERR_COLUMN', /spend.*user_id, purchases, total/);
  assert.equal((e as Coded & { details: { header: string[] } }).details.header, ['user_id', 'purchases', 'total']);
  e = await rejects(() => kmeans({ input, features: 'purchases,total' }), 'ERR_BAD_INPUT', /bad\.csv:5:2: column "purchases" holds "many"/);
  // line numbers count the line ends inside quoted fields
  await rejects(() => kmeans({ input: file('multiline.csv', 'user_id,purchases,total\n"a\nb",1,2\r\nc,x,3\n'), features: 'purchases', k: 1 }), 'ERR_BAD_INPUT', /multiline\.csv:4:2:/);
  await rejects(() => kmeans({ input: file('few.csv', csv(USERS.slice(0, 2))), features: 'purchases,total', k: 3 }), 'ERR_TOO_FEW_POINTS');
  await rejects(() => kmeans({ input: file('empty.csv', 'user_id,purchases,total\n'), features: 'purchases', k: 1 }), 'ERR_TOO_FEW_POINTS');
  await rejects(() => kmeans({ input: file('short.csv', 'user_id,purchases,total\nu1,3\n'), features: 'purchases,total', k: 1 }), 'ERR_BAD_INPUT', /short\.csv:2/);
  await rejects(() => kmeans({ input: file('ok.csv', csv(USERS)), features: 'purchases', idCol: 'customer' }), 'ERR_COLUMN', /customer/);
  await rejects(() => kmeans({ input: path.join(tmp, 'missing.csv'), features: 'purchases' }), 'ERR_INPUT_NOT_FOUND');
  await rejects(() => kmeans({ input: file('ok2.csv', csv(USERS)), features: '' }), 'ERR_USAGE');
  await rejects(() => kmeans({ input: file('ok3.csv', csv(USERS)), features: 'total', scale: 'minmax' as never }), 'ERR_USAGE');
  await rejects(() => kmeans({ input: file('ok4.csv', csv(USERS)), features: 'total', kRange: '5..2' }), 'ERR_USAGE');
});

test('--k-range fits each k: inertia falls, silhouette per k, suggestions', async () => {
  assert.equal(parseKRange('2..5'), [2, 3, 4, 5]);
  assert.equal(parseKRange('2-4'), [2, 3, 4]);
  assert.equal(parseKRange('4,2,3'), [2, 3, 4]);
  assert.equal(parseKRange([3, 4]), [3, 4]);
  const r = await kmeans({ input: file('range.csv', csv(USERS)), features: 'purchases,total', scale: 'log-zscore', kRange: '1..5' });
  assert.equal(r.kRange?.map((e) => e.k), [1, 2, 3, 4, 5]);
  const inertias = r.kRange?.map((e) => e.inertia) ?? [];
  for (let i = 1; i < inertias.length; i++) assert.ok(inertias[i] < inertias[i - 1]);
  assert.is(r.kRange?.[0].silhouette, null);
  assert.is(r.kRange?.[2].inertia, r.inertia); // k = 3 is the main fit
  assert.is(r.suggestedK?.silhouette, 3);
  assert.is(r.suggestedK?.elbow, 3);
});

test('a pool given by the app is used and left open; progress is reported', async () => {
  const pool = new SegflowPool({ workers: 2 });
  const rng = new SeededRandom(1);
  const rows: string[] = [];
  for (let i = 0; i < 70_000; i++) rows.push(`${i},${1 + Math.floor(rng.nextDouble() ** 3 * 50)},${(rng.nextDouble() * 1000).toFixed(2)}`);
  const input = file('big.csv', 'id,purchases,total\n' + rows.join('\n') + '\n');
  const stages = new Set<string>();
  const r = await kmeans({ input, features: 'purchases,total', pool, onProgress: (e) => stages.add(e.stage) });
  const inline = await kmeans({ input, features: 'purchases,total', blockSize: 1 << 20 });
  assert.is(r.workers, 2);
  assert.ok(stages.has('scan') && stages.has('cluster'));
  // one block inline vs. two blocks on the pool: same clustering, inertia to rounding
  assert.equal(r.sizes, inline.sizes);
  assert.ok(Math.abs(r.inertia - inline.inertia) <= 1e-9 * inline.inertia);
  // the job left the app's pool open: it runs the next job, with the same result
  const again = await kmeans({ input, features: 'purchases,total', pool });
  assert.is(again.inertia, r.inertia);
  await pool.destroy();
});

test('fitSegments: log-zscore on (purchases, total), High/Medium/Low by centroid spend', async () => {
  const purchases = Float64Array.from(USERS.map((u) => u[1]));
  const totals = Float64Array.from(USERS.map((u) => Number(u[2])));
  const { model, labels } = await fitSegments(purchases, totals, { k: 3 });
  assert.equal(model.features, ['purchases', 'total']);
  assert.is(model.scaler.method, 'log-zscore');
  const names = USERS.map((_, i) => model.names?.[labels[i]]);
  assert.equal(names, ['Low', 'Low', 'Low', 'Low', 'Medium', 'Medium', 'Medium', 'Medium', 'High', 'High', 'High', 'High']);
  const high = model.names?.indexOf('High') ?? -1;
  assert.ok(model.centroidsOriginal[high][1] > 9000 && model.centroidsOriginal[high][1] < 12000);
  assert.equal(JSON.parse(JSON.stringify(model)), model);
  await rejects(() => fitSegments([1], [2], { k: 3 }), 'ERR_TOO_FEW_POINTS');
});

test('nameSegments ranks by spend: k = 3 High/Medium/Low, other k numbered', () => {
  assert.equal(nameSegments([[1, 50], [9, 900], [3, 200]], 3, 1), ['Low', 'High', 'Medium']);
  assert.equal(nameSegments(Float64Array.from([1, 50, 9, 900, 3, 200, 2, 100]), 4, 1),
    ['Segment 4 (lowest spend)', 'Segment 1 (highest spend)', 'Segment 2', 'Segment 3']);
  assert.equal(nameSegments([[1, 5], [2, 5]], 2, 1), ['Segment 1 (highest spend)', 'Segment 2 (lowest spend)']);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
