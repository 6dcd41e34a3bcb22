import { describe, expect, test } from 'vitest';
import { CacheChains } from './remote-chains.js';
import { CACHE_CONFIG_MEDIA_TYPE, INLINE_CACHE_KEY, goTime, layerChain, marshalCacheConfig, marshalCacheRecords, parseCacheConfig } from './remote-config.js';

const H = (c: string): string => `sha256:${c.repeat(64).slice(0, 64)}`;
const layer = (c: string) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: H(c), size: 10 });

describe('cache config wire format (BuildKit cache/remotecache/v1/spec.go)', () => {
  test('constants are BuildKit\'s', () => {
    // v1/spec.go CacheConfigMediaTypeV0; remotecache/import.go `image.Cache` json tag.
    expect(CACHE_CONFIG_MEDIA_TYPE).toBe('application/vnd.buildkit.cacheconfig.v0');
    expect(INLINE_CACHE_KEY).toBe('moby.buildkit.cache.v0');
  });

  test('field names, order and omitempty as Go marshals the structs', () => {
    // CacheConfig{layers,records}; CacheLayer{blob,parent omitempty,annotations}; CacheRecord{layers
    // (results) omitempty, chains, digest, inputs omitempty}; CacheResult{layer (no omitempty),
    // createdAt}; CacheInput{selector omitempty, link}.
    const json = marshalCacheConfig({
      layers: [
        { blob: H('a'), parent: -1 },
        { blob: H('b'), parent: 0 },
      ],
      records: [
        { digest: H('1'), inputs: [], results: [] },
        { digest: H('2'), inputs: [[{ selector: '', link: 0 }], [{ selector: H('5'), link: 0 }]], results: [{ layer: 1, createdAt: '2024-01-02T03:04:05.12Z' }] },
      ],
    });
    expect(json).toBe(
      `{"layers":[{"blob":"${H('a')}","parent":-1},{"blob":"${H('b')}"}],` +
        `"records":[{"digest":"${H('1')}"},` +
        `{"layers":[{"layer":1,"createdAt":"2024-01-02T03:04:05.12Z"}],"digest":"${H('2')}","inputs":[[{"link":0}],[{"selector":"${H('5')}","link":0}]]}]}`,
    );
    expect(marshalCacheConfig({ layers: [], records: [] })).toBe('{}');
    expect(marshalCacheRecords([{ digest: H('1'), inputs: [], results: [{ layer: 0, createdAt: '0001-01-01T00:00:00Z' }] }])).toBe(`[{"layers":[{"layer":0,"createdAt":"0001-01-01T00:00:00Z"}],"digest":"${H('1')}"}]`);
  });

  test('Go time.Time JSON: UTC, trailing zeros of the fraction dropped', () => {
    expect(goTime(Date.UTC(2024, 0, 2, 3, 4, 5, 120))).toBe('2024-01-02T03:04:05.12Z');
    expect(goTime(Date.UTC(2024, 0, 2, 3, 4, 0, 0))).toBe('2024-01-02T03:04:00Z');
    expect(goTime(Date.UTC(2024, 0, 2, 3, 4, 5, 7))).toBe('2024-01-02T03:04:05.007Z');
  });

  test('parses a config as BuildKit writes it: a missing parent is index 0, -1 ends a chain, unknown fields ignored', () => {
    const text = `{"layers":[{"blob":"${H('a')}","parent":-1},{"blob":"${H('b')}","annotations":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","diffID":"${H('d')}","size":3,"createdAt":"2024-01-01T00:00:00Z"}}],"records":[{"digest":"${H('1')}"},{"layers":[{"layer":1,"createdAt":"2024-01-02T03:04:05Z"}],"chains":[{"layers":[1]}],"digest":"${H('2')}","inputs":[[{"link":0}]]}]}`;
    const cc = parseCacheConfig(text);
    expect(cc.layers[1]?.parent).toBe(0);
    expect(cc.layers[1]?.annotations?.diffID).toBe(H('d'));
    expect(layerChain(cc.layers, 1).map((l) => l.blob)).toEqual([H('a'), H('b')]);
    expect(cc.records[1]?.inputs).toEqual([[{ selector: '', link: 0 }]]);
    expect(cc.records[1]?.results).toEqual([{ layer: 1, createdAt: '2024-01-02T03:04:05Z' }]);
    // What kiln writes reads back the same (parent 0 left out, -1 kept).
    expect(marshalCacheConfig(cc)).toContain(`{"blob":"${H('a')}","parent":-1}`);
  });

  test('rejects what is not a cache config, and looping or out-of-range layers', () => {
    expect(() => parseCacheConfig('not json')).toThrow(expect.objectContaining({ code: 'SOLVER_CACHE_IMPORT' }));
    expect(() => parseCacheConfig('[]')).toThrow(expect.objectContaining({ code: 'SOLVER_CACHE_IMPORT' }));
    expect(() => parseCacheConfig('{"records":[{"inputs":[[{"link":"x"}]]}]}')).toThrow(expect.objectContaining({ code: 'SOLVER_CACHE_IMPORT' }));
    expect(() => layerChain([{ blob: H('a'), parent: 0 }], 0)).toThrow(/looping/);
    expect(() => layerChain([{ blob: H('a'), parent: 3 }], 0)).toThrow(/out of range/);
  });
});

describe('CacheChains (v1/chains.go, utils.go normalizeItem + sortConfig)', () => {
  test('records with the same digest reached through the same links merge; layers and records come out sorted', () => {
    const c = new CacheChains();
    const root = c.add(H('f'));
    const root2 = c.add(H('f')); // the same root key exported twice
    const run1 = c.add(H('e'));
    const run2 = c.add(H('e'));
    if (root === undefined || root2 === undefined || run1 === undefined || run2 === undefined) throw new Error('add');
    run1.linkFrom(root, 0, '');
    run2.linkFrom(root2, 0, '');
    run1.addResult({ layers: [layer('b'), layer('a')], createdAt: Date.UTC(2024, 0, 1) });
    run2.addResult({ layers: [layer('b'), layer('a')], createdAt: Date.UTC(2024, 0, 2) });
    const { config, layers } = c.marshal();
    expect(config.records.map((r) => r.digest)).toEqual([H('e'), H('f')]);
    // Layers sorted by blob; the parent index follows the move: a's parent is b.
    expect(config.layers).toEqual([
      { blob: H('a'), parent: 1 },
      { blob: H('b'), parent: -1 },
    ]);
    expect(layers.map((l) => l.digest)).toEqual([H('a'), H('b')]);
    // One merged record keeps the newest result, pointing at the top layer a.
    expect(config.records[0]?.results).toEqual([{ layer: 0, createdAt: '2024-01-02T00:00:00Z' }]);
    expect(config.records[0]?.inputs).toEqual([[{ selector: '', link: 1 }]]);
  });

  test('a record with an input left without links is dropped, and records linked only from it (chains.go validate)', () => {
    const c = new CacheChains();
    const a = c.add(`sha256:${'a'.repeat(64)}`);
    const b = c.add(`sha256:${'b'.repeat(64)}`);
    const d = c.add(`sha256:${'d'.repeat(64)}`);
    if (a === undefined || b === undefined || d === undefined) throw new Error('not added');
    b.linkFrom(a, 1, ''); // input 0 has no link
    d.linkFrom(b, 0, '');
    expect(c.marshal().config.records.map((r) => r.digest)).toEqual([a.digest]);
  });

  test('the same cache gives the same bytes whatever order records were added in; random keys and the empty layer are left out', () => {
    const build = (reverse: boolean): string => {
      const c = new CacheChains();
      const mk = [
        () => {
          const r = c.add(H('1'));
          const x = c.add(H('3'));
          if (r && x) {
            x.linkFrom(r, 0, H('9'));
            x.addResult({ layers: [layer('c'), { ...layer('4'), digest: 'sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1' }, layer('d')], createdAt: 1 });
          }
        },
        () => {
          const r = c.add(H('2'));
          const x = c.add(H('0'));
          if (r && x) {
            x.linkFrom(r, 0, '');
            x.addResult({ layers: [layer('c'), layer('e')], createdAt: 2 });
          }
        },
      ];
      expect(c.add('random:abc')).toBeUndefined();
      for (const f of reverse ? [...mk].reverse() : mk) f();
      return marshalCacheConfig(c.marshal().config);
    };
    const one = build(false);
    expect(build(true)).toBe(one);
    expect(one).not.toContain('4f4fb700');
    // c is shared as the bottom of both chains: one layer entry.
    expect(JSON.parse(one).layers.filter((l: { blob: string }) => l.blob === H('c')).length).toBe(1);
  });
});
