/**
 * A cluster driver as its own process, for tests that kill and restart it:
 *   node dist/test/helpers/cluster-driver.js '{"input": ..., "out": ..., "cluster": ..., "store": ...}'
 * Progress goes to stderr as `progress STAGE DONE/TOTAL` lines; the summary to stdout as JSON; a
 * failure to stderr as `error CODE MESSAGE`, with the error's exit code. Importing this file (the
 * test runner does, as it matches the test pattern) does nothing.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregateOnCluster, type ClusterAggregateOptions } from '../../lib/cluster/driver.js';
import { SegflowError } from '../../lib/errors.js';

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as ClusterAggregateOptions;
  const ac = new AbortController();
  process.on('SIGINT', () => ac.abort());
  try {
    const summary = await aggregateOnCluster({
      ...options,
      signal: ac.signal,
      onProgress: (e) => process.stderr.write(`progress ${e.stage} ${e.done}/${e.total}\n`),
    });
    process.stdout.write(JSON.stringify(summary) + '\n');
    process.exit(0);
  } catch (err) {
    const e = err as SegflowError;
    process.stderr.write(`error ${e.code ?? 'ERR_INTERNAL'} ${e.message}\n`);
    process.exit(err instanceof SegflowError ? err.exitCode : 1);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main();
