import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ImportedCache, chainIds, type CacheLayerDescriptor, type OpContext, type SolverVertex } from '@kiln/solver';
import { tarOf } from '../../../runtime/test/helpers/tar.js';
import { importedResultLoader } from '../../src/engine/cache-import.js';
import { KilnEngine } from '../../src/engine/engine.js';
import { requireTools } from './build-helpers.js';

// The loader that turns an imported cache result into snapshots, on a real engine (its
// snapshotter, content store and cache store), with caches made by hand: what a prune running
// beside it may remove, and what a hostile cache can do.

let root: string;
let engine: KilnEngine;

beforeAll(async () => {
  requireTools();
  root = await mkdtemp(join(tmpdir(), 'kiln-cache-import-'));
  engine = await KilnEngine.open({ root });
}, 120_000);

afterAll(async () => {
  engine?.close();
  await rm(root, { recursive: true, force: true });
});

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A gzip layer holding `files`, as a cache descriptor (diffID annotated, as BuildKit writes it). */
async function layer(files: Record<string, string>): Promise<{ desc: CacheLayerDescriptor; blob: Buffer }> {
  const tar = await tarOf(Object.entries(files).map(([name, body]) => ({ name, body })));
  const blob = gzipSync(tar);
  return {
    blob,
    desc: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(blob), size: blob.length, annotations: { 'containerd.io/uncompressed': sha(tar) } },
  };
}

const RECORD = `sha256:${'1'.repeat(64)}`;

/** An imported cache with one record (a root key) whose result is `layers`, read from memory; `onOpen` runs before each blob is served. */
function cacheOf(layers: ReadonlyArray<{ desc: CacheLayerDescriptor; blob: Buffer }>, onOpen?: (d: CacheLayerDescriptor) => Promise<void>): ImportedCache {
  const blobs = new Map(layers.map((l) => [l.desc.digest, l.desc]));
  const bytes = new Map(layers.map((l) => [l.desc.digest, l.blob]));
  const config = {
    layers: layers.map((l, i) => ({ blob: l.desc.digest, parent: i - 1 })),
    records: [{ digest: RECORD, inputs: [], results: [{ layer: layers.length - 1, createdAt: '2024-01-01T00:00:00Z' }] }],
  };
  return new ImportedCache('test cache', config, blobs, async (d) => {
    await onOpen?.(d);
    const b = bytes.get(d.digest);
    if (b === undefined) throw new Error(`no blob ${d.digest}`);
    return (async function* () {
      yield b;
    })();
  });
}

function ctxOf(signal: AbortSignal): OpContext {
  return { signal, vertex: { digest: 'sha256:test', name: 'test' } as SolverVertex, log: () => undefined, status: () => undefined };
}

const layerId = (descs: ReadonlyArray<CacheLayerDescriptor>, i: number): string => `layer-${(chainIds(descs.map((d) => d.annotations?.['containerd.io/uncompressed'] ?? '')) [i] ?? '').replace('sha256:', '')}`;

const exists = (id: string): Promise<boolean> => engine.snapshotter.stat(id).then(() => true, () => false);

describe('importedResultLoader', () => {
  test('a prune while the import unpacks keeps the layer snapshots it found or made until the step is done with them', async () => {
    const t = `${Date.now()}-${Math.random()}`;
    const base = await layer({ 'base.txt': `base ${t}` });
    const top = await layer({ 'top.txt': `top ${t}` });
    const ids = [layerId([base.desc, top.desc], 0), layerId([base.desc, top.desc], 1)];

    // The base layer exists already, recorded as a cache result some earlier build made.
    const earlier = new AbortController();
    const first = await importedResultLoader(engine)(resultOf(cacheOf([base])), ctxOf(earlier.signal));
    earlier.abort();
    expect(first.snapshot).toBe(ids[0]);
    engine.cache.save(engine.cache.newId(), [], { id: engine.cache.newId(), snapshot: ids[0] as string, size: 1, description: 'earlier build' });

    // Importing base+top: the base is found unpacked; while the top blob is fetched, a prune of everything runs.
    const step = new AbortController();
    let pruned: string[] = [];
    const cache = cacheOf([base, top], async (d) => {
      if (d.digest === top.desc.digest) pruned = (await engine.cache.prune({ all: true })).map((u) => u.snapshot);
    });
    const ref = await importedResultLoader(engine)(resultOf(cache), ctxOf(step.signal));
    expect(ref.snapshot).toBe(ids[1]);
    expect(pruned).not.toContain(ids[0]);
    expect(await exists(ids[0] as string)).toBe(true);
    expect(await exists(ids[1] as string)).toBe(true);

    // Once the step's signal ends (the scheduler recorded and leased the result), the leases go.
    engine.cache.save(engine.cache.newId(), [], { id: engine.cache.newId(), snapshot: ids[0] as string, size: 1, description: 'import' });
    const inUse = () => engine.cache.du().find((u) => u.snapshot === ids[0])?.inUse;
    expect(inUse()).toBe(true);
    step.abort();
    expect(inUse()).toBe(false);
  }, 120_000);
});

function resultOf(c: ImportedCache) {
  const r = c.results(RECORD)[0];
  if (r === undefined) throw new Error('no result in the test cache');
  return r;
}
