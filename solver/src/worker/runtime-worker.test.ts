import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { LocalSnapshotter, type Snapshotter } from '@kiln/runtime';
import { CacheStore } from '../cache/store.js';
import { ContentHashTree, type ChecksumOptions } from '../contenthash/tree.js';
import { headerDigest } from '../contenthash/tarsum.js';
import { toLocalStat, walkLocal } from '../local/walk.js';
import { RuntimeWorker } from './runtime-worker.js';

/** A worker whose only working part is `snapshotter` (the rest fails if a test reaches it). */
function snapshotterOnlyWorker(root: string, snapshotter: Snapshotter): RuntimeWorker {
  const unused = (): Promise<never> => Promise.reject(new Error('unused'));
  return new RuntimeWorker({
    root,
    snapshotter,
    executor: { run: unused },
    content: undefined as never,
    ensureImage: unused,
    unpackLayer: unused,
    applyFileAction: unused,
    localDirs: {},
  });
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('RuntimeWorker.checksum of a snapshot', () => {
  test('hashing only the selected subtree gives the same digests as hashing the whole tree', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-ck-'));
    dirs.push(root);
    mkdirSync(join(root, 'app/bin'), { recursive: true });
    mkdirSync(join(root, 'usr/lib'), { recursive: true });
    writeFileSync(join(root, 'app/bin/tool'), 'tool');
    writeFileSync(join(root, 'app/a.txt'), 'a');
    writeFileSync(join(root, 'app/b.txt'), 'b');
    writeFileSync(join(root, 'usr/lib/x.so'), 'x');
    symlinkSync('/usr/lib', join(root, 'lib'));
    symlinkSync('app/a.txt', join(root, 'alink'));
    // Mounted (no mount description to read it in place from).
    const snapshotter = { mounts: async () => [], mount: async () => ({ path: root, release: async () => undefined }) } as unknown as Snapshotter;
    const worker = snapshotterOnlyWorker(root, snapshotter);
    const full = ContentHashTree.fromEntries(walkLocal(root), { root, rootHeaderDigest: headerDigest(toLocalStat(lstatSync(root), root)) });
    const signal = new AbortController().signal;
    const cases: Array<[string, ChecksumOptions]> = [
      ['/app', {}],
      ['/app/bin/tool', {}],
      ['/app/*.txt', { wildcard: true }],
      ['/app', { includePatterns: ['*.txt'] }],
      ['/lib/x.so', { followLinks: true }],
      ['/alink', {}],
      ['/alink', { followLinks: true }],
      ['/', {}],
    ];
    for (const [p, o] of cases) {
      expect(await worker.checksum({ snapshot: 's', size: 0 }, p, o, signal), `${p} ${JSON.stringify(o)}`).toBe(await full.checksum(p, o));
    }
    await expect(worker.checksum({ snapshot: 's', size: 0 }, '/nope', {}, signal)).rejects.toMatchObject({ code: 'SOLVER_NOT_FOUND' });
  });
});

describe('RuntimeWorker.diff', () => {
  test('an input index past the op inputs fails the definition instead of reading as scratch', async () => {
    const calls: string[] = [];
    const snapshotter = {
      diffLayers: async (id: string, lower: string | undefined, upper: string) => {
        calls.push(`diffLayers ${String(lower)} ${upper}`);
        return { id, kind: 'committed' };
      },
      diffTrees: async (id: string, lower: string | undefined, upper: string | undefined) => {
        calls.push(`diffTrees ${String(lower)} ${String(upper)}`);
        return { id, kind: 'committed' };
      },
    } as unknown as Snapshotter;
    const worker = snapshotterOnlyWorker('/nonexistent', snapshotter);
    const ctx = { signal: new AbortController().signal } as unknown as Parameters<RuntimeWorker['diff']>[2];
    const inputs = [{ snapshot: 'a', size: 0 }, { snapshot: 'c', size: 0 }];
    await expect(worker.diff({ lower: { input: 2 }, upper: { input: 1 } }, inputs, ctx)).rejects.toMatchObject({ code: 'SOLVER_INVALID_DEFINITION' });
    await expect(worker.diff({ lower: { input: 0 }, upper: { input: 5 } }, inputs, ctx)).rejects.toMatchObject({ code: 'SOLVER_INVALID_DEFINITION' });
    expect(calls).toEqual([]);
    // In range: unset is input 0, -1 is scratch.
    await worker.diff({ upper: { input: 1 } }, inputs, ctx);
    await worker.diff({ lower: { input: -1 }, upper: { input: 1 } }, inputs, ctx);
    expect(calls).toEqual(['diffLayers a c', 'diffLayers undefined c']);
  });
});

describe('RuntimeWorker.releaseSnapshot', () => {
  /** A committed snapshot `id` on `parent` holding one file. */
  async function layer(s: LocalSnapshotter, id: string, parent?: string): Promise<void> {
    const active = await s.prepare(`${id}-active`, parent);
    const m = await s.mounts(active.id);
    const upper = m[0]?.type === 'bind' ? m[0].source : (m[0]?.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length) ?? '');
    writeFileSync(join(upper, id), id);
    await s.commit(id, active.id);
  }
  const ids = async (s: LocalSnapshotter): Promise<string[]> => (await s.list()).map((i) => i.id).sort();

  // An image source records only its image's top layer; the lower `layer-<chain>` snapshots it
  // unpacked below (as a cache import does) are no record's. BuildKit's refs release their
  // parents with them; kiln's prune left those on disk for ever, out of `kiln du`.
  test("an image's lower layers go with its top layer, unless something else still owns or stacks on them", async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-release-'));
    dirs.push(root);
    const snapshotter = new LocalSnapshotter({ root, driver: 'copy' });
    const worker = snapshotterOnlyWorker(root, snapshotter);
    const store = CacheStore.open({ path: ':memory:', releaseSnapshot: (id, ctx) => worker.releaseSnapshot(id, ctx) });
    try {
      // Image 1: a <- b <- c, only c recorded. Image 2: a <- b <- d, d recorded and leased by a build.
      // Image 3: x (recorded: another FROM of the base) <- y <- z (recorded).
      await layer(snapshotter, 'layer-a');
      await layer(snapshotter, 'layer-b', 'layer-a');
      await layer(snapshotter, 'layer-c', 'layer-b');
      await layer(snapshotter, 'layer-d', 'layer-b');
      await layer(snapshotter, 'layer-x');
      await layer(snapshotter, 'layer-y', 'layer-x');
      await layer(snapshotter, 'layer-z', 'layer-y');
      store.save('kc', [], { id: 'rc', snapshot: 'layer-c', size: 1, description: 'FROM c' });
      store.save('kd', [], { id: 'rd', snapshot: 'layer-d', size: 1, description: 'FROM d' });
      store.save('kx', [], { id: 'rx', snapshot: 'layer-x', size: 1, description: 'FROM x' });
      store.save('kz', [], { id: 'rz', snapshot: 'layer-z', size: 1, description: 'FROM z' });
      const unlease = store.lease('layer-d');
      await store.prune({ all: true });
      // c goes; b and a stay under the leased d; x, y and z all go (x once y is gone).
      expect(await ids(snapshotter)).toEqual(['layer-a', 'layer-b', 'layer-d']);
      unlease();
      await store.prune({ all: true });
      expect(await ids(snapshotter)).toEqual([]);
      expect(store.du()).toEqual([]);
    } finally {
      store.close();
    }
  });
});
