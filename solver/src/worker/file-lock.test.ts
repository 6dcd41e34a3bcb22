import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { withFileLock } from './file-lock.js';

const dir = await mkdtemp(join(tmpdir(), 'kiln-file-lock-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync('true').pid as number;

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
          1,
        ),
      ),
    );
    expect(ran).toBe(8);
    expect(existsSync(lock)).toBe(false);
    expect(existsSync(`${lock}.break`)).toBe(false);
  }
  expect(worst).toBe(1);
});

test('a breaker left by a process that died while breaking does not stop others', async () => {
  const lock = join(dir, 'left-breaker');
  await writeFile(lock, String(deadPid()));
  await writeFile(`${lock}.break`, String(deadPid()));
  const got = await withFileLock(lock, undefined, async () => readFile(lock, 'utf8'), 1);
  expect(got).toBe(String(process.pid));
  expect(existsSync(`${lock}.break`)).toBe(false);
});

test('a live owner\'s lock is waited for, not broken', async () => {
  const lock = join(dir, 'live');
  await writeFile(lock, '1'); // pid 1 is alive
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await expect(withFileLock(lock, ac.signal, async () => 'held', 5)).rejects.toThrow();
  expect(await readFile(lock, 'utf8')).toBe('1');
});

test('an empty lock left by a process killed between creating and writing it is broken once it is old', async () => {
  const lock = join(dir, 'empty-stale');
  await writeFile(lock, '');
  const past = new Date(Date.now() - 60_000);
  await utimes(lock, past, past);
  // Without the fix this waits forever; the timeout turns that into a failure.
  const got = await withFileLock(lock, AbortSignal.timeout(5_000), async () => readFile(lock, 'utf8'), 1);
  expect(got).toBe(String(process.pid));
  expect(existsSync(lock)).toBe(false);
  expect(existsSync(`${lock}.break`)).toBe(false);
});

test('a fresh empty lock (its owner is writing its pid) is waited for, not broken', async () => {
  const lock = join(dir, 'empty-fresh');
  await writeFile(lock, '');
  await expect(withFileLock(lock, AbortSignal.timeout(100), async () => 'held', 5)).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
  expect(await readFile(lock, 'utf8')).toBe('');
});

test('an empty breaker left the same way does not stop others once it is old', async () => {
  const lock = join(dir, 'empty-breaker');
  await writeFile(lock, String(deadPid()));
  await writeFile(`${lock}.break`, '');
  const past = new Date(Date.now() - 60_000);
  await utimes(`${lock}.break`, past, past);
  const got = await withFileLock(lock, AbortSignal.timeout(5_000), async () => readFile(lock, 'utf8'), 1);
  expect(got).toBe(String(process.pid));
  expect(existsSync(`${lock}.break`)).toBe(false);
});
