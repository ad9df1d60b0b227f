/**
 * A small HTTP service that embeds segflow: every job runs on one pool that lives as long as the
 * service, so threads start once, not once per request.
 *
 *   POST   /jobs        {"input": "sales.csv" | [...], "command"?: "aggregate", "out"?: "dir"}  -> 202 {id}
 *   GET    /jobs/:id    the job: state, the last progress event, then the summary or the error
 *   DELETE /jobs/:id    abort it (AbortSignal); the job's output folder is left as it was
 *
 * Run: npm run build && node dist/examples/http-service.js   (PORT, WORKERS and OUT_ROOT optional)
 *      curl -d '{"input":"data/sample.csv"}' localhost:8080/jobs ; curl localhost:8080/jobs/ID
 * It reads any path it is given: put it behind your own auth before you expose it.
 */
import http from 'node:http';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { SegflowError, SegflowPool, aggregate, type AggregateSummary, type ProgressEvent } from '../lib/index.js';

/** The jobs the service can run, by name: each takes the library's options object. */
const COMMANDS = { aggregate } as const;

interface Job {
  id: string;
  command: keyof typeof COMMANDS;
  state: 'running' | 'done' | 'failed' | 'aborted';
  out: string;
  progress?: ProgressEvent;
  summary?: AggregateSummary;
  error?: { code: string; message: string };
  controller: AbortController;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 1 << 16) throw new Error('body too large');
  }
  const value: unknown = JSON.parse(text || '{}');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
  return value as Record<string, unknown>;
}

/** The service: an http.Server whose jobs share `pool` and write under `outRoot`. */
export function createService(o: { pool: SegflowPool; outRoot: string }): http.Server {
  const jobs = new Map<string, Job>();

  function start(body: Record<string, unknown>): Job {
    const input = body.input;
    if (!(typeof input === 'string' || (Array.isArray(input) && input.every((x) => typeof x === 'string')))) {
      throw new Error('"input" must be a path or an array of paths');
    }
    const command = (body.command ?? 'aggregate') as Job['command'];
    if (!(command in COMMANDS)) throw new Error(`"command" must be one of ${Object.keys(COMMANDS).join(', ')}`);
    const id = randomUUID();
    const job: Job = { id, command, state: 'running', out: typeof body.out === 'string' ? body.out : path.join(o.outRoot, id), controller: new AbortController() };
    jobs.set(id, job);
    COMMANDS[command]({ input, out: job.out, pool: o.pool, signal: job.controller.signal, onProgress: (e) => (job.progress = e) })
      .then((summary) => Object.assign(job, { state: 'done', summary }))
      .catch((err: unknown) => {
        const code = err instanceof SegflowError ? err.code : 'ERR_INTERNAL';
        Object.assign(job, { state: code === 'ERR_ABORTED' ? 'aborted' : 'failed', error: { code, message: (err as Error).message } });
      });
    return job;
  }

  const view = ({ controller: _, ...job }: Job) => job;

  return http.createServer((req, res) => {
    const [, root, id] = (req.url ?? '/').split('?')[0].split('/');
    const job = id ? jobs.get(id) : undefined;
    if (root !== 'jobs') return send(res, 404, { error: 'not found' });
    if (req.method === 'POST' && !id) {
      readJson(req)
        .then((body) => {
          const started = start(body);
          send(res, 202, { id: started.id, href: `/jobs/${started.id}` });
        })
        .catch((err: Error) => send(res, 400, { error: err.message }));
      return;
    }
    if (req.method === 'GET' && !id) return send(res, 200, [...jobs.values()].map(view));
    if (!job) return send(res, 404, { error: `no job ${id}` });
    if (req.method === 'GET') return send(res, 200, view(job));
    if (req.method === 'DELETE') {
      job.controller.abort();
      return send(res, 202, { id: job.id, state: job.state });
    }
    send(res, 405, { error: `${req.method} not allowed` });
  });
}

// started as a program (not imported): listen until SIGINT/SIGTERM, then close the pool
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const pool = new SegflowPool({ workers: process.env.WORKERS ? Number(process.env.WORKERS) : undefined });
  const server = createService({ pool, outRoot: process.env.OUT_ROOT ?? 'out/jobs' });
  const port = Number(process.env.PORT ?? 8080);
  server.listen(port, () => console.log(`segflow service on http://localhost:${port}/jobs`));
  const stop = (): void => {
    server.close();
    void pool.destroy();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
