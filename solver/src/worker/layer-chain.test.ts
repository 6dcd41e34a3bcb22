import { describe, expect, test } from 'vitest';
import { chainIds } from './sources.js';
import { ensureLayer, layerSnapshotId, type EnsureLayerOptions, type LayerChainDeps } from './layer-chain.js';

const DIFF_ID = `sha256:${'a'.repeat(64)}`;
const LAYER_ID = layerSnapshotId(chainIds([DIFF_ID])[0] ?? '');
const BLOB = `sha256:${'b'.repeat(64)}`;

/** One unpackLayer call the test controls: it ends when the test says, or fails at its signal's abort. */
interface Unpack {
  readonly id: string;
  readonly opts: { signal?: AbortSignal; expectedDiffID?: string; labels?: Readonly<Record<string, string>> };
  finish(): void;
  fail(err: Error): void;
}

/**
 * Fakes of the worker's own interface: a snapshotter that only answers stat, and an unpackLayer
 * that records each call and waits for the test. A fresh snapshotter per fixture, so unpacks in
 * flight of another test are not joined.
 */
function fixture(): { deps: LayerChainDeps; unpacks: Unpack[]; snapshots: Set<string>; opened: string[] } {
  const snapshots = new Set<string>();
  const unpacks: Unpack[] = [];
  const opened: string[] = [];
  const snapshotter = {
    stat: async (id: string) => {
      if (!snapshots.has(id)) throw Object.assign(new Error(`snapshot ${id} not found`), { code: 'SNAPSHOT_NOT_FOUND' });
      return { id, kind: 'committed', parent: undefined, depth: 1, createdAt: '', labels: {} };
    },
  };
  const deps = {
    snapshotter,
    unpackLayer: (_s: unknown, id: string, _parent: unknown, _layer: unknown, opts: Unpack['opts'] = {}) =>
      new Promise((resolve, reject) => {
        unpacks.push({
          id,
          opts,
          finish: () => {
            snapshots.add(id);
            resolve({ snapshot: { id } });
          },
          fail: reject,
        });
        opts.signal?.addEventListener('abort', () => reject(Object.assign(new Error('layer unpack cancelled'), { code: 'CANCELLED' })), { once: true });
      }),
  } as unknown as LayerChainDeps;
  return { deps, unpacks, snapshots, opened };
}

/** Options of one caller of LAYER_ID reading `source`, recording its events in `events` and its opens in `opened`. */
function layer(
  opened: string[],
  o: { source?: string; signal?: AbortSignal; events?: string[]; expectedDiffID?: string | null; labels?: Record<string, string> } = {},
): EnsureLayerOptions {
  const source = o.source ?? `content ${BLOB}`;
  const diff = o.expectedDiffID === null ? {} : { expectedDiffID: o.expectedDiffID ?? DIFF_ID };
  return {
    id: LAYER_ID,
    below: undefined,
    source,
    open: async () => {
      opened.push(source);
      return (async function* () {})();
    },
    ...diff,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    ...(o.labels === undefined ? {} : { labels: o.labels }),
    onStart: () => o.events?.push('start'),
    onDone: () => o.events?.push('done'),
  };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 10));
const invalid = (): Error => Object.assign(new Error(`layer diffID ${DIFF_ID} does not match`), { code: 'LAYER_INVALID' });

describe('ensureLayer: one unpack per layer in flight', () => {
  test('a second caller joins the unpack in flight: one unpack, one open; the same source counts the check as its own', async () => {
    const { deps, unpacks, opened } = fixture();
    const ownerEvents: string[] = [];
    const waiterEvents: string[] = [];
    const owner = ensureLayer(deps, layer(opened, { events: ownerEvents, labels: { k: 'v' } }));
    const waiter = ensureLayer(deps, layer(opened, { events: waiterEvents }));
    const other = ensureLayer(deps, layer(opened, { source: `cache ${BLOB}` }));
    await tick();
    expect(unpacks).toHaveLength(1);
    expect(unpacks[0]?.opts).toMatchObject({ expectedDiffID: DIFF_ID, labels: { k: 'v' } });
    expect(waiterEvents).toEqual(['start']);
    unpacks[0]?.finish();
    expect(await owner).toEqual({ unpacked: true });
    expect(await waiter).toEqual({ unpacked: true });
    // Another source joined: the layer is there, but its bytes were never checked.
    expect(await other).toEqual({ unpacked: false });
    expect(opened).toEqual([`content ${BLOB}`]);
    expect(ownerEvents).toEqual(['start', 'done']);
    expect(waiterEvents).toEqual(['start', 'done']);
  });

  test('an unpack without an expectedDiffID checked nothing: unpacked is false for it and for a waiter that claims a diffID', async () => {
    const { deps, unpacks, opened } = fixture();
    const owner = ensureLayer(deps, layer(opened, { expectedDiffID: null }));
    const waiter = ensureLayer(deps, layer(opened));
    await tick();
    expect(unpacks[0]?.opts.expectedDiffID).toBeUndefined();
    unpacks[0]?.finish();
    expect(await owner).toEqual({ unpacked: false });
    expect(await waiter).toEqual({ unpacked: false });
    expect(unpacks).toHaveLength(1);
  });

  test('a layer already there is neither opened nor unpacked, and reported as not unpacked, without events', async () => {
    const { deps, unpacks, snapshots, opened } = fixture();
    snapshots.add(LAYER_ID);
    const events: string[] = [];
    expect(await ensureLayer(deps, layer(opened, { events }))).toEqual({ unpacked: false });
    expect(unpacks).toHaveLength(0);
    expect(opened).toEqual([]);
    expect(events).toEqual([]);
  });

  test('two waiters on an unpack whose owner was cancelled redo it once: one starts it again, the other joins', async () => {
    const { deps, unpacks, snapshots, opened } = fixture();
    const ownerCtl = new AbortController();
    const owner = ensureLayer(deps, layer(opened, { signal: ownerCtl.signal }));
    owner.catch(() => undefined);
    const a = ensureLayer(deps, layer(opened, { signal: new AbortController().signal }));
    const b = ensureLayer(deps, layer(opened, { signal: new AbortController().signal }));
    await tick();
    expect(unpacks).toHaveLength(1);
    ownerCtl.abort();
    await expect(owner).rejects.toMatchObject({ code: 'CANCELLED' });
    await tick();
    expect(unpacks).toHaveLength(2); // one redo, not one per waiter
    expect(unpacks[1]?.opts.signal).not.toBe(ownerCtl.signal);
    unpacks[1]?.finish();
    const got = [await a, await b];
    // The redoing waiter checked the diffID itself; the other joined it with the same source.
    expect(got).toEqual([{ unpacked: true }, { unpacked: true }]);
    expect(unpacks).toHaveLength(2);
    expect(snapshots.has(LAYER_ID)).toBe(true);
  });

  test("a waiter stops waiting at its own abort; the unpack goes on for its owner and the others", async () => {
    const { deps, unpacks, opened } = fixture();
    const owner = ensureLayer(deps, layer(opened));
    const mine = new AbortController();
    const waiter = ensureLayer(deps, layer(opened, { signal: mine.signal }));
    waiter.catch(() => undefined);
    const other = ensureLayer(deps, layer(opened, { signal: new AbortController().signal }));
    await tick();
    mine.abort();
    await expect(waiter).rejects.toMatchObject({ code: 'SOLVER_CANCELLED' });
    expect(unpacks[0]?.opts.signal).toBeUndefined();
    unpacks[0]?.finish();
    expect(await owner).toEqual({ unpacked: true });
    expect(await other).toEqual({ unpacked: true });
    expect(unpacks).toHaveLength(1);
  });

  test("a failure that is not a cancellation is every waiter's with the same source: no redo", async () => {
    const { deps, unpacks, snapshots, opened } = fixture();
    const owner = ensureLayer(deps, layer(opened));
    owner.catch(() => undefined);
    const waiter = ensureLayer(deps, layer(opened, { signal: new AbortController().signal }));
    waiter.catch(() => undefined);
    await tick();
    unpacks[0]?.fail(invalid());
    await expect(owner).rejects.toMatchObject({ code: 'LAYER_INVALID' });
    await expect(waiter).rejects.toMatchObject({ code: 'LAYER_INVALID' });
    expect(unpacks).toHaveLength(1);
    expect(snapshots.has(LAYER_ID)).toBe(false);
  });

  test("a failure of another source's unpack (a corrupt cache blob) is not the waiter's: it unpacks its own bytes, once for all such waiters", async () => {
    const { deps, unpacks, opened } = fixture();
    const cache = ensureLayer(deps, layer(opened, { source: `cache ${BLOB}` }));
    cache.catch(() => undefined);
    const fromA = ensureLayer(deps, layer(opened));
    const fromB = ensureLayer(deps, layer(opened));
    await tick();
    expect(unpacks).toHaveLength(1);
    unpacks[0]?.fail(invalid());
    await expect(cache).rejects.toMatchObject({ code: 'LAYER_INVALID' });
    await tick();
    expect(unpacks).toHaveLength(2);
    expect(opened).toEqual([`cache ${BLOB}`, `content ${BLOB}`]);
    unpacks[1]?.finish();
    expect([await fromA, await fromB]).toEqual([{ unpacked: true }, { unpacked: true }]);
  });

  test('an open that fails (a blob fetch) fails the call before any unpack; a same-source waiter shares it', async () => {
    const { deps, unpacks } = fixture();
    const failing: EnsureLayerOptions = {
      id: LAYER_ID,
      below: undefined,
      source: `cache ${BLOB}`,
      open: () => Promise.reject(Object.assign(new Error('registry unreachable'), { code: 'ECONNREFUSED' })),
    };
    const a = ensureLayer(deps, failing);
    const b = ensureLayer(deps, failing);
    await expect(a).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(b).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(unpacks).toHaveLength(0);
  });

  test('when the unpack fails because another process committed the layer first, the layer is there: no error, not unpacked', async () => {
    const { deps, unpacks, snapshots, opened } = fixture();
    const events: string[] = [];
    const owner = ensureLayer(deps, layer(opened, { events }));
    const waiter = ensureLayer(deps, layer(opened, { signal: new AbortController().signal }));
    await tick();
    snapshots.add(LAYER_ID); // the other process's commit
    unpacks[0]?.fail(Object.assign(new Error(`snapshot ${LAYER_ID} already exists`), { code: 'SNAPSHOT_EXISTS' }));
    expect(await owner).toEqual({ unpacked: false });
    expect(await waiter).toEqual({ unpacked: false });
    expect(events).toEqual(['start']);
    expect(unpacks).toHaveLength(1);
  });

  test('unpacks of one id on two snapshotters do not join', async () => {
    const one = fixture();
    const two = fixture();
    const a = ensureLayer(one.deps, layer(one.opened));
    const b = ensureLayer(two.deps, layer(two.opened));
    await tick();
    expect([one.unpacks.length, two.unpacks.length]).toEqual([1, 1]);
    one.unpacks[0]?.finish();
    two.unpacks[0]?.finish();
    expect([await a, await b]).toEqual([{ unpacked: true }, { unpacked: true }]);
  });
});
