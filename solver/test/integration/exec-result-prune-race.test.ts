import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mkfile, scratch } from '@kiln/llb-core';
import { ContentStore, LocalSnapshotter, applyFileAction, unpackLayer, type Snapshotter } from '@kiln/runtime';
import { CacheStore, RuntimeWorker, Solver, type RuntimeWorkerDeps } from '@kiln/solver';

/**
 * A library user's `Solver.prune` running beside a build, between one step's result being
 * recorded in the cache store and the next step mounting it: the result must stay. The
 * interleaving is forced: the second step's `prepare` on the first step's snapshot runs the prune
 * first.
 */

let root = '';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-exec-prune-race-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

test("a prune between a step's record and the next step's use of it keeps the result; nothing stays leased after release", async () => {
  const snapshotter = new LocalSnapshotter({ root: join(root, 'snapshots') });
  const hook: { parent: string | undefined; run: (() => Promise<void>) | undefined } = { parent: undefined, run: undefined };
  // The worker's snapshotter: the real one; a prepare on the armed parent runs the hook first.
  const hooked = new Proxy(snapshotter, {
    get(target, prop) {
      if (prop === 'prepare') {
        return async (id: string, parent: string | undefined, o?: unknown) => {
          const run = hook.run;
          if (run !== undefined && parent !== undefined && parent === hook.parent) {
            hook.run = undefined;
            await run();
          }
          return (target.prepare as (...a: unknown[]) => unknown).call(target, id, parent, o);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as Snapshotter;
  let releaser: RuntimeWorker | undefined;
  const store = CacheStore.open({ path: join(root, 'solver.db'), releaseSnapshot: (id, ctx) => releaser?.releaseSnapshot(id, ctx) ?? Promise.resolve() });
  const deps: RuntimeWorkerDeps = {
    root,
    snapshotter: hooked,
    executor: { run: () => Promise.reject(new Error('no containers here')) },
    content: await ContentStore.open(join(root, 'content')),
    ensureImage: () => Promise.reject(new Error('no images here')),
    unpackLayer,
    applyFileAction,
    localDirs: {},
    recordUsage: (r) => store.upsertRecord(r),
    leaseSnapshot: (id) => store.lease(id),
  };
  releaser = new RuntimeWorker(deps);
  const solver = new Solver({ worker: new RuntimeWorker(deps), store });
  const first = scratch().file(mkfile('/a', 0o644, 'a\n'));
  const def = await first.file(mkfile('/b', 0o644, 'b\n')).marshal({ platform: 'linux/amd64' });
  // The first step's snapshot is known once it is recorded: the one record du lists then.
  let pruned: string[] | undefined;
  let firstSnapshot = '';
  hook.run = async () => {
    pruned = (await solver.prune()).map((d) => d.snapshot);
  };
  const origSave = store.save.bind(store);
  store.save = ((...a: Parameters<CacheStore['save']>) => {
    const rec = origSave(...a);
    if (firstSnapshot === '') {
      firstSnapshot = rec.snapshot;
      hook.parent = rec.snapshot;
    }
    return rec;
  }) as CacheStore['save'];
  const r = await solver.solve(def);
  expect(pruned).toBeDefined(); // the prune ran inside the second step's prepare
  expect(pruned).not.toContain(firstSnapshot);
  await expect(snapshotter.stat(firstSnapshot)).resolves.toMatchObject({ kind: 'committed' });
  expect(r?.ref.snapshot).not.toBe(firstSnapshot);
  r?.release();
  expect(solver.du().filter((d) => d.inUse)).toEqual([]);
  store.close();
}, 60_000);
