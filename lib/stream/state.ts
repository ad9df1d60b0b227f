/**
 * The stream's state: the per-user table of the batch job (lib/table.ts: counts, exact sums as two
 * float64 limbs, quantities, first and last dates) and each user's cluster under the current model.
 *
 * A micro-batch arrives as partial sections (lib/partial.ts) from scan tasks on the pool; folding
 * one is the merge step of the batch job (lib/merge.ts `mergeSections`), done into the long-lived
 * table, noting each user it touches so that only those are scaled and assigned afterwards.
 */
import { KeyTable, COUNT, NUM, SUM, F_DATE, F_QTY } from '../table.js';
import type { Section } from '../partial.js';
import { LIMB_MAX, POW10, addExact, addLimbs, formatScaled, limbsToBig, limbsToFloat } from '../util/exact.js';
import { assignNearest } from '../kmeans.js';
import { SegflowError } from '../errors.js';
import type { StreamModel } from './model.js';
import { LineWriter, PIECES, jsonBytes } from './lines.js';

/**
 * Keys per block of the fold (the touch loops keep this many misses in flight). Measured on a
 * 2,000,000-user state, fold and assignment per key: 550-600 ns without the touch loops, 260-300
 * with blocks of 64, 210-230 with blocks of 8 to 16.
 */
const FOLD_BLOCK = 16;

/** The value of two limbs at `scale` decimal places, as a float (a feature, not a total). */
function limbsValue(lo: number, hi: number, scale: number): number {
  // lo is an exact integer: one correctly rounded division, the same float as parsing the decimal text
  if (hi === 0) return lo / POW10[scale];
  return limbsToFloat(lo, hi) / POW10[scale];
}

/** The per-user state and the current model. */
export class StreamState {
  table: KeyTable;
  /** Cluster of each user id under {@link StreamState.model}; -1 before the first assignment. */
  labels: Int32Array;
  model: StreamModel;
  /** Dates in the state carry a time of day (the shards print `first_date` with a time). */
  dateHasTime: boolean;
  /** Rows counted, rejected and empty lines skipped, since the history began. */
  rows = 0;
  rejected = 0;
  emptyLines = 0;
  /** Rows in the state when the model was last fitted (for a share trigger). */
  rowsAtFit = 0;
  /** The batch in which each id's label last changed, and (id, label before the batch) of those changes. */
  private mark: Uint32Array;
  private epoch = 0;
  private changedIds: Int32Array;
  private changedFrom: Int32Array;
  private nChanged = 0;
  /** Keeps the touch loads of {@link StreamState.fold} from being optimised away. */
  private touchSink = 0;
  private readonly row: Float64Array;
  private readonly decoder = new TextDecoder();

  constructor(table: KeyTable, model: StreamModel, labels?: Int32Array, dateHasTime = false) {
    this.table = table;
    this.model = model;
    this.dateHasTime = dateHasTime;
    const cap = Math.max(1024, table.hashes.length);
    this.labels = new Int32Array(cap).fill(-1);
    if (labels) this.labels.set(labels.subarray(0, table.size));
    this.mark = new Uint32Array(cap);
    this.changedIds = new Int32Array(1024);
    this.changedFrom = new Int32Array(1024);
    this.row = new Float64Array(model.d);
  }

  /** Users in the state. */
  get users(): number {
    return this.table.size;
  }

  /** Make room for ids up to `n` in the per-id arrays. */
  private reserve(n: number): void {
    if (n <= this.labels.length) return;
    let cap = this.labels.length * 2;
    while (cap < n) cap *= 2;
    const labels = new Int32Array(cap).fill(-1);
    labels.set(this.labels);
    this.labels = labels;
    const mark = new Uint32Array(cap);
    mark.set(this.mark);
    this.mark = mark;
  }

  /** Start a batch: forget the changes of the last one. */
  beginBatch(): void {
    this.nChanged = 0;
    this.epoch = (this.epoch + 1) >>> 0;
    if (this.epoch === 0) {
      this.mark.fill(0);
      this.epoch = 1;
    }
  }

  /**
   * Fold one partial section into the state (lib/merge.ts's merge, into the long-lived table) and
   * assign each user it touches the nearest cluster, while the user's row is in cache. A user whose
   * cluster changes is noted with its cluster before the batch; {@link StreamState.emitChanges}
   * writes the changes once the batch is folded (a user in two ranges of a batch changes once).
   *
   * Memory: each key costs a slot, a row and a label in tables of millions of users, each a cache
   * miss. Keys are taken in blocks: a first loop only loads each key's first slot, row and label
   * (independent loads, so the misses overlap, as the scan's combiner does), the second does the
   * work on lines that are in cache by then.
   *
   * @param s A section of a scan task whose columns match the state's (same flags).
   * @param assign Assign the touched users (not while loading: the model may come after).
   */
  fold(s: Section, assign = true): void {
    const t = this.table;
    if (s.n === 0) return;
    if (s.flags !== t.flags) {
      throw new SegflowError('ERR_INTERNAL', `a batch with columns ${flagText(s.flags)} cannot fold into a state with ${flagText(t.flags)}`);
    }
    if (s.scale > t.scale) t.rescale(s.scale);
    if (t.qtyOff >= 0 && s.qscale > t.qscale) t.rescaleQty(s.qscale);
    this.reserve(t.size + s.n);
    const fast = assign ? this.fastAssign() : undefined;
    const w = s.width;
    const { hashes, acc: sacc, keyEnds, keyBytes } = s;
    const scale = t.scale;
    const qscale = t.qscale;
    const qtyOff = t.qtyOff;
    const dateOff = t.dateOff;
    const tw = t.width;
    const labels = this.labels;
    let sink = 0;
    for (let b0 = 0; b0 < s.n; b0 += FOLD_BLOCK) {
      const b1 = Math.min(s.n, b0 + FOLD_BLOCK);
      // touch: the first slot of each key, then the row and label it points to
      const slots = t.slots;
      const mask = t.mask;
      for (let i = b0; i < b1; i++) sink += slots[2 * (hashes[i] & mask) + 1];
      const tacc = t.acc;
      for (let i = b0; i < b1; i++) {
        const v = slots[2 * (hashes[i] & mask) + 1];
        if (v !== 0) sink += tacc[(v - 1) * tw] + labels[v - 1];
      }
      for (let i = b0; i < b1; i++) {
        const ks = i === 0 ? 0 : keyEnds[i - 1];
        const o = i * w;
        const id = t.find(hashes[i], sacc[o], keyBytes, ks, keyEnds[i]);
        const acc = t.acc; // re-read: find may have grown it
        const d = id * tw;
        acc[d + COUNT] += sacc[o + COUNT];
        const lo = sacc[o + SUM];
        const hi = sacc[o + SUM + 1];
        if (hi === 0 && s.scale === scale) {
          // the common case, inline: one add, carried only when the low limb passes 2^51
          const v = acc[d + SUM] + lo;
          if (v > LIMB_MAX || v < -LIMB_MAX) addExact(acc, d + SUM, lo);
          else acc[d + SUM] = v;
        } else addLimbs(acc, d + SUM, lo, hi, s.scale, scale);
        if (qtyOff >= 0) addLimbs(acc, d + qtyOff, sacc[o + qtyOff], sacc[o + qtyOff + 1], s.qscale, qscale);
        if (dateOff >= 0) {
          const a = sacc[o + dateOff];
          const b = sacc[o + dateOff + 1];
          if (a < acc[d + dateOff]) acc[d + dateOff] = a;
          if (b > acc[d + dateOff + 1]) acc[d + dateOff + 1] = b;
        }
        if (!assign) continue;
        const to = fast ? fast(id) : this.nearest(id);
        const from = labels[id];
        if (to !== from) {
          this.noteChange(id, from);
          labels[id] = to;
        }
      }
    }
    this.touchSink += sink;
  }

  /** Note the first change of `id` in this batch, with its cluster before the batch. */
  private noteChange(id: number, from: number): void {
    if (this.mark[id] === this.epoch) return;
    this.mark[id] = this.epoch;
    const n = this.nChanged;
    if (n === this.changedIds.length) {
      const ids = new Int32Array(n * 2);
      ids.set(this.changedIds);
      this.changedIds = ids;
      const fr = new Int32Array(n * 2);
      fr.set(this.changedFrom);
      this.changedFrom = fr;
    }
    this.changedIds[n] = id;
    this.changedFrom[n] = from;
    this.nChanged = n + 1;
  }

  /** Fill `row` with the features of user `id`, in original units. */
  features(id: number, row: Float64Array): void {
    const t = this.table;
    const acc = t.acc;
    const o = id * t.width;
    const f = this.model.features;
    for (let j = 0; j < f.length; j++) {
      const name = f[j];
      if (name === 'purchases') row[j] = acc[o + COUNT];
      else if (name === 'total') row[j] = limbsValue(acc[o + SUM], acc[o + SUM + 1], t.scale);
      else row[j] = t.qtyOff >= 0 ? limbsValue(acc[o + t.qtyOff], acc[o + t.qtyOff + 1], t.qscale) : 0;
    }
  }

  /** The nearest cluster of user `id` under the current model (lib/scale.ts's applyScaler, inlined). */
  nearest(id: number): number {
    const m = this.model;
    const row = this.row;
    this.features(id, row);
    const { mean, std } = m.scaler;
    const log = m.scaler.method === 'log-zscore';
    for (let j = 0; j < m.d; j++) {
      const v = row[j];
      row[j] = ((log ? (v < 0 ? -Math.log1p(-v) : Math.log1p(v)) : v) - mean[j]) / std[j];
    }
    return assignNearest(m.centroids, m.k, m.d, row);
  }

  /**
   * Write the changes of this batch: each user whose segment differs from the one before the batch
   * (or who is new).
   *
   * @param at The batch time (ISO).
   * @param lines Receives one JSON line per change (none: only counted).
   * @returns The changes.
   */
  emitChanges(at: string, lines: LineWriter | undefined): number {
    const names = this.model.names;
    const quoted = names.map((n) => jsonBytes(n));
    const atBytes = jsonBytes(at).subarray(1);
    const none = jsonBytes(null);
    let moves = 0;
    for (let i = 0; i < this.nChanged; i++) {
      const id = this.changedIds[i];
      const from = this.changedFrom[i];
      const to = this.labels[id];
      // back where it was, or a move between clusters of the same name: no change for the user
      if (to === from || (from >= 0 && names[from] === names[to])) continue;
      if (lines) this.changeLine(lines, id, from >= 0 ? quoted[from] : none, quoted[to], atBytes);
      moves++;
    }
    return moves;
  }

  /**
   * The nearest cluster for the model `segment` fits (purchases and total, k centroids), inlined:
   * the same operations as lib/scale.ts `applyScaler` and lib/kmeans.ts `assignNearest` (distance
   * summed in feature order, the lower index wins ties), so the same cluster bit for bit, without
   * a feature row and two calls per user: the per-batch cost of a state of millions of users.
   */
  private fastAssign(): ((id: number) => number) | undefined {
    const m = this.model;
    if (m.d !== 2 || m.features[0] !== 'purchases' || m.features[1] !== 'total') return undefined;
    const t = this.table;
    const log = m.scaler.method === 'log-zscore';
    const [m0, m1] = m.scaler.mean;
    const [s0, s1] = m.scaler.std;
    const c = Float64Array.from(m.centroids);
    const k = m.k;
    const pow = POW10[t.scale];
    const w = t.width;
    return (id: number): number => {
      const acc = t.acc;
      const o = id * w;
      const p = acc[o + COUNT];
      const hi = acc[o + SUM + 1];
      const v = hi === 0 ? acc[o + SUM] / pow : limbsToFloat(acc[o + SUM], hi) / pow;
      const x = ((log ? (p < 0 ? -Math.log1p(-p) : Math.log1p(p)) : p) - m0) / s0;
      const y = ((log ? (v < 0 ? -Math.log1p(-v) : Math.log1p(v)) : v) - m1) / s1;
      let a = x - c[0];
      let b = y - c[1];
      let best = a * a + b * b;
      let lab = 0;
      for (let j = 1; j < k; j++) {
        a = x - c[2 * j];
        b = y - c[2 * j + 1];
        const dist = a * a + b * b;
        if (dist < best) {
          best = dist;
          lab = j;
        }
      }
      return lab;
    };
  }

  /**
   * Assign every user under the current model (after loading, or after re-clustering with
   * `previous` as the old model): users whose segment name changed give change lines.
   */
  assignAll(at: string, lines: LineWriter | undefined, previous?: StreamModel): number {
    const n = this.table.size;
    this.reserve(n);
    const oldNames = (previous ?? this.model).names;
    const names = this.model.names;
    const oldQuoted = oldNames.map((x) => jsonBytes(x));
    const quoted = names.map((x) => jsonBytes(x));
    const atBytes = jsonBytes(at).subarray(1);
    const none = jsonBytes(null);
    const fast = this.fastAssign();
    let moves = 0;
    for (let id = 0; id < n; id++) {
      const to = fast ? fast(id) : this.nearest(id);
      const from = this.labels[id];
      this.labels[id] = to;
      if (from >= 0 && oldNames[from] === names[to]) continue;
      if (lines) this.changeLine(lines, id, from >= 0 ? oldQuoted[from] : none, quoted[to], atBytes);
      moves++;
    }
    return moves;
  }

  /** The features of every user, row-major in shared memory (for re-fitting on the pool). */
  featureMatrix(): Float64Array {
    const n = this.table.size;
    const d = this.model.d;
    const points = new Float64Array(new SharedArrayBuffer(Math.max(1, n * d) * 8));
    const row = new Float64Array(d);
    for (let id = 0; id < n; id++) {
      this.features(id, row);
      points.set(row, id * d);
    }
    return points;
  }

  /** The user id text of `id`. */
  key(id: number): string {
    const t = this.table;
    return this.decoder.decode(t.arena.subarray(id === 0 ? 0 : t.keyEnds[id - 1], t.keyEnds[id]));
  }

  /** The exact total of `id` as decimal text. */
  total(id: number): string {
    const t = this.table;
    const o = id * t.width + SUM;
    const lo = t.acc[o];
    const hi = t.acc[o + 1];
    return formatScaled(hi === 0 ? lo : limbsToBig(lo, hi), t.scale);
  }

  /**
   * Write one change as a JSON line: `from` and `to` as JSON bytes, `at` as the bytes of the ISO
   * time followed by its closing quote; `total` is a JSON number with the exact decimal digits.
   */
  changeLine(w: LineWriter, id: number, from: Uint8Array, to: Uint8Array, at: Uint8Array): void {
    const t = this.table;
    const acc = t.acc;
    const o = id * t.width;
    const num = acc[o + NUM];
    if (num >= 0) {
      // a plain integer key: its digits, without touching the arena
      w.raw(PIECES.userOpen);
      w.int(num);
      w.raw(PIECES.userClose);
    } else {
      w.raw(PIECES.userOpen);
      const ks = id === 0 ? 0 : t.keyEnds[id - 1];
      if (w.plainKey(t.arena, ks, t.keyEnds[id])) w.raw(PIECES.userClose);
      else {
        w.len -= PIECES.userOpen.length;
        w.raw(PIECES.userRaw);
        w.text(JSON.stringify(this.key(id)));
      }
    }
    w.raw(PIECES.from);
    w.raw(from);
    w.raw(PIECES.to);
    w.raw(to);
    w.raw(PIECES.purchases);
    w.int(acc[o + COUNT]);
    w.raw(PIECES.total);
    const lo = acc[o + SUM];
    const hi = acc[o + SUM + 1];
    if (hi === 0 && t.scale === 0 && lo >= 0) w.int(lo);
    else w.text(formatScaled(hi === 0 ? lo : limbsToBig(lo, hi), t.scale));
    w.raw(PIECES.at);
    w.raw(at);
    w.raw(PIECES.end);
    w.count++;
  }
}

function flagText(flags: number): string {
  const parts = ['user', 'amount'];
  if (flags & F_QTY) parts.push('quantity');
  if (flags & F_DATE) parts.push('date');
  return parts.join('+');
}
