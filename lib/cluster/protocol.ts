/**
 * What the driver and the workers agree on: queue names, job ids, job data and return values,
 * store keys and Redis keys. Everything a task needs travels in its job data or in the store, so a
 * task is a pure function of its inputs on any machine.
 *
 * Store layout of a run (keys under the store's root):
 *   runs/RUN/plan.json                     the plan (inputs, columns, ranges); checked on resume
 *   runs/RUN/scan/TASK/ATTEMPT.part        one partial object per scan attempt
 *   runs/RUN/scans.json                    the committed scan attempts, which the merges read
 *   runs/RUN/merge/P/ATTEMPT.csv           one shard per merge attempt
 *   runs/RUN/_SUCCESS                      the manifest: one committed attempt per task, written last
 * ATTEMPT is derived from the BullMQ lock token of the attempt, which is unique per attempt (a
 * stalled job that is taken again gets a new token, while its attempt counter stays the same).
 */
import crypto from 'node:crypto';
import type { MergeOutput } from '../merge.js';
import type { ScanTask } from '../scan.js';
import type { SectionRef, ScanMeta } from './partial-object.js';

/** The default work queue. */
export const DEFAULT_QUEUE = 'segflow';
/** Attempts per task before the job fails (Dataflow's rule, as the local pool). */
export const ATTEMPTS = 4;
/** Stalls (lost locks: a dead or frozen worker) per task before it fails. */
export const MAX_STALLS = 3;

/** The queue the flows' parent jobs wait in. No worker takes jobs from it. */
export function runsQueue(queue: string): string {
  return `${queue}-runs`;
}

/** A run id: letters, digits, '.', '_' and '-', up to 64 (it is part of job ids and keys). */
export const RUN_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Job ids (BullMQ forbids ':' in custom ids). */
export const jobIds = {
  parent: (runId: string, stage: Stage): string => `${runId}.${stage}`,
  task: (runId: string, stage: Stage, index: number): string => `${runId}.${stage}.${index}`,
};

/** A stage of a run: scans, scans of whole files again (quoted newlines), merges. */
export type Stage = 'scan' | 'rescan' | 'merge';

/** Store keys. */
export const keys = {
  run: (runId: string): string => `runs/${runId}/`,
  plan: (runId: string): string => `runs/${runId}/plan.json`,
  scans: (runId: string): string => `runs/${runId}/scans.json`,
  manifest: (runId: string): string => `runs/${runId}/_SUCCESS`,
  scanAttempt: (runId: string, task: string, attempt: string): string => `runs/${runId}/scan/${task}/${attempt}.part`,
  mergeAttempt: (runId: string, partition: number, attempt: string): string => `runs/${runId}/merge/${partition}/${attempt}.csv`,
};

/** Redis keys outside BullMQ's: live workers, and per-run counters. */
export const redisKeys = {
  worker: (queue: string, id: string): string => `segflow:${queue}:worker:${id}`,
  workers: (queue: string): string => `segflow:${queue}:worker:*`,
  run: (runId: string): string => `segflow:run:${runId}`,
  late: (runId: string): string => `segflow:run:${runId}:late`,
};

/** A new run id: the time, then random. */
export function newRunId(): string {
  return `r${new Date().toISOString().replace(/[-:TZ.]/g, '').slice(0, 14)}-${crypto.randomBytes(3).toString('hex')}`;
}

/** The SHA-1 of some bytes, in hex. */
export function sha1(bytes: Uint8Array | string): string {
  return crypto.createHash('sha1').update(bytes).digest('hex');
}

/** An attempt id from a lock token, safe in a key on every store. */
export function attemptId(token: string): string {
  return token.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/** A scan job: one byte range. `task.file` is an absolute path on a shared filesystem or an s3:// URL. */
export interface ScanJobData {
  runId: string;
  store: string;
  /** The task's name in store keys, e.g. `scan.12`. */
  name: string;
  /** Words for errors: `FILE:START-END`. */
  label: string;
  task: ScanTask & { taskIndex: number };
  /** The object's size, for s3:// inputs. */
  inputSize?: number;
}

/** What a scan job returns: its attempt, where the partial object is, and the range's numbers. */
export interface ScanJobResult extends ScanMeta {
  attempt: string;
  token: string;
  key: string;
  size: number;
  sections: SectionRef[];
  indexOffset: number;
  indexLength: number;
  worker: string;
}

/** A merge job: one partition, over the committed scans listed in `runs/RUN/scans.json`. */
export interface MergeJobData {
  runId: string;
  store: string;
  partition: number;
  partitions: number;
  flags: number;
  scale: number;
  qscale: number;
  dateHasTime: boolean;
  label: string;
  /** SHA-1 of `scans.json` as the driver wrote it (workers cache it by this). */
  scansDigest: string;
}

/** What a merge job returns: the merge task's output (less its pass count) and who wrote it. */
export interface MergeJobResult extends Omit<MergeOutput, 'subPartitions'> {
  attempt: string;
  token: string;
  key: string;
  worker: string;
}

/** One committed scan in `scans.json` and in the manifest. */
export interface ScanCommit {
  task: string;
  file: string;
  start: number;
  end: number;
  attempt: string;
  key: string;
  sections: SectionRef[];
}

/** The `scans.json` object: what every merge reads. */
export interface ScanCommits {
  runId: string;
  partitions: number;
  scans: ScanCommit[];
}

/** A failure as a job's failedReason: `[CODE] message`, so the driver can rebuild the error. */
export function encodeFailure(code: string, message: string): string {
  return `[${code}] ${message}`;
}

/** The code and message of a failedReason written by {@link encodeFailure}. */
export function decodeFailure(reason: string | undefined): { code: string; message: string } {
  const m = /^\[(ERR_[A-Z_]+)\] ([\s\S]*)$/.exec(reason ?? '');
  return m ? { code: m[1], message: m[2] } : { code: 'ERR_INTERNAL', message: reason ?? 'unknown error' };
}
