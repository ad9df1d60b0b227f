/**
 * Atomic job output: everything is written under a temp folder beside `--out` and renamed into
 * place at the end, so a job that fails or is killed leaves no file under the final names.
 * Temp folders left by a killed job (their process is gone) are removed by the next job.
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { SegflowError } from './errors.js';

const TMP_TAG = '.segflow-tmp-';

/** A process with this id exists (EPERM: it exists, owned by another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove temp folders of `out` whose job process no longer runs. */
export function removeStaleTemps(out: string): void {
  const dir = path.dirname(path.resolve(out));
  const prefix = `.${path.basename(out)}${TMP_TAG}`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}

/** A job's output folder in the making. */
export class OutputDir {
  readonly out: string;
  readonly tmp: string;
  private readonly force: boolean;
  private done = false;

  private constructor(out: string, tmp: string, force: boolean) {
    this.out = out;
    this.tmp = tmp;
    this.force = force;
  }

  /**
   * Check `out` (it must not hold anything unless `force`), clear stale temps and make the temp
   * folder.
   */
  static create(out: string, force = false): OutputDir {
    if (!out) throw new SegflowError('ERR_USAGE', '--out is required');
    const abs = path.resolve(out);
    OutputDir.check(abs, force);
    const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}${TMP_TAG}${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    try {
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      removeStaleTemps(abs);
      fs.mkdirSync(tmp);
    } catch (err) {
      // a parent that is a file, a read-only or virtual file system: the folder cannot be made there
      throw new SegflowError('ERR_USAGE', `--out ${abs} cannot be created: ${(err as Error).message}`, { out: abs });
    }
    return new OutputDir(abs, tmp, force);
  }

  /** Fail with ERR_OUT_EXISTS when `out` holds files and `force` is not set. */
  static check(abs: string, force: boolean): void {
    if (!fs.existsSync(abs)) return;
    if (!fs.statSync(abs).isDirectory()) throw new SegflowError('ERR_OUT_EXISTS', `--out ${abs} exists and is not a folder`, { out: abs });
    if (!force && fs.readdirSync(abs).length > 0) {
      throw new SegflowError('ERR_OUT_EXISTS', `--out ${abs} already holds files; pass --force to replace them`, { out: abs });
    }
  }

  /** A path inside the temp folder. */
  file(name: string): string {
    return path.join(this.tmp, name);
  }

  /** Move the finished folder into place (replacing an old result when forced). */
  commit(): void {
    if (this.done) return;
    let old: string | undefined;
    if (fs.existsSync(this.out)) {
      OutputDir.check(this.out, this.force);
      old = `${this.tmp}-old`;
      fs.renameSync(this.out, old);
    }
    fs.renameSync(this.tmp, this.out);
    this.done = true;
    if (old) fs.rmSync(old, { recursive: true, force: true });
  }

  /** Remove the temp folder (on failure or abort). */
  discard(): void {
    if (this.done) return;
    this.done = true;
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
