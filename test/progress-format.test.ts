/**
 * The progress reporter without a terminal: the figures of a view, the plain lines, the TTY frames
 * written to a fake stream, quiet, and NO_COLOR.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { colorAllowed, createReporter, formatDuration, formatMB, plainLine, ttyLine, viewOf } from '../lib/progress.js';
import type { ProgressEvent } from '../lib/types.js';

/** A stream that records what is written. */
function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, isTTY, columns: 160, write: (s: string) => (chunks.push(s), true), text: () => chunks.join('') };
}

function ev(stage: ProgressEvent['stage'], elapsedMs: number, extra: Partial<ProgressEvent> = {}): ProgressEvent {
  return { stage, bytes: 0, totalBytes: 100e6, records: 0, rejects: 0, done: 0, total: 1, elapsedMs, ...extra };
}

const SGR = /\x1b\[[0-9;]*m/;

test('viewOf: scan fraction, MB/s and ETA come from bytes', () => {
  // 25 MB of 100 MB, the scan began at 1 s and it is now 2 s: 25 MB/s in the scan, so 3 s left
  const v = viewOf(ev('scan', 2000, { bytes: 25e6, records: 1000 }), 1000);
  assert.is(v.fraction, 0.25);
  assert.is(v.etaMs, 3000);
  assert.is(v.mbPerSec, 12.5); // over the whole job: 25 MB in 2 s
});

test('viewOf: other stages count tasks; no ETA before the first task', () => {
  assert.is(viewOf(ev('merge', 5000, { done: 0, total: 8 }), 4000).etaMs, undefined);
  const v = viewOf(ev('merge', 5000, { done: 2, total: 8 }), 4000);
  assert.is(v.fraction, 0.25);
  assert.is(v.etaMs, 3000); // 1 s for 2 partitions, 6 to go
});

test('formatMB and formatDuration', () => {
  assert.is(formatMB(512), '512 B');
  assert.is(formatMB(47_100_000), '47.1 MB');
  assert.is(formatMB(6.6e9), '6.60 GB');
  assert.is(formatDuration(1234), '1.2 s');
  assert.is(formatDuration(125_000), '2m05s');
  assert.is(formatDuration(3_720_000), '1h02m');
});

test('plainLine: stage, time, bytes of total, rate, records, rejects, ETA', () => {
  const line = plainLine(viewOf(ev('scan', 2000, { bytes: 25e6, records: 406829, rejects: 3 }), 1000));
  assert.is(line, 'segflow: scan      2.0 s  25.0 MB of 100.0 MB  12.5 MB/s  406,829 records  3 rejects  ETA 3.0 s');
  assert.is(plainLine(viewOf(ev('plan', 3), 0)), 'segflow: plan      0.0 s  100.0 MB to read');
});

test('ttyLine: a bar, colour only when asked', () => {
  const v = viewOf(ev('scan', 2000, { bytes: 50e6, rejects: 1 }), 1000);
  const bw = ttyLine(v, false);
  assert.ok(bw.includes('\u2588'.repeat(10) + '\u2591'.repeat(10)), bw);
  assert.ok(bw.includes(' 50% '), bw);
  assert.not.match(bw, SGR);
  assert.match(ttyLine(v, true), SGR);
});

test('plain reporter: a line per stage, heartbeats in a long stage, a final line', () => {
  const s = fakeStream(false);
  const r = createReporter({ stream: s, heartbeatMs: 1000 });
  r.progress(ev('plan', 1));
  r.progress(ev('scan', 100, { bytes: 1e6 }));
  r.progress(ev('scan', 200, { bytes: 2e6 })); // same stage, too soon: no line
  r.progress(ev('scan', 1200, { bytes: 30e6 })); // heartbeat
  r.progress(ev('merge', 1300, { bytes: 100e6, done: 1, total: 8 }));
  r.log('a message');
  r.done();
  r.done(); // idempotent
  const lines = s.text().trimEnd().split('\n');
  assert.equal(
    lines.map((l) => l.split(/\s+/)[1]),
    ['plan', 'scan', 'scan', 'merge', 'message', 'done'],
  );
  assert.not.match(s.text(), /\x1b/);
});

test('plain reporter: a failed job ends with "stopped"', () => {
  const s = fakeStream(false);
  const r = createReporter({ stream: s });
  r.progress(ev('scan', 100, { bytes: 1e6 }));
  r.done({ failed: true });
  assert.match(s.text(), /segflow: stopped /);
});

test('stages after the scan show the scan\'s bytes (they read no input)', () => {
  const s = fakeStream(false);
  const r = createReporter({ stream: s });
  r.progress(ev('scan', 1000, { bytes: 100e6 }));
  r.progress(ev('cluster', 2000, { bytes: 7e6, totalBytes: 7e6 }));
  r.done();
  assert.match(s.text(), /segflow: cluster .* 100\.0 MB of 100\.0 MB/);
  assert.match(s.text(), /segflow: done .* 100\.0 MB /);
});

test('quiet: nothing at all', () => {
  const s = fakeStream(true);
  const r = createReporter({ quiet: true, stream: s });
  r.progress(ev('scan', 100, { bytes: 1e6 }));
  r.log('hello');
  r.done();
  assert.is(s.text(), '');
});

test('tty reporter: frames on one row, messages above, a summary row at the end', () => {
  const s = fakeStream(true);
  const r = createReporter({ stream: s, color: false });
  r.progress(ev('scan', 100, { bytes: 10e6, records: 5 }));
  r.log('note');
  r.progress(ev('scan', 200, { bytes: 100e6, records: 50 }));
  r.progress(ev('merge', 300, { bytes: 100e6, records: 50, done: 8, total: 8 }));
  r.done();
  const out = s.text();
  assert.ok(out.includes('note\n'), 'the message is printed');
  assert.ok(out.includes('\x1b[?25l') && out.includes('\x1b[?25h'), 'the cursor is hidden, then shown');
  assert.match(out, /done\s+\S+ s {2}100\.0 MB {2}[\d.]+ MB\/s {2}50 records {2}0 rejects/);
  assert.not.match(out, SGR);
  r.log('after'); // after done, straight to the stream
  assert.ok(s.text().endsWith('after\n'));
});

test('colorAllowed follows NO_COLOR (set and non-empty)', () => {
  assert.is(colorAllowed({}), true);
  assert.is(colorAllowed({ NO_COLOR: '' }), true);
  assert.is(colorAllowed({ NO_COLOR: '1' }), false);
});

test.run();
