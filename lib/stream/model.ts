/**
 * The segment model a stream assigns users with: the stored scaler, the centroids in the scaled
 * space and the segment names, read from the `model.json` of a `segment` output. The reader is
 * lenient about the shape (a flat or nested centroid list, names as strings or segment objects),
 * so that the stream does not break when the batch side adds fields.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SegflowError } from '../errors.js';
import { fitKMeans } from '../kmeans.js';
import { fitSegments, nameSegments, type KMeansModel } from '../kmeans-job.js';
import { fitScaler, invertScaler, parseScaleMethod, type ScaleMethod, type Scaler } from '../scale.js';
import type { SegflowPool } from '../pool.js';

/** Per-user features a model can use. */
export type Feature = 'purchases' | 'total' | 'quantity';
const FEATURES: readonly Feature[] = ['purchases', 'total', 'quantity'];

/** The model, normalised. */
export interface StreamModel {
  k: number;
  d: number;
  features: Feature[];
  scaler: Scaler;
  /** k x d, row-major, in the scaled space. */
  centroids: number[];
  /** Segment name of each cluster. */
  names: string[];
  /** How to re-fit: the batch job's choices (defaults: seed 42, one restart, 300 iterations, tol 1e-4). */
  fit: { seed: number; nInit: number; maxIter: number; tol: number };
  /** When the model was fitted (ISO), when known. */
  fittedAt?: string;
  /** What model.json held besides, kept for the export. */
  extra: Record<string, unknown>;
}

/** What a `segment` output's model.json says about its input, besides the model. */
export interface ModelInput {
  columns?: { user?: string; amount?: string; quantity?: string; date?: string };
  /** Decimal places of totals. */
  scale?: number;
  shards?: number;
  input?: { format?: 'csv' | 'jsonl'; delimiter?: string };
}

const isNumArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));

function bad(file: string, what: string): never {
  throw new SegflowError('ERR_BAD_INPUT', `${file}: ${what}; expected the model.json of a finished segment output`, { file });
}

/** Centroids in the scaled space, flat, from the shapes a model file may use. */
function readCentroids(raw: Record<string, unknown>, file: string): { flat: number[]; k: number; d: number } {
  let c: unknown = raw.centroids ?? raw.centers ?? raw.clusterCenters;
  if (c && typeof c === 'object' && !Array.isArray(c)) {
    const o = c as Record<string, unknown>;
    c = o.scaled ?? o.values ?? o.data;
  }
  if (!Array.isArray(c) || c.length === 0) bad(file, 'no centroids');
  if (isNumArray(c)) {
    const k = Number(raw.k);
    if (!Number.isInteger(k) || k < 1 || c.length % k !== 0) bad(file, 'flat centroids without a matching k');
    return { flat: c, k, d: c.length / k };
  }
  const rows = c as unknown[];
  if (!rows.every(isNumArray)) bad(file, 'centroids are not rows of numbers');
  const d = (rows[0] as number[]).length;
  if (d === 0 || !rows.every((r) => (r as number[]).length === d)) bad(file, 'centroid rows of different lengths');
  return { flat: (rows as number[][]).flat(), k: rows.length, d };
}

function readScaler(raw: Record<string, unknown>, d: number, file: string): Scaler {
  const s = (raw.scaler ?? raw.scaling ?? (typeof raw.scale === 'object' ? raw.scale : undefined)) as Record<string, unknown> | undefined;
  if (!s || typeof s !== 'object') bad(file, 'no scaler');
  const method = parseScaleMethod(s.method ?? s.kind ?? 'log-zscore') as ScaleMethod;
  const mean = s.mean ?? (method === 'none' ? new Array(d).fill(0) : undefined);
  const std = s.std ?? s.scale ?? (method === 'none' ? new Array(d).fill(1) : undefined);
  if (!isNumArray(mean) || !isNumArray(std) || mean.length !== d || std.length !== d) bad(file, `a scaler without ${d} means and standard deviations`);
  return { method, mean: [...mean], std: std.map((x) => (x > 0 ? x : 1)) };
}

function readNames(raw: Record<string, unknown>, k: number): string[] | undefined {
  const n = raw.names ?? raw.labels ?? raw.segmentNames;
  if (Array.isArray(n) && n.length === k && n.every((x) => typeof x === 'string')) return [...(n as string[])];
  const segs = raw.segments;
  if (Array.isArray(segs) && segs.length === k) {
    // objects with a name, possibly with the cluster index
    const out = new Array<string>(k);
    segs.forEach((s, i) => {
      const o = s as Record<string, unknown>;
      const at = typeof o.cluster === 'number' ? o.cluster : typeof o.index === 'number' ? o.index : i;
      if (typeof o.name === 'string' && at >= 0 && at < k) out[at] = o.name;
    });
    if (out.every((x) => typeof x === 'string')) return out;
  }
  return undefined;
}

/**
 * Read and normalise a model.json.
 *
 * @param file The model file.
 * @returns The model and what it says about the input.
 * @throws SegflowError ERR_BAD_INPUT when it holds no usable model.
 */
export function readModel(file: string): { model: StreamModel; input: ModelInput } {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new SegflowError('ERR_BAD_INPUT', `${file}: not readable JSON (${(err as Error).message})`, { file });
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad(file, 'not a JSON object');
  // a model nested under "model" or "kmeans"
  const m = (typeof raw.model === 'object' && raw.model && !Array.isArray(raw.model) ? raw.model : typeof raw.kmeans === 'object' && raw.kmeans ? raw.kmeans : raw) as Record<string, unknown>;
  const { flat, k, d } = readCentroids(m, file);
  const scaler = readScaler(m, d, file);
  let features: Feature[] = ['purchases', 'total'];
  const f = m.features ?? raw.features;
  if (Array.isArray(f)) {
    const named = f.map((x) => String(x).toLowerCase());
    if (named.length !== d || !named.every((x) => (FEATURES as readonly string[]).includes(x))) {
      bad(file, `features ${JSON.stringify(f)}: the stream knows ${FEATURES.join(', ')}, ${d} of them`);
    }
    features = named as Feature[];
  } else if (d !== 2) bad(file, `${d} features without their names`);
  const num = (v: unknown, dflt: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : dflt);
  const names = readNames(m, k) ?? readNames(raw, k) ?? spendNames(flat, k, d, scaler, features);
  const model: StreamModel = {
    k,
    d,
    features,
    scaler,
    centroids: flat,
    names,
    fit: { seed: num(m.seed ?? raw.seed, 42), nInit: num(m.nInit ?? raw.nInit, 1), maxIter: num(m.maxIter ?? raw.maxIter, 300), tol: num(m.tol ?? raw.tol, 1e-4) },
    fittedAt: typeof raw.fittedAt === 'string' ? raw.fittedAt : undefined,
    extra: raw,
  };
  const input: ModelInput = {};
  if (raw.columns && typeof raw.columns === 'object') input.columns = raw.columns as ModelInput['columns'];
  if (typeof raw.totalScale === 'number') input.scale = raw.totalScale;
  else if (typeof raw.scale === 'number') input.scale = raw.scale;
  if (typeof raw.shards === 'number') input.shards = raw.shards;
  if (raw.input && typeof raw.input === 'object') input.input = raw.input as ModelInput['input'];
  return { model, input };
}

/**
 * Segment names by centroid spend, as the batch job names them (lib/kmeans-job.ts
 * `nameSegments`: k = 3 gives High, Medium, Low).
 *
 * @param centroids k x d scaled centroids.
 * @returns The name of each cluster.
 */
export function spendNames(centroids: ArrayLike<number>, k: number, d: number, scaler: Scaler, features: Feature[]): string[] {
  const original = invertScaler(scaler, Array.from(centroids));
  const at = features.indexOf('total');
  return nameSegments(original, k, at >= 0 ? at : 0);
}

/** Centroids in original units, one object per cluster (for summaries). */
export function centroidsOriginal(model: StreamModel): Record<string, number>[] {
  const o = invertScaler(model.scaler, model.centroids);
  return Array.from({ length: model.k }, (_, j) => Object.fromEntries(model.features.map((f, t) => [f, o[j * model.d + t]])));
}

/** A lib/kmeans-job.ts model as the stream holds it. */
function fromKMeansModel(m: KMeansModel, old: StreamModel): StreamModel {
  const { kind, format, features, k, scaler, centroids, centroidsOriginal, names, seed, nInit, maxIter, tol, ...fit } = m;
  return {
    ...old,
    scaler,
    centroids: centroids.flat(),
    names: names ?? spendNames(centroids.flat(), k, old.d, scaler, old.features),
    fittedAt: new Date().toISOString(),
    extra: { ...old.extra, kind, format, centroidsOriginal, ...fit },
  };
}

/**
 * Fit a new model on the features of every user (the whole state), on the pool: for purchases and
 * total, the batch job's own step (lib/kmeans-job.ts `fitSegments`: scaler, k-means, names by
 * spend), so a re-fit of an unchanged state gives the model `segment` gave.
 *
 * @param points n x d features in original units, row-major (scaled in place for other features).
 * @returns The new model.
 */
export async function refitModel(old: StreamModel, points: Float64Array, n: number, pool: SegflowPool, signal?: AbortSignal): Promise<StreamModel> {
  const { k, d, features } = old;
  const fitOptions = { k, seed: old.fit.seed, nInit: old.fit.nInit, maxIter: old.fit.maxIter, tol: old.fit.tol, pool, signal };
  if (d === 2 && features[0] === 'purchases' && features[1] === 'total') {
    const purchases = new Float64Array(n);
    const totals = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      purchases[i] = points[2 * i];
      totals[i] = points[2 * i + 1];
    }
    const { model } = await fitSegments(purchases, totals, { ...fitOptions, scale: old.scaler.method });
    return fromKMeansModel(model, old);
  }
  const scaler = fitScaler(points, n, d, old.scaler.method);
  const log = scaler.method === 'log-zscore';
  for (let i = 0; i < n * d; i += d) {
    for (let j = 0; j < d; j++) {
      const v = points[i + j];
      points[i + j] = ((log ? (v < 0 ? -Math.log1p(-v) : Math.log1p(v)) : v) - scaler.mean[j]) / scaler.std[j];
    }
  }
  const fit = await fitKMeans(points, n, d, fitOptions);
  const centroids = Array.from(fit.centroids);
  return {
    ...old,
    scaler,
    centroids,
    names: spendNames(centroids, k, d, scaler, features),
    fittedAt: new Date().toISOString(),
    extra: { ...old.extra, inertia: fit.inertia, iterations: fit.iterations, sizes: fit.sizes, converged: fit.converged },
  };
}

/**
 * The model.json text the export writes, in the shape `segment` writes (lib/segment.ts
 * `SegmentModel`): what was read, with the current model over it.
 */
export function modelJson(model: StreamModel, input: ModelInput): string {
  const rows = Array.from({ length: model.k }, (_, j) => model.centroids.slice(j * model.d, (j + 1) * model.d));
  const original = invertScaler(model.scaler, model.centroids);
  // a nested model, or other spellings of the fields written here, would shadow them for readers
  const extra = { ...model.extra };
  for (const key of ['model', 'kmeans', 'centers', 'clusterCenters', 'scaling', 'segmentNames', 'scale']) delete extra[key];
  const out = {
    kind: 'segflow-kmeans',
    format: 1,
    ...extra,
    features: model.features,
    k: model.k,
    scaler: model.scaler,
    centroids: rows,
    centroidsOriginal: Array.from({ length: model.k }, (_, j) => Array.from(original.subarray(j * model.d, (j + 1) * model.d))),
    seed: model.fit.seed,
    nInit: model.fit.nInit,
    maxIter: model.fit.maxIter,
    tol: model.fit.tol,
    names: model.names,
    ...(model.fittedAt ? { fittedAt: model.fittedAt } : {}),
    ...(input.columns ? { columns: input.columns } : {}),
    ...(input.scale !== undefined ? { totalScale: input.scale } : {}),
    ...(input.shards !== undefined ? { shards: input.shards } : {}),
    ...(input.input ? { input: input.input } : {}),
  };
  return JSON.stringify(out, null, 2) + '\n';
}

/** The model file of a folder. */
export function modelFile(dir: string): string {
  return path.join(dir, 'model.json');
}
