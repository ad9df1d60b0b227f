/**
 * Quoted fields that span lines: read correctly when the file is scanned whole; when byte ranges
 * cannot place them the job says so (a warning in the summary and on stderr) and reads that file
 * in one range, with the same result and the right line numbers in rejects.jsonl.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregate, SegflowPool } from '../lib/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-quoted-'));
const pool = new SegflowPool({ workers: 2 });

// 3,000 rows over 300 users; every 7th row has a note with a line break and a comma inside quotes;
// row 1,000 has a bad amount. Expected per-user counts and totals (in cents) are kept alongside.
const input = path.join(tmp, 'notes.csv');
const expected = new Map<number, { n: number; cents: number }>();
let text = 'user_id,note,amount\n';
let line = 1;
let badLine = 0;
for (let i = 0; i < 3000; i++) {
  const u = ((i * 7919) % 300) + 1;
  const note = i % 7 === 0 ? `"multi\nline, note ""${i}"""` : 'plain';
  const cents = ((i * 104729) % 9999) + 1;
  line++;
  if (i === 1000) {
    badLine = line;
    text += `${u},${note},twelve\n`;
  } else {
    text += `${u},${note},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}\n`;
    const e = expected.get(u) ?? { n: 0, cents: 0 };
    e.n++;
    e.cents += cents;
    expected.set(u, e);
  }
  if (i % 7 === 0) line++; // the note's own line break
}
fs.writeFileSync(input, text);

/** The users rows of every shard, parsed. */
function readUsers(dir: string): Map<number, { n: number; cents: number }> {
  const m = new Map<number, { n: number; cents: number }>();
  for (const f of fs.readdirSync(dir).filter((x) => x.startsWith('users-'))) {
    for (const row of fs.readFileSync(path.join(dir, f), 'utf8').trim().split('\n').slice(1)) {
      const [u, n, total] = row.split(',');
      m.set(Number(u), { n: Number(n), cents: Math.round(Number(total) * 100) });
    }
  }
  return m;
}

test('read whole: every record placed, counts and totals exact', async () => {
  const out = path.join(tmp, 'whole');
  const s = await aggregate({ input, out, pool });
  assert.is(s.inputs[0].ranges, 1);
  assert.equal(s.warnings, []);
  assert.equal(s.rows, { read: 3000, counted: 2999, rejected: 1, emptyLines: 0 });
  assert.equal(readUsers(out), expected);
  const rej = JSON.parse(fs.readFileSync(path.join(out, 'rejects.jsonl'), 'utf8'));
  assert.is(rej.line, badLine);
});

test('small ranges: the job warns and reads the file in one range, same result', async () => {
  const out = path.join(tmp, 'split');
  const s = await aggregate({ input, out, pool, rangeSize: 4096 });
  assert.equal(s.warnings, [`${input}: quoted fields span lines, so byte ranges cannot place every record; the file was read again in one range`]);
  assert.is(s.inputs[0].ranges, 1);
  assert.equal(s.rows, { read: 3000, counted: 2999, rejected: 1, emptyLines: 0 });
  for (const f of fs.readdirSync(path.join(tmp, 'whole'))) {
    if (f === 'summary.json') continue;
    assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(tmp, 'whole', f))), f);
  }
});

test('the command line prints the warning on stderr', () => {
  const r = spawnSync(process.execPath, [CLI, 'aggregate', input, '--out', path.join(tmp, 'cli'), '--range-size', '4096', '--workers', '1'], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, 'quoted fields span lines');
});

test.after(async () => {
  await pool.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();
