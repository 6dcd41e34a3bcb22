import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { PROCESS_HELPER_SCRIPT } from '../../src/executor/process-helper.js';

// What the process helper does once kiln's side is gone (its protocol, spoken directly). A `d`
// program is `runc kill ID KILL`, which fails while runc is still creating the container (and for
// a runc that waits for a config nobody will write): run once, it left such a container running
// for nobody, or the runc waiting with the helper beside it, for good.

const hex = (argv: readonly string[]): string => argv.map((a) => Buffer.from(a).toString('hex')).join(' ');
type Helper = ChildProcessByStdio<Writable, Readable, null>;
const helpers: Helper[] = [];
const dirs: string[] = [];
const tags: string[] = [];

afterEach(() => {
  for (const h of helpers.splice(0)) h.kill('SIGKILL');
  for (const t of tags.splice(0)) spawnSync('pkill', ['-KILL', '-x', '-f', `sleep ${t}`]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function helper(): { h: Helper; out: () => string; exited: Promise<unknown> } {
  const h = spawn('perl', ['-e', PROCESS_HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  helpers.push(h);
  let out = '';
  h.stdout.setEncoding('latin1').on('data', (c: string) => (out += c));
  h.stdout.on('error', () => undefined);
  const exited = new Promise((r) => h.once('exit', r));
  return { h, out: () => out, exited };
}

/** A `sleep` with an argument of its own (found, and killed after the test, by it). */
function sleeper(): { argv: string[]; running: () => boolean } {
  const t = String(3000 + Math.floor(Math.random() * 1_000_000));
  tags.push(t);
  return { argv: ['sleep', t], running: () => spawnSync('pgrep', ['-x', '-f', `sleep ${t}`]).status === 0 };
}

/** A shell program that counts its runs in `file` and succeeds from the `n`th on, then running `then`. */
function failsUntil(file: string, n: number, then = 'true'): string[] {
  return ['/bin/sh', '-c', `echo run >> "$0"; [ "$(wc -l < "$0")" -ge ${n} ] && ${then}`, file];
}

const runs = (file: string): number => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').length;
  } catch {
    return 0;
  }
};

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiln-ph-gone-'));
  dirs.push(d);
  return d;
}

describe('the process helper once kiln is gone', () => {
  test('a "d" program that fails (runc kill before its container exists) runs again until it succeeds; the process then ends', async () => {
    const { h, out, exited } = helper();
    const s = sleeper();
    const count = join(tmp(), 'count');
    h.stdin.write(`1 ${hex(s.argv)}\nd 1 ${hex(failsUntil(count, 3, `pkill -x -f "sleep ${s.argv[1] ?? ''}"`))}\n`);
    await expect.poll(() => /^p 1 \d+$/m.test(out())).toBe(true);
    h.stdin.end();
    await expect.poll(() => /^x 1 s 15$/m.test(out()), { timeout: 10_000 }).toBe(true);
    expect(runs(count)).toBe(3);
    await exited;
  });

  test('a process its "d" program does not stop (a runc waiting for a config nobody writes) is killed a few seconds later; one without a "d" program at once', async () => {
    const { h, out, exited } = helper();
    const stuck = sleeper();
    const plain = sleeper();
    h.stdin.write(`1 ${hex(stuck.argv)}\nd 1 ${hex(['/bin/false'])}\n2 ${hex(plain.argv)}\n`);
    await expect.poll(() => /^p 2 \d+$/m.test(out())).toBe(true);
    const gone = Date.now();
    h.stdin.end();
    await expect.poll(() => /^x 2 s 9$/m.test(out()), { timeout: 2_000 }).toBe(true);
    expect(stuck.running()).toBe(true);
    await expect.poll(() => /^x 1 s 9$/m.test(out()), { timeout: 15_000 }).toBe(true);
    expect(Date.now() - gone).toBeGreaterThanOrEqual(3_000);
    await exited;
  }, 30_000);

  test('a registered ("r") program that fails (a long-lived container still being created) runs again until it succeeds, then no more', async () => {
    const { h, exited } = helper();
    const count = join(tmp(), 'count');
    h.stdin.write(`r 7 ${hex(failsUntil(count, 3))}\n`);
    h.stdin.end();
    await expect.poll(() => runs(count), { timeout: 10_000 }).toBe(3);
    await exited;
    expect(runs(count)).toBe(3);
  });

  test('kiln gone for good (its pipes both closed): the helper does not end at the first report it cannot write; the cleanup goes on', async () => {
    const { h, exited } = helper();
    const s = sleeper();
    const plain = sleeper();
    const count = join(tmp(), 'count');
    h.stdin.write(`1 ${hex(s.argv)}\nd 1 ${hex(failsUntil(count, 3, `pkill -x -f "sleep ${s.argv[1] ?? ''}"`))}\n2 ${hex(plain.argv)}\n3 ${hex(['/bin/true'])}\n`);
    await expect.poll(() => s.running() && plain.running()).toBe(true);
    h.stdout.destroy();
    h.stdin.end();
    await expect.poll(() => plain.running(), { timeout: 2_000 }).toBe(false);
    await expect.poll(() => s.running(), { timeout: 10_000 }).toBe(false);
    expect(runs(count)).toBe(3);
    await exited;
  });
});
