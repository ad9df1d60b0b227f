/**
 * Progress and messages on stderr, for the CLI.
 *
 * - On a TTY: one live line, redrawn about ten times a second by cli-progress (which owns the
 *   cursor, line wrapping and redraw throttling): the stage, a bar, bytes read of the total, MB/s,
 *   records, rejects and an ETA. Messages from {@link Reporter.log} print above the line. When the
 *   job ends the line is replaced by a one-line summary.
 * - Elsewhere (a pipe, a CI log): a plain line when each stage starts, a heartbeat line at most
 *   every `heartbeatMs` within a long stage, and a final line. No escape codes.
 * - `quiet`: nothing at all.
 * - Colour only on a TTY and only when `NO_COLOR` is unset or empty (https://no-color.org).
 *
 * Rates and sizes are decimal (1 MB = 10^6 bytes), as `mbPerSec` in summary.json.
 */
import { createRequire } from 'node:module';
import type cliProgressTypes from 'cli-progress';
import type { ProgressEvent, Stage } from './types.js';

/** What the CLI gives a job as `onProgress`, and how it prints messages. */
export interface Reporter {
  /** Take one progress event (pass as a job's `onProgress`). */
  progress: (e: ProgressEvent) => void;
  /** Print a message line on stderr (above the live line on a TTY). */
  log: (msg: string) => void;
  /** End the display with a summary line; idempotent. `failed` words it as a stopped job. */
  done: (o?: { failed?: boolean }) => void;
}

/** A writable stream as the reporter uses it (process.stderr, or a fake in tests). */
export interface ReporterStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/** Options of {@link createReporter}. */
export interface ReporterOptions {
  /** Print nothing (the CLI's `--quiet`). */
  quiet?: boolean;
  /** Where to write (default: process.stderr). */
  stream?: ReporterStream;
  /** Draw the live line (default: `stream.isTTY`). */
  tty?: boolean;
  /** ANSI colour (default: on a TTY when NO_COLOR is unset or empty). */
  color?: boolean;
  /** Without a TTY, repeat the progress line at most this often within one stage (default 10 s). */
  heartbeatMs?: number;
}

/** Everything a progress line shows, derived from one event and the stage's start time. */
export interface ProgressView {
  stage: Stage | 'done' | 'stopped';
  elapsedMs: number;
  bytes: number;
  totalBytes: number;
  records: number;
  rejects: number;
  done: number;
  total: number;
  /** Fraction of the current stage done, 0..1. */
  fraction: number;
  /** Input MB per second over the job so far (0 before any byte is read). */
  mbPerSec: number;
  /** Milliseconds left in this stage, or undefined when there is nothing to estimate from. */
  etaMs: number | undefined;
}

/** The order of the stages, for the fraction of a stage and for tests. */
export const STAGE_ORDER: readonly Stage[] = ['plan', 'scan', 'merge', 'cluster', 'report', 'stream'];

/**
 * The view of event `e`, `stageStartMs` being the job time at which its stage began and `nowMs`
 * the job time now (later than `e.elapsedMs` when the TTY line redraws between events).
 */
export function viewOf(e: ProgressEvent, stageStartMs: number, nowMs = e.elapsedMs): ProgressView {
  const inStage = Math.max(0, nowMs - stageStartMs);
  let fraction: number;
  let etaMs: number | undefined;
  if (e.stage === 'scan') {
    // scan progress is bytes; the rate is over the scan alone so planning time does not skew the ETA
    fraction = e.totalBytes > 0 ? e.bytes / e.totalBytes : e.total > 0 ? e.done / e.total : 0;
    const rate = inStage > 0 ? e.bytes / inStage : 0;
    etaMs = rate > 0 ? (e.totalBytes - e.bytes) / rate : undefined;
  } else {
    fraction = e.total > 0 ? e.done / e.total : 0;
    // k-means stops when it converges, long before its iteration cap: no ETA for `cluster`
    const estimable = e.stage !== 'cluster' && e.done > 0 && e.total > 0;
    etaMs = estimable ? (inStage * (e.total - e.done)) / e.done : undefined;
  }
  return {
    stage: e.stage,
    elapsedMs: nowMs,
    bytes: e.bytes,
    totalBytes: e.totalBytes,
    records: e.records,
    rejects: e.rejects,
    done: e.done,
    total: e.total,
    fraction: Math.min(1, Math.max(0, fraction)),
    mbPerSec: nowMs > 0 ? e.bytes / 1e6 / (nowMs / 1000) : 0,
    etaMs: etaMs === undefined ? undefined : Math.max(0, etaMs),
  };
}

/** Whether colour is allowed by the environment (NO_COLOR set to anything non-empty forbids it). */
export function colorAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.NO_COLOR;
}

/** 47.1 MB, 1.23 GB, 512 kB: decimal units like MB/s. */
export function formatMB(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(0)} kB`;
  return `${bytes} B`;
}

/** 1.2 s, 2m05s, 1h02m. */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

const count = new Intl.NumberFormat('en-US');

type Paint = (code: string, s: string) => string;
const plain: Paint = (_code, s) => s;
const ansi: Paint = (code, s) => `\x1b[${code}m${s}\x1b[0m`;

/** The figures after the stage name, shared by the TTY line and the plain lines. */
function figures(v: ProgressView, paint: Paint, withEta: boolean): string {
  const final = v.stage === 'done' || v.stage === 'stopped';
  if (v.stage === 'plan' && v.bytes === 0) return `${formatMB(v.totalBytes)} to read`;
  const parts: string[] = [];
  parts.push(final || v.totalBytes === 0 ? formatMB(v.bytes) : `${formatMB(v.bytes)} of ${formatMB(v.totalBytes)}`);
  parts.push(`${v.mbPerSec.toFixed(1)} MB/s`);
  parts.push(`${count.format(v.records)} records`);
  const rejects = `${count.format(v.rejects)} rejects`;
  parts.push(v.rejects > 0 ? paint('33', rejects) : rejects);
  if (!final && v.stage !== 'scan' && v.total > 0) parts.push(`${v.done}/${v.total}`);
  if (withEta && !final) parts.push(paint('2', `ETA ${v.etaMs === undefined ? '--' : formatDuration(v.etaMs)}`));
  return parts.join('  ');
}

/** One plain line (no TTY): `segflow: scan     1.2 s  12.0 MB of 47.1 MB  ...`. */
export function plainLine(v: ProgressView): string {
  return `segflow: ${v.stage.padEnd(7)} ${formatDuration(v.elapsedMs).padStart(7)}  ${figures(v, plain, v.stage === 'scan')}`;
}

const BAR_SIZE = 20;

/** The live TTY line (without the cursor codes cli-progress adds). */
export function ttyLine(v: ProgressView, color: boolean): string {
  const paint = color ? ansi : plain;
  const final = v.stage === 'done' || v.stage === 'stopped';
  const stage = paint(v.stage === 'stopped' ? '1;31' : '1;36', v.stage.padEnd(7));
  const time = formatDuration(v.elapsedMs).padStart(7);
  if (final) return `${stage} ${time}  ${figures(v, paint, false)}`;
  const filled = Math.round(v.fraction * BAR_SIZE);
  const bar = paint('32', '\u2588'.repeat(filled)) + '\u2591'.repeat(BAR_SIZE - filled);
  const pct = `${Math.floor(v.fraction * 100)}%`.padStart(4);
  return `${stage} ${bar} ${pct} ${time}  ${figures(v, paint, true)}`;
}

/** Tracks the stage and when it began. */
class StageClock {
  last: ProgressEvent | undefined;
  /** The last scan event: input bytes are read in the scan, so later stages show its figures. */
  scan: ProgressEvent | undefined;
  /** Wall clock (Date.now) when `last` arrived, to extrapolate job time between events. */
  lastWall = 0;
  stageStartMs = 0;
  /** Returns true when `e` starts a new stage. */
  take(e: ProgressEvent): boolean {
    const changed = this.last?.stage !== e.stage;
    // a stage begins where the previous stage's last event left off (events come when work ends)
    if (changed) this.stageStartMs = this.last ? this.last.elapsedMs : 0;
    if (e.stage === 'scan') this.scan = e;
    else if (this.scan && e.stage !== 'plan') e = { ...e, bytes: this.scan.bytes, totalBytes: this.scan.totalBytes };
    this.last = e;
    this.lastWall = Date.now();
    return changed;
  }
  view(now: 'event' | 'wall'): ProgressView | undefined {
    if (!this.last) return undefined;
    const nowMs = now === 'wall' ? this.last.elapsedMs + (Date.now() - this.lastWall) : this.last.elapsedMs;
    return viewOf(this.last, this.stageStartMs, nowMs);
  }
  final(failed: boolean): ProgressView | undefined {
    const v = this.view('wall');
    return v && { ...v, stage: failed ? 'stopped' : 'done', fraction: 1, etaMs: undefined };
  }
}

/** A reporter that prints nothing. */
function silent(): Reporter {
  return { progress: () => {}, log: () => {}, done: () => {} };
}

/** Plain lines for a pipe or a log file. */
function plainReporter(stream: ReporterStream, heartbeatMs: number): Reporter {
  const clock = new StageClock();
  let lastLineMs = -Infinity;
  let ended = false;
  const line = (v: ProgressView): void => {
    stream.write(plainLine(v) + '\n');
    lastLineMs = v.elapsedMs;
  };
  return {
    progress: (e) => {
      if (ended) return;
      const changed = clock.take(e);
      if (changed || e.elapsedMs - lastLineMs >= heartbeatMs) line(clock.view('event')!);
    },
    log: (msg) => {
      stream.write(msg + '\n');
    },
    done: (o) => {
      if (ended) return;
      ended = true;
      const v = clock.final(!!o?.failed);
      if (v) line(v);
    },
  };
}

/**
 * cli-progress, loaded when a live line is drawn (it takes about 17 ms to import, on the main
 * thread while a job's workers start, and piped or quiet runs never need it).
 */
const requireModule = createRequire(import.meta.url);
const loadCliProgress = (): typeof cliProgressTypes => requireModule('cli-progress') as typeof cliProgressTypes;

/** The live line on a TTY, drawn by cli-progress. */
function ttyReporter(stream: ReporterStream, color: boolean): Reporter {
  const clock = new StageClock();
  let bars: cliProgressTypes.MultiBar | undefined;
  let finalView: ProgressView | undefined;
  let ended = false;
  const start = (): void => {
    bars = new (loadCliProgress().MultiBar)({
      stream: stream as NodeJS.WritableStream,
      // the whole line comes from our formatter; cli-progress keeps it on one redrawn row
      format: () => (finalView ? ttyLine(finalView, color) : ttyLine(clock.view('wall')!, color)),
      fps: 10,
      hideCursor: true,
      linewrap: false,
      gracefulExit: true,
    });
    bars.create(1, 0);
  };
  return {
    progress: (e) => {
      if (ended) return;
      const changed = clock.take(e);
      if (!bars) start();
      // draw each new stage at once, so even a job shorter than a frame shows every stage
      else if (changed) bars.update();
    },
    log: (msg) => {
      if (bars && !ended) bars.log(msg + '\n');
      else stream.write(msg + '\n');
    },
    done: (o) => {
      if (ended) return;
      ended = true;
      if (!bars) return;
      finalView = clock.final(!!o?.failed);
      if (bars.isActive) {
        bars.update(); // flush messages logged since the last frame
        bars.stop();
      } else if (finalView) {
        // cli-progress already stopped the line on SIGINT/SIGTERM (gracefulExit)
        stream.write(ttyLine(finalView, color) + '\n');
      }
    },
  };
}

/**
 * The reporter the CLI passes to a job: `progress` as `onProgress`, `log` for messages, `done`
 * when the job has ended.
 */
export function createReporter(o: ReporterOptions = {}): Reporter {
  if (o.quiet) return silent();
  const stream = o.stream ?? process.stderr;
  const tty = o.tty ?? !!stream.isTTY;
  if (!tty) return plainReporter(stream, o.heartbeatMs ?? 10_000);
  return ttyReporter(stream, o.color ?? colorAllowed());
}
