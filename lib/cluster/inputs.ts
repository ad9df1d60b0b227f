/**
 * Inputs of a cluster run: files on a path every machine shares, or objects on S3 (`s3://bucket/key`
 * for one object, `s3://bucket/prefix/` for the data files under a prefix). The driver reads each
 * header once (a ranged GET of the first MiB for an object); a worker reads its byte range of an
 * object with ranged GETs into a local file and scans that file with the same scan task as a local
 * run, so the Beam range rule is the same code on both paths.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SegflowError } from '../errors.js';
import { DATA_FILE, resolveInputs } from '../inputs.js';
import { readSchema, type ColumnOptions, type FileSchema } from '../schema.js';
import type { ScanOutput, ScanTask } from '../scan.js';
import { S3Store, parseS3Url } from './store.js';

/** One input of a cluster run. */
export interface ClusterInput {
  /** The name as the user gave it (what summary.json and rejects.jsonl say, as in a local run). */
  name: string;
  /** Where workers read it: an absolute path or an s3:// URL. */
  source: string;
  /** Object size, for s3:// inputs. */
  size?: number;
}

const buckets = new Map<string, S3Store>();

/** The store of an input's bucket. */
export function bucketStore(bucket: string): S3Store {
  let s = buckets.get(bucket);
  if (!s) buckets.set(bucket, (s = new S3Store(`s3://${bucket}`)));
  return s;
}

/** Resolve inputs: s3:// objects and prefixes, and local files, folders and globs (in order). */
export async function resolveClusterInputs(input: string | string[]): Promise<ClusterInput[]> {
  const items = (Array.isArray(input) ? input : [input]).filter((s) => s !== '');
  if (items.length === 0) throw new SegflowError('ERR_USAGE', 'no input given');
  const out: ClusterInput[] = [];
  for (const item of items) {
    if (!item.startsWith('s3://')) {
      for (const f of resolveInputs(item)) out.push({ name: f, source: path.resolve(f) });
      continue;
    }
    const { bucket, key } = parseS3Url(item);
    const store = bucketStore(bucket);
    const size = key && !key.endsWith('/') ? await store.size(key) : undefined;
    if (size !== undefined) {
      out.push({ name: item, source: `s3://${bucket}/${key}`, size });
      continue;
    }
    const prefix = key && !key.endsWith('/') ? key + '/' : key;
    const found = (await store.list(prefix)).filter((e) => DATA_FILE.test(e.key) && !e.key.slice(prefix.length).includes('/'));
    if (found.length === 0) throw new SegflowError('ERR_INPUT_NOT_FOUND', `input not found: ${item} (no object, and no data files under the prefix)`, { input: item });
    for (const e of found) out.push({ name: `s3://${bucket}/${e.key}`, source: `s3://${bucket}/${e.key}`, size: e.size });
  }
  const seen = new Set<string>();
  return out.filter((f) => (seen.has(f.source) ? false : (seen.add(f.source), true)));
}

/** Bytes of an object's head that readSchema may look at (it reads up to 1 MiB of a gzip file). */
const HEAD = 1 << 20;

/**
 * Read an input's header and resolve its columns. The schema's `file` is the input's name, as in a
 * local run; its offsets are those of the input.
 */
export async function readClusterSchema(input: ClusterInput, options: ColumnOptions): Promise<FileSchema> {
  if (!input.source.startsWith('s3://')) return { ...readSchema(input.source, options), file: input.name };
  const { bucket, key } = parseS3Url(input.source);
  const size = input.size ?? (await bucketStore(bucket).size(key));
  if (size === undefined) throw new SegflowError('ERR_INPUT_NOT_FOUND', `input not found: ${input.name}`, { input: input.name });
  // the head in a local file under the object's base name (the format comes from the name)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-head-'));
  const local = path.join(dir, path.posix.basename(key) || 'input');
  try {
    fs.writeFileSync(local, await bucketStore(bucket).getRange(key, 0, Math.min(size, HEAD)));
    const schema = readSchema(local, options);
    return { ...schema, file: input.name, size };
  } catch (err) {
    if (err instanceof SegflowError) {
      const message = err.message.split(local).join(input.name);
      throw new SegflowError(err.code, message, { ...err.details, ...(err.details.file ? { file: input.name } : {}) });
    }
    throw err;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Bytes read past a range's end at first, to finish its last record. */
const OVERFLOW = 64 << 10;

/**
 * Scan a byte range of an s3:// object: fetch [start - 1, end + a little) with a ranged GET into a
 * local file, scan it with `scan` (the pool's scan task) at the shifted offsets, and when the range's
 * last record runs past the bytes fetched, fetch more and scan again (bounded: the object's end).
 * A gzip object is one range: it is fetched whole. Offsets in the output are the object's.
 */
export async function scanObjectRange(
  task: ScanTask,
  size: number,
  tmpDir: string,
  scan: (task: ScanTask) => Promise<ScanOutput>,
): Promise<ScanOutput> {
  const { bucket, key } = parseS3Url(task.file);
  const store = bucketStore(bucket);
  fs.mkdirSync(tmpDir, { recursive: true });
  const local = path.join(tmpDir, `range-${process.pid}-${Math.random().toString(36).slice(2)}-${path.posix.basename(key)}`);
  try {
    if (task.compressed) {
      await store.download(key, local);
      return await scan({ ...task, file: local });
    }
    // a range that does not start at a record reads from start - 1 to find its first newline
    const from = task.atRecordStart ? task.start : task.start - 1;
    let to = Math.min(size, task.end + OVERFLOW);
    fs.writeFileSync(local, await store.getRange(key, from, to));
    for (let round = 0; round < 64; round++) {
      const out = await scan({ ...task, file: local, start: task.start - from, end: task.end - from });
      // the scan ended at a record that starts at or past `end`, before the bytes ran out (or at
      // the object's end): what it read is what a scan of the whole object reads
      if (out.endOffset < to - from || to >= size) {
        out.firstRecord += from;
        out.endOffset += from;
        for (const r of out.rejects) r.offset += from;
        return out;
      }
      const more = Math.min(size, to + Math.max(OVERFLOW, to - from));
      fs.appendFileSync(local, await store.getRange(key, to, more));
      to = more;
    }
    throw new SegflowError('ERR_INTERNAL', `${task.file}: the record at the end of bytes ${task.start}-${task.end} did not end`);
  } finally {
    fs.rmSync(local, { force: true });
  }
}
