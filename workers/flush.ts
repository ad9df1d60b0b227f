/** Piscina task: hand over (or drop) this worker's held scan tables of a job (lib/scan.ts). */
import { tagged } from '../lib/errors.js';
import { beforeTask } from '../lib/util/gc.js';
import { flushHeld, type FlushTask } from '../lib/scan.js';

export default tagged(async (task: FlushTask) => {
  beforeTask();
  return flushHeld(task);
});
