import { spawn } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { compiledRuntime, processHelpersOf, processesWithArg, useExecutorSandbox } from './executor-helpers.js';

// The process helper killed alone (the OOM killer, a `pkill perl`) while kiln runs on: what kiln
// registered with it (`runc kill` of a long-lived container) died with it, and kiln started no
// other, so a kiln killed later left its containers running, those registered before and after.

const sb = useExecutorSandbox('kiln-ph-respawn-');

describe('the process helper killed alone', () => {
  test('kiln starts another and registers its containers with it again: a kiln killed later leaves no container running, of before or after', { timeout: 120_000 }, async () => {
    const dist = compiledRuntime();
    const tag = String(100000 + Math.floor(Math.random() * 800000));
    // A container, then (told on stdin, once the test killed the helper) a second one.
    const script = `
      const { LocalSnapshotter, RuncExecutor } = await import(${JSON.stringify(dist)});
      const root = ${JSON.stringify(sb.root)};
      const s = new LocalSnapshotter({ root });
      const e = new RuncExecutor({ root });
      const container = async (arg) => (await e.newContainer({ rootfs: await s.mounts('busybox'), readonlyRootfs: true })).start({ args: ['sleep', arg], env: ['PATH=/bin'] });
      await container('${tag}1');
      process.stdout.write('first\\n');
      process.stdin.once('data', async () => {
        await container('${tag}2');
        process.stdout.write('second\\n');
      });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const said = (what: string): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const t = setInterval(() => {
          if (out.includes(`${what}\n`)) {
            clearInterval(t);
            resolve();
          } else if (child.exitCode !== null) {
            clearInterval(t);
            reject(new Error(`the kiln child exited (${child.exitCode}) before it said ${what}`));
          }
        }, 20);
      });
    try {
      await said('first');
      const pid = child.pid ?? 0;
      const [first] = processHelpersOf(pid);
      expect(first).toBeDefined();
      process.kill(first ?? 0, 'SIGKILL');
      await expect.poll(() => processHelpersOf(pid).filter((h) => h !== first), { timeout: 5_000 }).toHaveLength(1);
      child.stdin.write('go\n');
      await said('second');
      expect([...processesWithArg(`${tag}1`), ...processesWithArg(`${tag}2`)]).toHaveLength(2);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      await expect.poll(() => [...processesWithArg(`${tag}1`), ...processesWithArg(`${tag}2`)], { timeout: 10_000 }).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      for (const p of [...processesWithArg(`${tag}1`), ...processesWithArg(`${tag}2`)]) process.kill(p, 'SIGKILL');
    }
    expect(await sb.executor.recover()).toBe(2);
    expect(await sb.leftovers()).toEqual([]);
  });
});
