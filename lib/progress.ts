/**
 * Progress and messages on stderr. (A fuller TTY progress display comes with issue 6.)
 */
import type { ProgressEvent } from './types.js';

export interface Reporter {
  progress: (e: ProgressEvent) => void;
  log: (msg: string) => void;
  done: () => void;
}

export function createReporter(o: { quiet?: boolean }): Reporter {
  let last = '';
  return {
    progress: (e) => {
      if (o.quiet) return;
      if (e.stage !== last) {
        last = e.stage;
        process.stderr.write(`[${e.stage}] ${(e.elapsedMs / 1000).toFixed(1)} s\n`);
      }
    },
    log: (msg) => {
      if (!o.quiet) process.stderr.write(msg + '\n');
    },
    done: () => {},
  };
}
