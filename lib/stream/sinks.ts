/**
 * Where the stream writes: the changes (a file, a writable stream such as stdout, a callback) and
 * the rejects. Files are append-only with a length that each checkpoint saves; a restart cuts them
 * back to it, so the lines of rows read again after a crash are not written twice.
 */
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { ChangeEvent } from './options.js';
import type { LineWriter } from './lines.js';

/** An append-only file whose length is saved with each checkpoint. */
export class AppendFile {
  readonly file: string;
  /** Bytes in the file. */
  bytes: number;
  /**
   * A regular file (not a pipe, a terminal or /dev/null): only such a file can be cut back to a
   * checkpoint or synced. Written to a pipe, what came after the last checkpoint is written again
   * after a restart.
   */
  readonly regular: boolean;
  private fd: number;

  /**
   * @param file The file (created when missing).
   * @param cutTo Cut the file back to this length (the last checkpoint's) when it is longer.
   */
  constructor(file: string, cutTo?: number) {
    this.file = path.resolve(file);
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.fd = fs.openSync(this.file, 'a');
    const st = fs.fstatSync(this.fd);
    this.regular = st.isFile();
    let size = this.regular ? st.size : 0;
    if (this.regular && cutTo !== undefined && size > cutTo) {
      fs.ftruncateSync(this.fd, cutTo);
      size = cutTo;
    }
    this.bytes = size;
  }

  write(text: string | Uint8Array): void {
    if (text.length === 0) return;
    const buf = typeof text === 'string' ? Buffer.from(text) : text;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    this.bytes += buf.length;
  }

  sync(): void {
    if (this.regular) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** The changes output. */
export class ChangeSink {
  private readonly file: AppendFile | undefined;
  private readonly stream: Writable | undefined;
  private readonly onChange: ((e: ChangeEvent) => void) | undefined;
  private failure: Error | undefined;

  /**
   * @param target A file path, a writable stream, or nothing.
   * @param saved The changes file and length of the last checkpoint (cut back to when it is this file).
   */
  constructor(target: string | Writable | undefined, onChange: ((e: ChangeEvent) => void) | undefined, saved?: { file: string; bytes: number }) {
    this.onChange = onChange;
    if (typeof target === 'string') {
      const same = saved && path.resolve(saved.file) === path.resolve(target);
      this.file = new AppendFile(target, same ? saved.bytes : undefined);
    } else if (target) {
      this.stream = target;
      target.on('error', (err: Error) => {
        this.failure ??= err;
      });
    }
  }

  /** Write a batch's change lines (the writer is not reused after). */
  async write(lines: LineWriter): Promise<void> {
    if (this.failure) throw this.failure;
    if (lines.count === 0) return;
    const bytes = lines.bytes();
    this.file?.write(bytes);
    const out = this.stream;
    if (out) {
      // wait until the stream has taken the bytes: the writer's buffer is reused by the next
      // batch, and a slow reader slows the stream down instead of growing memory
      await new Promise<void>((resolve) => {
        const ok = out.write(bytes, () => resolve());
        if (!ok) void Promise.race([once(out, 'drain'), once(out, 'close')]).then(() => resolve());
      });
    }
    if (this.onChange) {
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
      for (const l of text.split('\n')) if (l) this.onChange(JSON.parse(l) as ChangeEvent);
    }
  }

  /** Something reads the changes (a file, a stream or a callback). */
  get wanted(): boolean {
    return this.file !== undefined || this.stream !== undefined || this.onChange !== undefined;
  }

  /** The file and its length, for a checkpoint. */
  record(): { file: string; bytes: number } | undefined {
    return this.file ? { file: this.file.file, bytes: this.file.bytes } : undefined;
  }

  sync(): void {
    this.file?.sync();
  }

  close(): void {
    this.file?.close();
  }
}
