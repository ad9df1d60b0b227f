/**
 * The published types, as a consumer's compiler sees them: test/fixtures/consumer/consumer.mts
 * imports from 'segflow' (package.json "exports" -> dist/lib/index.d.ts) and must compile;
 * negative.mts misuses the API and must fail, on exactly the lines marked `// error`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = path.join(ROOT, 'test/fixtures/consumer');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('a consumer compiles against dist/lib/index.d.ts; misuses fail where marked', () => {
  assert.ok(fs.existsSync(path.join(ROOT, 'dist/lib/index.d.ts')), 'build first: dist/lib/index.d.ts is missing');
  const r = spawnSync(process.execPath, [TSC, '-p', path.join(FIXTURE, 'tsconfig.json'), '--pretty', 'false'], { cwd: ROOT, encoding: 'utf8' });
  const errors = r.stdout
    .split('\n')
    .map((l) => /^(.*?)\((\d+),\d+\): error (TS\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ file: path.basename(m[1]), line: Number(m[2]), code: m[3] }));
  assert.ok(r.status === 0 || errors.length > 0, `tsc failed without diagnostics:\n${r.stdout}${r.stderr}`);

  assert.equal(errors.filter((e) => e.file !== 'negative.mts'), [], `the consumer must compile:\n${r.stdout}`);

  const marked = fs
    .readFileSync(path.join(FIXTURE, 'negative.mts'), 'utf8')
    .split('\n')
    .flatMap((l, i) => (/\/\/ error$/.test(l) ? [i + 1] : []));
  const failing = [...new Set(errors.filter((e) => e.file === 'negative.mts').map((e) => e.line))].sort((a, b) => a - b);
  assert.ok(marked.length >= 5, 'the negative file marks its misuses');
  assert.equal(failing, marked, `lines that failed vs lines marked // error:\n${r.stdout}`);
});

test.run();
