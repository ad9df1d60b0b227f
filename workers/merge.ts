/** Piscina task: merge one partition into its shard (lib/merge.ts). */
import { tagged } from '../lib/errors.js';
import { injectFault } from '../lib/faults.js';
import { mergePartition, type MergeTask } from '../lib/merge.js';

export default tagged(async (task: MergeTask & { attempt: number }) => {
  await injectFault('merge', task.partition, task.attempt);
  return mergePartition(task);
});
