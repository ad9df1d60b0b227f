/** Piscina task: merge one partition into its shard, or a group of dense-only partitions (lib/merge.ts). */
import { tagged } from '../lib/errors.js';
import { injectFault } from '../lib/faults.js';
import { mergeDenseGroup, mergePartition, type DenseMergeTask, type MergeTask } from '../lib/merge.js';

export default tagged(async (task: (MergeTask | DenseMergeTask) & { attempt: number }) => {
  if ('group' in task) {
    await injectFault('merge', task.group[0], task.attempt);
    return mergeDenseGroup(task);
  }
  await injectFault('merge', task.partition, task.attempt);
  return mergePartition(task);
});
