/** Piscina task: scan one byte range (lib/scan.ts). */
import { tagged } from '../lib/errors.js';
import { injectFault } from '../lib/faults.js';
import { scanRange, type ScanTask } from '../lib/scan.js';

export default tagged(async (task: ScanTask & { attempt: number; taskIndex: number }) => {
  await injectFault('scan', task.taskIndex, task.attempt + (task.priorAttempts ?? 0));
  return scanRange(task);
});
