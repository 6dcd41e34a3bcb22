import { describe, expect, test } from 'vitest';
import { CacheManager } from './cache-manager.js';
import { CacheKey, rootKey } from './cache-key.js';
import { CacheChains } from './remote-chains.js';
import { marshalCacheConfig } from './remote-config.js';
import { addCacheKeyChains, backlinkSource } from './remote-export.js';
import { ImportedCache } from './remote-import.js';
import { CacheStore } from './store.js';
import { Scheduler } from '../scheduler/scheduler.js';
import type { ImportedResult } from './remote-import.js';
import type { Op, SolverEdge, SolverVertex, WorkerRef } from '../scheduler/types.js';

const H = (c: string): string => `sha256:${c.repeat(64).slice(0, 64)}`;
const layer = (c: string) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: H(c), size: 10, annotations: { 'containerd.io/uncompressed': H(c.toUpperCase()) } });
const noOpen = async (): Promise<AsyncIterable<Uint8Array>> => {
  throw new Error('not fetched in this test');
};

/** A cache as BuildKit would write it for FROM (root) → RUN (input 0, selector '') with a result. */
function buildkitStyleCache(): ImportedCache {
  const from = rootKey(H('f'), 0);
  const run = rootKey(H('r'), 0);
  return new ImportedCache(
    'test',
    {
      layers: [
        { blob: H('a'), parent: -1 },
        { blob: H('b'), parent: 0 },
      ],
      records: [
        { digest: from, inputs: [], results: [] },
        { digest: run, inputs: [[{ selector: '', link: 0 }]], results: [{ layer: 1, createdAt: '2024-01-02T00:00:00Z' }] },
      ],
    },
    new Map([
      [H('a'), layer('a')],
      [H('b'), layer('b')],
    ]),
    noOpen,
  );
}

describe('ImportedCache lookups (v1/cachestorage.go)', () => {
  test('a key with inputs is found through links keyed by (input, rootKey(digest, output), selector)', () => {
    const imp = buildkitStyleCache();
    const fromId = rootKey(H('f'), 0);
    expect(imp.has(fromId)).toBe(true);
    const [runId] = imp.walkLinks(fromId, { input: 0, output: 0, digest: H('r'), selector: '' });
    expect(runId).toBeDefined();
    expect(imp.results(runId as string)[0]?.layers.map((l) => l.digest)).toEqual([H('a'), H('b')]);
    // Another output, selector or input index is another link.
    expect(imp.walkLinks(fromId, { input: 0, output: 1, digest: H('r'), selector: '' })).toEqual([]);
    expect(imp.walkLinks(fromId, { input: 0, output: 0, digest: H('r'), selector: H('5') })).toEqual([]);
    expect(imp.walkLinks(fromId, { input: 1, output: 0, digest: H('r'), selector: '' })).toEqual([]);
  });

  test('a hostile config (links out of range or negative, link cycles, looping or dangling layers) loads without throwing and answers only what is consistent', () => {
    const from = rootKey(H('f'), 0);
    const imp = new ImportedCache(
      't',
      {
        layers: [
          { blob: H('a'), parent: -1 },
          { blob: H('b'), parent: 2 },
          { blob: H('c'), parent: 1 },
          { blob: H('d'), parent: 99 },
        ],
        records: [
          { digest: from, inputs: [], results: [] },
          // 1 and 2 link each other (a cycle), 1 also from the root
          { digest: rootKey(H('1'), 0), inputs: [[{ selector: '', link: 0 }, { selector: '', link: 2 }]], results: [{ layer: 0, createdAt: '2024-01-01T00:00:00Z' }] },
          { digest: rootKey(H('2'), 0), inputs: [[{ selector: '', link: 1 }]], results: [{ layer: 1, createdAt: '2024-01-01T00:00:00Z' }] },
          { digest: rootKey(H('3'), 0), inputs: [[{ selector: '', link: 7 }, { selector: '', link: -1 }]], results: [{ layer: 3, createdAt: 'not a time' }, { layer: -5, createdAt: '' }] },
        ],
      },
      new Map(['a', 'b', 'c', 'd'].map((c) => [H(c), layer(c)])),
      noOpen,
    );
    const [one] = imp.walkLinks(from, { input: 0, output: 0, digest: H('1'), selector: '' });
    expect(one).toBeDefined();
    expect(imp.results(one as string).map((r) => r.layers.map((l) => l.digest))).toEqual([[H('a')]]);
    // The cycle is only a pair of links; the looping layer chain (1 → 2 → 1) gives no result.
    const [two] = imp.walkLinks(one as string, { input: 0, output: 0, digest: H('2'), selector: '' });
    expect(two).toBeDefined();
    expect(imp.results(two as string)).toEqual([]);
    expect(imp.walkLinks(two as string, { input: 0, output: 0, digest: H('1'), selector: '' })).toEqual([one]);
    // Links out of range lead nowhere; a chain through a missing layer is no result.
    expect(imp.size).toBe(4);
    const m = new CacheManager(CacheStore.open({ path: ':memory:' }));
    const key1 = new CacheKey(H('1'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }]]);
    expect(m.loadImported(key1, [imp])?.imported.layers.map((l) => l.digest)).toEqual([H('a')]);
    const key3 = new CacheKey(H('3'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }]]);
    expect(m.loadImported(key3, [imp])).toBeUndefined();
  });

  test('a result whose chain names a blob that is not a layer (a manifest, an attestation listed in the manifest list) is left out', () => {
    const manifest = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: H('m'), size: 10 };
    const imp = new ImportedCache(
      't',
      {
        layers: [
          { blob: H('a'), parent: -1 },
          { blob: H('m'), parent: 0 },
        ],
        records: [
          { digest: H('1'), inputs: [], results: [{ layer: 1, createdAt: '' }] },
          { digest: H('2'), inputs: [], results: [{ layer: 0, createdAt: '' }] },
        ],
      },
      new Map([
        [H('a'), { ...layer('a'), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
        [H('m'), manifest],
      ]),
      noOpen,
    );
    expect(imp.results(H('1'))).toEqual([]);
    expect(imp.results(H('2')).map((r) => r.layers.length)).toEqual([1]);
  });

  test('a result exported again keeps its createdAt as the cache wrote it (Go nanoseconds)', () => {
    const at = '2024-01-02T03:04:05.123456789Z';
    const imp = new ImportedCache('t', { layers: [{ blob: H('a'), parent: -1 }], records: [{ digest: H('1'), inputs: [], results: [{ layer: 0, createdAt: at }] }] }, new Map([[H('a'), layer('a')]]), noOpen);
    const r = imp.results(H('1'))[0];
    expect(r?.createdAt).toBe(Date.parse(at));
    const chains = new CacheChains();
    chains.add(H('2'))?.addResult({ layers: r?.layers ?? [], createdAt: r?.createdAt ?? 0, createdAtText: r?.createdAtText });
    expect(chains.marshal().config.records[0]?.results[0]?.createdAt).toBe(at);
  });

  test('a result naming a blob the cache does not list is left out', () => {
    const imp = new ImportedCache('t', { layers: [{ blob: H('a'), parent: -1 }], records: [{ digest: H('1'), inputs: [], results: [{ layer: 0, createdAt: '' }] }] }, new Map(), noOpen);
    expect(imp.results(H('1'))).toEqual([]);
  });

  test('the cache manager combines the local store with imports; the local result wins', () => {
    const store = CacheStore.open({ path: ':memory:' });
    const cm = new CacheManager(store);
    const imp = buildkitStyleCache();
    const key = new CacheKey(H('r'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }]]);
    expect(cm.ids(key)).toEqual([]);
    expect(cm.ids(key, [imp]).length).toBe(1);
    expect(cm.load(key)).toBeUndefined();
    expect(cm.loadImported(key, [imp])?.imported.layers.map((l) => l.digest)).toEqual([H('a'), H('b')]);
    // Another op digest on the same input does not match.
    expect(cm.loadImported(new CacheKey(H('x'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }]]), [imp])).toBeUndefined();
    // Recorded locally (after a fetch): the local store answers.
    cm.save(key, { snapshot: 'snap-1', size: 1, description: 'RUN' });
    expect(cm.load(key)?.record.snapshot).toBe('snap-1');
    store.close();
  });

  test('exporting keys and importing the result finds the same keys again (round trip through the config)', async () => {
    const from = new CacheKey(H('f'), 0);
    const ctx = new CacheKey('random:ctx', 0);
    const content = new CacheKey(H('c'), -1);
    const copy = new CacheKey(H('p'), 0, [[{ selector: '', key: from }], [{ selector: H('9'), key: ctx }, { selector: '', key: content }]]);
    const run = new CacheKey(H('r'), 0, [[{ selector: '', key: copy }]]);
    const chains = new CacheChains();
    await addCacheKeyChains(chains, run, async (k) => (k === run ? { layers: [layer('a'), layer('b')], createdAt: 5 } : k === copy ? { layers: [layer('a')], createdAt: 4 } : undefined));
    const { config, layers } = chains.marshal();
    // The random (session-bound) key is not exported: 4 records (from, content, copy, run).
    expect(config.records.length).toBe(4);
    const imp = new ImportedCache('rt', config, new Map(layers.map((l) => [l.digest, l])), noOpen);
    const cm = new CacheManager(CacheStore.open({ path: ':memory:' }));
    // The next build's keys: the local source has a new random key; the content key matches.
    const copy2 = new CacheKey(H('p'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }], [{ selector: H('9'), key: new CacheKey('random:other', 0) }, { selector: '', key: new CacheKey(H('c'), -1) }]]);
    const run2 = new CacheKey(H('r'), 0, [[{ selector: '', key: copy2 }]]);
    expect(cm.loadImported(copy2, [imp])?.imported.layers.map((l) => l.digest)).toEqual([H('a')]);
    expect(cm.loadImported(run2, [imp])?.imported.layers.map((l) => l.digest)).toEqual([H('a'), H('b')]);
    // Changed content: nothing.
    const copy3 = new CacheKey(H('p'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }], [{ selector: '', key: new CacheKey(H('d'), -1) }]]);
    expect(cm.loadImported(copy3, [imp])).toBeUndefined();
  });
});

describe('export backlinks (solver/exporter.go addBacklinks)', () => {
  test('a content key stored when the step ran is exported with a later key that hit by definition', async () => {
    const store = CacheStore.open({ path: ':memory:' });
    const cm = new CacheManager(store);
    const from = new CacheKey(H('f'), 0);
    const content = new CacheKey(H('c'), -1);
    const full = new CacheKey(H('p'), 0, [[{ selector: '', key: from }, { selector: '', key: content }]]);
    cm.save(full, { snapshot: 's', size: 1, description: 'COPY' });
    // The next build hits through the definition key alone (no content key computed).
    const fast = new CacheKey(H('p'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }]]);
    const resolve = async () => ({ layers: [layer('a')], createdAt: 1 });
    const without = new CacheChains();
    await addCacheKeyChains(without, fast, resolve);
    const withBack = new CacheChains();
    await addCacheKeyChains(withBack, fast, resolve, backlinkSource(cm));
    const digests = (c: CacheChains) => c.marshal().config.records.map((r) => r.digest);
    expect(digests(without)).not.toContain(rootKey(H('c'), -1));
    expect(digests(withBack)).toContain(rootKey(H('c'), -1));
    // The same records as exporting the full key the step ran with.
    const ran = new CacheChains();
    await addCacheKeyChains(ran, full, resolve, backlinkSource(cm));
    expect(marshalCacheConfig(withBack.marshal().config)).toBe(marshalCacheConfig(ran.marshal().config));
    store.close();
  });
});

describe('export backlinks of an imported cache', () => {
  test('re-exporting a key that hit in an import keeps the links the import has into it (a content key never computed here)', async () => {
    const from = new CacheKey(H('f'), 0);
    const content = new CacheKey(H('c'), -1);
    const full = new CacheKey(H('p'), 0, [[{ selector: '', key: from }, { selector: H('5'), key: content }]]);
    const resolve = async () => ({ layers: [layer('a')], createdAt: 1 });
    // The cache a first build exported (it computed the content key).
    const first = new CacheChains();
    await addCacheKeyChains(first, full, resolve);
    const cfg = first.marshal();
    const imp = new ImportedCache('t', cfg.config, new Map(cfg.layers.map((l) => [l.digest, l])), noOpen);
    // A fresh root hits through the definition key alone; exporting it gives the same cache.
    const cm = new CacheManager(CacheStore.open({ path: ':memory:' }));
    const fast = new CacheKey(H('p'), 0, [[{ selector: '', key: new CacheKey(H('f'), 0) }]]);
    expect(cm.loadImported(fast, [imp])).toBeDefined();
    const again = new CacheChains();
    await addCacheKeyChains(again, fast, resolve, backlinkSource(cm, [imp]));
    expect(marshalCacheConfig(again.marshal().config)).toBe(marshalCacheConfig(cfg.config));
  });
});

describe('scheduler with an imported cache', () => {
  interface Fake {
    readonly kind: string;
  }
  const v = (name: string, inputs: SolverVertex<Fake>[] = []): SolverVertex<Fake> => ({ digest: H(name), name, inputs: inputs.map((i) => ({ vertex: i, index: 0 })), options: {}, op: { kind: name } });

  test('an imported hit runs no op; only the result the build returns is fetched, then it is local', async () => {
    const execs: string[] = [];
    const resolveOp = (vx: SolverVertex): Op => ({
      cacheMap: async () => ({ digest: vx.digest, deps: vx.inputs.map(() => ({})) }),
      exec: async (): Promise<WorkerRef[]> => {
        execs.push(vx.name);
        return [{ snapshot: `snap-${vx.name}`, size: 1 }];
      },
    });
    const a = v('a');
    const b = v('b', [a]);
    const c = v('c', [b]);
    const target: SolverEdge = { vertex: c, index: 0 };
    // Build once locally, export max, import into a fresh store.
    const s1 = new Scheduler({ resolveOp, cache: new CacheManager(CacheStore.open({ path: ':memory:' })) });
    const r1 = await s1.build(target);
    const chains = new CacheChains();
    const layerOf: Record<string, string> = { 'snap-b': 'b', 'snap-c': 'c' };
    await addCacheKeyChains(chains, r1.cacheKey as CacheKey, async (k) => {
      const kr = r1.cacheResult?.(k);
      if (kr?.kind !== 'snapshot') return undefined;
      const top = layerOf[kr.snapshot];
      return top === undefined ? undefined : { layers: top === 'c' ? [layer('b'), layer('c')] : [layer('b')], createdAt: kr.created };
    });
    const { config, layers } = chains.marshal();
    const imp = new ImportedCache('max', config, new Map(layers.map((l) => [l.digest, l])), noOpen);
    expect(execs).toEqual(['a', 'b', 'c']);

    const store2 = CacheStore.open({ path: ':memory:' });
    const s2 = new Scheduler({ resolveOp, cache: new CacheManager(store2) });
    const fetched: ImportedResult[] = [];
    const loadImported = async (r: ImportedResult): Promise<WorkerRef> => {
      fetched.push(r);
      return { snapshot: `imported-${r.layers.length}`, size: 2 };
    };
    const r2 = await s2.build(target, { cacheImports: [imp], loadImported });
    expect(execs).toEqual(['a', 'b', 'c']);
    expect(r2.cached).toBe(true);
    expect(r2.ref.snapshot).toBe('imported-2');
    expect(fetched.map((r) => r.layers.map((l) => l.digest))).toEqual([[H('b'), H('c')]]);
    // Recorded locally: the next build needs neither the import nor a fetch.
    const r3 = await s2.build(target);
    expect(r3.ref.snapshot).toBe('imported-2');
    expect(fetched.length).toBe(1);
    expect(execs).toEqual(['a', 'b', 'c']);
  });
});
