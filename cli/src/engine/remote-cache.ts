import { createHash } from 'node:crypto';
import {
  cacheManifestList,
  convertLayer,
  digestOf,
  isManifestMediaType,
  openLocalCache,
  openRegistryCache,
  parseDigest,
  parseReference,
  pushRegistryCache,
  unpackLayer,
  writeLocalCache,
  type CacheSourceReader,
  type Descriptor,
  type LayerRef,
} from '@kiln/runtime';
import {
  ANNOTATION_CREATED_AT,
  ANNOTATION_UNCOMPRESSED,
  CACHE_CONFIG_MEDIA_TYPE,
  CacheChains,
  CacheManager,
  INLINE_CACHE_KEY,
  ImportedCache,
  addCacheKeyChains,
  chainIds,
  goTime,
  layerChain,
  marshalCacheConfig,
  marshalCacheRecords,
  parseCacheConfig,
  parseCacheRecords,
  type BuildResult,
  type CacheConfig,
  type CacheExportMode,
  type CacheLayerDescriptor,
  type ChainResult,
  type ImportedResult,
  type LoadImportedResult,
  type MarshaledCache,
  type ProgressSink,
} from '@kiln/solver';
import type { CacheExportSpec, CacheImportSpec } from './cache-spec.js';
import type { KilnEngine } from './engine.js';
import { EngineError } from './errors.js';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One progress vertex with BuildKit-like status lines (`writing layer sha256:…`). */
function progressVertex(progress: ProgressSink | undefined, vertex: string, name: string) {
  const t0 = Date.now();
  progress?.emit({ kind: 'vertex.started', vertex, name, time: t0 });
  return {
    status(id: string): void {
      const t = Date.now();
      progress?.emit({ kind: 'status', vertex, id, current: 0, started: t, completed: t, time: t });
    },
    done(): void {
      progress?.emit({ kind: 'vertex.done', vertex, time: Date.now() });
    },
    fail(e: unknown): void {
      progress?.emit({ kind: 'vertex.error', vertex, error: e instanceof Error ? e.message : String(e), time: Date.now() });
    },
  };
}

// ---------------------------------------------------------------- import

/**
 * Loads every `--cache-from` source as an {@link ImportedCache}. A source that is missing or not
 * a cache is a warning (`onWarning`) and is skipped, as buildx builds without it.
 */
export async function importCaches(
  engine: KilnEngine,
  specs: readonly CacheImportSpec[],
  opts: { progress?: ProgressSink; signal?: AbortSignal; onWarning: (msg: string) => void },
): Promise<ImportedCache[]> {
  const out: ImportedCache[] = [];
  for (const [i, spec] of specs.entries()) {
    const what = spec.type === 'local' ? `type=local,src=${spec.src}` : spec.ref;
    const v = progressVertex(opts.progress, `cache-import-${i}`, `importing cache manifest from ${what}`);
    try {
      const reader = spec.type === 'local' ? await openLocalCache(spec.src, spec.tag, spec.digest) : await openRegistryCache(engine.registry, parseReference(spec.ref), opts.signal);
      out.push(...(await readCache(reader, opts.signal)));
      v.done();
    } catch (e) {
      v.done();
      opts.onWarning(`failed to import cache ${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return out;
}

/**
 * The caches a root manifest holds (cache/remotecache/import.go Resolve): a manifest list with a
 * `application/vnd.buildkit.cacheconfig.v0` entry is a cache (its other entries are the layer
 * blobs); otherwise an image (or index of images) is read for inline cache.
 */
async function readCache(reader: CacheSourceReader, signal?: AbortSignal): Promise<ImportedCache[]> {
  const root = JSON.parse(reader.rootBytes.toString('utf8')) as unknown;
  if (!isObj(root)) throw new EngineError('KLN0704', `${reader.name}: the manifest is not a JSON object`);
  const manifests = Array.isArray(root['manifests']) ? (root['manifests'] as Descriptor[]) : undefined;
  const open = (d: CacheLayerDescriptor, s?: AbortSignal) => reader.open({ mediaType: d.mediaType, digest: parseDigest(d.digest), size: d.size }, s ?? signal);
  if (manifests !== undefined) {
    const cfg = manifests.find((m) => m.mediaType === CACHE_CONFIG_MEDIA_TYPE);
    if (cfg !== undefined) {
      const config = parseCacheConfig(await reader.fetch(cfg, signal));
      const blobs = new Map<string, CacheLayerDescriptor>();
      for (const m of manifests) {
        if (m.mediaType !== CACHE_CONFIG_MEDIA_TYPE) blobs.set(m.digest, { mediaType: m.mediaType, digest: m.digest, size: m.size, ...(m.annotations === undefined ? {} : { annotations: m.annotations }) });
      }
      return [new ImportedCache(reader.name, config, blobs, open)];
    }
    const out: ImportedCache[] = [];
    for (const m of manifests) {
      if (!isManifestMediaType(m.mediaType)) continue;
      const c = await inlineCache(reader, await reader.fetch(m, signal), open, signal);
      if (c !== undefined) out.push(c);
    }
    if (out.length === 0) throw new EngineError('KLN0704', `${reader.name} is neither a cache nor an image with inline cache`);
    return out;
  }
  const c = await inlineCache(reader, reader.rootBytes, open, signal);
  if (c === undefined) throw new EngineError('KLN0704', `${reader.name} is an image without inline cache`);
  return [c];
}

/**
 * Inline cache of an image (import.go importInlineCache): the config's `moby.buildkit.cache.v0`
 * (base64 of the records) over the manifest's layers, each layer's parent the one before it, its
 * diffID and creation time from the config's rootfs and history.
 */
async function inlineCache(reader: CacheSourceReader, manifestBytes: Buffer, open: ImportedCache['open'], signal?: AbortSignal): Promise<ImportedCache | undefined> {
  const m = JSON.parse(manifestBytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] };
  if (m.config === undefined || !Array.isArray(m.layers) || m.layers.length === 0) return undefined;
  const img = JSON.parse((await reader.fetch(m.config, signal)).toString('utf8')) as Record<string, unknown>;
  const inline = img[INLINE_CACHE_KEY];
  if (typeof inline !== 'string') return undefined;
  const rootfs = isObj(img['rootfs']) ? img['rootfs'] : {};
  const diffIds = Array.isArray(rootfs['diff_ids']) ? (rootfs['diff_ids'] as string[]) : [];
  if (diffIds.length !== m.layers.length) return undefined;
  const history = Array.isArray(img['history']) ? (img['history'] as Array<Record<string, unknown>>) : [];
  const created = history.filter((h) => h['empty_layer'] !== true).map((h) => (typeof h['created'] === 'string' ? h['created'] : ''));
  const records = parseCacheRecords(JSON.parse(Buffer.from(inline, 'base64').toString('utf8')) as unknown);
  const blobs = new Map<string, CacheLayerDescriptor>();
  const layers = m.layers.map((l, i) => {
    const annotations: Record<string, string> = { ...l.annotations, [ANNOTATION_UNCOMPRESSED]: diffIds[i] as string };
    const c = created[i];
    if (c !== undefined && c !== '') annotations[ANNOTATION_CREATED_AT] = c;
    blobs.set(l.digest, { mediaType: l.mediaType, digest: l.digest, size: l.size, annotations });
    return { blob: l.digest, parent: i - 1 };
  });
  const config: CacheConfig = { layers, records };
  return new ImportedCache(`${reader.name} (inline)`, config, blobs, open);
}

/**
 * Turns an imported result into snapshots: each layer of the chain becomes the snapshot
 * `layer-<chainID>` (the names image pulls use, so a base image already unpacked is shared), its
 * blob fetched into the content store only when that snapshot is missing. The blobs are
 * remembered by diffID, so an image export reuses them instead of taring the layers again.
 */
export function importedResultLoader(engine: KilnEngine): LoadImportedResult {
  // Layers several results of this build share are unpacked once; another process (or build)
  // committing the same id first is fine (checked after a failed commit).
  const unpacking = new Map<string, Promise<void>>();
  return async (result: ImportedResult, ctx) => {
    const diffIds = result.layers.map((d, i) => d.annotations?.[ANNOTATION_UNCOMPRESSED] ?? `sha256:${createHash('sha256').update(`blob ${i} ${d.digest}`).digest('hex')}`);
    const chain = chainIds(diffIds);
    let parent: string | undefined;
    let size = 0;
    const remember: LayerRef[] = [];
    for (const [i, d] of result.layers.entries()) {
      const id = `layer-${(chain[i] as string).replace('sha256:', '')}`;
      const diffID = d.annotations?.[ANNOTATION_UNCOMPRESSED];
      const below = parent;
      size += d.size;
      let p = unpacking.get(id);
      if (p === undefined) {
        p = (async () => {
          if (await exists(engine, id)) return;
          const digest = parseDigest(d.digest);
          if (!(await engine.content.has(digest))) {
            ctx.status(`pulling ${d.digest}`, 0, d.size);
            await engine.content.ingest(await result.source.open(d, ctx.signal), { expected: digest, expectedSize: d.size, signal: ctx.signal });
            ctx.status(`pulling ${d.digest}`, d.size, d.size, true);
          }
          try {
            await unpackLayer(engine.snapshotter, id, below, await engine.content.readStream(digest), { signal: ctx.signal, ...(diffID === undefined ? {} : { expectedDiffID: diffID }) });
          } catch (e) {
            if (!(await exists(engine, id))) throw e;
          }
        })();
        unpacking.set(id, p);
        p.then(
          () => unpacking.delete(id),
          () => unpacking.delete(id),
        );
      }
      await p;
      if (diffID !== undefined) remember.push({ descriptor: { mediaType: d.mediaType, digest: parseDigest(d.digest), size: d.size }, diffID: parseDigest(diffID) });
      parent = id;
    }
    await engine.layers.rememberLayers(remember);
    if (parent === undefined) throw new EngineError('KLN0704', 'an imported cache result has no layers');
    return { snapshot: parent, size };
  };
}

function exists(engine: KilnEngine, id: string): Promise<boolean> {
  return engine.snapshotter.stat(id).then(
    () => true,
    () => false,
  );
}

// ---------------------------------------------------------------- export

/** Options of {@link collectCache}. */
interface CollectOptions {
  readonly mode: CacheExportMode;
  /** Filled with the blobs that came with an image or an imported cache (kept in their compression). */
  readonly given?: Set<string>;
  readonly sourceDateEpoch?: number;
  readonly signal?: AbortSignal;
}

/**
 * The cache of a build result as BuildKit's exporter sees it: every key of the result's graph a
 * record; results for `max` every key with one, for `min` the final key and the keys whose
 * snapshot is one the final result is stacked on (their layers are the image's: BuildKit's
 * RemoteOnly mode below an exported result), and imported results not fetched (their blobs are
 * known). Each result is the snapshot's layer chain, the blobs the image export made reused.
 */
export async function collectCache(engine: KilnEngine, result: BuildResult, opts: CollectOptions): Promise<MarshaledCache> {
  const chains = new CacheChains();
  const root = result.cacheKey;
  const resultOf = result.cacheResult;
  if (root === undefined || resultOf === undefined) return chains.marshal();
  const below = new Set<string>();
  for (let cur: string | undefined = result.ref.snapshot; cur !== undefined; ) {
    below.add(cur);
    cur = (await engine.snapshotter.stat(cur)).parent;
  }
  const finalLayers = await layerDescriptors(engine, result.ref.snapshot, opts);
  await addCacheKeyChains(chains, root, async (key, final): Promise<ChainResult | undefined> => {
    const kr = resultOf(key);
    if (kr === undefined) return undefined;
    if (kr.kind === 'imported') {
      const isPrefix = kr.result.layers.every((l, i) => finalLayers[i]?.digest === l.digest);
      if (opts.mode === 'min' && !final && !isPrefix) return undefined;
      return { layers: kr.result.layers, createdAt: kr.result.createdAt };
    }
    if (opts.mode === 'min' && !final && !below.has(kr.snapshot)) return undefined;
    return { layers: await layerDescriptors(engine, kr.snapshot, opts), createdAt: kr.created };
  }, new CacheManager(engine.cache));
  return chains.marshal();
}

/** The layer chain of a snapshot as cache descriptors (diffID and creation time annotated). */
async function layerDescriptors(engine: KilnEngine, snapshot: string, opts: CollectOptions): Promise<CacheLayerDescriptor[]> {
  const refs = await engine.layers.layersOf(snapshot, opts.signal, opts.sourceDateEpoch);
  const created: string[] = [];
  for (let cur: string | undefined = snapshot; cur !== undefined; ) {
    const info = await engine.snapshotter.stat(cur);
    created.unshift(info.createdAt);
    cur = info.parent;
  }
  for (const r of refs) if (r.fromImage === true) opts.given?.add(r.descriptor.digest);
  return refs.map((r, i) => ({
    mediaType: r.descriptor.mediaType,
    digest: r.descriptor.digest,
    size: r.descriptor.size,
    annotations: { [ANNOTATION_CREATED_AT]: goTime(Date.parse(created[i] ?? '') || 0), [ANNOTATION_UNCOMPRESSED]: r.diffID },
  }));
}

/** Blobs of imported results not fetched are fetched into the content store (for writing them out). */
async function ensureBlobs(engine: KilnEngine, result: BuildResult, cache: MarshaledCache, signal?: AbortSignal): Promise<void> {
  const sources = new Map<string, ImportedResult>();
  const walk = (k: NonNullable<BuildResult['cacheKey']>, seen: Set<object>): void => {
    if (seen.has(k)) return;
    seen.add(k);
    const kr = result.cacheResult?.(k);
    if (kr?.kind === 'imported') for (const l of kr.result.layers) sources.set(l.digest, kr.result);
    for (const deps of k.deps) for (const d of deps) walk(d.key, seen);
  };
  if (result.cacheKey !== undefined) walk(result.cacheKey, new Set());
  for (const l of cache.layers) {
    const digest = parseDigest(l.digest);
    if (await engine.content.has(digest)) continue;
    const src = sources.get(l.digest);
    if (src === undefined) throw new EngineError('KLN0711', `cache blob ${l.digest} is not available`);
    await engine.content.ingest(await src.source.open(l, signal), { expected: digest, expectedSize: l.size, ...(signal === undefined ? {} : { signal }) });
  }
}

/**
 * Re-encodes the layers the build made to `compression`; blobs that came with an image or an
 * imported cache keep theirs (BuildKit exports an existing blob unless force-compression is set).
 */
async function compressLayers(engine: KilnEngine, cache: MarshaledCache, compression: 'gzip' | 'zstd' | 'uncompressed', given: ReadonlySet<string>): Promise<MarshaledCache> {
  if (compression === 'gzip') return cache;
  const map = new Map<string, CacheLayerDescriptor>();
  for (const l of cache.layers) {
    const diffID = l.annotations?.[ANNOTATION_UNCOMPRESSED];
    if (diffID === undefined || given.has(l.digest)) continue;
    const conv = await convertLayer(engine.content, { descriptor: { mediaType: l.mediaType, digest: parseDigest(l.digest), size: l.size }, diffID: parseDigest(diffID) }, compression);
    map.set(l.digest, { ...l, mediaType: conv.descriptor.mediaType, digest: conv.descriptor.digest, size: conv.descriptor.size });
  }
  const layers = cache.config.layers.map((l) => ({ ...l, blob: map.get(l.blob)?.digest ?? l.blob }));
  return { config: { layers, records: cache.config.records }, layers: cache.layers.map((l) => map.get(l.digest) ?? l) };
}

/**
 * Exports the build's cache to a `--cache-to` destination (local or registry; inline goes with
 * the image export, see {@link inlineCacheRecords}). A failure is a KLN0711 error: the build fails.
 */
export async function exportCache(
  engine: KilnEngine,
  spec: Exclude<CacheExportSpec, { type: 'inline' }>,
  result: BuildResult,
  opts: { index: number; progress?: ProgressSink; signal?: AbortSignal; sourceDateEpoch?: number },
): Promise<{ readonly manifest: Descriptor }> {
  const v = progressVertex(opts.progress, `cache-export-${opts.index}`, 'exporting cache');
  try {
    v.status('preparing build cache for export');
    const given = new Set<string>();
    let cache = await collectCache(engine, result, { mode: spec.mode, given, ...(opts.signal === undefined ? {} : { signal: opts.signal }), ...(opts.sourceDateEpoch === undefined ? {} : { sourceDateEpoch: opts.sourceDateEpoch }) });
    await ensureBlobs(engine, result, cache, opts.signal);
    cache = await compressLayers(engine, cache, spec.compression, given);
    const configBytes = Buffer.from(marshalCacheConfig(cache.config));
    const configDesc: Descriptor = { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: digestOf(configBytes), size: configBytes.length };
    const layers: Descriptor[] = cache.layers.map((l) => ({ mediaType: l.mediaType, digest: parseDigest(l.digest), size: l.size, ...(l.annotations === undefined ? {} : { annotations: l.annotations }) }));
    const list = cacheManifestList(layers, configDesc, spec.ociMediaTypes);
    const onBlob = (d: Descriptor): void => {
      if (d.digest === configDesc.digest) v.status(`writing config ${d.digest}`);
      else if (d.digest === list.descriptor.digest) v.status(`writing manifest ${d.digest}`);
      else v.status(`writing layer ${d.digest}`);
    };
    if (spec.type === 'local') {
      await writeLocalCache(engine.content, spec.dest, spec.tag, layers, [{ descriptor: configDesc, bytes: configBytes }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor, onBlob);
    } else {
      await pushRegistryCache(engine.registry, engine.content, parseReference(spec.ref), layers, [{ descriptor: configDesc, bytes: configBytes }], { descriptor: list.descriptor, bytes: list.bytes }, {
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        onBlob,
      });
    }
    v.done();
    return { manifest: list.descriptor };
  } catch (e) {
    v.fail(e);
    const where = spec.type === 'local' ? spec.dest : spec.ref;
    throw new EngineError('KLN0711', `failed to export cache to ${where}: ${e instanceof Error ? e.message : String(e)}`, { cause: e, hint: 'check the destination (a writable directory, a reachable registry you may push to)' });
  }
}

/**
 * Inline cache for an image with `imageLayers` (inline.go ExportForLayers): the `min` cache with
 * only the results whose chain is a prefix of the image's layers, each result's layer index the
 * position of its top layer in the image; the records JSON, base64 as the config key holds it
 * (Go marshals []byte as base64). Undefined when no result matches the image's layers.
 */
export async function inlineCacheRecords(engine: KilnEngine, result: BuildResult, imageLayers: readonly LayerRef[], opts: { signal?: AbortSignal; sourceDateEpoch?: number }): Promise<string | undefined> {
  const cache = await collectCache(engine, result, { mode: 'min', ...opts });
  let any = false;
  const records = cache.config.records.map((r) => ({
    ...r,
    results: r.results.flatMap((res) => {
      const chain = layerChain(cache.config.layers, res.layer);
      if (!chain.every((l, i) => imageLayers[i]?.descriptor.digest === l.blob)) return [];
      any = true;
      return [{ layer: chain.length - 1, createdAt: res.createdAt }];
    }),
  }));
  if (!any) return undefined;
  return Buffer.from(marshalCacheRecords(records)).toString('base64');
}

