/**
 * The commands beyond aggregate and generate, each registered by its own module in commands/.
 */
import type { Argv } from 'yargs';
import { register as segment } from './commands/segment.js';
import { register as kmeans } from './commands/kmeans.js';
import { register as bench } from './commands/bench.js';
import { register as stream } from './commands/stream.js';
import { register as worker } from './commands/worker.js';

/** Add every extra command to the CLI. */
export function registerExtraCommands(cli: Argv): Argv {
  return [segment, kmeans, bench, stream, worker].reduce((c, register) => register(c), cli);
}
