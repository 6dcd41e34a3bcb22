import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { killQuietly, observeProcess } from '../../src/executor/runc.js';
import { processAlive } from '../../src/api/process-alive.js';

/**
 * The executor kills pids it did not just reap itself (a runc the process helper reported, a stuck
 * runc found by its command line in recover()) only if the pid still names the process it
 * observed: the same start time (field 22 of /proc/<pid>/stat). A pid reused meanwhile by an
 * unrelated process has another start time and is left alone.
 */

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function sleeper(file = 'sleep'): ChildProcess {
  const c = spawn(file, ['30'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

function exited(c: ChildProcess): Promise<NodeJS.Signals | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.signalCode);
  return new Promise((resolve) => c.once('exit', (_code, sig) => resolve(sig)));
}

async function spawned(c: ChildProcess): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    c.once('spawn', resolve);
    c.once('error', reject);
  });
  if (c.pid === undefined) throw new Error('no pid');
  return c.pid;
}

describe('kills guarded by the process start time', () => {
  test('a stale start time refuses the kill (the process lives on); the observed one kills; a reaped pid is not killed', async () => {
    const first = sleeper();
    const pid1 = await spawned(first);
    const seen1 = observeProcess(pid1);
    expect(seen1).toBeDefined();
    expect(seen1?.started).toMatch(/^\d+$/);
    // The same process observed again: the same start time.
    expect(observeProcess(pid1)).toEqual(seen1);
    // A start time that is not this process's (as if pid1 had been reused since).
    expect(killQuietly({ pid: pid1, started: `${Number(seen1?.started) + 1}` })).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(first.exitCode).toBeNull();
    expect(first.signalCode).toBeNull();
    // The observed one: killed.
    expect(killQuietly(seen1 as NonNullable<typeof seen1>)).toBe(true);
    expect(await exited(first)).toBe('SIGKILL');
    // Reaped (by Node): the pid names nothing, or another process; either way no kill.
    expect(killQuietly(seen1 as NonNullable<typeof seen1>)).toBe(false);
    expect(observeProcess(pid1)?.started === seen1?.started).toBe(false);
  });

  test('a guard holding an earlier process\'s start time does not kill a new process under the pid it names', async () => {
    const first = sleeper();
    const seen1 = observeProcess(await spawned(first));
    first.kill('SIGKILL');
    await exited(first);
    // Start times count clock ticks (10 ms at USER_HZ 100): the new process starts in a later one.
    await new Promise((r) => setTimeout(r, 30));
    const second = sleeper();
    const pid2 = await spawned(second);
    // A stale observation pointed at the new process's pid (what a reused pid looks like).
    expect(killQuietly({ pid: pid2, started: seen1?.started ?? '0' })).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(processAlive(pid2)).toBe(true);
    expect(second.signalCode).toBeNull();
    const seen2 = observeProcess(pid2);
    expect(seen2?.started).not.toBe(seen1?.started);
    expect(killQuietly(seen2 as NonNullable<typeof seen2>)).toBe(true);
    expect(await exited(second)).toBe('SIGKILL');
  });

  test("a command name with spaces and ')' is parsed from the last ')' on", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-kill-guard-'));
    try {
      const odd = join(dir, 'a) b c) d');
      await copyFile('/bin/sleep', odd);
      const child = sleeper(odd);
      const pid = await spawned(child);
      const plain = observeProcess(process.pid);
      const seen = observeProcess(pid);
      // Started after this test process (clock ticks since boot), and a number.
      expect(seen?.started).toMatch(/^\d+$/);
      expect(Number(seen?.started)).toBeGreaterThanOrEqual(Number(plain?.started));
      expect(killQuietly({ pid, started: '1' })).toBe(false);
      expect(killQuietly(seen as NonNullable<typeof seen>)).toBe(true);
      expect(await exited(child)).toBe('SIGKILL');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a process that is gone is not observed', () => {
    expect(observeProcess(2 ** 22 + 12345)).toBeUndefined();
  });
});
