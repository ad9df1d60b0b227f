/**
 * The cluster's store layer without Redis: both store backends (a folder, and S3 through s3rver)
 * keep the same contract; a partial object gives back each section by a ranged GET and its index
 * from its footer; and a byte range of an s3:// object scans to exactly what the same range of a
 * local copy scans to (the Beam range rule, including a last record that runs far past the range).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { generate } from '../lib/index.js';
import { readSchema } from '../lib/schema.js';
import { planRanges } from '../lib/split.js';
import { scanRange, type ScanOutput, type ScanTask } from '../lib/scan.js';
import { FileStore, S3Store, openStore, type Store } from '../lib/cluster/store.js';
import { FOOTER, decodeFooter, decodeIndex, encodePartial } from '../lib/cluster/partial-object.js';
import { readClusterSchema, resolveClusterInputs, scanObjectRange } from '../lib/cluster/inputs.js';
import { BUCKET, ClusterEnv } from './helpers/cluster-env.js';

const env = new ClusterEnv('store');
const test = suite('cluster store');
let s3: Store;
let files: Store;

test.before(async () => {
  await env.startS3();
  s3 = openStore(`s3://${BUCKET}/runs-test`);
  files = openStore(`file://${path.join(env.dir, 'folder-store')}`);
});
test.after(() => env.close());

test('openStore: URLs and errors', () => {
  assert.instance(openStore('s3://b/p/q/'), S3Store);
  assert.is(openStore('s3://b/p/q/').url, 's3://b/p/q');
  assert.instance(openStore('file:///tmp/x'), FileStore);
  assert.throws(() => openStore('http://example.com/x'), /unsupported scheme/);
  assert.throws(() => openStore(''), /--store is required/);
});

for (const kind of ['folder', 's3'] as const) {
  test(`${kind} store: put, get, ranges, list, delete`, async () => {
    const st = kind === 's3' ? s3 : files;
    await st.put('a/one.bin', Buffer.from('0123456789'));
    await st.put('a/b/two.txt', 'hello');
    await st.put('c.txt', 'x');
    assert.is((await st.get('a/one.bin'))?.toString(), '0123456789');
    assert.is(await st.get('a/missing'), undefined);
    assert.is(await st.size('a/one.bin'), 10);
    assert.is(await st.size('nope'), undefined);
    assert.is((await st.getRange('a/one.bin', 2, 6)).toString(), '2345');
    // a range past the end is cut at the end
    assert.is((await st.getRange('a/one.bin', 8, 20)).toString(), '89');
    assert.equal(
      (await st.list('a/')).map((e) => [e.key, e.size]),
      [
        ['a/b/two.txt', 5],
        ['a/one.bin', 10],
      ],
    );
    const local = path.join(env.dir, `${kind}-copy`);
    fs.writeFileSync(local, 'from a file');
    await st.putFile('a/f.txt', local);
    await st.download('a/f.txt', local + '.back');
    assert.is(fs.readFileSync(local + '.back', 'utf8'), 'from a file');
    await st.delete(['a/one.bin', 'a/never-there']);
    assert.equal(
      (await st.list('a/')).map((e) => e.key),
      ['a/b/two.txt', 'a/f.txt'],
    );
    assert.equal((await st.list('')).length, 3);
  });
}

/** Sales rows, with a few bad rows, a long last record and no final newline. */
function salesFile(name: string, rows: number): string {
  const file = path.join(env.dir, name);
  generate({ out: file, rows, seed: 3, decimals: 2 });
  const text = fs.readFileSync(file, 'utf8').split('\n');
  text.splice(40, 0, 'not,a,row');
  text.splice(700, 0, '1000001,P00069042,F,0-17,10,A,2,0,3,,,not-a-number');
  // a record of 150 KiB: a range that owns it must read far past its end (several GETs)
  text.splice(1500, 0, `1000002,P${'9'.repeat(150 << 10)},F,0-17,10,A,2,0,3,,,12.50`);
  fs.writeFileSync(file, text.join('\n').replace(/\n+$/, ''));
  return file;
}

const scanTask = (file: string, r: ReturnType<typeof planRanges>[number], schema: ReturnType<typeof readSchema>): ScanTask => ({
  file,
  fileIndex: 0,
  rangeIndex: r.rangeIndex,
  start: r.start,
  end: r.end,
  atRecordStart: r.atRecordStart,
  compressed: schema.compressed,
  format: schema.format,
  delimiter: schema.delimiter,
  fieldCount: schema.fieldCount,
  user: schema.user,
  amount: schema.amount,
  quantity: schema.quantity,
  date: schema.date,
  names: schema.names,
  partitions: 4,
});

const sectionsOf = (o: ScanOutput): Buffer[] => o.sections.map((s) => Buffer.from(new Uint8Array(s)));

test('a byte range of an s3:// object scans as the same range of the file', async () => {
  const file = salesFile('sales.csv', 2000);
  const bytes = fs.readFileSync(file);
  const bucket = openStore(`s3://${BUCKET}`);
  await bucket.put('inputs/sales.csv', bytes);
  const [input] = await resolveClusterInputs(`s3://${BUCKET}/inputs/sales.csv`);
  assert.equal(input, { name: `s3://${BUCKET}/inputs/sales.csv`, source: `s3://${BUCKET}/inputs/sales.csv`, size: bytes.length });
  const schema = readSchema(file, {});
  const remote = await readClusterSchema(input, {});
  assert.equal({ ...remote, file: schema.file }, schema);
  // ranges of a few lines (a range may lie inside the long record), and larger ones
  for (const size of [3000, 40_000]) {
    const ranges = planRanges([schema], size);
    for (const r of ranges) {
      const local = await scanRange(scanTask(file, r, schema));
      const viaS3 = await scanObjectRange(scanTask(input.source, r, schema), bytes.length, path.join(env.dir, 'ranges'), scanRange);
      const { sections: a, ...ma } = local;
      const { sections: b, ...mb } = viaS3;
      assert.equal(mb, ma, `range ${r.start}-${r.end} of ${size}-byte ranges`);
      assert.equal(sectionsOf({ sections: b } as ScanOutput), sectionsOf({ sections: a } as ScanOutput));
    }
  }
  assert.equal(fs.readdirSync(path.join(env.dir, 'ranges')), [], 'range files are removed');
});

test('a gzip object is one range, fetched whole', async () => {
  const file = path.join(env.dir, 'sales.csv.gz');
  fs.writeFileSync(file, zlib.gzipSync(fs.readFileSync(salesFile('plain.csv', 1500))));
  await openStore(`s3://${BUCKET}`).put('inputs/sales.csv.gz', fs.readFileSync(file));
  const schema = readSchema(file, {});
  const [input] = await resolveClusterInputs(`s3://${BUCKET}/inputs/sales.csv.gz`);
  assert.equal({ ...(await readClusterSchema(input, {})), file: schema.file }, schema);
  const [r] = planRanges([schema], 1000);
  const local = await scanRange(scanTask(file, r, schema));
  const viaS3 = await scanObjectRange(scanTask(input.source, r, schema), input.size!, path.join(env.dir, 'ranges'), scanRange);
  const { sections: a, ...ma } = local;
  const { sections: b, ...mb } = viaS3;
  assert.equal(mb, ma);
  assert.equal(sectionsOf({ sections: b } as ScanOutput), sectionsOf({ sections: a } as ScanOutput));
});

test('inputs: an s3:// prefix names its data files', async () => {
  const bucket = openStore(`s3://${BUCKET}`);
  await bucket.put('many/b.csv', 'user_id,amount\n1,2\n');
  await bucket.put('many/a.csv', 'user_id,amount\n1,2\n');
  await bucket.put('many/notes.md', '# not data');
  await bucket.put('many/deeper/c.csv', 'user_id,amount\n1,2\n');
  const found = await resolveClusterInputs([`s3://${BUCKET}/many/`, `s3://${BUCKET}/many`]);
  assert.equal(
    found.map((f) => f.name),
    [`s3://${BUCKET}/many/a.csv`, `s3://${BUCKET}/many/b.csv`],
  );
  try {
    await resolveClusterInputs(`s3://${BUCKET}/nothing-here/`);
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_INPUT_NOT_FOUND');
  }
});

test('partial object: each section by a ranged GET, the index from the footer', async () => {
  const file = salesFile('partial.csv', 3000);
  const schema = readSchema(file, {});
  const [r] = planRanges([schema], 1 << 30);
  const out = await scanRange(scanTask(file, r, schema));
  const want = sectionsOf(out);
  const { pieces, index, size } = encodePartial(out);
  for (const st of [s3, files]) {
    await st.put('partial/x.part', Buffer.concat(pieces, size));
    const { indexOffset, indexLength } = decodeFooter(await st.getRange('partial/x.part', size - FOOTER, size));
    const back = decodeIndex(await st.getRange('partial/x.part', indexOffset, indexOffset + indexLength));
    assert.equal(back, index);
    assert.is(back.rejected, 2);
    assert.is(back.rejects.length, 2);
    for (const [p, [off, len, keys]] of back.sections.entries()) {
      assert.is(off % 8, 0, 'sections are 8-byte aligned');
      assert.ok(keys > 0);
      assert.ok((await st.getRange('partial/x.part', off, off + len)).equals(want[p]), `section ${p}`);
    }
  }
});

test.run();
