/**
 * The SIMD line kernel (lib/kernel/lines.wat) against a plain reference: random buffers of lines
 * (any one-byte delimiter, fields of 0 to 20 bytes, CRLF, empty lines, wanted fields anywhere),
 * scanned from any start, up to any limit and range end: the same lines, field counts and field
 * bounds, and the same place to go on from.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KERNEL_MAX_LINES, RECORD, lineKernel } from '../lib/kernel/lines.js';
import { Random } from '../lib/util/random.js';

interface RefLine {
  start: number;
  nl: number;
  fields: number;
  /** [start, end] of each wanted slot found before the line's last field ends (else undefined). */
  slots: ([number, number] | undefined)[];
}

/** The complete lines of buf[p, lim) that start before stop, the plain way. */
function reference(buf: Buffer, p: number, lim: number, stop: number, delim: number, want: number[]): { lines: RefLine[]; next: number } {
  const lines: RefLine[] = [];
  let s = p;
  while (s < stop) {
    const nl = buf.indexOf(10, s);
    if (nl === -1 || nl >= lim) break;
    const bounds = [s];
    for (let i = s; i < nl; i++) if (buf[i] === delim) bounds.push(i);
    const fields = bounds.length;
    const slots: RefLine['slots'] = [undefined, undefined, undefined, undefined];
    for (let f = 0; f < fields - 1; f++) {
      const slot = want[f];
      if (slot >= 0) slots[slot] = [f === 0 ? s : bounds[f] + 1, bounds[f + 1]];
    }
    lines.push({ start: s, nl, fields, slots });
    s = nl + 1;
  }
  return { lines, next: s };
}

function randomBuffer(rnd: Random, delim: string, lines: number): Buffer {
  let text = '';
  for (let l = 0; l < lines; l++) {
    if (rnd.next() < 0.05) {
      text += rnd.next() < 0.5 ? '\n' : '\r\n';
      continue;
    }
    const n = 1 + rnd.int(14);
    const cells = Array.from({ length: n }, () => 'abcdefghijklmnopqrst'.slice(0, rnd.int(21)));
    text += cells.join(delim) + (rnd.next() < 0.3 ? '\r\n' : '\n');
  }
  return Buffer.from(text + 'tail without a newline' + delim + 'x');
}

test('the line kernel is built and loads', () => {
  assert.ok(lineKernel(), 'dist/lib/kernel/lines.wasm (npm run build assembles it)');
});

test('random lines: the kernel finds the same lines, field counts and wanted fields as the reference', () => {
  const k = lineKernel()!;
  const rnd = new Random(20261129);
  const delims = [',', ';', '\t', '|', ' '];
  for (let c = 0; c < 300; c++) {
    const delim = delims[c % delims.length];
    const d = delim.charCodeAt(0);
    const buf = randomBuffer(rnd, delim, 1 + rnd.int(200));
    // up to four wanted fields at random indexes below nf
    const nf = 1 + rnd.int(12);
    const want = new Int32Array(nf + 1).fill(-1);
    for (let slot = 0; slot < 4; slot++) if (rnd.next() < 0.8) want[rnd.int(nf)] = slot;
    const nb = new Int32Array(nf + 1).fill(nf);
    for (let j = nf - 1; j >= 0; j--) nb[j] = want[j] >= 0 || want[j + 1] >= 0 ? j : nb[j + 1];
    // lines are taken from a line start
    const starts = [0];
    for (let i = 0; i < buf.length; i++) if (buf[i] === 10) starts.push(i + 1);
    const p = starts[rnd.int(starts.length)];
    const lim = p + rnd.int(buf.length - p + 1);
    const stop = rnd.next() < 0.5 ? 1e12 : p + rnd.int(buf.length - p + 1);
    const owner = {};
    k.configure(owner, want, nb, nf);
    const ref = reference(buf, p, lim, stop, d, Array.from(want));
    const n = k.lines(buf, p, lim, stop, d, nf);
    const ctx = `case ${c} (delimiter ${JSON.stringify(delim)}, nf ${nf}, want ${Array.from(want)}, p ${p}, lim ${lim}, stop ${stop})`;
    assert.is(n, ref.lines.length, `${ctx}: lines`);
    assert.is(k.next, ref.next, `${ctx}: next`);
    for (let r = 0; r < n; r++) {
      const o = r * RECORD;
      const e = ref.lines[r];
      assert.is(k.out[o], e.start, `${ctx}: line ${r} start`);
      assert.is(k.out[o + 1], e.nl, `${ctx}: line ${r} newline`);
      assert.is(k.out[o + 2], e.fields, `${ctx}: line ${r} fields`);
      for (let slot = 0; slot < 4; slot++) {
        const b = e.slots[slot];
        if (b === undefined) continue;
        assert.is(k.out[o + 4 + slot], b[0], `${ctx}: line ${r} slot ${slot} start`);
        assert.is(k.out[o + 8 + slot], b[1], `${ctx}: line ${r} slot ${slot} end`);
      }
      // a wanted field that is the line's last starts in the record too (its end is the caller's)
      const lastSlot = want[e.fields - 1];
      if (e.fields - 1 < nf && lastSlot >= 0) {
        const from = e.fields === 1 ? e.start : (() => {
          let i = e.nl - 1;
          while (buf[i] !== d) i--;
          return i + 1;
        })();
        assert.is(k.out[o + 4 + lastSlot], from, `${ctx}: line ${r} last field start`);
      }
    }
  }
});

test('the kernel stops when its record area is full and goes on from there', () => {
  const k = lineKernel()!;
  const lines = KERNEL_MAX_LINES + 1000;
  const buf = Buffer.from('7,1\n'.repeat(lines));
  const want = Int32Array.from([0, 1, -1]);
  const nb = Int32Array.from([0, 1]);
  k.configure({}, want, nb, 2);
  let pos = 0;
  let total = 0;
  const counts: number[] = [];
  while (pos < buf.length) {
    const n = k.lines(buf, pos, buf.length, 1e12, 44, 2);
    if (n === 0) break;
    counts.push(n);
    for (let r = 0; r < n; r++) {
      const o = r * RECORD;
      assert.is(k.out[o], pos + 4 * r);
      assert.is(k.out[o + 2], 2);
      assert.is(k.out[o + 4], pos + 4 * r);
      assert.is(k.out[o + 8], pos + 4 * r + 1);
      assert.is(k.out[o + 5], pos + 4 * r + 2);
    }
    total += n;
    pos = k.next;
  }
  assert.is(total, lines);
  assert.equal(counts, [KERNEL_MAX_LINES, 1000]);
});

test.run();
