/** Checks shared by the cluster tests: run a driver to its end, and what a committed run holds. */
import * as assert from 'uvu/assert';
import type { Store } from '../../lib/cluster/store.js';
import { within, type ClusterEnv, type Proc } from './cluster-env.js';

/** Run a driver process to its end (bounded); resolves to its summary, fails with its output. */
export async function runDriver(env: ClusterEnv, name: string, options: Record<string, unknown>, ms: number): Promise<{ summary: Record<string, unknown>; proc: Proc }> {
  const t0 = Date.now();
  const proc = env.driver(name, options);
  const summary = await finish(proc, ms);
  if (process.env.SEGFLOW_TEST_TIMES) console.log(`${name}: ${Date.now() - t0} ms`, JSON.stringify(summary.timings));
  return { summary, proc };
}

/** Wait (bounded) for a driver process to exit 0; its summary. */
export async function finish(proc: Proc, ms: number): Promise<Record<string, unknown>> {
  const code = await within(proc.exited, ms);
  if (code !== 0) {
    await proc.kill();
    throw new Error(`driver ${proc.name} ended with ${code}:\n${proc.lines.slice(-30).join('\n')}`);
  }
  return JSON.parse(proc.stdout) as Record<string, unknown>;
}

interface ManifestShape {
  scans: { task: string; key: string; attempt: string }[];
  merges: { partition: number; key: string; attempt: string }[];
}

/**
 * A committed run: _SUCCESS names exactly one attempt per task (`scans` ranges, `shards`
 * partitions), and the store holds exactly those attempts (no orphans). Resolves to the manifest.
 */
export async function checkCommitted(store: Store, runId: string, scans: number, shards: number): Promise<ManifestShape> {
  const raw = await store.get(`runs/${runId}/_SUCCESS`);
  assert.ok(raw, `runs/${runId}/_SUCCESS exists`);
  const m = JSON.parse(raw!.toString('utf8')) as ManifestShape;
  assert.is(m.scans.length, scans);
  assert.is(new Set(m.scans.map((s) => s.task)).size, scans, 'one attempt per scan task');
  assert.equal(
    m.merges.map((r) => r.partition),
    Array.from({ length: shards }, (_, p) => p),
    'one attempt per partition',
  );
  const named = [...m.scans.map((s) => s.key), ...m.merges.map((r) => r.key)].sort();
  const held = [...(await store.list(`runs/${runId}/scan/`)), ...(await store.list(`runs/${runId}/merge/`))].map((e) => e.key).sort();
  assert.equal(held, named, 'the store holds the committed attempts and nothing else');
  return m;
}
