/**
 * The `stream` pool task (workers/stream.ts): the stream's work that is not a scan. `load` reads
 * one users shard of the --from output into a section; `export` writes one shard of the export.
 * Batches themselves run as the batch job's `scan` task.
 */
import { loadUsersShard, type LoadOutput } from './load.js';
import { writeExportShard, type ExportOutput, type ExportTask } from './export.js';

/** A `load` task: one users shard. */
export interface LoadTask {
  op: 'load';
  file: string;
}

export type StreamTask = LoadTask | ExportTask;

/** Run one `stream` task. */
export function runStreamTask(task: StreamTask): LoadOutput | ExportOutput {
  if (task.op === 'load') return loadUsersShard(task.file);
  return writeExportShard(task);
}
