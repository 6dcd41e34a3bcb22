import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cacheManifestList, digestOf, parseDigest, parseReference, pushRegistryCache, writeLocalCache, type Descriptor } from '@kiln/runtime';
import { ImportedCache, chainIds, marshalCacheConfig, type CacheLayerDescriptor, type OpContext, type SolverVertex } from '@kiln/solver';
import { tarOf } from '../../../runtime/test/helpers/tar.js';
import { importCaches, importedResultLoader } from '../../src/engine/cache-import.js';
import { startRegistry } from '../../../runtime/test/helpers/registry.js';
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

describe('a hostile or corrupt cache', () => {
  test('a blob whose bytes do not match its digest is refused and nothing is stored or unpacked under that digest', async () => {
    const good = await layer({ 'a.txt': `a ${Date.now()}` });
    const other = await layer({ 'a.txt': 'something else' });
    // The cache claims good's digest and diffID but serves other's bytes: of another size, then of the same size.
    const cache = cacheOf([{ desc: good.desc, blob: other.blob }]);
    await expect(importedResultLoader(engine)(resultOf(cache), ctxOf(new AbortController().signal))).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    const sameSize = Buffer.from(good.blob);
    sameSize[sameSize.length - 1] = (sameSize[sameSize.length - 1] ?? 0) ^ 0xff;
    await expect(importedResultLoader(engine)(resultOf(cacheOf([{ desc: good.desc, blob: sameSize }])), ctxOf(new AbortController().signal))).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    const { parseDigest } = await import('@kiln/runtime');
    expect(await engine.content.has(parseDigest(good.desc.digest))).toBe(false);
    expect(await exists(layerId([good.desc], 0))).toBe(false);
  });

  test('a layer whose content does not match its diffID is refused: no layer-<chainID> snapshot is made from it', async () => {
    const real = await layer({ 'b.txt': `b ${Date.now()}` });
    const claimed = await layer({ 'b.txt': 'what the cache says it is' });
    const lying = { blob: real.blob, desc: { ...real.desc, annotations: { 'containerd.io/uncompressed': claimed.desc.annotations?.['containerd.io/uncompressed'] ?? '' } } };
    await expect(importedResultLoader(engine)(resultOf(cacheOf([lying])), ctxOf(new AbortController().signal))).rejects.toMatchObject({ code: 'LAYER_INVALID' });
    expect(await exists(layerId([lying.desc], 0))).toBe(false);
  });

  test('a layer climbing out with ../ is refused (PATH_ESCAPE); one writing through an absolute symlink writes nothing outside its snapshot', async () => {
    const t = `${process.pid}-${Date.now()}`;
    const outside = join(tmpdir(), `kiln-escape-${t}`);
    const layerOf = async (entries: Parameters<typeof tarOf>[0]) => {
      const tar = await tarOf(entries);
      const blob = gzipSync(tar);
      return { blob, desc: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(blob), size: blob.length, annotations: { 'containerd.io/uncompressed': sha(tar) } } };
    };
    // ../ above the root: the layer is refused.
    const climbing = await layerOf([{ name: `../../../../../../..${outside}`, body: 'escaped' }]);
    await expect(importedResultLoader(engine)(resultOf(cacheOf([climbing])), ctxOf(new AbortController().signal))).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
    expect(await exists(layerId([climbing.desc], 0))).toBe(false);
    // An absolute symlink is followed inside the snapshot (as in a chroot): the file lands there.
    const linked = await layerOf([
      { name: 'link', type: 'symlink', linkname: '/tmp' },
      { name: `link/kiln-escape-link-${t}`, body: 'escaped through a link' },
    ]);
    await importedResultLoader(engine)(resultOf(cacheOf([linked])), ctxOf(new AbortController().signal)).catch(() => undefined);
    expect(await stat(outside).then(() => true, () => false)).toBe(false);
    expect(await stat(join(tmpdir(), `kiln-escape-link-${t}`)).then(() => true, () => false)).toBe(false);
  });
});

/** A cache of one root record whose result is `l`, as the bytes BuildKit would write: config and manifest list. */
async function storedCache(l: { desc: CacheLayerDescriptor; blob: Buffer }) {
  await engine.content.writeBlob(l.blob);
  const configBytes = Buffer.from(marshalCacheConfig({ layers: [{ blob: l.desc.digest, parent: -1 }], records: [{ digest: RECORD, inputs: [], results: [{ layer: 0, createdAt: '2024-01-01T00:00:00Z' }] }] }));
  const config: Descriptor = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(configBytes), size: configBytes.length };
  const layerDesc: Descriptor = { mediaType: l.desc.mediaType, digest: parseDigest(l.desc.digest), size: l.desc.size, ...(l.desc.annotations === undefined ? {} : { annotations: l.desc.annotations }) };
  const list = cacheManifestList([layerDesc], config, true);
  return { config, configBytes, layerDesc, list };
}

describe('what an import remembers for image exports', () => {
  test('a blob is remembered for a diffID only when this import verified it: a cache cannot map a layer it did not unpack to another blob', async () => {
    const real = await layer({ 'm.txt': `mapped ${Date.now()}` });
    const other = await layer({ 'm.txt': 'other content' });
    const ac = new AbortController();
    await importedResultLoader(engine)(resultOf(cacheOf([real])), ctxOf(ac.signal));
    ac.abort();
    const id = layerId([real.desc], 0);
    // The diffID record of that layer is gone (a lost file); the snapshot stays.
    await rm(join(root, 'engine', 'layers', `diff-${(real.desc.annotations?.['containerd.io/uncompressed'] ?? '').slice(7)}.json`), { force: true });
    // A cache claims another blob (present in the store) is that layer: the snapshot exists, so nothing is unpacked or checked.
    await engine.content.writeBlob(other.blob);
    const lying = { blob: other.blob, desc: { ...other.desc, annotations: real.desc.annotations ?? {} } };
    const ac2 = new AbortController();
    await importedResultLoader(engine)(resultOf(cacheOf([lying])), ctxOf(ac2.signal));
    ac2.abort();
    const [exported] = await engine.layers.layersOf(id);
    expect(exported?.descriptor.digest).not.toBe(other.desc.digest);
    expect(exported?.diffID).toBe(real.desc.annotations?.['containerd.io/uncompressed']);
  });
});

describe('cache sources that stop working or are not caches', () => {
  test('a registry that goes down after the import: loading a result fails within seconds with an error (the scheduler then runs the step), no crash', async () => {
    const registry = await startRegistry();
    try {
      const l = await layer({ 'r.txt': `registry ${Date.now()}` });
      const c = await storedCache(l);
      const ref = `${registry.host}/cache/down:latest`;
      await pushRegistryCache(engine.registry, engine.content, parseReference(ref), [c.layerDesc], [{ descriptor: c.config, bytes: c.configBytes }], { descriptor: c.list.descriptor, bytes: c.list.bytes });
      // A fresh content store would fetch the layer: this one drops it first.
      await engine.content.delete(parseDigest(l.desc.digest));
      const warnings: string[] = [];
      const [imp] = await importCaches(engine, [{ type: 'registry', ref }], { onWarning: (m) => warnings.push(m) });
      expect(warnings).toEqual([]);
      if (imp === undefined) throw new Error('not imported');
      await registry.stop();
      const t0 = Date.now();
      const res = imp.results(RECORD)[0];
      if (res === undefined) throw new Error('no result');
      await expect(importedResultLoader(engine)(res, ctxOf(new AbortController().signal))).rejects.toBeInstanceOf(Error);
      expect(Date.now() - t0).toBeLessThan(30_000);
      expect(await exists(layerId([l.desc], 0))).toBe(false);
    } finally {
      await registry.stop();
    }
  }, 120_000);

  test('a cancel while a cache is read cancels, it is not a warning about the cache', async () => {
    const ac = new AbortController();
    const reason = new Error('interrupted (SIGINT)');
    ac.abort(reason);
    const warnings: string[] = [];
    await expect(importCaches(engine, [{ type: 'registry', ref: '127.0.0.1:9/cache/x:latest' }], { signal: ac.signal, onWarning: (m) => warnings.push(m) })).rejects.toBe(reason);
    expect(warnings).toEqual([]);
  });

  test('an image layout without a cache manifest, and an index of foreign things, are warnings (no cache), not errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-not-cache-'));
    try {
      // An OCI image (no inline cache) tagged latest, written as an image layout.
      const l = await layer({ 'i.txt': 'image' });
      await engine.content.writeBlob(l.blob);
      const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [l.desc.annotations?.['containerd.io/uncompressed']] } }));
      const cfgDesc: Descriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(cfg), size: cfg.length };
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfgDesc, layers: [{ mediaType: l.desc.mediaType, digest: l.desc.digest, size: l.desc.size }] }));
      const mDesc: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(manifest), size: manifest.length };
      const att = Buffer.from('{"_type":"https://in-toto.io/Statement/v0.1"}');
      const attDesc: Descriptor = { mediaType: 'application/vnd.in-toto+json', digest: digestOf(att), size: att.length };
      const foreign = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [attDesc, { mediaType: 'application/vnd.example.unknown', digest: attDesc.digest, size: att.length }] }));
      const fDesc: Descriptor = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: digestOf(foreign), size: foreign.length };
      await writeLocalCache(engine.content, dir, 'latest', [{ mediaType: l.desc.mediaType, digest: parseDigest(l.desc.digest), size: l.desc.size }], [{ descriptor: cfgDesc, bytes: cfg }, { descriptor: mDesc, bytes: manifest }], mDesc);
      await writeLocalCache(engine.content, dir, 'foreign', [], [{ descriptor: attDesc, bytes: att }, { descriptor: fDesc, bytes: foreign }], fDesc);
      await mkdir(join(dir, 'empty'));
      await writeFile(join(dir, 'empty', 'index.json'), '{"schemaVersion":2,"manifests":[]}');
      const warnings: string[] = [];
      const got = await importCaches(
        engine,
        [
          { type: 'local', src: dir, tag: 'latest' },
          { type: 'local', src: dir, tag: 'foreign' },
          { type: 'local', src: join(dir, 'empty'), tag: 'latest' },
        ],
        { onWarning: (m) => warnings.push(m) },
      );
      expect(got).toEqual([]);
      expect(warnings).toEqual([
        expect.stringMatching(/failed to import cache type=local,src=.*: .* is an image without inline cache/),
        expect.stringMatching(/failed to import cache type=local,src=.*: .* is neither a cache nor an image with inline cache/),
        expect.stringMatching(/failed to import cache type=local,src=.*empty: .*no cache tagged latest/),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function resultOf(c: ImportedCache) {
  const r = c.results(RECORD)[0];
  if (r === undefined) throw new Error('no result in the test cache');
  return r;
}
