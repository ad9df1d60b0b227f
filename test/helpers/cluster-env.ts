/**
 * A cluster on one machine for the cluster tests: a redis-server of its own (free port,
 * append-only file in a temp folder), an S3 stand-in (s3rver, in this process), `segflow worker`
 * processes (each in a network namespace of its own where the machine allows it, else on the
 * loopback), drivers, and links that can be cut (a namespace's veth, or a TCP relay). Every wait is bounded in time; every
 * process started here is killed by {@link ClusterEnv.close} (and on exit, should a test crash).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(ROOT, 'dist/lib/cli.js');
export const DRIVER = path.join(ROOT, 'dist/test/helpers/cluster-driver.js');

/** Whether redis-server is installed (CI installs it with .ci/setup-redis.sh). */
export function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A free TCP port on the loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Wait until `check` holds, polling every `everyMs`; throws after `ms`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A promise, or `'timeout'` after `ms` (the timer is cleared either way). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'timeout'>((r) => (timer = setTimeout(r, ms, 'timeout')))]);
  } finally {
    clearTimeout(timer);
  }
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    } catch {
      // gone already
    }
  }
});

/** A child process whose output lines are kept. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stdout = '';
  readonly exited: Promise<number | null>;
  code: number | null | undefined;

  constructor(
    readonly name: string,
    cmd: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    let rest = '';
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop()!;
      this.lines.push(...parts);
      if (process.env.SEGFLOW_TEST_VERBOSE) for (const l of parts) process.stderr.write(`[${name}] ${l}\n`);
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => {
        live.delete(this.child);
        this.code = code;
        resolve(code);
      });
    });
  }

  /** Wait for a stderr line matching `re`, seen from line `from` on; resolves to the line. */
  async waitFor(re: RegExp, ms: number, from = 0): Promise<string> {
    let found: string | undefined;
    await until(`${this.name}: a line matching ${re}`, () => {
      found = this.lines.slice(from).find((l) => re.test(l));
      if (!found && this.code !== undefined) throw new Error(`${this.name} exited (${this.code}) before a line matching ${re}:\n${this.lines.slice(-20).join('\n')}`);
      return !!found;
    }, ms);
    return found!;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.code === undefined) this.child.kill(sig);
  }

  /** SIGKILL, and wait for the exit. */
  async kill(): Promise<void> {
    if (this.code !== undefined) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** A TCP relay to a port whose link can go down: data waits (as TCP would) until it is back. */
export class Link {
  private server!: net.Server;
  private down = false;
  private held: [net.Socket, Buffer][] = [];
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  async start(target: number): Promise<this> {
    this.port = await freePort();
    this.server = net.createServer((client) => {
      const upstream = net.connect(target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const relay = (from: net.Socket, to: net.Socket): void => {
        from.on('data', (d: Buffer) => {
          if (this.down) this.held.push([to, d]);
          else if (!to.destroyed) to.write(d);
        });
        from.on('end', () => to.end());
      };
      relay(client, upstream);
      relay(upstream, client);
    });
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    return this;
  }

  /** Cut the link for `ms`; resolves when it is back. */
  async cut(ms: number): Promise<void> {
    this.down = true;
    await new Promise((r) => setTimeout(r, ms));
    this.down = false;
    for (const [to, d] of this.held.splice(0)) if (!to.destroyed) to.write(d);
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server?.close();
  }
}

/** Network namespaces made by this process, removed on exit should a test crash. */
const namespaces = new Set<string>();
process.on('exit', () => {
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

const ip = (...args: string[]): boolean => spawnSync('ip', args, { stdio: 'ignore' }).status === 0;

/**
 * A machine of its own on this one: a network namespace joined to the host by a veth pair, with
 * its own address. Its link can go down (`ip link set ... down`): packets are dropped, TCP
 * retransmits, and the connections carry on when it is back. Needs root (CAP_NET_ADMIN).
 */
export class NetNs {
  readonly name: string;
  readonly hostIp: string;
  readonly ip: string;
  private readonly hostDev: string;

  private constructor(index: number) {
    const tag = `${process.pid % 100000}x${index}`;
    this.name = `segflow-${tag}`;
    this.hostDev = `sfh${tag}`; // at most 15 characters
    // a /30 per namespace in a 10.x/16 chosen by pid (two test runs at once do not collide)
    const net = 10 << 24 | ((100 + (process.pid % 150)) << 16) | (index * 4);
    const addr = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
    this.hostIp = addr(net + 1);
    this.ip = addr(net + 2);
  }

  /** Namespaces 0..n-1, or none when this machine does not allow them (then: loopback). */
  static make(n: number): NetNs[] {
    if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).status !== 0) return [];
    const out: NetNs[] = [];
    for (let i = 0; i < n; i++) {
      const ns = new NetNs(i);
      const inside = `sfn${ns.name.slice(8)}`;
      const ok =
        ip('netns', 'add', ns.name) &&
        (namespaces.add(ns.name), true) &&
        ip('link', 'add', ns.hostDev, 'type', 'veth', 'peer', 'name', inside) &&
        ip('link', 'set', inside, 'netns', ns.name) &&
        ip('addr', 'add', `${ns.hostIp}/30`, 'dev', ns.hostDev) &&
        ip('link', 'set', ns.hostDev, 'up') &&
        ip('netns', 'exec', ns.name, 'ip', 'addr', 'add', `${ns.ip}/30`, 'dev', inside) &&
        ip('netns', 'exec', ns.name, 'ip', 'link', 'set', inside, 'up') &&
        ip('netns', 'exec', ns.name, 'ip', 'link', 'set', 'lo', 'up');
      if (!ok) {
        for (const x of [...out, ns]) x.remove();
        return [];
      }
      out.push(ns);
    }
    return out;
  }

  /** The command line that runs `cmd` in this namespace. */
  wrap(cmd: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, cmd, ...args]];
  }

  /** Take the link down for `ms`; resolves when it is back up. */
  async cut(ms: number): Promise<void> {
    ip('link', 'set', this.hostDev, 'down');
    await new Promise((r) => setTimeout(r, ms));
    ip('link', 'set', this.hostDev, 'up');
  }

  remove(): void {
    ip('netns', 'del', this.name); // takes its end of the veth pair, and so the pair, with it
    ip('link', 'del', this.hostDev);
    namespaces.delete(this.name);
  }
}

/** The S3 credentials and bucket of the stand-in. */
export const BUCKET = 'segflow-test';

/** Redis, s3rver and the processes of one test file. */
export class ClusterEnv {
  private folder = '';
  redisPort = 0;
  s3Port = 0;
  redis?: Proc;
  private s3?: { close(): Promise<unknown> };
  private readonly procs: Proc[] = [];
  private readonly links: Link[] = [];
  /** Namespaces for workers (empty: everything on the loopback). Make them before Redis. */
  nets: NetNs[] = [];

  constructor(private readonly tag: string) {}

  /** The temp folder of this environment (made on first use). */
  get dir(): string {
    this.folder ||= fs.mkdtempSync(path.join(os.tmpdir(), `segflow-${this.tag}-`));
    return this.folder;
  }

  get redisUrl(): string {
    return `redis://127.0.0.1:${this.redisPort}`;
  }

  /** The environment of a process that talks to the S3 stand-in. */
  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      SEGFLOW_S3_ENDPOINT: `http://127.0.0.1:${this.s3Port}`,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
    };
  }

  /** Start (or restart, on the same port and files) redis-server with an append-only file. */
  async startRedis(): Promise<void> {
    this.redisPort ||= await freePort();
    const data = path.join(this.dir, 'redis');
    fs.mkdirSync(data, { recursive: true });
    // appendfsync always: an acknowledged write survives SIGKILL (the test kills Redis mid-run)
    const bind = ['127.0.0.1', ...this.nets.map((n) => n.hostIp)];
    this.redis = this.spawn('redis', 'redis-server', ['--port', String(this.redisPort), '--bind', ...bind, '--dir', data, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'no', '--loglevel', 'warning'], process.env);
    await until('redis-server to answer PING', () => ping(this.redisPort), 10_000, 50);
  }

  /** Start s3rver in this process, with the test bucket. */
  async startS3(): Promise<void> {
    const { default: S3rver } = await import('s3rver');
    const dir = path.join(this.dir, 's3');
    fs.mkdirSync(dir, { recursive: true });
    const server = new S3rver({ port: this.s3Port, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: BUCKET }] });
    const { port } = await server.run();
    this.s3Port = port;
    this.s3 = server;
    Object.assign(process.env, this.env);
  }

  spawn(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Proc {
    const p = new Proc(name, cmd, args, env);
    this.procs.push(p);
    return p;
  }

  /** Start a `segflow worker` (one thread, logging every task) and wait until it serves the queue. */
  async worker(name: string, extra: string[] = [], redisUrl = this.redisUrl, o: { threads?: number; verbose?: boolean; ns?: NetNs } = {}): Promise<Proc> {
    const url = o.ns ? `redis://${o.ns.hostIp}:${this.redisPort}` : redisUrl;
    const tmp = path.join(this.dir, 'transit');
    fs.mkdirSync(tmp, { recursive: true });
    const args = [CLI, 'worker', '--redis', url, '--workers', String(o.threads ?? 1), '--name', name, '--tmp-dir', tmp, ...(o.verbose === false ? [] : ['--verbose']), ...extra];
    const [cmd, argv] = o.ns ? o.ns.wrap(process.execPath, args) : [process.execPath, args];
    const w = this.spawn(name, cmd, argv, this.env);
    await w.waitFor(/serving queue/, 20_000);
    return w;
  }

  /** Start a driver (test/helpers/cluster-driver.ts) with aggregate options as JSON. */
  driver(name: string, options: Record<string, unknown>): Proc {
    return this.spawn(name, process.execPath, [DRIVER, JSON.stringify({ cluster: this.redisUrl, ...options })], this.env);
  }

  async link(target: number): Promise<Link> {
    const l = await new Link().start(target);
    this.links.push(l);
    return l;
  }

  /** Kill every process, stop s3rver and remove the temp folder. */
  async close(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.kill()));
    for (const l of this.links) l.close();
    for (const n of this.nets) n.remove();
    await this.s3?.close().catch(() => {});
    if (this.folder) fs.rmSync(this.folder, { recursive: true, force: true });
  }
}

/** PING a Redis port with a raw RESP command (no client needed). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
    s.on('connect', () => s.write('PING\r\n'));
  });
}

/** Files of a folder as name -> bytes (for byte-for-byte comparison). */
export function readDir(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of fs.readdirSync(dir).sort()) out.set(f, fs.readFileSync(path.join(dir, f)));
  return out;
}
