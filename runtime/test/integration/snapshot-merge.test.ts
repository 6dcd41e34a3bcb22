import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { afterEach, describe, expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';
import { mountsUnder } from '../../src/snapshot/mount.js';
import { commitWith as commit, tree } from './snapshot-helpers.js';

/** Commits with a diffID label, as image layers have (exports reuse the layer blobs). */
const commitWith = (s: LocalSnapshotter, id: string, parent: string | undefined, change: (dir: string) => Promise<void>): Promise<void> =>
  commit(s, id, parent, change, { 'kiln.diffID': `sha256:${id}` });

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) {
    expect(await mountsUnder(r)).toEqual([]);
    await rm(r, { recursive: true, force: true });
  }
});

async function setup(): Promise<LocalSnapshotter> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-merge-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver: 'overlay' });
  await s.init();
  return s;
}

/**
 * base: shared=base, base-only, dir/x
 * A = base + a.txt, shared=A, dir/a-in-dir
 * C = base − base-only (whiteout), + c.txt, shared=C, dir made opaque holding only y
 */
async function fixture(s: LocalSnapshotter): Promise<void> {
  await commitWith(s, 'base', undefined, async (d) => {
    await writeFile(join(d, 'shared'), 'base');
    await writeFile(join(d, 'base-only'), 'base');
    await mkdir(join(d, 'dir'));
    await writeFile(join(d, 'dir', 'x'), 'x');
  });
  await commitWith(s, 'A', 'base', async (d) => {
    await writeFile(join(d, 'a.txt'), 'a');
    await writeFile(join(d, 'shared'), 'A');
    await writeFile(join(d, 'dir', 'a-in-dir'), 'a');
  });
  await commitWith(s, 'C', 'base', async (d) => {
    await rm(join(d, 'base-only'));
    await writeFile(join(d, 'c.txt'), 'c');
    await writeFile(join(d, 'shared'), 'C');
    await rm(join(d, 'dir'), { recursive: true });
    await mkdir(join(d, 'dir'));
    await writeFile(join(d, 'dir', 'y'), 'y');
  });
}

describe('LocalSnapshotter.merge on overlayfs', () => {
  test('later inputs win; a whiteout or opaque dir in a later input hides what an earlier input has', async () => {
    const s = await setup();
    await fixture(s);
    await s.merge('AC', ['A', 'C']);
    expect(await tree(s, 'AC')).toEqual({
      'a.txt': 'a',
      'c.txt': 'c',
      'dir/': '',
      'dir/y': 'y', // C's opaque dir hides base's x and A's a-in-dir
      shared: 'C',
      // base-only: deleted in C, though A (through base) has it
    });
    // The other order re-applies base (A's bottom layer) above C: base-only and x come back,
    // C's opaque dir only hides what lies below it.
    await s.merge('CA', ['C', 'A']);
    expect(await tree(s, 'CA')).toEqual({
      'a.txt': 'a',
      'base-only': 'base',
      'c.txt': 'c',
      'dir/': '',
      'dir/a-in-dir': 'a',
      'dir/x': 'x',
      'dir/y': 'y',
      shared: 'A',
    });
  });

  test('BuildKit\'s documented deletion example: a deletion in a later input\'s chain applies; reversed, the file wins', async () => {
    const s = await setup();
    await commitWith(s, 'foo', undefined, async (d) => writeFile(join(d, 'foo'), ''));
    await commitWith(s, 'rmFoo', 'foo', async (d) => rm(join(d, 'foo')));
    await commitWith(s, 'bar', 'rmFoo', async (d) => writeFile(join(d, 'bar'), ''));
    await s.merge('foo-bar', ['foo', 'bar']);
    expect(await tree(s, 'foo-bar')).toEqual({ bar: '' });
    await s.merge('bar-foo', ['bar', 'foo']);
    expect(await tree(s, 'bar-foo')).toEqual({ bar: '', foo: '' });
    // Diff(foo, rmFoo) holds only a deletion: mounted, it is empty.
    await s.diffLayers('onlyDelete', 'foo', 'rmFoo');
    expect(await tree(s, 'onlyDelete')).toEqual({});
  });

  test('nothing is copied: the merge stacks the inputs\' layer dirs above their common base and keeps their labels', async () => {
    const s = await setup();
    await fixture(s);
    const info = await s.merge('AC', ['A', 'C'], { labels: { note: 'merged' } });
    expect(info).toMatchObject({ id: 'AC', kind: 'committed', labels: { 'kiln.diffID': 'sha256:C', note: 'merged' } });
    expect(await s.usage('AC')).toMatchObject({ inodes: 1 }); // meta.json only
    const c = await s.diffSource('C');
    const ac = await s.diffSource('AC');
    expect(ac.driver === 'overlay' && c.driver === 'overlay' && ac.upper === c.upper).toBe(true);
    // Below C's layer: base's layer re-applied above A's (A's bottom layer is base; only the
    // topmost copy of a shared layer is kept), each an intermediate snapshot keeping its labels.
    const part = await s.stat(info?.parent ?? '');
    expect(part.labels).toEqual({ 'kiln.diffID': 'sha256:base' });
    const bottom = await s.stat(part.parent ?? '');
    expect(bottom).toMatchObject({ labels: { 'kiln.diffID': 'sha256:A' }, parent: undefined });
    // COPY --link shape: merge(image, layer on scratch) stacks one snapshot right on the image.
    await commitWith(s, 'copied', undefined, async (d) => writeFile(join(d, 'new'), 'n'));
    const link = await s.merge('link', ['A', 'copied']);
    expect(link?.parent).toBe('A');
    expect(await tree(s, 'link')).toMatchObject({ new: 'n', 'a.txt': 'a', shared: 'A' });
  });

  test('inputs cannot be removed while a merge uses them; removing the merge removes its intermediate snapshots', async () => {
    const s = await setup();
    await fixture(s);
    const info = await s.merge('AC', ['A', 'C']);
    await expect(s.remove('C')).rejects.toMatchObject({ code: 'SNAPSHOT_STATE' });
    await expect(s.remove('A')).rejects.toMatchObject({ code: 'SNAPSHOT_STATE' });
    await s.remove('AC');
    await expect(s.stat(info?.parent ?? '')).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    await s.remove('C');
    await s.remove('A');
    expect((await s.list()).map((x) => x.id)).toEqual(['base']);
  });

  test('the merged snapshot exports as a layer with a whiteout for what its top input deleted', async () => {
    const s = await setup();
    await fixture(s);
    await s.merge('AC', ['A', 'C']);
    const out = join(roots[0] as string, 'layer.tar.gz');
    await s.diff('AC', { output: out });
    const names: string[] = [];
    const ex = extract();
    createReadStream(out).pipe(createGunzip()).pipe(ex);
    for await (const e of ex) {
      names.push(e.header.name);
      e.resume();
    }
    expect(names).toEqual(expect.arrayContaining(['.wh.base-only', 'c.txt', 'dir/', 'dir/.wh..wh..opq', 'dir/y', 'shared']));
  });

  test('a parent as the first input and a shared base deduplicate; a child of a merge builds on it', async () => {
    const s = await setup();
    await fixture(s);
    await s.merge('baseA', ['base', 'A']);
    expect((await s.stat('baseA')).parent).toBe('A'); // stack equals A's
    await commitWith(s, 'child', 'baseA', async (d) => writeFile(join(d, 'child'), 'k'));
    expect(await tree(s, 'child')).toMatchObject({ child: 'k', 'a.txt': 'a', shared: 'A', 'base-only': 'base' });
  });
});

/** The ids (root first) of `id` and its parents. */
async function chainOf(s: LocalSnapshotter, id: string): Promise<string[]> {
  const out: string[] = [];
  for (let cur: string | undefined = id; cur !== undefined; cur = (await s.stat(cur)).parent) out.unshift(cur);
  return out;
}

/** The `kiln.diffID` label (or `-`) of each snapshot in `id`'s chain, root first: the layers an export writes, in order. */
const layersOf = async (s: LocalSnapshotter, id: string): Promise<string[]> =>
  Promise.all((await chainOf(s, id)).map(async (c) => (await s.stat(c)).labels['kiln.diffID'] ?? '-'));

describe('LocalSnapshotter.merge keeps empty layers that are layers', () => {
  /**
   * img: a base layer and an empty top layer (as BuildKit keeps `RUN true`), both labelled with
   * their diffIDs as unpacked image layers are; scratch: the shared empty snapshot; app: a file
   * op on scratch (a buildpacks layer); noop: a step on app that changed no file.
   */
  async function images(s: LocalSnapshotter): Promise<void> {
    await commitWith(s, 'img0', undefined, async (d) => writeFile(join(d, 'base'), 'b'));
    await commitWith(s, 'img1', 'img0', async () => undefined);
    await commit(s, 'scratch', undefined, async () => undefined);
    await commit(s, 'app', 'scratch', async (d) => writeFile(join(d, 'app'), 'a'));
    await commit(s, 'noop', 'app', async () => undefined);
  }

  test('an image whose top layer is empty: the merge stacks on the whole image, empty layer included; scratch adds nothing', async () => {
    const s = await setup();
    await images(s);
    const m = await s.merge('m', ['img1', 'app']);
    expect(m?.parent).toBe('img1'); // the image's own top snapshot is the base, not img0 below it
    expect(await layersOf(s, 'm')).toEqual(['sha256:img0', 'sha256:img1', '-']);
    expect(await tree(s, 'm')).toEqual({ app: 'a', base: 'b' });
    // Exported, the empty layer is an empty tar (the image's blob is reused by its diffID).
    const out = join(roots[0] as string, 'empty.tar.gz');
    await s.diff(m?.parent ?? '', { output: out });
    const ex = extract();
    createReadStream(out).pipe(createGunzip()).pipe(ex);
    const names: string[] = [];
    for await (const e of ex) {
      names.push(e.header.name);
      e.resume();
    }
    expect(names).toEqual([]);
  });

  test('a step that changed no file is a layer of its input\'s chain: the merge keeps it', async () => {
    const s = await setup();
    await images(s);
    await s.merge('m', ['img1', 'noop']);
    expect(await layersOf(s, 'm')).toEqual(['sha256:img0', 'sha256:img1', '-', '-']);
    // The merged stack has a snapshot per layer of each input: app's layer, then noop's on top.
    const [, , appPart, top] = await chainOf(s, 'm');
    const appSrc = await s.diffSource('app');
    const partSrc = await s.diffSource(appPart ?? '');
    expect(appSrc.driver === 'overlay' && partSrc.driver === 'overlay' && partSrc.upper === appSrc.upper).toBe(true);
    expect(top).toBe('m');
  });

  test('a merge with nothing above its base (a filler) adds no layer when merged again', async () => {
    const s = await setup();
    await images(s);
    const f = await s.merge('f', ['img1', 'img1']);
    expect(f?.parent).toBe('img1');
    expect(await layersOf(s, 'f')).toEqual(['sha256:img0', 'sha256:img1', '-']); // the filler itself, as before
    await s.merge('g', ['f', 'app']);
    expect(await layersOf(s, 'g')).toEqual(['sha256:img0', 'sha256:img1', '-']);
    expect((await s.stat('g')).parent).toBe('img1');
    // A diff of a snapshot against itself through layers is a filler too.
    await s.diffLayers('same', 'app', 'app');
    await s.merge('h', ['img1', 'same', 'app']);
    expect(await layersOf(s, 'h')).toEqual(['sha256:img0', 'sha256:img1', '-']);
  });
});

describe('LocalSnapshotter.diffLayers on overlayfs', () => {
  test('the layers of upper above lower, with deletions hidden from the mounted result; not a base: undefined', async () => {
    const s = await setup();
    await fixture(s);
    await s.diffLayers('dA', 'base', 'A');
    expect(await tree(s, 'dA')).toEqual({ 'a.txt': 'a', 'dir/': '', 'dir/a-in-dir': 'a', shared: 'A' });
    await s.diffLayers('dC', 'base', 'C');
    expect(await tree(s, 'dC')).toEqual({ 'c.txt': 'c', 'dir/': '', 'dir/y': 'y', shared: 'C' });
    // Merging the diff back onto A applies C's changes, deletions included.
    await s.merge('A-dC', ['A', 'dC']);
    expect(await tree(s, 'A-dC')).toEqual({ 'a.txt': 'a', 'c.txt': 'c', 'dir/': '', 'dir/y': 'y', shared: 'C' });
    expect(await s.diffLayers('x', 'A', 'C')).toBeUndefined();
    await s.diffLayers('whole', undefined, 'A');
    expect(await tree(s, 'whole')).toEqual(await tree(s, 'A'));
  });
});

test('the copy driver does not merge in place (the caller copies)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiln-merge-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver: 'copy' });
  await commitWith(s, 'a', undefined, async (d) => writeFile(join(d, 'f'), '1'));
  expect(await s.merge('m', ['a', 'a'])).toBeUndefined();
});
