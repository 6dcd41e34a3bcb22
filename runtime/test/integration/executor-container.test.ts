import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalSnapshotter, RuncExecutor, unpackLayer, type ContainerRequest, type ExecContainer } from '@kiln/runtime';
import { mountsUnder } from '../../src/snapshot/mount.js';

// Long-lived containers (ExecContainer) over real runc: the init via `runc run`, more processes
// via `runc exec`, signals, and a release that leaves nothing behind.

const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;

let root = '';
let snapshotter: LocalSnapshotter;
let executor: RuncExecutor;
let counter = 0;

beforeAll(async () => {
  try {
    execFileSync('runc', ['--version']);
  } catch {
    throw new Error('runc is required for these tests: apt-get install runc');
  }
  root = await mkdtemp(join(tmpdir(), 'kiln-exec-container-'));
  snapshotter = new LocalSnapshotter({ root });
  executor = new RuncExecutor({ root });
  await unpackLayer(snapshotter, 'busybox', undefined, createReadStream(BUSYBOX_LAYER));
});

afterAll(async () => {
  expect(await mountsUnder(root)).toEqual([]);
  await rm(root, { recursive: true, force: true });
  await rm(executor.runtimeDir, { recursive: true, force: true });
});

async function leftovers(): Promise<string[]> {
  return [
    ...(await readdir(join(executor.runtimeDir, 'runc')).catch(() => [])),
    ...(await readdir(join(executor.runtimeDir, 'bundles')).catch(() => [])),
    ...(await readdir(join(root, 'executor')).catch(() => [])),
  ];
}

/** A container on a read-only busybox root (its own throw-away upper), released afterwards. */
async function withContainer<T>(use: (c: ExecContainer) => Promise<T>, extra: Partial<ContainerRequest> = {}): Promise<T> {
  const c = await executor.newContainer({ rootfs: await snapshotter.mounts('busybox'), readonlyRootfs: true, ...extra });
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

  test('tty is refused with UNSUPPORTED; an unknown signal too', async () => {
    await withContainer(async (c) => {
      await expect(c.start({ args: ['sh'], env: ENV, tty: true })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
      const p = await c.start({ args: ['sleep', '100'], env: ENV });
      await expect(p.signal('SIGNOPE')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    });
  });

  test('a writable root: changes are seen by later processes; release kills the rest and removes every mount, bundle and runc state', async () => {
    const snapshot = `rw${++counter}`;
    await snapshotter.prepare(snapshot, 'busybox');
    try {
      const c = await executor.newContainer({ rootfs: await snapshotter.mounts(snapshot), mounts: [{ kind: 'tmpfs', target: '/scratch' }] });
      const init = await c.start({ args: ['sleep', '100'], env: ENV });
      const w = await c.start({ args: ['sh', '-c', 'echo hi > /made; echo t > /scratch/t'], env: ENV });
      expect(await w.wait()).toBe(0);
      const out = collect();
      const r = await c.start({ args: ['cat', '/made', '/scratch/t'], env: ENV, stdout: out.push });
      expect(await r.wait()).toBe(0);
      expect(out.bytes().toString()).toBe('hi\nt\n');
      const bundle = join(executor.runtimeDir, 'bundles', c.id);
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
      await snapshotter.remove(snapshot);
    }
  });
});
