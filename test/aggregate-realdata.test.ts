/**
 * Real retail data (../shared/realdata): users and exact totals match the reference sums in its
 * README; every row is counted or rejected.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aggregate, SegflowPool } from '../lib/index.js';
import { realFile } from './helpers/realdata.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-real-'));
const pool = new SegflowPool({ workers: 2 });

test('Online Retail (gzip): quantity x unit price, rows without CustomerID rejected', async () => {
  const file = realFile('onlineretail_uci.csv.gz');
  if (!file) return;
  const out = path.join(tmp, 'retail');
  const s = await aggregate({ input: file, out, pool, force: true, quantityCol: 'Quantity', amountCol: 'UnitPrice', userCol: 'CustomerID' });
  assert.is(s.rows.read, 541909);
  assert.is(s.rows.counted, 406829);
  assert.is(s.rows.rejected, 135080);
  assert.is(s.users, 4372);
  assert.is(s.total, '8300065.814');
  const rejects = fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8').trim().split('\n');
  assert.is(rejects.length, 135080);
  const first = JSON.parse(rejects[0]);
  assert.is(first.reason, 'missing user id (CustomerID)');
  // line numbers are 1-based lines of the decompressed file (the header is line 1)
  assert.ok(first.line > 1);
  const lines = (await import('node:zlib')).gunzipSync(fs.readFileSync(file)).toString('utf8').split('\n');
  assert.ok(lines[first.line - 1].startsWith(first.text.slice(0, 40)), 'reject line number points at its text');
  // a customer with only cancellations nets to a negative total
  const shard = fs.readdirSync(out).filter((f) => f.startsWith('users-')).map((f) => fs.readFileSync(path.join(out, f), 'utf8')).join('');
  assert.ok(/\n12346,2,0\.000,0\n/.test(shard), 'customer 12346 bought 74215 and cancelled it: net 0.000');
});

test('Online Retail: auto-detected columns (UnitPrice x Quantity) give the same sums', async () => {
  const file = realFile('onlineretail_uci.csv.gz');
  if (!file) return;
  const s = await aggregate({ input: file, out: path.join(tmp, 'retail-auto'), pool, force: true });
  assert.equal(s.inputs[0].columns, { user: 'CustomerID', amount: 'UnitPrice', quantity: 'Quantity' });
  assert.is(s.total, '8300065.814');
});

test('France and Germany extracts (US dates, BOM)', async () => {
  const fr = realFile('pycaret_france.csv');
  const de = realFile('pycaret_germany.csv');
  if (!fr || !de) return;
  const a = await aggregate({ input: fr, out: path.join(tmp, 'fr'), pool, force: true, dateCol: 'InvoiceDate' });
  assert.is(a.users, 87);
  assert.is(a.total, '196712.84');
  assert.is(a.rows.rejected, 66);
  const b = await aggregate({ input: de, out: path.join(tmp, 'de'), pool, force: true, rangeSize: 65536 });
  assert.is(b.users, 95);
  assert.is(b.total, '221698.21');
  assert.is(b.rows.rejected, 0);
});

test('CDNOW: whitespace-delimited with CRLF, zero-padded ids kept as text; the CSV copy agrees', async () => {
  const txt = realFile('CDNOW_master.txt');
  const csv = realFile('cdnow_master.csv');
  if (!txt || !csv) return;
  const a = await aggregate({ input: txt, out: path.join(tmp, 'cdnow-txt'), pool, force: true, rangeSize: 100000 });
  assert.is(a.users, 23570);
  assert.is(a.rows.counted, 69659);
  assert.is(a.total, '2500315.63');
  const b = await aggregate({ input: csv, out: path.join(tmp, 'cdnow-csv'), pool, force: true, quantityCol: 'none' });
  assert.is(b.total, '2500315.63');
  const shardA = fs.readFileSync(path.join(tmp, 'cdnow-txt', 'users-00000-of-00008.csv'), 'utf8');
  const shardB = fs.readFileSync(path.join(tmp, 'cdnow-csv', 'users-00000-of-00008.csv'), 'utf8');
  assert.ok(shardA === shardB, 'the same shards from the text and CSV copies');
  assert.ok(/\n0\d{4},/.test(shardA), 'ids keep their leading zeros');
});

test('CDNOW sample: no header, columns by number', async () => {
  const f = realFile('CDNOW_sample.txt');
  if (!f) return;
  const s = await aggregate({ input: f, out: path.join(tmp, 'cdnow-sample'), pool, force: true, header: false, userCol: '1', amountCol: '5' });
  assert.is(s.users, 2357);
  assert.is(s.total, '244091.94');
  assert.is(s.rows.counted, 6919);
});

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
