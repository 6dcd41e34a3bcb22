import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalSnapshotter, applyFileAction, type Snapshotter } from '@kiln/runtime';
import { RuntimeWorker } from '@kiln/solver';
import { readableInPlace } from '../../src/worker/snapshots.js';

// A file of a snapshot's top layer is read where it is (no mount) by checksums and single-file
// COPYs; everything else is mounted. Both must see exactly what a mount shows.

let root = '';
let s: LocalSnapshotter;
let worker: RuntimeWorker;
let mounts = 0;

/** `target` with some methods replaced (the others bound to it: it has private fields). */
function wrap(target: LocalSnapshotter, overrides: Partial<Record<keyof Snapshotter, unknown>>): Snapshotter {
  return new Proxy(target, {
    get(t, k) {
      if (typeof k === 'string' && k in overrides) return overrides[k as keyof Snapshotter];
      const v: unknown = Reflect.get(t, k, t);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  }) as Snapshotter;
}

/** A worker over `snapshotter` that runs file ops and checksums only (no containers, no images). */
function fileOpWorker(snapshotter: Snapshotter): RuntimeWorker {
  return new RuntimeWorker({
    root,
    snapshotter,
    executor: { run: () => Promise.reject(new Error('unused')) },
    content: undefined as never,
    ensureImage: () => Promise.reject(new Error('unused')),
    unpackLayer: () => Promise.reject(new Error('unused')),
    applyFileAction,
    localDirs: {},
  });
}

/** Commits `id` on `parent` after `fill` wrote into its mounted view. */
async function layer(id: string, parent: string | undefined, fill: (dir: string) => Promise<void>): Promise<void> {
  await s.prepare(`${id}-active`, parent);
  const m = await s.mount(`${id}-active`);
  try {
    await fill(m.path);
  } finally {
    await m.release();
  }
  await s.commit(id, `${id}-active`);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-inplace-'));
  s = new LocalSnapshotter({ root, driver: 'overlay' });
  await layer('base', undefined, async (d) => {
    await mkdir(join(d, 'dir/sub'), { recursive: true });
    await writeFile(join(d, 'dir/sub/old.txt'), 'lower old');
    await writeFile(join(d, 'shadowed.txt'), 'lower version');
    await writeFile(join(d, 'deleted.txt'), 'gone above');
    await writeFile(join(d, 'only-lower.txt'), 'lower only');
    await mkdir(join(d, 'opq'));
    await writeFile(join(d, 'opq/hidden.txt'), 'hidden by an opaque dir');
  });
  await layer('top', 'base', async (d) => {
    await writeFile(join(d, 'shadowed.txt'), 'upper version');
    await rm(join(d, 'deleted.txt'));
    await writeFile(join(d, 'dir/sub/new.txt'), 'upper new');
    // Removing and re-creating a directory makes it opaque in the upper layer.
    await rm(join(d, 'opq'), { recursive: true });
    await mkdir(join(d, 'opq'));
    await writeFile(join(d, 'opq/visible.txt'), 'in the opaque dir');
    await symlink('shadowed.txt', join(d, 'link.txt'));
  });
  const counting = wrap(s, {
    mount: async (id: string, signal?: AbortSignal) => {
      mounts++;
      return s.mount(id, signal);
    },
  });
  worker = fileOpWorker(counting);
}, 60_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('reading a snapshot in place', () => {
  test('only regular files held by the top layer (with real parent directories) are read in place', async () => {
    const top = await readableInPlace(s, 'top', '/shadowed.txt');
    expect(top).toBeDefined();
    expect(await readFile(join(top ?? '', 'shadowed.txt'), 'utf8')).toBe('upper version');
    expect(await readableInPlace(s, 'top', 'dir/sub/new.txt')).toBe(top);
    expect(await readableInPlace(s, 'top', '/opq/visible.txt')).toBe(top);
    for (const p of ['/deleted.txt', '/only-lower.txt', '/dir/sub/old.txt', '/opq/hidden.txt', '/dir', '/link.txt', '/', '/missing', '/../x']) {
      expect(await readableInPlace(s, 'top', p), p).toBeUndefined();
    }
    // An active snapshot changes: never read in place.
    await s.prepare('act', 'top');
    expect(await readableInPlace(s, 'act', '/shadowed.txt')).toBeUndefined();
    await s.remove('act');
    // A one-layer snapshot is its directory, for any path.
    expect(await readableInPlace(s, 'base', '/opq/hidden.txt')).toBeDefined();
  });

  test('checksums read in place equal those of a mount; everything else still mounts', async () => {
    const signal = new AbortController().signal;
    const ref = { snapshot: 'top', size: 0 };
    const viaMount = async (p: string, o = {}): Promise<string> => {
      const m = await s.mount('top');
      try {
        // A worker that cannot read in place: the snapshot looks like an active one to it.
        const w = fileOpWorker(
          wrap(s, {
            mounts: async () => [{ type: 'overlay', source: 'overlay', options: ['upperdir=/nonexistent'] }],
            mount: async () => ({ path: m.path, release: async () => undefined }),
          }),
        );
        return await w.checksum(ref, p, o, signal);
      } finally {
        await m.release();
      }
    };
    for (const p of ['/shadowed.txt', '/dir/sub/new.txt', '/opq/visible.txt']) {
      const before = mounts;
      expect(await worker.checksum(ref, p, {}, signal), p).toBe(await viaMount(p));
      expect(mounts - before, p).toBe(0);
    }
    for (const [p, o] of [['/dir', {}], ['/link.txt', { followLinks: true }], ['/*.txt', { wildcard: true }], ['/dir/sub/old.txt', {}]] as const) {
      const before = mounts;
      expect(await worker.checksum(ref, p, o, signal), p).toBe(await viaMount(p, o));
      expect(mounts - before, p).toBe(1);
    }
  });

  test('a single-file COPY from the top layer copies the upper version without mounting the source', async () => {
    const ctx = { signal: new AbortController().signal, platform: undefined, vertex: undefined as never, log: () => undefined, status: () => undefined };
    const copy = (src: string, dest: string) => ({
      kind: 'file' as const,
      file: {
        actions: [{ input: 0, secondaryInput: 1, output: 0, action: { kind: 'copy' as const, copy: { src, dest, createDestPath: true, allowWildcard: true, mode: -1, timestamp: -1n } } }],
      },
    });
    const before = mounts;
    const [out] = await worker.file(copy('/shadowed.txt', '/copied.txt').file, [{ snapshot: 'base', size: 0 }, { snapshot: 'top', size: 0 }], ctx);
    // One mount: the destination (an active overlay on base); the source was read in place.
    expect(mounts - before).toBe(1);
    const [out2] = await worker.file(copy('/dir/sub/old.txt', '/old.txt').file, [{ snapshot: 'base', size: 0 }, { snapshot: 'top', size: 0 }], ctx);
    expect(mounts - before).toBe(3); // a file of a lower layer: the source is mounted
    for (const [o, p, want] of [[out, 'copied.txt', 'upper version'], [out2, 'old.txt', 'lower old']] as const) {
      const m = await s.mount(o?.snapshot ?? '');
      try {
        expect(await readFile(join(m.path, p), 'utf8')).toBe(want);
      } finally {
        await m.release();
      }
    }
    expect(execFileSync('sh', ['-c', `grep -c ' ${root}' /proc/self/mountinfo || true`], { encoding: 'utf8' }).trim()).toBe('0');
  });
});
