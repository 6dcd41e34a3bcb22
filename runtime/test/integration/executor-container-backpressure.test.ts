import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { ExecContainer } from '@kiln/runtime';
import { useExecutorSandbox } from './executor-helpers.js';

// Backpressure of a container process's output over real runc: an output callback that returns
// a promise holds further reading until it settles, so a fast writer blocks in the kernel (a full
// pipe, a full terminal) instead of kiln buffering what it writes.

const sb = useExecutorSandbox('kiln-exec-backpressure-');
const ENV = ['PATH=/bin'];
const MiB = 1 << 20;
/** What kiln may hold between the writer's write() and the consumer, beyond one chunk per fd. */
const BOUND = MiB;

/** An output callback that acknowledges each chunk a turn later, and can be held shut. */
function slowSink(): {
  sink: (chunk: Uint8Array) => Promise<void>;
  received: () => number;
  acked: () => number;
  digest: () => string;
  allZero: () => boolean;
  hold: () => void;
  open: () => void;
  holdAt: (bytes: number) => void;
} {
  let received = 0;
  let acked = 0;
  let zero = true;
  let holdAt = Infinity;
  const hash = createHash('sha256');
  let gate: Promise<void> = Promise.resolve();
  let opener: (() => void) | undefined;
  const hold = (): void => {
    if (opener !== undefined) return;
    gate = new Promise((r) => (opener = r));
  };
  return {
    sink: async (chunk) => {
      received += chunk.byteLength;
      hash.update(chunk);
      if (zero && chunk.some((b) => b !== 0)) zero = false;
      if (received >= holdAt) {
        holdAt = Infinity;
        hold();
      }
      await gate;
      await new Promise((r) => setImmediate(r));
      acked += chunk.byteLength;
    },
    received: () => received,
    acked: () => acked,
    digest: () => hash.digest('hex'),
    allZero: () => zero,
    hold,
    open: () => {
      opener?.();
      opener = undefined;
    },
    holdAt: (bytes) => (holdAt = bytes),
  };
}

async function until(what: () => boolean, ms = 10_000): Promise<void> {
  for (let waited = 0; !what() && waited < ms; waited += 10) await new Promise((r) => setTimeout(r, 10));
  expect(what()).toBe(true);
}

async function output(c: ExecContainer, script: string): Promise<string> {
  let out = '';
  const p = await c.start({ args: ['sh', '-c', script], env: ENV, stdout: (b) => void (out += Buffer.from(b).toString()) });
  expect(await p.wait()).toBe(0);
  return out;
}

/**
 * While the consumer is held: the writer (pid in /scratch/pid) has not finished, and what it has
 * written (its wchar) less what the consumer got is what sits in pipes, terminals and kiln.
 */
async function inFlight(c: ExecContainer, received: number): Promise<number> {
  // A moment for the writer to fill what it can.
  await new Promise((r) => setTimeout(r, 300));
  const probe = await output(c, 'grep ^wchar /proc/$(cat /scratch/pid)/io; test -e /scratch/done && echo done || echo running');
  expect(probe).toMatch(/^wchar: \d+\nrunning\n$/);
  const written = Number(/wchar: (\d+)/.exec(probe)?.[1]);
  if (process.env['KILN_BACKPRESSURE_REPORT'] !== undefined) process.stderr.write(`in flight: written ${written}, received ${received}, ${written - received}\n`);
  return written - received;
}

describe('runc executor, output backpressure', () => {
  test('64 MiB to a slow consumer: all bytes in order, the writer blocks while the consumer holds, wait() after the last promise', { timeout: 120_000 }, async () => {
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true, mounts: [{ kind: 'tmpfs', target: '/scratch' }] });
    try {
      await c.start({ args: ['sleep', '1000'], env: ENV });
      await output(c, 'head -c 67108864 /dev/urandom > /scratch/data');
      const s = slowSink();
      s.hold();
      s.holdAt(32 * MiB);
      const writer = await c.start({ args: ['sh', '-c', 'cat /scratch/data & echo $! > /scratch/pid; wait; touch /scratch/done'], env: ENV, stdout: s.sink });
      let waited = false;
      void writer.wait().then(() => (waited = true));
      // Held from the start: one chunk taken, the rest waits in the kernel.
      await until(() => s.received() > 0);
      expect(await inFlight(c, s.received())).toBeLessThanOrEqual(BOUND);
      expect(s.received()).toBeLessThanOrEqual(BOUND);
      expect(waited).toBe(false);
      // Held again half-way (the sink holds itself at 32 MiB).
      s.open();
      await until(() => s.received() >= 32 * MiB, 60_000);
      const mid = await inFlight(c, s.received());
      expect(mid).toBeGreaterThan(0);
      expect(mid).toBeLessThanOrEqual(BOUND);
      s.open();
      expect(await writer.wait()).toBe(0);
      // wait() resolved only after the last chunk's promise settled.
      expect(s.acked()).toBe(64 * MiB);
      expect(s.received()).toBe(64 * MiB);
      const sum = (await output(c, 'sha256sum /scratch/data')).split(' ')[0];
      expect(s.digest()).toBe(sum);
    } finally {
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });

  test('a process that exits while its output is held: no callback runs while a promise is pending, wait() after the last one settled', { timeout: 60_000 }, async () => {
    // Node resumes a child's stdout and stderr when the child exits (child_process flushStdio):
    // what the process left in the pipe must still wait for the pending promise.
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true });
    try {
      await c.start({ args: ['sleep', '1000'], env: ENV });
      for (const tty of [false, true]) {
        let pending = 0;
        let most = 0;
        let settled = 0;
        let received = 0;
        const sink = async (chunk: Uint8Array): Promise<void> => {
          received += chunk.byteLength;
          pending++;
          most = Math.max(most, pending);
          await new Promise((r) => setTimeout(r, 300));
          pending--;
          settled += chunk.byteLength;
        };
        const p = await c.start({ args: ['sh', '-c', 'echo first; sleep 0.1; head -c 30000 /dev/zero; echo; echo last'], env: ENV, tty, stdout: sink, stderr: sink });
        expect(await p.wait()).toBe(0);
        const atWait = settled;
        expect({ tty, most, pending }).toEqual({ tty, most: 1, pending: 0 });
        expect(atWait).toBe(received);
        expect(received).toBeGreaterThanOrEqual(30000 + 12);
      }
    } finally {
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });

  test('release stops waiting for a consumer that never lets go, also for a process that has already exited', { timeout: 60_000 }, async () => {
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true, mounts: [{ kind: 'tmpfs', target: '/scratch' }] });
    let code: unknown = 'pending';
    try {
      await c.start({ args: ['sleep', '1000'], env: ENV });
      let received = 0;
      // The process writes less than a pipe holds and exits; its output is never taken.
      const p = await c.start({
        args: ['sh', '-c', 'head -c 30000 /dev/zero; echo $$ > /scratch/pid'],
        env: ENV,
        stdout: (chunk) => {
          received += chunk.byteLength;
          return new Promise<void>(() => undefined);
        },
      });
      void p.wait().then((n) => (code = n), (e: unknown) => (code = e));
      await until(() => received > 0);
      // Gone: its pid is no longer in the container.
      for (let i = 0; i < 100; i++) {
        if ((await output(c, 'kill -0 $(cat /scratch/pid) 2>/dev/null && echo running || echo gone')) === 'gone\n') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(code).toBe('pending');
      await Promise.race([c.release(), new Promise((r) => setTimeout(r, 10_000))]);
      for (let i = 0; i < 100 && code === 'pending'; i++) await new Promise((r) => setTimeout(r, 20));
      expect(code).toBe(0);
    } finally {
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });

  test('a terminal: input the process reads only after writing its output does not stall the relay (its output keeps flowing)', { timeout: 60_000 }, async () => {
    // The relay's writes into the terminal must not block it: a container that writes 4 MiB
    // before it reads 1 MiB of input would otherwise wait on the relay reading its output while
    // the relay waits on it reading its input.
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true });
    try {
      await c.start({ args: ['sleep', '1000'], env: ENV });
      let received = 0;
      let first: (() => void) | undefined;
      const begun = new Promise<void>((r) => (first = r));
      async function* input(): AsyncGenerator<Uint8Array> {
        await begun;
        for (let i = 0; i < 16; i++) yield new Uint8Array(64 * 1024).fill(120);
      }
      const p = await c.start({
        args: ['sh', '-c', 'stty raw -echo; echo go; head -c 4194304 /dev/zero; head -c 1048576 >/dev/null; echo read'],
        env: ENV,
        tty: true,
        stdin: input(),
        stdout: (chunk) => {
          received += chunk.byteLength;
          first?.();
        },
      });
      const code = await Promise.race([p.wait(), new Promise<string>((r) => setTimeout(() => r(`stuck after ${received} bytes of output`), 20_000))]);
      expect(code).toBe(0);
      expect(received).toBe(4 * MiB + 'go\r\nread\r\n'.length);
    } finally {
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });

  test('a terminal: 16 MiB through the pty relay to a slow consumer, the writer blocks while held; release does not wait for a consumer that never lets go', { timeout: 120_000 }, async () => {
    const c = await sb.executor.newContainer({ rootfs: await sb.snapshotter.mounts('busybox'), readonlyRootfs: true, mounts: [{ kind: 'tmpfs', target: '/scratch' }] });
    try {
      await c.start({ args: ['sleep', '1000'], env: ENV });
      const s = slowSink();
      s.hold();
      const writer = await c.start({ args: ['sh', '-c', 'head -c 16777216 /dev/zero & echo $! > /scratch/pid; wait; touch /scratch/done'], env: ENV, tty: true, stdout: s.sink });
      await until(() => s.received() > 0);
      expect(await inFlight(c, s.received())).toBeLessThanOrEqual(BOUND);
      s.open();
      expect(await writer.wait()).toBe(0);
      expect(s.received()).toBe(16 * MiB);
      expect(s.acked()).toBe(16 * MiB);
      expect(s.allZero()).toBe(true);

      // A terminal whose output is held: typed input and a resize still get through the relay.
      const held = slowSink();
      held.hold();
      const queued: Uint8Array[] = [];
      let wake: (() => void) | undefined;
      async function* keys(): AsyncGenerator<Uint8Array> {
        for (;;) {
          const next = queued.shift();
          if (next !== undefined) yield next;
          else await new Promise<void>((r) => (wake = r));
        }
      }
      const sh = await c.start({ args: ['sh', '-c', 'echo $$ > /scratch/cat; yes & exec cat > /scratch/in'], env: ENV, tty: true, stdin: keys(), stdout: held.sink });
      await until(() => held.received() > 0);
      await new Promise((r) => setTimeout(r, 300));
      queued.push(new TextEncoder().encode('hello\n'));
      wake?.();
      await sh.resize({ rows: 40, cols: 100 });
      let typed = '';
      for (let i = 0; i < 100 && typed !== 'hello\n'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        typed = await output(c, 'cat /scratch/in 2>/dev/null; true');
      }
      expect(typed).toBe('hello\n');
      expect(await output(c, 'stty -F /proc/$(cat /scratch/cat)/fd/0 size')).toBe('40 100\n');
      expect(held.received()).toBeLessThanOrEqual(BOUND);
      // The consumer never lets go: release still ends the shell and leaves nothing.
      const started = Date.now();
      await c.release();
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await sh.wait()).toBeGreaterThan(128);
    } finally {
      await c.release();
    }
    expect(await sb.leftovers()).toEqual([]);
  });
});
