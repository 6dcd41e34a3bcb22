import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { processAlive } from './process-alive.js';

describe('processAlive', () => {
  test('this process is alive; pid 0, negative, fractional and unused pids are not', () => {
    expect(processAlive(process.pid)).toBe(true);
    for (const pid of [0, -1, 1.5, Number.NaN, 2 ** 31 - 2]) expect(processAlive(pid)).toBe(false);
  });

  test('an exited process nobody reaps (a zombie, which still answers kill(0)) is gone', async () => {
    // sh starts a short sleep, then becomes a long one that never waits for it.
    const child = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number((await once(child.stdout, 'data'))[0]);
      await expect.poll(() => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]).toBe('Z');
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(processAlive(pid)).toBe(false);
    } finally {
      child.kill();
    }
  });
});
