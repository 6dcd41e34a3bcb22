import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ContainerRequest, ExecContainer } from '@kiln/runtime';
import { compiledRuntime, useExecutorSandbox } from './executor-helpers.js';

// Long-lived containers (ExecContainer) over real runc: the init via `runc run`, more processes
// via `runc exec`, signals, and a release that leaves nothing behind.

const sb = useExecutorSandbox('kiln-exec-container-');
const leftovers = (): Promise<string[]> => sb.leftovers();
let counter = 0;

/** A container on a read-only busybox root (its own throw-away upper), released afterwards. */
async function withContainer<T>(use: (c: ExecContainer) => Promise<T>, extra: Partial<ContainerRequest> = {}): Promise<T> {
  const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true, ...extra });
  try {
    return await use(c);
  } finally {
    await c.release();
  }
}

function collect(): { push: (c: Uint8Array) => void; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return { push: (c) => chunks.push(Buffer.from(c)), bytes: () => Buffer.concat(chunks) };
}

const ENV = ['PATH=/bin'];

/** An AsyncIterable fed by push(). */
function inputQueue(): { push: (text: string) => void; iterable: AsyncIterable<Uint8Array> } {
  const queued: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  async function* iterable(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const next = queued.shift();
      if (next !== undefined) yield next;
      else await new Promise<void>((r) => (wake = r));
    }
  }
  return {
    push: (text) => {
      queued.push(new TextEncoder().encode(text));
      wake?.();
    },
    iterable: iterable(),
  };
}

describe('runc executor, long-lived containers', () => {
  test('init with stdin: cat gives back 2 MiB byte for byte; stderr apart; exit status', async () => {
    const data = randomBytes(2 << 20);
    await withContainer(async (c) => {
      const out = collect();
      const err = collect();
      async function* input(): AsyncGenerator<Uint8Array> {
        yield data.subarray(0, 1000);
        yield data.subarray(1000);
      }
      const p = await c.start({ args: ['sh', '-c', 'cat; printf "no newline" >&2; exit 3'], env: ENV, stdin: input(), stdout: out.push, stderr: err.push });
      expect(await p.wait()).toBe(3);
      expect(out.bytes().equals(data)).toBe(true);
      expect(err.bytes().toString()).toBe('no newline');
    });
    expect(await leftovers()).toEqual([]);
  });

  test('exec while the init runs: own pid, args, env, cwd and user; a signal ends a process with 128+n', async () => {
    await withContainer(async (c) => {
      const init = await c.start({ args: ['sleep', '100'], env: ENV });
      const out = collect();
      const p = await c.start({ args: ['sh', '-c', 'echo $$ $FOO $(pwd) $(id -u):$(id -g); ls /'], env: [...ENV, 'FOO=bar'], cwd: '/tmp', user: 'nobody', stdout: out.push });
      expect(await p.wait()).toBe(0);
      const [first, ...rest] = out.bytes().toString().split('\n');
      const [pid, foo, cwd, ids] = (first ?? '').split(' ');
      expect(Number(pid)).toBeGreaterThan(1);
      expect([foo, cwd, ids]).toEqual(['bar', '/tmp', '65534:65534']);
      expect(rest).toContain('bin');
      const sleeper = await c.start({ args: ['sleep', '100'], env: ENV });
      await sleeper.signal('SIGTERM');
      expect(await sleeper.wait()).toBe(128 + 15);
      await init.signal('KILL');
      expect(await init.wait()).toBe(128 + 9);
      await expect(c.start({ args: ['true'], env: ENV })).rejects.toMatchObject({ code: 'CONTAINER_EXITED' });
    });
    expect(await leftovers()).toEqual([]);
  });

  test('a command that is not there fails the start with runc\'s reason (init and exec); the container runs on', async () => {
    await withContainer(async (c) => {
      await expect(c.start({ args: ['/no/such/init'], env: ENV })).rejects.toMatchObject({ code: 'EXEC_FAILED', message: expect.stringContaining('/no/such/init') });
      // The failed init leaves no container: the next start fails as after any init exit.
      await expect(c.start({ args: ['true'], env: ENV })).rejects.toMatchObject({ code: 'CONTAINER_EXITED' });
    });
    await withContainer(async (c) => {
      // The init is pid 1 of its namespace: a signal it has no handler for (TERM) would be ignored.
      const init = await c.start({ args: ['sh', '-c', 'trap "exit 7" TERM; while :; do sleep 1; done'], env: ENV });
      await expect(c.start({ args: ['/no/such/tool'], env: ENV })).rejects.toMatchObject({ code: 'EXEC_FAILED', message: expect.stringContaining('/no/such/tool') });
      await expect(c.start({ args: ['true'], env: ENV, user: 'nosuchuser' })).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
      const ok = await c.start({ args: ['true'], env: ENV });
      expect(await ok.wait()).toBe(0);
      await init.signal('TERM');
      expect(await init.wait()).toBe(7);
    });
    expect(await leftovers()).toEqual([]);
  });

  test('stdin is let go once the process exits (its iterator returned); a throwing output handler does not end kiln', async () => {
    let returned = false;
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          pulled += 1;
          yield new TextEncoder().encode('abc');
          await new Promise((r) => setTimeout(r, 10));
        }
      } finally {
        returned = true;
      }
    }
    await withContainer(async (c) => {
      const err = collect();
      const p = await c.start({
        args: ['sh', '-c', 'head -c 6 >/dev/null; echo done >&2'],
        env: ENV,
        stdin: endless(),
        stdout: () => {
          throw new Error('handler bug');
        },
        stderr: err.push,
      });
      expect(await p.wait()).toBe(0);
      expect(err.bytes().toString()).toBe('done\n');
      await new Promise((r) => setTimeout(r, 100));
      expect(returned).toBe(true);
      const after = pulled;
      await new Promise((r) => setTimeout(r, 100));
      expect(pulled).toBe(after);
    });
    await withContainer(async (c) => {
      const q = await c.start({ args: ['sh', '-c', 'echo out'], env: ENV, stdout: () => { throw new Error('handler bug'); } });
      expect(await q.wait()).toBe(0);
    });
  });

  test('a terminal: the init and an exec\'d process get one, input is echoed, resize reaches it, stderr comes on it', async () => {
    await withContainer(async (c) => {
      const input = inputQueue();
      let out = '';
      const until = async (what: RegExp): Promise<void> => {
        for (let i = 0; i < 250 && !what.test(out); i++) await new Promise((r) => setTimeout(r, 20));
        expect(out).toMatch(what);
      };
      const sh = await c.start({ args: ['sh'], env: [...ENV, 'PS1=$ '], tty: true, stdin: input.iterable, stdout: (b) => { out += Buffer.from(b).toString(); } });
      input.push('tty; stty size\n');
      await until(/24 80/);
      // Echoed by the terminal, then the output: the terminal is the container's first.
      expect(out).toContain('tty; stty size');
      expect(out).toContain('/dev/pts/0');
      await sh.resize({ rows: 50, cols: 132 });
      input.push('stty size\n');
      await until(/50 132/);
      let execOut = '';
      const ex = await c.start({ args: ['sh', '-c', 'tty; echo to-stderr >&2; exit 4'], env: ENV, tty: true, stdout: (b) => { execOut += Buffer.from(b).toString(); } });
      expect(await ex.wait()).toBe(4);
      expect(execOut).toMatch(/\/dev\/pts\/\d+\r?\nto-stderr/);
      input.push('exit 3\n');
      expect(await sh.wait()).toBe(3);
    });
    expect(await leftovers()).toEqual([]);
  });

  test('a tty process sees its terminal size from its first instruction, before any resize', async () => {
    // Without process.consoleSize runc sizes the terminal only after the process started:
    // `stty size` then read 0x0 (busybox: "stty: standard input") in 3 of 15 runs.
    await withContainer(async (c) => {
      await c.start({ args: ['sleep', '100'], env: ENV });
      const seen: string[] = [];
      for (let i = 0; i < 6; i++) {
        let out = '';
        const p = await c.start({ args: ['stty', 'size'], env: ENV, tty: true, ttySize: { rows: 33, cols: 101 }, stdout: (b) => { out += Buffer.from(b).toString(); } });
        expect(await p.wait()).toBe(0);
        seen.push(out);
      }
      // The size is what this checks. A line may carry a second CR: runc copies to its own terminal
      // with output processing still on now and then (seen once in a CI run; not reproduced).
      for (const out of seen) expect(out).toMatch(/^33 101\r+\n$/);
    });
    expect(await leftovers()).toEqual([]);
  });

  test('an unknown signal is UNSUPPORTED', async () => {
    await withContainer(async (c) => {
      const p = await c.start({ args: ['sleep', '100'], env: ENV });
      await expect(p.signal('SIGNOPE')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    });
  });

  test('after its kiln process died (SIGKILL), the container is stopped and recover() removes its state', { timeout: 120_000 }, async () => {
    // The other process runs the compiled runtime: brought up to date first (incremental; one
    // tsc at a time, as the CLI tests build).
    const dist = compiledRuntime();
    const tag = String(100000 + Math.floor(Math.random() * 800000));
    // Another kiln process: a container with an init and an exec'd process, then killed outright.
    const script = `
      const { LocalSnapshotter, RuncExecutor } = await import(${JSON.stringify(dist)});
      const root = ${JSON.stringify(sb.root)};
      const s = new LocalSnapshotter({ root });
      const c = await new RuncExecutor({ root }).newContainer({ rootfs: await s.mounts('busybox'), readonlyRootfs: true });
      await c.start({ args: ['sleep', '${tag}'], env: ['PATH=/bin'] });
      await c.start({ args: ['sleep', '${tag}1'], env: ['PATH=/bin'] });
      process.stdout.write('ready\\n');
      setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => (d.toString().includes('ready') ? resolve() : undefined));
      child.once('exit', (code) => reject(new Error(`the kiln child exited (${code}) before its container ran`)));
    });
    const sleepers = (): string => spawnSync('pgrep', ['-f', `sleep ${tag}`], { encoding: 'utf8' }).stdout.trim();
    expect(sleepers().split('\n')).toHaveLength(2);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // Its runc processes are in their own process groups, so runc alone would keep the container
    // running; the process helper stops it once kiln is gone (runc kill, registered at start).
    for (let i = 0; i < 500 && sleepers() !== ''; i++) await new Promise((r) => setTimeout(r, 20));
    expect(sleepers()).toBe('');
    // What it left (bundle, runc state) is recover()'s.
    expect(await sb.executor.recover()).toBe(1);
    expect(await leftovers()).toEqual([]);
  });

  test('a writable root: changes are seen by later processes; release kills the rest and removes every mount, bundle and runc state', async () => {
    const snapshot = `rw${++counter}`;
    await sb.snapshotter.prepare(snapshot, 'busybox');
    try {
      const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts(snapshot), mounts: [{ kind: 'tmpfs', target: '/scratch' }] });
      const init = await c.start({ args: ['sleep', '100'], env: ENV });
      const w = await c.start({ args: ['sh', '-c', 'echo hi > /made; echo t > /scratch/t'], env: ENV });
      expect(await w.wait()).toBe(0);
      const out = collect();
      const r = await c.start({ args: ['cat', '/made', '/scratch/t'], env: ENV, stdout: out.push });
      expect(await r.wait()).toBe(0);
      expect(out.bytes().toString()).toBe('hi\nt\n');
      const bundle = join(sb.executor.runtimeDir, 'bundles', c.id);
      expect(existsSync(bundle)).toBe(true);
      const pidOfInit = Number(readFileSync(join(bundle, 'init.pid'), 'utf8'));
      const long = await c.start({ args: ['sleep', '100'], env: ENV });
      await c.release();
      expect(await init.wait()).toBe(128 + 9);
      expect(await long.wait()).toBeGreaterThan(128);
      expect(existsSync(`/proc/${pidOfInit}`)).toBe(false);
      expect(await leftovers()).toEqual([]);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(c.id);
      await expect(c.start({ args: ['true'], env: ENV })).rejects.toMatchObject({ code: 'CONTAINER_EXITED' });
    } finally {
      await sb.snapshotter.remove(snapshot);
    }
  });

  test('release while processes are starting: the starts settle, every process is killed, nothing is left', async () => {
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true, mounts: [{ kind: 'secret', target: '/run/secrets/s', data: new TextEncoder().encode('x') }] });
    const init = c.start({ args: ['sleep', '100'], env: ENV }).then(async (p) => p.wait(), (e: unknown) => (e as { code?: string }).code);
    await c.release();
    const settled = await init;
    expect([128 + 9, 'CONTAINER_EXITED']).toContain(settled);
    expect(await leftovers()).toEqual([]);
    const d = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true });
    const first = await d.start({ args: ['sleep', '100'], env: ENV });
    const ex = d.start({ args: ['sleep', '100'], env: ENV, tty: true }).then(async (p) => p.wait(), (e: unknown) => (e as { code?: string }).code);
    await new Promise((r) => setTimeout(r, 30));
    await d.release();
    const exSettled = await ex;
    expect(await first.wait()).toBe(128 + 9);
    // It settles, one way or another: killed (a status), refused (CONTAINER_EXITED), or, once in a
    // CI run under load, otherwise (not seen again in runs alone; its runc exec may fail by itself).
    expect(typeof exSettled === 'number' || exSettled === 'CONTAINER_EXITED' || exSettled === 'EXEC_FAILED', `the racing start settled as ${String(exSettled)}`).toBe(true);
    expect(await leftovers()).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(c.id);
  });
});
