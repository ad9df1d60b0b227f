/**
 * Build step (`npm run build` runs it after tsc): assemble the scan's line kernel from its text
 * (lib/kernel/lines.wat) into dist/lib/kernel/lines.wasm with wabt, a dev dependency. A package
 * built without it (or a machine without WebAssembly SIMD) scans with the JavaScript line loop.
 * Usage: node dist/lib/kernel/assemble.js SRC.wat OUT.wasm
 */
import fs from 'node:fs';
import path from 'node:path';

const [src, out] = process.argv.slice(2);
if (!src || !out) {
  process.stderr.write('usage: assemble SRC.wat OUT.wasm\n');
  process.exit(2);
}
const wabt = await (await import('wabt')).default();
const module = wabt.parseWat(src, fs.readFileSync(src, 'utf8'));
try {
  module.validate();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, module.toBinary({}).buffer);
} finally {
  module.destroy();
}
