/** Piscina task: merge one partition into its shard, a group of dense-only partitions, or a part of a split dense merge (lib/merge.ts). */
import { tagged } from '../lib/errors.js';
import { injectFault } from '../lib/faults.js';
import { mergeDenseGroup, mergeDenseSplit, mergePartition, type DenseMergeTask, type DenseSplitTask, type MergeTask } from '../lib/merge.js';

export default tagged(async (task: (MergeTask | DenseMergeTask | DenseSplitTask) & { attempt: number }) => {
  if ('part' in task) {
    await injectFault('merge', task.part, task.attempt);
    return mergeDenseSplit(task);
  }
  if ('group' in task) {
    await injectFault('merge', task.group[0], task.attempt);
    return mergeDenseGroup(task);
  }
  await injectFault('merge', task.partition, task.attempt);
  return mergePartition(task);
});
