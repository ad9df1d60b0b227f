/**
 * Pool task `kmeans-assign`: one contiguous run of fixed blocks of a k-means pass (assignment or a
 * k-means++ distance pass). The kernel and its contract live in lib/kmeans.ts; results go to
 * shared memory.
 */
import { tagged } from '../lib/errors.js';
import { runBlockTask, type BlockTask } from '../lib/kmeans.js';

export default tagged((task: BlockTask) => runBlockTask(task));
