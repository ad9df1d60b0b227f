/**
 * The SIMD line kernel (lib/kernel/lines.wat) against a plain reference: random buffers of lines
 * (any one-byte delimiter, fields of 0 to 20 bytes, CRLF, empty lines, wanted fields anywhere,
 * numbers of 1 to 16 digits with and without leading zeros, decimal points and stray bytes), scanned from any
 * start, up to any limit and range end, copied into the kernel or read in place from its read
 * area: the same lines, field counts, field bounds and values, and the same place to go on from.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KERNEL_MAX_LINES, RECORD, kernelOwner, lineKernel } from '../lib/kernel/lines.js';
import { Random } from '../lib/util/random.js';
import { OK, parseDecimal } from '../lib/util/bytes.js';

interface RefLine {
  start: number;
  nl: number;
  /** The line's end before a CR. */
  ce: number;
  fields: number;
  /** [start, end] of each wanted slot (undefined: not in this line). */
  slots: ([number, number] | undefined)[];
}

/** The kernel's value of a key: 1 to 15 plain digits without a leading zero, else -1. */
function keyValue(buf: Buffer, s: number, e: number): number {
  const t = buf.toString('latin1', s, e);
  if (!/^[0-9]{1,15}$/.test(t) || (t.length > 1 && t[0] === '0')) return -1;
  return Number(t);
}

/**
 * The kernel's value of an amount and its decimal places: digits with at most one '.' between two
 * of them, 15 digits at most; else -1 (and the places are not read). Checked against the scanner's
 * own parser (parseDecimal) where there is a value.
 */
function amountValue(buf: Buffer, s: number, e: number): [number, number] {
  const t = buf.toString('latin1', s, e);
  const m = /^([0-9]+)(?:\.([0-9]+))?$/.exec(t);
  if (!m || m[1].length + (m[2]?.length ?? 0) > 15) return [-1, 0];
  const out = { m: 0, dp: 0, date: 0, hasTime: false };
  assert.is(parseDecimal(buf, s, e, out), OK, t);
  assert.is(Number(m[1] + (m[2] ?? '')), out.m, t);
  return [out.m, out.dp];
}

/** The complete lines of buf[p, lim) that start before stop, the plain way. */
function reference(buf: Buffer, p: number, lim: number, stop: number, delim: number, want: number[]): { lines: RefLine[]; next: number } {
  const lines: RefLine[] = [];
  let s = p;
  while (s < stop) {
    const nl = buf.indexOf(10, s);
    if (nl === -1 || nl >= lim) break;
    const ce = nl > s && buf[nl - 1] === 13 ? nl - 1 : nl;
    const bounds = [s - 1];
    for (let i = s; i < nl; i++) if (buf[i] === delim) bounds.push(i);
    bounds.push(ce);
    const fields = bounds.length - 1;
    const slots: RefLine['slots'] = [undefined, undefined, undefined, undefined];
    for (let f = 0; f < fields && f < want.length; f++) {
      const slot = want[f];
      if (slot >= 0) slots[slot] = [bounds[f] + 1, bounds[f + 1]];
    }
    lines.push({ start: s, nl, ce, fields, slots });
    s = nl + 1;
  }
  return { lines, next: s };
}

function randomBuffer(rnd: Random, delim: string, lines: number, fields: number): Buffer {
  let text = '';
  for (let l = 0; l < lines; l++) {
    if (rnd.next() < 0.05) {
      text += rnd.next() < 0.5 ? '\n' : '\r\n';
      continue;
    }
    // most lines with the field count the caller wants (their values are read), the rest any
    const n = rnd.next() < 0.6 ? fields : 1 + rnd.int(14);
    const cells = Array.from({ length: n }, () => {
      const t = rnd.next();
      if (t < 0.3) return 'abcdefghijklmnopqrst'.slice(0, rnd.int(21));
      // digits: 1 to 16 of them, sometimes a leading zero or a stray byte
      let d = String(1 + rnd.int(9)) + Array.from({ length: rnd.int(rnd.next() < 0.5 ? 4 : 16) }, () => String(rnd.int(10))).join('');
      if (t < 0.38) d = '0' + d.slice(1);
      if (t > 0.95) d = d.slice(0, d.length >> 1) + ['.', ':', '/', ' ', '-', 'a'][rnd.int(6)] + d.slice(d.length >> 1);
      else if (t > 0.75) {
        // a decimal: the point anywhere (also first or last), sometimes two of them
        const at = rnd.int(d.length + 1);
        d = d.slice(0, at) + '.' + d.slice(at);
        if (t > 0.93) d += '.5';
      }
      return d;
    });
    text += cells.join(delim) + (rnd.next() < 0.3 ? '\r\n' : '\n');
  }
  return Buffer.from(text + 'tail without a newline' + delim + 'x');
}

test('the line kernel is built and loads', () => {
  assert.ok(lineKernel(), 'dist/lib/kernel/lines.wasm (npm run build assembles it)');
});

test('random lines: the kernel finds the same lines, field counts, wanted fields, values and direct rows as the reference', () => {
  const k = lineKernel()!;
  const rnd = new Random(20261129);
  const delims = [',', ';', '\t', '|', ' '];
  let decimals = 0;
  let integers = 0;
  let directs = 0;
  for (let c = 0; c < 300; c++) {
    const delim = delims[c % delims.length];
    const d = delim.charCodeAt(0);
    // the key and the amount (slots 0 and 1) and maybe two more, at random indexes below nf
    const nf = 2 + rnd.int(11);
    const want = new Int32Array(nf + 1).fill(-1);
    const order = Array.from({ length: nf }, (_, i) => i).sort(() => rnd.next() - 0.5);
    for (let slot = 0; slot < Math.min(4, nf); slot++) if (slot < 2 || rnd.next() < 0.5) want[order[slot]] = slot;
    const fc = Math.max(...Array.from(want).map((slot, f) => (slot >= 0 ? f : 0))) + 1 + rnd.int(3);
    const nb = new Int32Array(nf + 1).fill(nf);
    for (let j = nf - 1; j >= 0; j--) nb[j] = want[j] >= 0 || want[j + 1] >= 0 ? j : nb[j + 1];
    const buf = randomBuffer(rnd, delim, 1 + rnd.int(200), fc);
    // lines are taken from a line start
    const starts = [0];
    for (let i = 0; i < buf.length; i++) if (buf[i] === 10) starts.push(i + 1);
    const p = starts[rnd.int(starts.length)];
    const lim = p + rnd.int(buf.length - p + 1);
    const stop = rnd.next() < 0.5 ? 1e12 : p + rnd.int(buf.length - p + 1);
    k.configure(kernelOwner(), want, nb, nf);
    const ref = reference(buf, p, lim, stop, d, Array.from(want));
    // a dense window half the time: its rows come back as direct rows, not records
    const windowed = rnd.next() < 0.5;
    const dBase = windowed ? (rnd.next() < 0.5 ? 0 : 10 ** rnd.int(6)) : Infinity;
    const dEnd = windowed ? dBase + 10 ** (1 + rnd.int(9)) : -Infinity;
    // every other case from the kernel's own read area (scanned in place), the others copied in
    let src = buf;
    if (c % 2 === 0) {
      src = k.readArea(buf.length);
      buf.copy(src);
    }
    const n = k.lines(src, p, lim, stop, d, nf, fc, dBase, dEnd);
    const ctx = `case ${c} (${c % 2 === 0 ? 'in place' : 'copied'}, delimiter ${JSON.stringify(delim)}, nf ${nf}, want ${Array.from(want)}, fields ${fc}, p ${p}, lim ${lim}, stop ${stop}, window ${dBase}-${dEnd})`;
    assert.is(k.next, ref.next, `${ctx}: next`);
    assert.is(k.lineCount, ref.lines.length, `${ctx}: lines`);
    assert.is(k.emptyCount, ref.lines.filter((e) => e.ce === e.start).length, `${ctx}: empty lines`);
    let r = 0;
    let dr = 0;
    let maxDp = 0;
    ref.lines.forEach((e, index) => {
      if (e.ce === e.start) return;
      let key = -1;
      let m = -1;
      let dp = 0;
      if (e.fields === fc) {
        key = keyValue(buf, e.slots[0]![0], e.slots[0]![1]);
        [m, dp] = amountValue(buf, e.slots[1]![0], e.slots[1]![1]);
        if (m >= 0 && dp > 0) decimals++;
        else if (m >= 0) integers++;
      }
      if (key >= dBase && key < dEnd && m >= 0) {
        assert.is(k.directRow[dr], key - dBase, `${ctx}: direct row ${dr} (line ${index})`);
        assert.is(k.directM[dr], m, `${ctx}: direct row ${dr} amount`);
        assert.is(k.directDp[dr], dp, `${ctx}: direct row ${dr} places`);
        maxDp = Math.max(maxDp, dp);
        dr++;
        directs++;
        return;
      }
      const o = r * RECORD;
      assert.is(k.out[o], e.start, `${ctx}: record ${r} (line ${index}) start`);
      assert.is(k.out[o + 1], e.nl, `${ctx}: record ${r} newline`);
      assert.is(k.out[o + 2], e.fields, `${ctx}: record ${r} fields`);
      assert.is(k.out[o + 3], e.ce, `${ctx}: record ${r} end`);
      assert.is(k.out[o + 17], index, `${ctx}: record ${r} line index`);
      r++;
      if (e.fields !== fc) return;
      for (let slot = 0; slot < 4; slot++) {
        const b = e.slots[slot];
        if (b === undefined) continue;
        assert.is(k.out[o + 4 + slot], b[0], `${ctx}: record ${r - 1} slot ${slot} start`);
        assert.is(k.out[o + 8 + slot], b[1], `${ctx}: record ${r - 1} slot ${slot} end`);
      }
      assert.is(k.values[o / 2 + 6], key, `${ctx}: record ${r - 1} key value`);
      assert.is(k.values[o / 2 + 7], m, `${ctx}: record ${r - 1} amount value`);
      if (m >= 0) assert.is(k.out[o + 16], dp, `${ctx}: record ${r - 1} amount places`);
    });
    assert.is(n, r, `${ctx}: records`);
    assert.is(k.direct, dr, `${ctx}: direct rows`);
    if (dr > 0) assert.is(k.maxDp, maxDp, `${ctx}: most places of a direct row`);
  }
  // (the cases above must have reached the values: lines of the right field count)
  assert.ok(decimals > 100 && integers > 100 && directs > 200, `values checked: ${decimals} decimal, ${integers} integer amounts, ${directs} direct rows`);
});

test('the kernel stops when its record or direct-row area is full and goes on from there', () => {
  const k = lineKernel()!;
  const lines = KERNEL_MAX_LINES + 1000;
  const buf = Buffer.from('7,1\n'.repeat(lines));
  const want = Int32Array.from([0, 1, -1]);
  const nb = Int32Array.from([0, 0]);
  k.configure(kernelOwner(), want, nb, 2);
  let pos = 0;
  let total = 0;
  const counts: number[] = [];
  while (pos < buf.length) {
    const n = k.lines(buf, pos, buf.length, 1e12, 44, 2, 2);
    if (n === 0) break;
    counts.push(n);
    for (let r = 0; r < n; r++) {
      const o = r * RECORD;
      assert.is(k.out[o], pos + 4 * r);
      assert.is(k.out[o + 2], 2);
      assert.is(k.out[o + 4], pos + 4 * r);
      assert.is(k.out[o + 8], pos + 4 * r + 1);
      assert.is(k.out[o + 5], pos + 4 * r + 2);
      assert.is(k.out[o + 9], pos + 4 * r + 3);
      assert.is(k.values[o / 2 + 6], 7);
      assert.is(k.values[o / 2 + 7], 1);
    }
    total += n;
    pos = k.next;
  }
  assert.is(total, lines);
  assert.equal(counts, [KERNEL_MAX_LINES, 1000]);
  // the same lines as direct rows of a window holding key 7
  pos = 0;
  total = 0;
  counts.length = 0;
  while (pos < buf.length) {
    const n = k.lines(buf, pos, buf.length, 1e12, 44, 2, 2, 5, 10);
    assert.is(n, 0, 'no records');
    if (k.direct === 0) break;
    counts.push(k.direct);
    for (let r = 0; r < k.direct; r++) {
      assert.is(k.directRow[r], 2);
      assert.is(k.directM[r], 1);
      assert.is(k.directDp[r], 0);
    }
    total += k.direct;
    pos = k.next;
  }
  assert.is(total, lines);
  assert.equal(counts, [KERNEL_MAX_LINES, 1000]);
});

test.run();
