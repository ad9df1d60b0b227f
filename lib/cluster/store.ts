/**
 * The object store of a cluster run: partials, shards and the commit manifest live here, and inputs
 * may too. Two backends behind one small interface:
 *   file:///path          a folder, local or on a shared filesystem (NFS, SMB, a FUSE mount)
 *   s3://bucket[/prefix]  S3 or an S3-compatible store (MinIO, Ceph RGW), with @aws-sdk/client-s3
 * Keys are '/'-separated paths under the store's root. Writes are atomic (a reader sees the whole
 * object or none): S3 PUTs are, and the folder backend writes a temp file and renames it.
 *
 * S3 settings come from the environment: the endpoint from SEGFLOW_S3_ENDPOINT, AWS_ENDPOINT_URL_S3
 * or AWS_ENDPOINT_URL (path-style addressing when one is set, as MinIO and Ceph expect), the
 * region from AWS_REGION or AWS_DEFAULT_REGION (default us-east-1), credentials from the SDK's
 * usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role).
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { SegflowError } from '../errors.js';

/** One object in a listing. */
export interface StoreEntry {
  key: string;
  size: number;
}

/** What segflow needs from an object store. */
export interface Store {
  /** The URL the store was opened with (normalised). */
  readonly url: string;
  /** Write an object atomically. */
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Upload a local file as an object. */
  putFile(key: string, file: string): Promise<void>;
  /** The whole object, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Bytes [start, end) of an object (fewer at its end). */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  /** Copy an object to a local file. */
  download(key: string, file: string): Promise<void>;
  /** The size of an object, or undefined when there is none. */
  size(key: string): Promise<number | undefined>;
  /** Every object whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<StoreEntry[]>;
  /** Delete objects (missing ones are ignored). */
  delete(keys: string[]): Promise<void>;
  close(): void;
}

/** Join key parts with '/', dropping empty parts and duplicate slashes. */
export function joinKey(...parts: string[]): string {
  return parts
    .join('/')
    .split('/')
    .filter((p) => p !== '')
    .join('/');
}

function storeError(url: string, what: string, err: unknown): SegflowError {
  if (err instanceof SegflowError) return err;
  const e = err as { name?: string; message?: string; code?: string };
  return new SegflowError('ERR_INTERNAL', `store ${url}: ${what}: ${e?.name && e.name !== 'Error' ? e.name + ': ' : ''}${e?.message ?? String(err)}`, {
    store: url,
    ...(e?.code ? { sysCode: e.code } : {}),
  });
}

/** A store in a folder: `file:///path`. */
export class FileStore implements Store {
  readonly url: string;
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.url = pathToFileURL(this.root).href;
  }

  private path(key: string): string {
    const p = path.join(this.root, ...key.split('/'));
    if (p !== this.root && !p.startsWith(this.root + path.sep)) throw new SegflowError('ERR_INTERNAL', `store key outside the store: ${key}`);
    return p;
  }

  private tempFor(p: string): string {
    return `${p}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const p = this.path(key);
    const tmp = this.tempFor(p);
    try {
      await fs.promises.mkdir(path.dirname(p), { recursive: true });
      await fs.promises.writeFile(tmp, body);
      await fs.promises.rename(tmp, p);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw storeError(this.url, `write ${key}`, err);
    }
  }

  async putFile(key: string, file: string): Promise<void> {
    const p = this.path(key);
    const tmp = this.tempFor(p);
    try {
      await fs.promises.mkdir(path.dirname(p), { recursive: true });
      await fs.promises.copyFile(file, tmp);
      await fs.promises.rename(tmp, p);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw storeError(this.url, `write ${key}`, err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await fs.promises.readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storeError(this.url, `read ${key}`, err);
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer> {
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(this.path(key), 'r');
      const buf = Buffer.allocUnsafe(Math.max(0, end - start));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } catch (err) {
      throw storeError(this.url, `read ${key} bytes ${start}-${end}`, err);
    } finally {
      await fh?.close();
    }
  }

  async download(key: string, file: string): Promise<void> {
    try {
      await fs.promises.copyFile(this.path(key), file);
    } catch (err) {
      throw storeError(this.url, `read ${key}`, err);
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const st = await fs.promises.stat(this.path(key));
      return st.isFile() ? st.size : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storeError(this.url, `stat ${key}`, err);
    }
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    // walk from the deepest folder the prefix names
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    const out: StoreEntry[] = [];
    const walk = async (dir: string, keyDir: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw storeError(this.url, `list ${prefix}`, err);
      }
      for (const e of entries) {
        if (e.name.includes('.tmp-')) continue; // a write in progress
        const key = keyDir ? `${keyDir}/${e.name}` : e.name;
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(key + '/')) await walk(p, key);
        } else if (key.startsWith(prefix)) {
          const st = await fs.promises.stat(p).catch(() => undefined);
          if (st?.isFile()) out.push({ key, size: st.size });
        }
      }
    };
    await walk(dirKey ? this.path(dirKey) : this.root, dirKey);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) {
      try {
        await fs.promises.rm(this.path(key), { force: true });
      } catch (err) {
        throw storeError(this.url, `delete ${key}`, err);
      }
    }
  }

  close(): void {}
}

/** Where an s3:// URL points. */
export interface S3Location {
  bucket: string;
  key: string;
}

/** Parse `s3://bucket/key` (the key may be empty). */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new SegflowError('ERR_USAGE', `not an s3:// URL: ${url} (expected s3://bucket/key)`);
  return { bucket: m[1], key: m[2] };
}

type S3Module = typeof import('@aws-sdk/client-s3');
let s3module: Promise<S3Module> | undefined;
const clients = new Map<string, S3Client>();

/** The S3 client for this process (one per endpoint; the SDK is loaded on first use). */
async function s3client(): Promise<{ s3: S3Module; client: S3Client }> {
  // segflow pins the SDK's last line for Node 20 on purpose (see the README, "Scale-out")
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  s3module ??= import('@aws-sdk/client-s3');
  const s3 = await s3module;
  const endpoint = process.env.SEGFLOW_S3_ENDPOINT || process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  const id = endpoint ?? '';
  let client = clients.get(id);
  if (!client) {
    client = new s3.S3Client({
      endpoint,
      region: process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
      // MinIO, Ceph RGW and s3rver serve buckets as paths, not as host names
      forcePathStyle: endpoint !== undefined || process.env.SEGFLOW_S3_FORCE_PATH_STYLE === '1',
      // checksums only where S3 requires them: the SDK's default sends streamed bodies as
      // aws-chunked with a trailing checksum, which S3-compatible stores do not all understand
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 5,
    });
    clients.set(id, client);
  }
  return { s3, client };
}

function notFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

async function bodyBytes(body: unknown): Promise<Buffer> {
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> } | undefined;
  if (!b?.transformToByteArray) return Buffer.alloc(0);
  const bytes = await b.transformToByteArray();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A store in a bucket: `s3://bucket/prefix`. */
export class S3Store implements Store {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;

  constructor(url: string) {
    const { bucket, key } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = joinKey(key);
    this.url = `s3://${bucket}${this.prefix ? '/' + this.prefix : ''}`;
  }

  private k(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const { s3, client } = await s3client();
    try {
      await client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.k(key), Body: typeof body === 'string' ? Buffer.from(body) : body }));
    } catch (err) {
      throw storeError(this.url, `write ${key}`, err);
    }
  }

  async putFile(key: string, file: string): Promise<void> {
    const { s3, client } = await s3client();
    try {
      const size = (await fs.promises.stat(file)).size;
      // a single PUT takes up to 5 GiB: a shard or a partial of one range is far below that
      await client.send(new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.k(key), Body: fs.createReadStream(file), ContentLength: size }));
    } catch (err) {
      throw storeError(this.url, `write ${key}`, err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    const { s3, client } = await s3client();
    try {
      const r = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
      return await bodyBytes(r.Body);
    } catch (err) {
      if (notFound(err)) return undefined;
      throw storeError(this.url, `read ${key}`, err);
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer> {
    if (end <= start) return Buffer.alloc(0);
    const { s3, client } = await s3client();
    try {
      const r = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.k(key), Range: `bytes=${start}-${end - 1}` }));
      const buf = await bodyBytes(r.Body);
      // a server that ignores Range sends the whole object
      return r.ContentRange ? buf : buf.subarray(start, end);
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e?.name === 'InvalidRange' || e?.$metadata?.httpStatusCode === 416) return Buffer.alloc(0);
      throw storeError(this.url, `read ${key} bytes ${start}-${end}`, err);
    }
  }

  async download(key: string, file: string): Promise<void> {
    const { s3, client } = await s3client();
    try {
      const r = await client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
      await pipeline(r.Body as Readable, fs.createWriteStream(file));
    } catch (err) {
      throw storeError(this.url, `read ${key}`, err);
    }
  }

  async size(key: string): Promise<number | undefined> {
    const { s3, client } = await s3client();
    try {
      const r = await client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: this.k(key) }));
      return r.ContentLength ?? 0;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw storeError(this.url, `stat ${key}`, err);
    }
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    const { s3, client } = await s3client();
    const out: StoreEntry[] = [];
    const full = this.k(prefix);
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    let token: string | undefined;
    try {
      // bounded: S3 pages hold up to 1000 keys; a run holds a few objects per task
      for (let page = 0; page < 100_000; page++) {
        const r = await client.send(new s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token }));
        for (const o of r.Contents ?? []) if (o.Key) out.push({ key: o.Key.slice(strip), size: o.Size ?? 0 });
        if (!r.IsTruncated || !r.NextContinuationToken) break;
        token = r.NextContinuationToken;
      }
    } catch (err) {
      throw storeError(this.url, `list ${prefix}`, err);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    const { s3, client } = await s3client();
    try {
      // DeleteObjects takes up to 1000 keys; one DELETE each works on every S3 stand-in too
      await forEachLimit(keys, 16, (key) => client.send(new s3.DeleteObjectCommand({ Bucket: this.bucket, Key: this.k(key) })).then(() => undefined));
    } catch (err) {
      throw storeError(this.url, `delete`, err);
    }
  }

  close(): void {}
}

/** Open a store from its URL: `file:///path`, `s3://bucket/prefix` (a plain path means a folder). */
export function openStore(url: string): Store {
  if (!url) throw new SegflowError('ERR_USAGE', '--store is required with --cluster (s3://bucket/prefix or file:///path)');
  if (url.startsWith('s3://')) return new S3Store(url);
  if (url.startsWith('file://')) {
    let p: string;
    try {
      p = fileURLToPath(url);
    } catch {
      throw new SegflowError('ERR_USAGE', `--store ${url}: not a file URL (expected file:///absolute/path)`);
    }
    return new FileStore(p);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new SegflowError('ERR_USAGE', `--store ${url}: unsupported scheme (s3:// or file://)`);
  return new FileStore(url);
}

/** Run `fn` over items with at most `limit` running at once; the first failure rejects. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed !== undefined) throw failed;
}
