/**
 * The commands beyond aggregate and generate (segment, kmeans, bench, stream, worker), each added
 * by its own module.
 */
import type { Argv } from 'yargs';

export function registerExtraCommands(cli: Argv): Argv {
  return cli;
}
