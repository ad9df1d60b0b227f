/** Piscina task: sample the user ids of a small range for the plan (lib/scan.ts). */
import { tagged } from '../lib/errors.js';
import { sampleRange, type ScanTask } from '../lib/scan.js';

export default tagged(async (task: ScanTask) => sampleRange(task));
