import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { processHelpersOf, useExecutorSandbox } from './executor-helpers.js';

// The process helper (the perl co-process that starts each RUN's runc) killed alone while a RUN
// runs: the run fails, and its container must not run on for nobody.

const sb = useExecutorSandbox('kiln-exec-helper-killed-');

describe('runc executor, process helper killed during a run', () => {
  test('the run fails and its container is stopped and deleted (it ran on, its bundle removed)', { timeout: 60_000 }, async () => {
    const tag = String(100000 + Math.floor(Math.random() * 800000));
    await sb.snapshotter.prepare('victim', 'busybox');
    try {
      const run = sb.executor.run({ rootfs: await sb.snapshotter.mounts('victim'), process: { args: ['sleep', tag], env: ['PATH=/bin'] } });
      run.catch(() => undefined);
      const sleepers = (): string => spawnSync('pgrep', ['-f', `sleep ${tag}`], { encoding: 'utf8' }).stdout.trim();
      await expect.poll(sleepers, { timeout: 20_000, interval: 50 }).not.toBe('');
      const [helper] = processHelpersOf(process.pid);
      expect(helper).toBeDefined();
      process.kill(helper ?? 0, 'SIGKILL');
      await expect(run).rejects.toMatchObject({ code: 'EHELPER' });
      await expect.poll(sleepers, { timeout: 5_000, interval: 50 }).toBe('');
      await expect.poll(() => sb.leftovers(), { timeout: 5_000, interval: 100 }).toEqual([]);
    } finally {
      await sb.snapshotter.remove('victim');
    }
  });
});
