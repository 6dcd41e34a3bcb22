import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { digestOf, encodeOp, type Definition, type Digest, type Op, type OpMetadata } from '@kiln/llb-core';
import { ContentStore, ImageStore, LocalSnapshotter, applyFileAction, createBusyboxImage, ensureImage, unpackLayer, type Snapshotter } from '@kiln/runtime';
import { CacheStore, RuntimeWorker, Solver, type RuntimeWorkerDeps } from '@kiln/solver';

/**
 * A library user's `Solver.prune` running beside a build whose FROM finds its base image's layer
 * snapshot (`layer-<chain>`) already unpacked: the prune must not remove it between the image
 * source's lookup and the scheduler's record of it. The interleaving is forced: the lookup (the
 * snapshotter's `stat` of the layer) runs the prune, or lets a release already waiting go on,
 * before it answers.
 */

const IMAGE = 'localhost:5000/busybox:latest';

let root = '';
let content: ContentStore;
let images: ImageStore;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-prune-race-it-'));
  content = await ContentStore.open(join(root, 'content'));
  images = await ImageStore.open(join(root, 'images'));
  await createBusyboxImage(content, { names: [IMAGE], images });
}, 60_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Setup {
  deps: RuntimeWorkerDeps;
  store: CacheStore;
  snapshotter: LocalSnapshotter;
  unpacks: string[];
  /** Runs once, inside the next `stat` of the armed id, after the real stat answered. */
  onLookup: { id: string; run: (() => Promise<void>) | undefined };
  /** The release hook waits for this (when set) before removing. */
  releaseGate: { wait: Promise<void> | undefined };
}

async function setup(name: string): Promise<Setup> {
  const dir = join(root, name);
  const snapshotter = new LocalSnapshotter({ root: dir });
  const unpacks: string[] = [];
  const onLookup: Setup['onLookup'] = { id: '', run: undefined };
  const releaseGate: Setup['releaseGate'] = { wait: undefined };
  // The worker's snapshotter: the real one, with its stat hooked.
  const hooked = new Proxy(snapshotter, {
    get(target, prop) {
      if (prop === 'stat') {
        return async (id: string) => {
          const info = await target.stat(id);
          const run = onLookup.run;
          if (id === onLookup.id && run !== undefined) {
            onLookup.run = undefined;
            await run();
          }
          return info;
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Snapshotter;
  let releaser: RuntimeWorker | undefined;
  const store: CacheStore = CacheStore.open({
    path: join(dir, 'solver.db'),
    releaseSnapshot: async (id, ctx) => {
      if (releaseGate.wait !== undefined) await releaseGate.wait;
      await releaser?.releaseSnapshot(id, ctx);
    },
  });
  const deps: RuntimeWorkerDeps = {
    root: dir,
    snapshotter: hooked,
    executor: { run: () => Promise.reject(new Error('no containers here')) },
    content,
    ensureImage: (ref, o) => ensureImage(ref, { store: content, images, ...o }),
    unpackLayer: async (s, id, parent, layer, opts) => {
      unpacks.push(id);
      return unpackLayer(s, id, parent, layer, opts);
    },
    applyFileAction,
    localDirs: {},
    recordUsage: (r) => store.upsertRecord(r),
    leaseSnapshot: (id) => store.lease(id),
  };
  releaser = new RuntimeWorker(deps);
  return { deps, store, snapshotter, unpacks, onLookup, releaseGate };
}

/** A Definition of one local source (`local://context`). */
function localContext(): Definition {
  const op: Op = { kind: 'source', inputs: [], source: { identifier: 'local://context' } };
  const bytes = encodeOp(op);
  return { def: [bytes, encodeOp({ kind: 'none', inputs: [{ digest: digestOf(bytes), index: 0 }] })], metadata: new Map() };
}

/** A Definition of one FROM of the image. */
function fromImage(): Definition {
  const op: Op = { kind: 'source', inputs: [], source: { identifier: `docker-image://${IMAGE}` } };
  const bytes = encodeOp(op);
  const metadata = new Map<Digest, OpMetadata>([[digestOf(bytes), { description: new Map([['llb.customname', '[1/1] FROM busybox']]) }]]);
  return { def: [bytes, encodeOp({ kind: 'none', inputs: [{ digest: digestOf(bytes), index: 0 }] })], metadata };
}

describe('image source vs a concurrent Solver.prune', () => {
  test("a prune run between the FROM's lookup of an unpacked layer and its record keeps the layer; the lease ends with the build", async () => {
    const { deps, store, snapshotter, unpacks, onLookup } = await setup('prune-during-lookup');
    const solver = new Solver({ worker: new RuntimeWorker(deps), store });
    // A prefetch unpacked the layer and recorded it (kind regular): it is prunable.
    await new RuntimeWorker(deps).prefetchImage(IMAGE);
    expect(unpacks).toHaveLength(1);
    const top = unpacks[0] as string;
    expect(solver.du()).toEqual([expect.objectContaining({ snapshot: top, inUse: false })]); // the prefetch holds no lease
    let pruned: string[] | undefined;
    onLookup.id = top;
    onLookup.run = async () => {
      pruned = (await solver.prune()).map((d) => d.snapshot);
    };
    const r = await solver.solve(fromImage());
    expect(pruned).toBeDefined(); // the prune did run inside the FROM's lookup
    expect(pruned).not.toContain(top);
    expect(unpacks).toHaveLength(1); // found unpacked, not unpacked again
    expect(r?.ref.snapshot).toBe(top);
    await expect(snapshotter.stat(top)).resolves.toMatchObject({ kind: 'committed' });
    expect(store.pendingReleaseCount()).toBe(0);
    // No lease outlives the build: once its result is released, a prune removes the layer.
    r?.release();
    expect(solver.du().filter((d) => d.inUse)).toEqual([]);
    expect((await solver.prune()).map((d) => d.snapshot)).toContain(top);
    await expect(snapshotter.stat(top)).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    store.close();
  }, 60_000);

  test("a release already under way when the FROM looks the layer up does not remove it (its confirm sees the FROM's lease)", async () => {
    const { deps, store, snapshotter, unpacks, onLookup, releaseGate } = await setup('release-during-lookup');
    const solver = new Solver({ worker: new RuntimeWorker(deps), store });
    await new RuntimeWorker(deps).prefetchImage(IMAGE);
    const top = unpacks[0] as string;
    // A prune marks the layer pending and its release waits (a slow removal of something else).
    let open = (): void => undefined;
    releaseGate.wait = new Promise<void>((resolve) => (open = resolve));
    const prune = solver.prune();
    await new Promise((r) => setTimeout(r, 20));
    expect(store.pendingReleaseCount()).toBe(1);
    // The FROM finds the layer; before its record, the release goes on to remove it.
    onLookup.id = top;
    onLookup.run = async () => {
      releaseGate.wait = undefined;
      open();
      await prune;
    };
    const r = await solver.solve(fromImage());
    expect((await prune).map((d) => d.snapshot)).not.toContain(top);
    expect(r?.ref.snapshot).toBe(top);
    await expect(snapshotter.stat(top)).resolves.toMatchObject({ kind: 'committed' });
    // Recorded by the build: no longer pending, and not leased once the build is released.
    expect(store.pendingReleaseCount()).toBe(0);
    r?.release();
    expect(solver.du()).toEqual([expect.objectContaining({ snapshot: top, inUse: false })]);
    store.close();
  }, 60_000);

  test('a FROM that fails after taking its lease releases it', async () => {
    const { deps, store, unpacks } = await setup('failed-from');
    const failing: RuntimeWorkerDeps = {
      ...deps,
      unpackLayer: async (_s, id) => {
        unpacks.push(id);
        throw new Error('layer unpack failed');
      },
    };
    const solver = new Solver({ worker: new RuntimeWorker(failing), store });
    await expect(solver.solve(fromImage())).rejects.toThrow(/layer unpack failed/);
    const top = unpacks[0] as string;
    expect(top).toMatch(/^layer-/);
    // Recorded now (as a prefetch would): not in use, so no lease of the failed FROM is left.
    store.upsertRecord({ snapshot: top, description: 'probe', kind: 'regular' });
    expect(solver.du()).toEqual([expect.objectContaining({ snapshot: top, inUse: false })]);
    store.close();
  }, 60_000);

  test('the same holds for a local source whose content is already snapshotted (local-<digest>)', async () => {
    const { deps, store, snapshotter, onLookup } = await setup('local-lookup');
    const ctxDir = join(root, 'local-lookup-context');
    await mkdir(ctxDir, { recursive: true });
    await writeFile(join(ctxDir, 'a.txt'), 'hello\n');
    const solver = new Solver({ worker: new RuntimeWorker({ ...deps, localDirs: { context: ctxDir } }), store });
    const first = await solver.solve(localContext());
    const id = first?.ref.snapshot ?? '';
    expect(id).toMatch(/^local-/);
    first?.release();
    // The next build of the same content finds the snapshot; a prune runs inside that lookup.
    let pruned: string[] | undefined;
    onLookup.id = id;
    onLookup.run = async () => {
      pruned = (await solver.prune()).map((d) => d.snapshot);
    };
    const second = await solver.solve(localContext());
    expect(pruned).toBeDefined();
    expect(pruned).not.toContain(id);
    expect(second?.ref.snapshot).toBe(id);
    await expect(snapshotter.stat(id)).resolves.toMatchObject({ kind: 'committed' });
    second?.release();
    expect(solver.du().filter((d) => d.inUse)).toEqual([]);
    store.close();
  }, 60_000);
});
