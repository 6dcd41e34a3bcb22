import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ExecProcess } from '@kiln/runtime';
import { compiledRuntime, processesWithArg, readOrEmpty, useExecutorSandbox } from './executor-helpers.js';

// A tty process's runc (`runc run` or `runc exec` on the pty relay's terminal) takes the
// container's terminal from its last init stage over a socket it holds both ends of. When that
// stage dies first (its container is killed while the exec starts), `runc exec` waits for the
// terminal for ever and never reaps the dead stage; the container's init, as the last process of
// its pid namespace, waits for that reaping, and `runc run` for its init: runc run, runc exec and
// the relay stayed behind a killed kiln, and a release waited for them for ever.
// These tests stop the starting exec's last stage (SIGSTOP) after it read its config and before it
// made its terminal, so the container's death reaches it there. (Dead before it read its config,
// runc exec fails by itself: the unread config resets the connection.) Its environment of 5000
// variables, which the stage sets one by one, makes that window last a while.

const sb = useExecutorSandbox('kiln-exec-tty-kill-');
const ENV = ['PATH=/bin'];
/** The environment of the execs to catch: big enough that the last stage takes a while to set it. */
const bigEnv = (): string[] => ['PATH=/bin', ...Array.from({ length: 5000 }, (_, i) => `K${i}=v`)];

/** Pids of processes whose command line names `needle` (an argument of it, or part of one). */
function processesNaming(needle: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    if (readOrEmpty(`/proc/${name}/cmdline`).split('\0').some((a) => a.includes(needle))) found.push(Number(name));
  }
  return found;
}

/** The `runc exec` processes of container `id` (not their pty relays, whose argv names it too). */
function runcExecs(id: string): number[] {
  return processesNaming(id).filter((pid) => readOrEmpty(`/proc/${pid}/comm`) === 'runc\n' && readOrEmpty(`/proc/${pid}/cmdline`).split('\0').includes('exec'));
}

/** The last init stage (`runc:[2:INIT]`) among `runc`'s children, if it has one. */
function lastStage(runc: number): number | undefined {
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${runc}/task`);
  } catch {
    return undefined;
  }
  for (const t of tasks) {
    for (const kid of readOrEmpty(`/proc/${runc}/task/${t}/children`).split(' ').filter((k) => k !== '')) {
      if (readOrEmpty(`/proc/${kid}/comm`) === 'runc:[2:INIT]\n') return Number(kid);
    }
  }
  return undefined;
}

/** Bytes `pid` has read (its config comes over a socket: some 56 KB with {@link bigEnv}). */
function bytesRead(pid: number): number {
  return Number(/rchar: (\d+)/.exec(readOrEmpty(`/proc/${pid}/io`))?.[1] ?? 0);
}

/**
 * Waits for a `runc exec` of `id` to start and stops (SIGSTOP) its last init stage once that has
 * read its config and while it has not made the process's terminal yet (its stdin still
 * /dev/null). A stage caught too late is let go and the next exec is tried; `next` starts one when
 * the caller runs them itself.
 */
async function stopBeforeTerminal(id: string, next?: () => Promise<void>): Promise<number> {
  const seen = new Set<number>();
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const started = next?.();
    let runc: number | undefined;
    for (const end = Date.now() + 20_000; runc === undefined && Date.now() < end; ) {
      runc = runcExecs(id).find((p) => !seen.has(p));
      if (runc === undefined) await new Promise((r) => setImmediate(r));
    }
    if (runc === undefined) throw new Error(`no runc exec of ${id} started`);
    seen.add(runc);
    // The stage lives for milliseconds before it makes the terminal: looked for without yielding.
    let stage: number | undefined;
    for (const end = Date.now() + 2000; stage === undefined && Date.now() < end; ) stage = lastStage(runc);
    for (const end = Date.now() + 2000; stage !== undefined && bytesRead(stage) < 40_000 && Date.now() < end; );
    if (stage !== undefined && bytesRead(stage) >= 40_000) {
      process.kill(stage, 'SIGSTOP');
      let stdin = '';
      try {
        stdin = readlinkSync(`/proc/${stage}/fd/0`);
      } catch {
        // gone
      }
      if (stdin === '/dev/null') return stage;
      process.kill(stage, 'SIGCONT');
    }
    await started;
  }
  throw new Error('no exec was caught before it made its terminal');
}

/** Waits up to `ms` for `check` to hold; returns whether it did. */
async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 25))) if (check()) return true;
  return check();
}

/** SIGKILLs what a failed run left (by pid): runc exec first, which unblocks the rest. */
function killLeftovers(id: string): void {
  for (const pid of [...runcExecs(id), ...processesNaming(id)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

describe('tty processes of long-lived containers whose container dies while an exec starts', () => {
  test('kiln killed (SIGKILL) while a tty exec starts: runc run, runc exec, the pty relays and the container are all gone in seconds; recover() removes the state', { timeout: 120_000 }, async () => {
    const dist = compiledRuntime();
    const tag = String(100000 + Math.floor(Math.random() * 800000));
    // Another kiln process: a tty init, a tty shell exec'd beside it, then short tty execs one
    // after another until it is killed.
    const script = `
      const { LocalSnapshotter, RuncExecutor } = await import(${JSON.stringify(dist)});
      const root = ${JSON.stringify(sb.root)};
      const s = new LocalSnapshotter({ root });
      const c = await new RuncExecutor({ root }).newContainer({ rootfs: await s.mounts('busybox'), readonlyRootfs: true });
      async function* never() { await new Promise(() => undefined); }
      const tty = { env: ['PATH=/bin'], tty: true, stdin: never(), stdout: () => undefined };
      await c.start({ args: ['sleep', '${tag}'], ...tty });
      await c.start({ args: ['sh'], ...tty });
      process.stdout.write('ready ' + c.id + '\\n');
      for (;;) await (await c.start({ args: ['sh', '-c', 'exit 0'], ...tty, env: ${JSON.stringify(bigEnv())} })).wait();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const id = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /ready (\S+)\n/.exec(out);
        if (m?.[1] !== undefined) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`the kiln child exited (${code}) before its container ran`)));
    });
    const bundle = join(sb.executor.runtimeDir, 'bundles', id);
    const init = Number(readOrEmpty(join(bundle, 'init.pid')));
    expect(init).toBeGreaterThan(0);
    try {
      await stopBeforeTerminal(id);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // Named by id: runc run and runc exec, the relays (runc's argv is theirs), the container's
      // sleep by its tag; the init by pid (an exiting process has no command line).
      const left = (): number[] => [...new Set([...processesNaming(id), ...processesNaming(bundle), ...processesWithArg(tag), ...(readOrEmpty(`/proc/${init}/stat`) === '' ? [] : [init])])];
      await eventually(() => left().length === 0, 10_000);
      expect(left().map((pid) => `${pid} ${readOrEmpty(`/proc/${pid}/cmdline`).replaceAll('\0', ' ').slice(0, 120)}`)).toEqual([]);
    } finally {
      killLeftovers(id);
    }
    expect(await sb.executor.recover()).toBe(1);
    expect(await sb.leftovers()).toEqual([]);
  });

  test('release while a tty exec starts whose last stage the container\'s death killed: the release ends and the exec settles; nothing is left', { timeout: 120_000 }, async () => {
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true });
    const settled: Promise<unknown>[] = [];
    try {
      await c.start({ args: ['sleep', '100'], env: ENV });
      const next = async (): Promise<void> => {
        const p = c.start({ args: ['sh', '-c', 'exit 0'], env: bigEnv(), tty: true });
        const done = p.then(async (proc: ExecProcess) => proc.wait(), (e: unknown) => (e as { code?: string }).code);
        settled.push(done);
        await done;
      };
      await stopBeforeTerminal(c.id, next);
      const released = await Promise.race([c.release().then(() => true), new Promise((r) => setTimeout(() => r(false), 15_000))]);
      expect(released).toBe(true);
      const last = await Promise.race([settled[settled.length - 1], new Promise((r) => setTimeout(() => r('pending'), 5_000))]);
      expect([128 + 9, 'CONTAINER_EXITED', 'EXEC_FAILED']).toContain(last);
      expect(processesNaming(c.id)).toEqual([]);
    } finally {
      killLeftovers(c.id);
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });

  test('the init killed while a tty exec starts: the exec\'s start settles (CONTAINER_EXITED) and the init ends, without a release', { timeout: 120_000 }, async () => {
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true });
    try {
      const init = await c.start({ args: ['sleep', '100'], env: ENV });
      let last: Promise<unknown> = Promise.resolve();
      const next = async (): Promise<void> => {
        const p = c.start({ args: ['sh', '-c', 'exit 0'], env: bigEnv(), tty: true });
        last = p.then(async (proc: ExecProcess) => proc.wait(), (e: unknown) => (e as { code?: string }).code);
        await last;
      };
      await stopBeforeTerminal(c.id, next);
      await init.signal('KILL');
      const timeout = <T>(p: Promise<T>): Promise<T | 'pending'> => Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 10_000))]);
      expect(await timeout(last)).toBe('CONTAINER_EXITED');
      expect(await timeout(init.wait())).toBe(128 + 9);
    } finally {
      killLeftovers(c.id);
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });
});
