import { describe, expect, test } from 'vitest';
import type { SourceOp } from '@kiln/llb-core';
import type { EnsuredImage } from '@kiln/runtime';
import type { WorkerOpContext } from '../llb/worker.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { ImageSources, LocalSources, chainIds } from './sources.js';

const DIFF_ID = `sha256:${'a'.repeat(64)}`;
const LAYER_ID = `layer-${(chainIds([DIFF_ID])[0] ?? '').replace('sha256:', '')}`;

/** One unpackLayer call the test controls: it ends when the test says, or fails at its signal's abort. */
interface Unpack {
  readonly signal: AbortSignal | undefined;
  finish(): void;
  fail(err: Error): void;
}

/**
 * ImageSources over fakes of the worker's own interface: a snapshotter that only answers stat,
 * a one-layer image, and an unpackLayer that records each call and waits for the test.
 */
function fixture(): { sources: () => ImageSources; unpacks: Unpack[]; snapshots: Set<string> } {
  const snapshots = new Set<string>();
  const unpacks: Unpack[] = [];
  const img = {
    ref: 'docker.io/library/img:latest',
    source: 'local',
    config: { rootfs: { type: 'layers', diff_ids: [DIFF_ID] } },
    manifest: { layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${'b'.repeat(64)}`, size: 10 }] },
    manifestDescriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 1 },
  } as unknown as EnsuredImage;
  const snapshotter = {
    stat: async (id: string) => {
      if (!snapshots.has(id)) throw Object.assign(new Error(`snapshot ${id} not found`), { code: 'SNAPSHOT_NOT_FOUND' });
      return { id, kind: 'committed', parent: undefined, depth: 1, createdAt: '', labels: {} };
    },
  };
  const deps = {
    root: '/nonexistent',
    snapshotter,
    content: { readStream: async () => (async function* () {})() },
    ensureImage: async () => img,
    unpackLayer: (_s: unknown, id: string, _parent: unknown, _layer: unknown, opts: { signal?: AbortSignal } = {}) =>
      new Promise((resolve, reject) => {
        const u: Unpack = {
          signal: opts.signal,
          finish: () => {
            snapshots.add(id);
            resolve({ snapshot: { id } });
          },
          fail: reject,
        };
        opts.signal?.addEventListener('abort', () => reject(Object.assign(new Error('layer unpack cancelled'), { code: 'CANCELLED' })), { once: true });
        unpacks.push(u);
      }),
    localDirs: {},
  } as unknown as RuntimeWorkerDeps;
  return { sources: () => new ImageSources(deps), unpacks, snapshots };
}

const OP: SourceOp = { identifier: 'docker-image://img:latest' };
function ctx(signal: AbortSignal): WorkerOpContext {
  return { signal, platform: undefined, log: () => undefined, status: () => undefined } as unknown as WorkerOpContext;
}
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

describe('ImageSources: FROMs waiting on a layer unpack another caller started', () => {
  test("two waiters on an unpack whose owner was cancelled redo it once: one starts it again, the other joins", async () => {
    const { sources, unpacks, snapshots } = fixture();
    const owner = new AbortController();
    void sources().prefetch('img:latest', { signal: owner.signal });
    while (unpacks.length === 0) await tick();
    const a = sources().snapshot(OP, ctx(new AbortController().signal));
    const b = sources().snapshot(OP, ctx(new AbortController().signal));
    await tick();
    expect(unpacks).toHaveLength(1); // both wait for the prefetch
    owner.abort(); // the prefetch's build ended
    await tick();
    expect(unpacks).toHaveLength(2); // one redo, not one per waiter
    unpacks[1]?.finish();
    expect(await a).toEqual({ snapshot: LAYER_ID, size: 10 });
    expect(await b).toEqual({ snapshot: LAYER_ID, size: 10 });
    expect(unpacks).toHaveLength(2);
    expect(snapshots.has(LAYER_ID)).toBe(true);
  });

  test('a waiter stops waiting at its own abort; the unpack goes on for its owner, whom a later FROM joins', async () => {
    const { sources, unpacks } = fixture();
    const prefetch = sources().prefetch('img:latest');
    while (unpacks.length === 0) await tick();
    const mine = new AbortController();
    const from = sources().snapshot(OP, ctx(mine.signal));
    from.catch(() => undefined);
    await tick();
    mine.abort();
    await expect(from).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    expect(unpacks).toHaveLength(1);
    const later = sources().snapshot(OP, ctx(new AbortController().signal));
    await tick();
    unpacks[0]?.finish();
    await prefetch;
    expect(await later).toEqual({ snapshot: LAYER_ID, size: 10 });
    expect(unpacks).toHaveLength(1);
  });

  test('a failure that is not a cancellation is every waiter\'s: no redo', async () => {
    const { sources, unpacks } = fixture();
    const owner = sources().snapshot(OP, ctx(new AbortController().signal));
    owner.catch(() => undefined);
    while (unpacks.length === 0) await tick();
    const waiter = sources().snapshot(OP, ctx(new AbortController().signal));
    waiter.catch(() => undefined);
    await tick();
    unpacks[0]?.fail(Object.assign(new Error('layer diffID sha256:x does not match'), { code: 'LAYER_INVALID' }));
    await expect(owner).rejects.toMatchObject({ code: 'LAYER_INVALID' });
    await expect(waiter).rejects.toMatchObject({ code: 'LAYER_INVALID' });
    expect(unpacks).toHaveLength(1);
  });
});

describe('LocalSources: a local source the build has no directory for', () => {
  test('names the near one and the ones there are (typo tour 4: local("contxt") in a build file)', async () => {
    // only localDirs is read before the refusal
    const sources = new LocalSources({ localDirs: { context: '/ctx', dockerfile: '/df' } } as unknown as RuntimeWorkerDeps);
    await expect(sources.snapshot({ identifier: 'local://contxt' }, {} as WorkerOpContext)).rejects.toMatchObject({
      code: 'SOLVER_INVALID_DEFINITION',
      message: 'no local directory was given for local source "contxt" (did you mean "context"?)',
      hint: 'pass the build context (or --build-context NAME=path) for it; this build has "context", "dockerfile"',
    });
  });
});
