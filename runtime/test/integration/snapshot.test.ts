import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { afterEach, describe, expect, test } from 'vitest';
import { LocalSnapshotter, unpackLayer } from '@kiln/runtime';
import { mountAt, mountsUnder, unmount } from '../../src/snapshot/mount.js';

const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;

const roots: string[] = [];
async function newRoot(): Promise<string> {
  const r = await mkdtemp(join(tmpdir(), 'kiln-snap-'));
  roots.push(r);
  return r;
}

afterEach(async () => {
  for (const r of roots.splice(0)) {
    expect(await mountsUnder(r)).toEqual([]);
    await rm(r, { recursive: true, force: true });
  }
});

async function layerOf(files: Record<string, string | null>): Promise<Readable> {
  const p = pack();
  for (const [name, body] of Object.entries(files)) {
    if (body === null) p.entry({ name, type: 'directory', mode: 0o755 });
    else p.entry({ name, mode: 0o644 }, body);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Readable.from([Buffer.concat(chunks)]);
}

test('overlayfs is detected on this machine', async () => {
  const s = new LocalSnapshotter({ root: await newRoot() });
  await s.init();
  expect(s.driver).toBe('overlay');
});

describe.for(['overlay', 'copy'] as const)('%s driver', (driver) => {
  test('prepare/commit chains, whiteouts and read-only committed mounts', async () => {
    const root = await newRoot();
    const s = new LocalSnapshotter({ root, driver });
    const base = await unpackLayer(s, 'base', undefined, createReadStream(BUSYBOX_LAYER));
    expect(base.layer.diffID).toBe('sha256:52ac1a37baf98ab219e45024ed1d97da4a018a6a52de1baba1e23735910758c5');
    expect(base.snapshot).toMatchObject({ id: 'base', kind: 'committed', depth: 1 });

    await s.prepare('work', 'base');
    const mounts = await s.mounts('work');
    expect(mounts[0]?.type).toBe(driver === 'overlay' ? 'overlay' : 'bind');
    const m = await s.mount('work');
    try {
      await writeFile(join(m.path, 'etc/new.txt'), 'new');
      await rm(join(m.path, 'etc/group'));
      await rm(join(m.path, 'home'), { recursive: true });
    } finally {
      await m.release();
    }
    const child = await s.commit('child', 'work');
    expect(child).toMatchObject({ id: 'child', parent: 'base', kind: 'committed', depth: 2 });
    await expect(s.stat('work')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });

    const v = await s.mount('child');
    try {
      expect(await readFile(join(v.path, 'etc/new.txt'), 'utf8')).toBe('new');
      expect((await readdir(join(v.path, 'etc'))).sort()).toEqual(['new.txt', 'passwd']);
      expect(await readdir(v.path)).not.toContain('home');
      expect(await readlink(join(v.path, 'bin/sh'))).toMatch(/busybox$/);
      await expect(writeFile(join(v.path, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    } finally {
      await v.release();
    }
    // the parent is untouched
    const b = await s.mount('base');
    try {
      expect((await readdir(join(b.path, 'etc'))).sort()).toEqual(['group', 'passwd']);
    } finally {
      await b.release();
    }
    await expect(s.remove('base')).rejects.toMatchObject({ code: 'SNAPSHOT_STATE' });
    await expect(s.prepare('child', 'base')).rejects.toMatchObject({ code: 'SNAPSHOT_EXISTS' });
  });

  test('opaque layers through unpackLayer, metadata survives a new instance', async () => {
    const root = await newRoot();
    const s = new LocalSnapshotter({ root, driver });
    await unpackLayer(s, 'l1', undefined, await layerOf({ 'd/': null, 'd/a': 'a', 'd/b': 'b', 'x': 'x' }));
    await unpackLayer(s, 'l2', 'l1', await layerOf({ 'd/': null, 'd/.wh..wh..opq': '', 'd/c': 'c', '.wh.x': '' }));
    const s2 = new LocalSnapshotter({ root, driver });
    const u = await s2.usage('l1');
    expect(u.inodes).toBeGreaterThanOrEqual(4); // d, d/a, d/b, x (+ meta.json)
    expect(u.size).toBeGreaterThan(0);
    expect((await s2.list()).map((i) => [i.id, i.parent ?? null])).toEqual([
      ['l1', null],
      ['l2', 'l1'],
    ]);
    const m = await s2.mount('l2');
    try {
      expect(await readdir(join(m.path, 'd'))).toEqual(['c']);
      expect(await readdir(m.path)).toEqual(['d']);
    } finally {
      await m.release();
    }
  });

  test('deep chains are flattened and stay correct', async () => {
    const root = await newRoot();
    const s = new LocalSnapshotter({ root, driver, maxDepth: 3 });
    let parent: string | undefined;
    for (let i = 0; i < 6; i++) {
      await unpackLayer(s, `l${i}`, parent, await layerOf({ [`f${i}`]: String(i), ...(i > 0 ? { [`.wh.f${i - 1}`]: '' } : {}) }));
      parent = `l${i}`;
    }
    const mounts = await s.mounts('l5');
    const lower = mounts[0]?.options.find((o) => o.startsWith('lowerdir=')) ?? '';
    expect(lower.split(':').length).toBeLessThanOrEqual(3);
    const m = await s.mount('l5');
    try {
      expect(await readdir(m.path)).toEqual(['f5']);
    } finally {
      await m.release();
    }
  });

  test('a cancelled mount or unpack leaves no mount and no snapshot', async () => {
    const root = await newRoot();
    const s = new LocalSnapshotter({ root, driver });
    await unpackLayer(s, 'base', undefined, await layerOf({ a: 'a' }));
    await s.prepare('act', 'base');
    const ac = new AbortController();
    ac.abort();
    await expect(s.mount('act', ac.signal)).rejects.toMatchObject({ code: 'CANCELLED' });
    const ac2 = new AbortController();
    async function* slow(): AsyncGenerator<Uint8Array> {
      const p = pack();
      p.entry({ name: 'big', size: 1 << 20 }).write(Buffer.alloc(1 << 19));
      for await (const c of p) {
        yield c as Buffer;
        ac2.abort();
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('source stopped');
      }
    }
    await expect(unpackLayer(s, 'c', 'base', slow(), { signal: ac2.signal })).rejects.toBeInstanceOf(Error);
    expect((await s.list()).map((i) => i.id)).toEqual(['act', 'base']);
    await s.remove('act');
    await s.remove('base');
    expect(await s.list()).toEqual([]);
  });
});

test('recover() cleans up after a crashed process and keeps what is valid', async () => {
  const root = await newRoot();
  const s = new LocalSnapshotter({ root });
  await unpackLayer(s, 'base', undefined, await layerOf({ a: 'a' }));
  await s.prepare('act', 'base');
  await s.mount('act'); // never released: the "crash"
  const { symlink: mkLink, mkdir: mk, utimes } = await import('node:fs/promises');
  await mkLink('../gone0000', join(root, 'snapshots/by-id/dangling'));
  await mk(join(root, 'snapshots/0rphan00/fs'), { recursive: true });
  await utimes(join(root, 'snapshots/0rphan00'), new Date(0), new Date(0));
  const r = await new LocalSnapshotter({ root }).recover();
  expect(r).toEqual({ mounts: 1, ids: 1, dirs: 1 });
  expect(await mountsUnder(root)).toEqual([]);
  expect((await s.list()).map((i) => i.id)).toEqual(['act', 'base']);
  const m = await s.mount('act');
  try {
    expect(await readdir(m.path)).toEqual(['a']);
  } finally {
    await m.release();
  }
});

test('a remove that fails part-way (EBUSY: a mount below) hides the snapshot at once; the next remove of the id finishes it, sparing a new snapshot of that id', async () => {
  const root = await newRoot();
  const s = new LocalSnapshotter({ root });
  const make = async (id: string, file: string): Promise<void> => {
    await s.prepare(`${id}-active`);
    const m = await s.mount(`${id}-active`);
    await mkdir(join(m.path, 'sub'), { recursive: true });
    await writeFile(join(m.path, file), 'x');
    await m.release();
    await s.commit(id, `${id}-active`);
  };
  await make('a', 'old');
  const src = await s.diffSource('a');
  const layer = src.driver === 'overlay' ? src.upper : src.dir;
  const busy = join(layer, 'sub');
  await mountAt({ type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] }, busy);
  try {
    await expect(s.remove('a')).rejects.toMatchObject({ code: 'EBUSY' });
    // half removed: no lookup finds it (a FROM must not stack on missing files)
    await expect(s.stat('a')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    expect(await s.list()).toEqual([]);
    // the id can be taken again meanwhile
    await make('a', 'new');
  } finally {
    await unmount(busy);
  }
  // the retry finishes the old directory and leaves the new snapshot alone
  await s.remove('a');
  expect((await s.list()).map((x) => x.id)).toEqual(['a']);
  const now = await s.diffSource('a');
  const dir = now.driver === 'overlay' ? now.upper : now.dir;
  expect(await readdir(dir)).toEqual(expect.arrayContaining(['new']));
  expect(await readdir(join(root, 'snapshots', 'by-id'))).toEqual(['a']);
  await s.remove('a');
  expect(await s.list()).toEqual([]);
  expect((await readdir(join(root, 'snapshots'))).filter((n) => /^[0-9a-f]{8}$/.test(n))).toEqual([]);
});
