/**
 * Progress as a user sees it: `segflow aggregate` driven through a pseudo-terminal (util-linux
 * `script`, or python3's pty module), with stderr piped (plain lines), and with --quiet.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate } from '../lib/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/lib/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segflow-progress-'));
const input = path.join(tmp, 'sales.csv');
// ~13 MB in 1 MiB ranges: a job of about a second, long enough for several frames at 10 fps
generate({ out: input, rows: 300_000, seed: 7 });
const JOB = ['aggregate', input, '--out', path.join(tmp, 'out'), '--force', '--workers', '2', '--range-size', '1MiB'];

const SGR = /\x1b\[[0-9;]*m/;
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

// a pty driver from the OS: no native Node module needed
const PTY_PY = `
import fcntl, json, os, pty, struct, sys, termios
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 160, 0, 0))
out = b''
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
`;

/** Run argv on a pseudo-terminal; stdout and stderr both arrive in `out`. */
function runInPty(argv: string[], env: NodeJS.ProcessEnv): { status: number | null; out: string } | undefined {
  if (has('script')) {
    const cmd = `stty cols 160 rows 40; exec ${argv.map(quote).join(' ')}`;
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    return { status: r.status, out: r.stdout };
  }
  if (has('python3')) {
    const r = spawnSync('python3', ['-c', PTY_PY, JSON.stringify(argv)], { env, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, out: r.stdout };
  }
  return undefined;
}

/** The frames of the live line: what was drawn after each move to column 1. */
function frames(out: string): string[] {
  return out
    .split('\x1b[1G')
    .map((f) => f.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').trim())
    .filter((f) => f.length > 0);
}

const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  return env;
};

test('on a TTY: a live line that updates, with colour, ending in a summary', () => {
  const r = runInPty(['node', CLI, ...JOB], baseEnv());
  if (!r) {
    console.log('  (skipped: neither util-linux script nor python3 is installed to make a pty)');
    return;
  }
  assert.is(r.status, 0, r.out);
  // every stage is drawn when it starts, and redrawn ten times a second while it runs
  const live = frames(r.out).filter((f) => /\d+%/.test(f) && /MB\/s/.test(f));
  assert.ok(live.length >= 2, `expected several live frames, got ${live.length}:\n${r.out}`);
  assert.ok(new Set(live).size >= 2, 'the live line changes');
  assert.ok(live.some((f) => f.startsWith('merge')), 'the merge stage is drawn');
  assert.ok(live.some((f) => /^scan\s.*\d[\d.]* MB of [\d.]+ MB.*records.*rejects.*ETA/.test(f)), live.join('\n'));
  assert.ok(frames(r.out).some((f) => /^done\s.*300,000 records\s+0 rejects/.test(f)), r.out);
  assert.match(r.out, SGR);
  assert.ok(r.out.includes('\x1b[?25h'), 'the cursor is shown again');
});

test('on a TTY with NO_COLOR: no colour codes', () => {
  const r = runInPty(['node', CLI, ...JOB], { ...baseEnv(), NO_COLOR: '1' });
  if (!r) return;
  assert.is(r.status, 0, r.out);
  assert.ok(frames(r.out).some((f) => /^scan\s/.test(f) || /^merge\s/.test(f)), r.out);
  assert.not.match(r.out, SGR);
});

test('stderr piped: one plain line per stage and a final line', () => {
  const r = spawnSync('node', [CLI, ...JOB], { env: baseEnv(), encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, '');
  assert.not.match(r.stderr, /\x1b/);
  const stages = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('segflow: '))
    .map((l) => l.split(/\s+/)[1]);
  // a line as each stage starts (a slow machine may add 10 s heartbeats within a stage)
  assert.equal(stages.filter((s, i) => s !== stages[i - 1]), ['plan', 'scan', 'merge', 'done'], r.stderr);
  assert.match(r.stderr, /segflow: done .*300,000 records {2}0 rejects/);
});

test('--quiet: nothing on stderr, and --json alone on stdout', () => {
  const r = spawnSync('node', [CLI, ...JOB, '--quiet', '--json'], { env: baseEnv(), encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stderr, '');
  assert.is(JSON.parse(r.stdout).rows.counted, 300_000);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.run();
