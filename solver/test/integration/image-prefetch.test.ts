import { mkdtemp, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { digestOf, encodeOp, type Definition, type Digest, type Op, type OpMetadata } from '@kiln/llb-core';
import { ContentStore, ImageStore, LocalSnapshotter, applyFileAction, createBusyboxImage, ensureImage, unpackLayer, type Snapshotter } from '@kiln/runtime';
import { CacheStore, RuntimeWorker, Solver, type RuntimeWorkerDeps } from '@kiln/solver';

const IMAGE = 'localhost:5000/busybox:latest';

let root = '';
let content: ContentStore;
let images: ImageStore;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-prefetch-it-'));
  content = await ContentStore.open(join(root, 'content'));
  images = await ImageStore.open(join(root, 'images'));
  await createBusyboxImage(content, { names: [IMAGE], images });
}, 60_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh snapshotter and cache store (so every test unpacks), and counters of the work done. */
async function setup(name: string): Promise<{
  deps: RuntimeWorkerDeps;
  store: CacheStore;
  snapshotter: Snapshotter;
  unpacks: string[];
  gate: { release: () => void; wait: Promise<void> | undefined };
}> {
  const dir = join(root, name);
  const snapshotter = new LocalSnapshotter({ root: dir });
  const unpacks: string[] = [];
  const gate: { release: () => void; wait: Promise<void> | undefined } = { release: () => undefined, wait: undefined };
  let releaser: RuntimeWorker | undefined;
  const store: CacheStore = CacheStore.open({ path: join(dir, 'solver.db'), releaseSnapshot: (id) => releaser?.releaseSnapshot(id) ?? Promise.resolve() });
  const deps: RuntimeWorkerDeps = {
    root: dir,
    snapshotter,
    executor: { run: () => Promise.reject(new Error('no containers here')) },
    content,
    ensureImage: (ref, o) => ensureImage(ref, { store: content, images, ...o }),
    unpackLayer: async (s, id, parent, layer, opts) => {
      unpacks.push(id);
      if (gate.wait !== undefined) await gate.wait;
      return unpackLayer(s, id, parent, layer, opts);
    },
    applyFileAction,
    localDirs: {},
    recordUsage: (r) => store.upsertRecord(r),
  };
  releaser = new RuntimeWorker(deps);
  return { deps, store, snapshotter, unpacks, gate };
}

/** A Definition of one FROM of the image. */
function fromImage(): Definition {
  const op: Op = { kind: 'source', inputs: [], source: { identifier: `docker-image://${IMAGE}` } };
  const bytes = encodeOp(op);
  const metadata = new Map<Digest, OpMetadata>([[digestOf(bytes), { description: new Map([['llb.customname', '[1/1] FROM busybox']]) }]]);
  return { def: [bytes, encodeOp({ kind: 'none', inputs: [{ digest: digestOf(bytes), index: 0 }] })], metadata };
}

describe('RuntimeWorker.prefetchImage', () => {
  test('a FROM that starts while the prefetch unpacks joins it: one unpack, the same snapshot', async () => {
    const { deps, store, snapshotter, unpacks, gate } = await setup('join');
    gate.wait = new Promise<void>((resolve) => (gate.release = resolve));
    const prefetcher = new RuntimeWorker(deps);
    const builder = new RuntimeWorker(deps); // another worker of the process (another build's)
    const prefetch = prefetcher.prefetchImage(IMAGE);
    // The prefetch is inside its unpack (held by the gate) when the build's FROM runs.
    while (unpacks.length === 0) await new Promise((r) => setTimeout(r, 5));
    const solver = new Solver({ worker: builder, store });
    const events: string[] = [];
    const built = solver.solve(fromImage(), { progress: { emit: (ev) => events.push(ev.kind) } });
    await new Promise((r) => setTimeout(r, 50));
    expect(unpacks).toHaveLength(1); // the FROM waits for the prefetch's unpack
    gate.release();
    await prefetch;
    const r = await built;
    expect(unpacks).toHaveLength(1);
    expect(r?.ref.snapshot).toBe(unpacks[0]);
    expect(await readlink(join(await mountedPath(snapshotter, r?.ref.snapshot ?? ''), 'bin/sh'))).toMatch(/busybox$/);
    expect(events).toContain('status');
    r?.release();
    store.close();
  }, 60_000);

  test('a prefetched image that is never used is recorded for du and prune, which removes its snapshot', async () => {
    const { deps, store, snapshotter, unpacks } = await setup('unused');
    const worker = new RuntimeWorker(deps);
    const solver = new Solver({ worker, store });
    await worker.prefetchImage(IMAGE);
    expect(unpacks).toHaveLength(1);
    const top = unpacks[0] as string;
    await expect(snapshotter.stat(top)).resolves.toMatchObject({ kind: 'committed' });
    expect(solver.du()).toEqual([expect.objectContaining({ snapshot: top, description: `prefetched image ${IMAGE}`, kind: 'regular' })]);
    // A FROM afterwards finds the layer there: no second unpack.
    const r = await solver.solve(fromImage());
    expect(r?.ref.snapshot).toBe(top);
    expect(unpacks).toHaveLength(1);
    r?.release();
    // A plain prune (not --all) removes it like any cached result.
    await solver.prune();
    expect(solver.du()).toEqual([]);
    await expect(snapshotter.stat(top)).rejects.toMatchObject({ code: 'SNAPSHOT_NOT_FOUND' });
    store.close();
  }, 60_000);

  test('prefetching a missing image or with an aborted signal never rejects; the FROM then does the work itself', async () => {
    const { deps, store, unpacks, gate } = await setup('failing');
    const worker = new RuntimeWorker(deps);
    await expect(worker.prefetchImage('localhost:5000/nope:latest')).resolves.toBeUndefined();
    expect(unpacks).toHaveLength(0);
    gate.wait = new Promise<void>((resolve) => (gate.release = resolve));
    const ctl = new AbortController();
    const prefetch = worker.prefetchImage(IMAGE, { signal: ctl.signal });
    while (unpacks.length === 0) await new Promise((r) => setTimeout(r, 5));
    const solver = new Solver({ worker: new RuntimeWorker(deps), store });
    const built = solver.solve(fromImage());
    await new Promise((r) => setTimeout(r, 20));
    ctl.abort(new Error('build cancelled'));
    gate.release();
    await expect(prefetch).resolves.toBeUndefined();
    gate.wait = undefined;
    const r = await built;
    expect(unpacks).toHaveLength(2); // the aborted prefetch left nothing; the FROM unpacked
    expect(r?.ref.snapshot).toBe(unpacks[1]);
    expect(solver.du().map((d) => d.description)).not.toContain(`prefetched image ${IMAGE}`);
    r?.release();
    store.close();
  }, 60_000);

  test("a FROM on the prefetching worker that joined its image resolution is not failed by the prefetch's cancellation", async () => {
    const { deps, store } = await setup('resolve-abort');
    let hold: Promise<void> | undefined = new Promise<void>((resolve) => setTimeout(resolve, 300));
    const worker = new RuntimeWorker({
      ...deps,
      // A slow resolution (a pull) that honours its caller's signal, as ensureImage does.
      ensureImage: async (ref, o) => {
        const wait = hold;
        if (wait !== undefined) {
          await new Promise<void>((resolve, reject) => {
            void wait.then(resolve);
            o?.signal?.addEventListener('abort', () => reject(o.signal?.reason as Error), { once: true });
          });
        }
        return deps.ensureImage(ref, o);
      },
    });
    const ctl = new AbortController();
    const prefetch = worker.prefetchImage(IMAGE, { signal: ctl.signal });
    // The build (another one sharing this worker's FROM vertex) joins the resolution in flight.
    const built = new Solver({ worker, store }).solve(fromImage());
    await new Promise((r) => setTimeout(r, 50));
    hold = undefined;
    ctl.abort(new Error('the prefetching build ended'));
    await expect(prefetch).resolves.toBeUndefined();
    const r = await built;
    expect(r?.ref.snapshot).toMatch(/^layer-/);
    r?.release();
    store.close();
  }, 60_000);
});

const mounts: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const m of mounts) await m();
});

async function mountedPath(s: Snapshotter, id: string): Promise<string> {
  const m = await s.mount(id);
  mounts.push(() => m.release());
  return m.path;
}
