import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterEach, describe, expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';
import { mountsUnder } from '../../src/snapshot/mount.js';
import { commitWith, tree } from './snapshot-helpers.js';

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) {
    expect(await mountsUnder(r)).toEqual([]);
    await rm(r, { recursive: true, force: true });
  }
});

async function setup(driver: 'overlay' | 'copy' = 'overlay'): Promise<LocalSnapshotter> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-diff-'));
  roots.push(root);
  const s = new LocalSnapshotter({ root, driver });
  await s.init();
  return s;
}

async function layerNames(s: LocalSnapshotter, id: string): Promise<string[]> {
  const out = join(await mkdtemp(join(tmpdir(), 'kiln-diff-layer-')), 'layer.tar.gz');
  roots.push(join(out, '..'));
  await s.diff(id, { output: out });
  const names: string[] = [];
  const ex = extract();
  createReadStream(out).pipe(createGunzip()).pipe(ex);
  for await (const e of ex) {
    names.push(e.header.name);
    e.resume();
  }
  return names.sort();
}

/** A and C are siblings on base: neither is a base of the other. */
async function fixture(s: LocalSnapshotter): Promise<void> {
  const t = new Date('2020-01-01T00:00:00Z');
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
    // Same size and whole-second mtime as C's: only the bytes differ.
    await writeFile(join(d, 'same-meta'), 'AAAA');
    await utimes(join(d, 'same-meta'), t, t);
    await writeFile(join(d, 'same-file'), 'same');
    await utimes(join(d, 'same-file'), t, t);
  });
  await commitWith(s, 'C', 'base', async (d) => {
    await rm(join(d, 'base-only'));
    await writeFile(join(d, 'c.txt'), 'c');
    await writeFile(join(d, 'shared'), 'C');
    await writeFile(join(d, 'dir', 'c-in-dir'), 'c');
    await writeFile(join(d, 'same-meta'), 'CCCC');
    await utimes(join(d, 'same-meta'), t, t);
    await writeFile(join(d, 'same-file'), 'same');
    await utimes(join(d, 'same-file'), t, t);
  });
}

describe('LocalSnapshotter.diffTrees on overlayfs (DiffOp of unrelated snapshots)', () => {
  test('Diff(A, C) holds what C adds or changes; merged onto A it gives C; its layer whites out what C lacks', async () => {
    const s = await setup();
    await fixture(s);
    expect(await s.diffLayers('x', 'A', 'C')).toBeUndefined(); // A is not a base of C
    await s.diffTrees('dAC', 'A', 'C');
    expect(await tree(s, 'dAC')).toEqual({ 'c.txt': 'c', 'dir/': '', 'dir/c-in-dir': 'c', 'same-meta': 'CCCC', shared: 'C' });
    await s.merge('A-dAC', ['A', 'dAC']);
    expect(await tree(s, 'A-dAC')).toEqual(await tree(s, 'C'));
    expect(await layerNames(s, 'dAC')).toEqual(['.wh.a.txt', '.wh.base-only', 'c.txt', 'dir/', 'dir/.wh.a-in-dir', 'dir/c-in-dir', 'same-meta', 'shared']);
    // A child of the diff result sees its files, not its whiteouts.
    await commitWith(s, 'child', 'dAC', async (d) => writeFile(join(d, 'k'), 'k'));
    expect(await tree(s, 'child')).toEqual({ 'c.txt': 'c', 'dir/': '', 'dir/c-in-dir': 'c', k: 'k', 'same-meta': 'CCCC', shared: 'C' });
  });

  test('scratch as upper deletes everything of lower; scratch as lower gives upper whole', async () => {
    const s = await setup();
    await fixture(s);
    await s.diffTrees('dA0', 'A', undefined);
    expect(await tree(s, 'dA0')).toEqual({});
    expect(await layerNames(s, 'dA0')).toEqual(['.wh.a.txt', '.wh.base-only', '.wh.dir', '.wh.same-file', '.wh.same-meta', '.wh.shared']);
    await s.merge('A-dA0', ['A', 'dA0']);
    expect(await tree(s, 'A-dA0')).toEqual({});
    await s.diffTrees('d0C', undefined, 'C');
    expect(await tree(s, 'd0C')).toEqual(await tree(s, 'C'));
  });
});

describe('LocalSnapshotter.diffTrees on the copy driver', () => {
  test('additions are copied; a deletion cannot be represented and fails the diff', async () => {
    const s = await setup('copy');
    await fixture(s);
    await s.diffTrees('d0A', undefined, 'A');
    expect(await tree(s, 'd0A')).toEqual(await tree(s, 'A'));
    await expect(s.diffTrees('dAC', 'A', 'C')).rejects.toMatchObject({ code: 'SNAPSHOT_STATE' });
    expect((await s.list()).map((x) => x.id).sort()).toEqual(['A', 'C', 'base', 'd0A']);
  });
});
