/**
 * Build step (`npm run build` runs it after tsc): assemble the scan's line kernel from its text
 * (lib/kernel/lines.wat) into dist/lib/kernel/lines.wasm with Binaryen, a dev dependency, and
 * optimize it. The text keeps the number parsers as small functions; Binaryen inlines them into
 * the line loop (Node 20's V8 does not inline wasm calls), which makes the scan about a tenth
 * faster. A package built without it (or a machine without WebAssembly SIMD) scans with the
 * JavaScript line loop.
 * Usage: node dist/lib/kernel/assemble.js SRC.wat OUT.wasm
 */
import fs from 'node:fs';
import path from 'node:path';

const [src, out] = process.argv.slice(2);
if (!src || !out) {
  process.stderr.write('usage: assemble SRC.wat OUT.wasm\n');
  process.exit(2);
}
const binaryen = (await import('binaryen')).default;
const module = binaryen.parseText(fs.readFileSync(src, 'utf8'));
try {
  // 128-bit SIMD, and saturating float-to-int conversions (no trap on any input)
  module.setFeatures(binaryen.Features.SIMD128 | binaryen.Features.NontrappingFPToInt | binaryen.Features.MutableGlobals);
  if (!module.validate()) throw new Error(`${src}: not a valid module`);
  binaryen.setOptimizeLevel(3);
  binaryen.setShrinkLevel(0);
  // every helper inlined into `scan`: each is called once or twice per line
  binaryen.setAlwaysInlineMaxSize(200);
  binaryen.setFlexibleInlineMaxSize(1000);
  binaryen.setOneCallerInlineMaxSize(1000);
  module.optimize();
  if (!module.validate()) throw new Error(`${src}: the optimized module is not valid`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, module.emitBinary());
} finally {
  module.dispose();
}
