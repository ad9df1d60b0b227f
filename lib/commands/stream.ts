/** The `segflow stream` command (yargs registration). */
import type { Argv } from 'yargs';

/** Add the command to the CLI. */
export function register(cli: Argv): Argv {
  return cli;
}
