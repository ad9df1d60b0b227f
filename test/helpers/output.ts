/** Comparing job outputs in tests: every file but summary.json (its timings differ run to run). */
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';

/** Every output file but summary.json, by name. */
export function outputFiles(dir: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const f of fs.readdirSync(dir).sort()) if (f !== 'summary.json') m.set(f, fs.readFileSync(path.join(dir, f)));
  return m;
}

/** The same files with the same bytes in `dir` as in `ref`; `differs` ends the failure message. */
export function assertSameOutput(dir: string, ref: string, differs = 'differs'): void {
  const a = outputFiles(dir);
  const b = outputFiles(ref);
  assert.equal([...a.keys()], [...b.keys()]);
  for (const [name, bytes] of b) assert.ok(a.get(name)!.equals(bytes), `${name} ${differs}`);
}
