/**
 * `npm test`: run every test file with uvu, and fail unless every test ran and passed.
 *
 * uvu alone can end green when a test did not: when a failing test's error has a `details`
 * property that is not a string (SegflowError's is an object), uvu's reporter throws while
 * formatting it, and the runner's `finally` returns as if the file had ended, so that failure and
 * the file's remaining tests vanish and the exit code stays 0. This wrapper reads uvu's totals and
 * fails when passed + skipped tests fall short of the total (or uvu itself fails).
 *
 *   node dist/test/run-all.js [PATTERN]    (default: every `*.test.js` under dist/test)
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// uvu's package folder, from its main file (its exports list neither package.json nor bin.js)
const main = createRequire(import.meta.url).resolve('uvu');
const uvu = path.join(main.slice(0, main.lastIndexOf(`${path.sep}uvu${path.sep}`) + 5), 'bin.js');
const pattern = process.argv[2] ?? '.test.js$';
const child = spawn(process.execPath, [uvu, here, pattern], { stdio: ['inherit', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (d: Buffer) => {
  process.stdout.write(d);
  out += d.toString('utf8');
  if (out.length > 1 << 16) out = out.slice(-(1 << 15));
});
child.on('close', (code, signal) => {
  // eslint-disable-next-line no-control-regex
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label: string): number => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(plain)?.[1] ?? NaN);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  if (code !== 0 || signal) {
    process.stderr.write(`\ntests failed (uvu exited with ${signal ?? code})\n`);
    process.exit(1);
  }
  if (!(total >= 0) || passed + skipped !== total) {
    process.stderr.write(`\ntests failed: ${total} tests, ${passed} passed and ${skipped} skipped; the others did not report (a test file ended early)\n`);
    process.exit(1);
  }
});
