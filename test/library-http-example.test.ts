/**
 * examples/http-service.ts works as documented: a job posted, polled to done with progress, a bad
 * request refused, and a job aborted over HTTP.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { createService } from '../examples/http-service.js';
import { SegflowPool, generate } from '../lib/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-http-'));
const input = path.join(tmp, 'sales.csv');
generate({ out: input, rows: 50_000, seed: 3 });

test('POST a job, GET it to done; DELETE aborts; bad input is a 400', async () => {
  const pool = new SegflowPool({ workers: 2 });
  const server = createService({ pool, outRoot: path.join(tmp, 'jobs') });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(base + url, { method, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, any> };
  };
  const waitFor = async (id: string) => {
    for (;;) {
      const { json } = await call('GET', `/jobs/${id}`);
      if (json.state !== 'running') return json;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    const posted = await call('POST', '/jobs', { input });
    assert.is(posted.status, 202);
    const done = await waitFor(posted.json.id);
    assert.is(done.state, 'done', JSON.stringify(done.error));
    assert.is(done.summary.rows.counted, 50_000);
    assert.is(done.progress.stage, 'merge');
    assert.ok(fs.existsSync(path.join(tmp, 'jobs', posted.json.id, 'summary.json')));

    assert.is((await call('POST', '/jobs', { input: 42 })).status, 400);
    assert.is((await call('GET', '/jobs/nope')).status, 404);

    const second = await call('POST', '/jobs', { input });
    await call('DELETE', `/jobs/${second.json.id}`);
    const aborted = await waitFor(second.json.id);
    // a job this small may finish before the DELETE lands; either way it settles cleanly
    assert.ok(aborted.state === 'aborted' || aborted.state === 'done', aborted.state);
    if (aborted.state === 'aborted') assert.is(aborted.error.code, 'ERR_ABORTED');
  } finally {
    server.close();
    await pool.destroy();
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
