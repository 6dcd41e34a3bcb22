import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterEach, expect, test } from 'vitest';
import { PROCESS_HELPER_SCRIPT } from '../../src/executor/process-helper.js';

// Two edges of the process helper (its protocol, spoken directly): a process and the program that
// stops it once kiln is gone arrive as one request, and the helper tells its processes apart when
// the pid of one it reaped (its output still open) is taken by a new one.

const hex = (argv: readonly string[]): string => argv.map((a) => Buffer.from(a).toString('hex')).join(' ');
type Helper = ChildProcessByStdio<Writable, Readable, null>;
const helpers: Helper[] = [];
const dirs: string[] = [];
const sleeps: string[] = [];

afterEach(() => {
  for (const h of helpers.splice(0)) h.kill('SIGKILL');
  for (const t of sleeps.splice(0)) spawnSync('pkill', ['-KILL', '-x', '-f', `sleep ${t}`]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function helper(command: readonly string[] = []): { h: Helper; out: () => string; exited: Promise<unknown> } {
  const [file, ...args] = [...command, 'perl', '-e', PROCESS_HELPER_SCRIPT];
  const h = spawn(file ?? 'perl', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  helpers.push(h);
  let out = '';
  h.stdout.setEncoding('latin1').on('data', (c: string) => (out += c));
  h.stdout.on('error', () => undefined);
  const exited = new Promise((r) => h.once('exit', r));
  return { h, out: () => out, exited };
}

/** A `sleep` argument of its own (its process found, and killed after the test, by it). */
function sleepArg(): string {
  const t = String(5000 + Math.floor(Math.random() * 1_000_000));
  sleeps.push(t);
  return t;
}
const sleeping = (t: string): boolean => spawnSync('pgrep', ['-x', '-f', `sleep ${t}`]).status === 0;

test('a start request carries its cleanup program on the same line: kiln gone right after it, the program stops the process; a request cut off before its newline starts nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ph-edge-'));
  dirs.push(dir);
  const { h, out, exited } = helper();
  const t = sleepArg();
  const cut = sleepArg();
  const marker = join(dir, 'stopped');
  // The last line is what a kiln killed in mid-write leaves: no newline.
  h.stdin.write(`1 ${hex(['sleep', t])} - ${hex(['/bin/sh', '-c', `touch ${marker}; pkill -x -f "sleep ${t}"`])}\n2 ${hex(['sleep', cut])}`);
  await expect.poll(() => /^p 1 \d+$/m.test(out())).toBe(true);
  h.stdin.end();
  // Stopped by its program (SIGTERM from pkill), not killed as a process without one (SIGKILL).
  await expect.poll(() => /^x 1 s 15$/m.test(out()), { timeout: 10_000 }).toBe(true);
  expect(existsSync(marker)).toBe(true);
  await exited;
  expect(out()).not.toMatch(/^p 2 /m);
  expect(sleeping(cut)).toBe(false);
});

test('a reaped process whose output is still open keeps its report when a new process gets its pid (own pid namespace, ns_last_pid)', async () => {
  // pid 1 of its namespace is the helper: its processes are 2, 3, …, and nothing else forks there.
  const { h, out, exited } = helper(['unshare', '--pid', '--fork']);
  const t = sleepArg();
  // 1 exits at once; the sleep it leaves holds its stdout and stderr open until the test ends it.
  h.stdin.write(`1 ${hex(['/bin/sh', '-c', `sleep ${t} & exit 0`])}\n`);
  await expect.poll(() => /^p 1 \d+$/m.test(out())).toBe(true);
  const first = /^p 1 (\d+)$/m.exec(out())?.[1] ?? '';
  // Once 1 is reaped, the next process forked gets its pid.
  h.stdin.write(`2 ${hex(['/bin/sh', '-c', `while kill -0 ${first} 2>/dev/null; do sleep 0.01; done; echo ${Number(first) - 1} > /proc/sys/kernel/ns_last_pid`])}\n`);
  await expect.poll(() => /^x 2 c 0$/m.test(out()), { timeout: 5_000 }).toBe(true);
  h.stdin.write(`3 ${hex(['/bin/true'])}\n`);
  await expect.poll(() => /^x 3 c 0$/m.test(out()), { timeout: 5_000 }).toBe(true);
  // The reuse happened, so the test means something.
  expect(/^p 3 (\d+)$/m.exec(out())?.[1]).toBe(first);
  spawnSync('pkill', ['-TERM', '-x', '-f', `sleep ${t}`]);
  // 1's exit is reported once its output closes (before: its entry was the new process's, and
  // its report never came: kiln waited for it for ever).
  await expect.poll(() => /^x 1 c 0$/m.test(out()), { timeout: 5_000 }).toBe(true);
  h.stdin.end();
  await exited;
}, 20_000);
