import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { appendFileSync, closeSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { lutimes, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, test } from 'vitest';
import { ownProcessStart, processStart } from '../snapshot/process-start.js';
import { withFileLock } from './file-lock.js';

const dir = await mkdtemp(join(tmpdir(), 'kiln-file-lock-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Whether `path` exists (a lock is a symlink to no file: existsSync would say no). */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The owner a lock names: its symlink's target, or (an older kiln's) its content. */
function owner(lock: string): string {
  try {
    return readlinkSync(lock);
  } catch {
    return readFileSync(lock, 'utf8');
  }
}

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync('true').pid as number;

// The lock module as other processes load it: transpiled, as kiln's dist has it.
const here = fileURLToPath(new URL('.', import.meta.url));
const lib = join(dir, 'lib');
mkdirSync(lib);
mkdirSync(join(dir, 'snapshot'));
for (const [f, to] of [['file-lock.ts', lib], ['process-alive.ts', lib], ['../snapshot/process-start.ts', join(dir, 'snapshot')]] as const) {
  const js = ts.transpileModule(readFileSync(join(here, f), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  writeFileSync(join(to, f.replace(/^.*\//, '').replace(/\.ts$/, '.js')), js);
}
writeFileSync(join(lib, 'package.json'), '{"type":"module"}');

/** A process that takes `lock`, runs `body` (JS, awaited) under it, and says `held` on stdout once it holds it. */
function lockProcess(lock: string, body: string): ChildProcessByStdio<null, Readable, null> {
  const script = `
    const { withFileLock } = await import(${JSON.stringify(`file://${join(lib, 'file-lock.js')}`)});
    await withFileLock(${JSON.stringify(lock)}, undefined, async () => { process.stdout.write('held\\n'); ${body} }, { pollMs: 2 });`;
  return spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
}
/** The child's exit code, also when it has already exited (its 'exit' event would not come again). */
const exited = (c: ChildProcessByStdio<null, Readable, null>): Promise<number | null> =>
  c.exitCode !== null || c.signalCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', (code) => r(code)));

describe('withFileLock across processes', () => {
  test('processes contending for one lock run one at a time: a read-modify-write counter loses no update', async () => {
    const lock = join(dir, 'counter.lock');
    const counter = join(dir, 'counter');
    await writeFile(counter, '0');
    const rmw = `const fs = await import('node:fs/promises'); const n = Number(await fs.readFile(${JSON.stringify(counter)}, 'utf8')); await new Promise((r) => setTimeout(r, 2)); await fs.writeFile(${JSON.stringify(counter)}, String(n + 1));`;
    const kids = Array.from({ length: 4 }, () => lockProcess(lock, rmw));
    // Each process takes the lock once; this process takes it too, meanwhile.
    const mine = Promise.all(Array.from({ length: 4 }, () => withFileLock(lock, undefined, async () => {
      const n = Number(await readFile(counter, 'utf8'));
      await new Promise((r) => setTimeout(r, 2));
      await writeFile(counter, String(n + 1));
    }, { pollMs: 2 })));
    expect(await Promise.all(kids.map(exited))).toEqual([0, 0, 0, 0]);
    await mine;
    expect(await readFile(counter, 'utf8')).toBe('8');
    expect(present(lock)).toBe(false);
  });

  test('a lock whose owner was killed with SIGKILL while holding it is broken', async () => {
    const lock = join(dir, 'killed.lock');
    const child = lockProcess(lock, 'await new Promise(() => setInterval(() => {}, 1000));');
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    expect(owner(lock)).toBe(`${child.pid} ${processStart(child.pid as number) as string}`);
    child.kill('SIGKILL');
    await exited(child);
    expect(present(lock)).toBe(true); // the dead owner could not remove it
    const got = await withFileLock(lock, AbortSignal.timeout(5_000), async () => owner(lock), { pollMs: 1 });
    expect(got).toBe(`${process.pid} ${ownProcessStart()}`);
    expect(present(lock)).toBe(false);
  });

  test('a live owner in another process is waited for until it lets go', async () => {
    const lock = join(dir, 'handover.lock');
    const child = lockProcess(lock, 'await new Promise((r) => setTimeout(r, 150));');
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const t0 = Date.now();
    expect(await withFileLock(lock, AbortSignal.timeout(5_000), async () => owner(lock), { pollMs: 2 })).toBe(`${process.pid} ${ownProcessStart()}`);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(50);
    expect(await exited(child)).toBe(0);
  });
});

test('a creator stalled between making the lock and naming itself in it (its thread pool busy) is not broken as abandoned: one holder at a time', async () => {
  // The other process has one thread-pool thread, which a FIFO open blocks right after the lock
  // is made: a lock file created with O_EXCL stayed empty until the FIFO got a writer.
  const lock = join(dir, 'stalled.lock');
  const fifo = join(dir, 'stalled.fifo');
  const log = join(dir, 'stalled.log');
  spawnSync('mkfifo', [fifo]);
  writeFileSync(log, '');
  const script = `
    const fs = await import('node:fs');
    const { withFileLock } = await import(${JSON.stringify(`file://${join(lib, 'file-lock.js')}`)});
    const held = withFileLock(${JSON.stringify(lock)}, undefined, async () => {
      fs.appendFileSync(${JSON.stringify(log)}, 'A in\\n');
      await new Promise((r) => setTimeout(r, 300));
      fs.appendFileSync(${JSON.stringify(log)}, 'A out\\n');
    }, { pollMs: 2 });
    fs.open(${JSON.stringify(fifo)}, 'r', (err, fd) => { if (!err) fs.closeSync(fd); });
    await held;`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, UV_THREADPOOL_SIZE: '1' } });
  const done = exited(child);
  for (let i = 0; i < 500 && !present(lock); i++) await new Promise((r) => setTimeout(r, 10));
  expect(present(lock)).toBe(true);
  // As if the stall had lasted longer than any write takes (5 s).
  const past = new Date(Date.now() - 60_000);
  await lutimes(lock, past, past);
  // The FIFO gets its writer a moment later: the other process goes on.
  const unblock = new Promise<void>((resolve) =>
    setTimeout(() => {
      const w = openSync(fifo, 'w');
      closeSync(w);
      resolve();
    }, 150),
  );
  await withFileLock(lock, AbortSignal.timeout(10_000), async () => {
    appendFileSync(log, 'B in\n');
    await new Promise((r) => setTimeout(r, 300));
    appendFileSync(log, 'B out\n');
  }, { pollMs: 2 });
  await unblock;
  expect(await done).toBe(0);
  const seen = readFileSync(log, 'utf8');
  expect(["A in\nA out\nB in\nB out\n", "B in\nB out\nA in\nA out\n"]).toContain(seen);
  expect(present(lock)).toBe(false);
});

test('a dead owner\'s lock is broken once: of many waiters breaking it at the same time, one holds the lock at a time', async () => {
  let worst = 0;
  for (let round = 0; round < 30; round++) {
    const lock = join(dir, `race-${round}`);
    await writeFile(lock, String(deadPid()));
    let inside = 0;
    let ran = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withFileLock(
          lock,
          undefined,
          async () => {
            inside++;
            ran++;
            worst = Math.max(worst, inside);
            await new Promise((r) => setTimeout(r, 3));
            inside--;
          },
          { pollMs: 1 },
        ),
      ),
    );
    expect(ran).toBe(8);
    expect(present(lock)).toBe(false);
    expect(present(`${lock}.break`)).toBe(false);
  }
  expect(worst).toBe(1);
});

test('a breaker left by a process that died while breaking does not stop others', async () => {
  const lock = join(dir, 'left-breaker');
  await writeFile(lock, String(deadPid()));
  await writeFile(`${lock}.break`, String(deadPid()));
  const got = await withFileLock(lock, undefined, async () => owner(lock), { pollMs: 1 });
  expect(got).toBe(`${process.pid} ${ownProcessStart()}`);
  expect(present(`${lock}.break`)).toBe(false);
});

test('a live owner\'s lock is waited for, not broken; an abort ends the wait with the signal\'s reason', async () => {
  const lock = join(dir, 'live');
  await writeFile(lock, '1'); // pid 1 is alive
  const ac = new AbortController();
  const reason = new Error('stop');
  setTimeout(() => ac.abort(reason), 50);
  let ran = false;
  await expect(withFileLock(lock, ac.signal, async () => (ran = true), { pollMs: 5 })).rejects.toBe(reason);
  expect(ran).toBe(false);
  expect(await readFile(lock, 'utf8')).toBe('1');
});

test('a wait over maxWaitMs fails with the caller\'s error naming the owner; without onTimeout, a plain one', async () => {
  const lock = join(dir, 'max-wait');
  await writeFile(lock, '1');
  const t0 = Date.now();
  await expect(withFileLock(lock, undefined, async () => 'ran', { maxWaitMs: 100, onTimeout: (owner) => new Error(`held by ${owner}`) })).rejects.toThrow('held by 1');
  expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  await expect(withFileLock(lock, undefined, async () => 'ran', { maxWaitMs: 20 })).rejects.toThrow(`${lock} is held by process 1`);
  expect(await readFile(lock, 'utf8')).toBe('1');
});

test('an empty lock left by a process killed between creating and writing it is broken once it is old', async () => {
  const lock = join(dir, 'empty-stale');
  await writeFile(lock, '');
  const past = new Date(Date.now() - 60_000);
  await utimes(lock, past, past);
  // Without the fix this waits forever; the timeout turns that into a failure.
  const got = await withFileLock(lock, AbortSignal.timeout(5_000), async () => owner(lock), { pollMs: 1 });
  expect(got).toBe(`${process.pid} ${ownProcessStart()}`);
  expect(present(lock)).toBe(false);
  expect(present(`${lock}.break`)).toBe(false);
});

test('a fresh empty lock (its owner is writing its pid) is waited for, not broken', async () => {
  const lock = join(dir, 'empty-fresh');
  await writeFile(lock, '');
  await expect(withFileLock(lock, AbortSignal.timeout(100), async () => 'held', { pollMs: 5 })).rejects.toMatchObject({ name: 'TimeoutError' });
  expect(await readFile(lock, 'utf8')).toBe('');
});

test('an empty breaker left the same way does not stop others once it is old', async () => {
  const lock = join(dir, 'empty-breaker');
  await writeFile(lock, String(deadPid()));
  await writeFile(`${lock}.break`, '');
  const past = new Date(Date.now() - 60_000);
  await utimes(`${lock}.break`, past, past);
  const got = await withFileLock(lock, AbortSignal.timeout(5_000), async () => owner(lock), { pollMs: 1 });
  expect(got).toBe(`${process.pid} ${ownProcessStart()}`);
  expect(present(`${lock}.break`)).toBe(false);
});

test('a lock naming a live pid with another start time (the pid reused: a restarted container\'s kiln is pid 1 again) is broken', async () => {
  const lock = join(dir, 'pid-reused');
  const own = ownProcessStart() as string;
  await writeFile(lock, `${process.pid} ${own.replace(/:\d+$/, ':1')}`);
  // Without the start time this waits forever (the pid is this live process); the timeout turns that into a failure.
  const got = await withFileLock(lock, AbortSignal.timeout(5_000), async () => owner(lock), { pollMs: 1 });
  expect(got).toBe(`${process.pid} ${own}`);
});

test('a lock naming a live process by its own start time is waited for; so is a bare live pid (an older kiln\'s lock)', async () => {
  for (const content of [`1 ${processStart(1) as string}`, '1']) {
    const lock = join(dir, `live-${content.length}`);
    await writeFile(lock, content);
    await expect(withFileLock(lock, AbortSignal.timeout(100), async () => 'held', { pollMs: 5 })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(await readFile(lock, 'utf8')).toBe(content);
  }
});

test('a lock that names no owner (not a pid) is broken once it is old, waited for while fresh', async () => {
  const lock = join(dir, 'garbage');
  await writeFile(lock, 'not a pid\n');
  await expect(withFileLock(lock, AbortSignal.timeout(100), async () => 'held', { pollMs: 5 })).rejects.toMatchObject({ name: 'TimeoutError' });
  const past = new Date(Date.now() - 60_000);
  await utimes(lock, past, past);
  expect(await withFileLock(lock, AbortSignal.timeout(5_000), async () => 'held', { pollMs: 1 })).toBe('held');
});
