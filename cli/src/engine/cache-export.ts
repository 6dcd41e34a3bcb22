import {
  cacheManifestList,
  convertLayer,
  digestOf,
  parseDigest,
  parseReference,
  pushRegistryCache,
  writeLocalCache,
  type Descriptor,
  type LayerRef,
} from '@kiln/runtime';
import {
  ANNOTATION_CREATED_AT,
  ANNOTATION_UNCOMPRESSED,
  CACHE_CONFIG_MEDIA_TYPE,
  CacheChains,
  CacheManager,
  addCacheKeyChains,
  backlinkSource,
  EMPTY_SNAPSHOT,
  goTime,
  layerChain,
  marshalCacheConfig,
  marshalCacheRecords,
  type BuildResult,
  type CacheExportMode,
  type CacheLayerDescriptor,
  type ChainResult,
  type ImportedCache,
  type ImportedResult,
  type MarshaledCache,
  type ProgressSink,
} from '@kiln/solver';
import type { CacheExportSpec } from './cache-spec.js';
import type { KilnEngine } from './engine.js';
import type { BuildImages } from './layers.js';
import { EngineError } from './errors.js';
import { progressVertex } from './cache-progress.js';
import { LABEL_CREATED_AT } from './cache-import.js';
import { exportS3Cache } from './cache-s3.js';
import { s3ManifestUrl } from './cache-s3-spec.js';
import { exportAzblobCache } from './cache-azblob.js';
import { azblobManifestUrl } from './cache-azblob-spec.js';

/** Options of {@link collectCache}. */
interface CollectOptions {
  readonly mode: CacheExportMode;
  /** Filled with the blobs that came with an image or an imported cache (kept in their compression). */
  readonly given?: Set<string>;
  readonly sourceDateEpoch?: number;
  readonly signal?: AbortSignal;
  /** The build's `--cache-from` caches: their links into the build's keys are exported too. */
  readonly imports?: readonly ImportedCache[];
  /** The images the build resolved: image layers are given with their blobs, as the image export (see BuildImages). */
  readonly images?: BuildImages;
}

/**
 * The cache of a build result as BuildKit's exporter sees it: every key of the result's graph a
 * record; results for `max` every key with one, for `min` the final key and the keys whose
 * snapshot is one the final result is stacked on (their layers are the image's: BuildKit's
 * RemoteOnly mode below an exported result), and imported results not fetched (their blobs exist
 * in the cache they came from). Each result is the snapshot's layer chain, the blobs the image export made reused.
 * Several results (one per platform) go into one cache, as BuildKit exports each ref of a
 * multi-platform result into the same exporter; keys they share are one record.
 */
export async function collectCache(engine: KilnEngine, results: readonly BuildResult[], opts: CollectOptions): Promise<MarshaledCache> {
  const chains = new CacheChains();
  const backlinks = backlinkSource(new CacheManager(engine.cache), opts.imports ?? []);
  for (const result of results) await addResult(engine, chains, result, opts, backlinks);
  return chains.marshal();
}

async function addResult(engine: KilnEngine, chains: CacheChains, result: BuildResult, opts: CollectOptions, backlinks: ReturnType<typeof backlinkSource>): Promise<void> {
  const root = result.cacheKey;
  const resultOf = result.cacheResult;
  if (root === undefined || resultOf === undefined) return;
  const below = new Set<string>();
  for (let cur: string | undefined = result.ref.snapshot; cur !== undefined; ) {
    below.add(cur);
    cur = (await engine.snapshotter.stat(cur)).parent;
  }
  await addCacheKeyChains(chains, root, async (key, final): Promise<ChainResult | undefined> => {
    const kr = resultOf(key);
    if (kr === undefined) return undefined;
    // An imported result not fetched is exported in both modes: its layers exist (remotely), and
    // BuildKit's RemoteOnly mode below an exported result keeps every result whose remote exists
    // (solver/exporter.go: LoadRemotes of the import's cacheResultStorage returns it).
    if (kr.kind === 'imported') {
      // Its blobs keep their compression (BuildKit converts an existing blob only with force-compression).
      for (const l of kr.result.layers) opts.given?.add(l.digest);
      return { layers: kr.result.layers, createdAt: kr.result.createdAt, createdAtText: kr.result.createdAtText };
    }
    // Below the final result, min keeps what exists as blobs without making any (RemoteOnly):
    // the layers of the final image, and a result that came from a cache or image as it was.
    if (opts.mode === 'min' && !final && !below.has(kr.snapshot) && (await engine.layers.remoteLayersOf(kr.snapshot, opts.images)) === undefined) return undefined;
    return { layers: await layerDescriptors(engine, kr.snapshot, opts), createdAt: kr.created };
  }, backlinks);
}

/** The layer chain of a snapshot as cache descriptors (diffID and creation time annotated). */
async function layerDescriptors(engine: KilnEngine, snapshot: string, opts: CollectOptions): Promise<CacheLayerDescriptor[]> {
  const refs = await engine.layers.layersOf(snapshot, opts.signal, opts.sourceDateEpoch, opts.images);
  const created: string[] = [];
  for (let cur: string | undefined = snapshot; cur !== undefined; ) {
    const info = await engine.snapshotter.stat(cur);
    cur = info.parent;
    if (info.id === EMPTY_SNAPSHOT) continue; // no layer (as layersOf)
    // A layer from a cache keeps its buildkit/createdat as written (Go's nanoseconds included).
    created.unshift(info.labels[LABEL_CREATED_AT] ?? goTime(Date.parse(info.createdAt) || 0));
  }
  for (const r of refs) if (r.fromImage === true) opts.given?.add(r.descriptor.digest);
  return refs.map((r, i) => ({
    mediaType: r.descriptor.mediaType,
    digest: r.descriptor.digest,
    size: r.descriptor.size,
    annotations: { [ANNOTATION_CREATED_AT]: created[i] ?? goTime(0), [ANNOTATION_UNCOMPRESSED]: r.diffID },
  }));
}

/**
 * Fetches a blob of an imported result not fetched into the content store (for writing it out);
 * a blob already there is left as it is.
 */
function blobFetcher(engine: KilnEngine, results: readonly BuildResult[], signal?: AbortSignal): (l: CacheLayerDescriptor) => Promise<void> {
  const sources = new Map<string, ImportedResult>();
  const walk = (result: BuildResult, k: NonNullable<BuildResult['cacheKey']>, seen: Set<object>): void => {
    if (seen.has(k)) return;
    seen.add(k);
    const kr = result.cacheResult?.(k);
    if (kr?.kind === 'imported') for (const l of kr.result.layers) sources.set(l.digest, kr.result);
    for (const deps of k.deps) for (const d of deps) walk(result, d.key, seen);
  };
  for (const result of results) if (result.cacheKey !== undefined) walk(result, result.cacheKey, new Set());
  return async (l) => {
    const digest = parseDigest(l.digest);
    if (await engine.content.has(digest)) return;
    const src = sources.get(l.digest);
    if (src === undefined) throw new EngineError('KLN0711', `cache blob ${l.digest} is not available`);
    await engine.content.ingest(await src.source.open(l, signal), { expected: digest, expectedSize: l.size, ...(signal === undefined ? {} : { signal }) });
  };
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
  results: readonly BuildResult[],
  opts: { index: number; progress?: ProgressSink; signal?: AbortSignal; sourceDateEpoch?: number; imports?: readonly ImportedCache[]; images?: BuildImages },
): Promise<{ readonly manifest: Descriptor }> {
  const v = progressVertex(opts.progress, `cache-export-${opts.index}`, 'exporting cache');
  try {
    v.status('preparing build cache for export');
    const given = new Set<string>();
    let cache = await collectCache(engine, results, {
      mode: spec.mode,
      given,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.sourceDateEpoch === undefined ? {} : { sourceDateEpoch: opts.sourceDateEpoch }),
      ...(opts.imports === undefined ? {} : { imports: opts.imports }),
      ...(opts.images === undefined ? {} : { images: opts.images }),
    });
    const fetchBlob = blobFetcher(engine, results, opts.signal);
    if (spec.type === 's3' || spec.type === 'azblob') {
      // BuildKit v0.11's s3 and azblob exporters have a fixed compression (Config:
      // compression.Default) and no manifest list. A blob is fetched only when the bucket lacks
      // it: re-exporting the cache a build imported from the same bucket downloads nothing
      // (BuildKit reads a blob's provider only to upload it).
      const o = { onStatus: (line: string) => v.status(line), signal: opts.signal, fetchBlob };
      const manifest = spec.type === 's3' ? await exportS3Cache(engine, spec, cache, o) : await exportAzblobCache(engine, spec, cache, o);
      v.done();
      return { manifest };
    }
    for (const l of cache.layers) await fetchBlob(l);
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
      await writeLocalCache(engine.content, spec.dest, spec.tag, layers, [{ descriptor: configDesc, bytes: configBytes }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor, onBlob, opts.signal);
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
    const where = spec.type === 'local' ? spec.dest : spec.type === 's3' ? s3ManifestUrl(spec) : spec.type === 'azblob' ? azblobManifestUrl(spec) : spec.ref;
    // An S3 or Azure error says what to check (credentials, bucket, region, endpoint).
    const own = (spec.type === 's3' || spec.type === 'azblob') && e instanceof Error && 'hint' in e && typeof e.hint === 'string' ? e.hint : undefined;
    const hints = { s3: 'check bucket=, region=, endpoint_url= and the AWS credentials', azblob: 'check account_url=, container= and secret_access_key= (or the SAS token)' } as const;
    throw new EngineError('KLN0711', `failed to export cache to ${where}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
      hint: own ?? (spec.type === 's3' || spec.type === 'azblob' ? hints[spec.type] : 'check the destination (a writable directory, a reachable registry you may push to)'),
    });
  }
}

/**
 * Inline cache for an image with `imageLayers` (inline.go ExportForLayers): the `min` cache with
 * only the results whose chain is a prefix of the image's layers, each result's layer index the
 * position of its top layer in the image; the records JSON, base64 as the config key holds it
 * (Go marshals []byte as base64). Undefined when no result matches the image's layers.
 */
export async function inlineCacheRecords(
  engine: KilnEngine,
  result: BuildResult,
  imageLayers: readonly LayerRef[],
  opts: { signal?: AbortSignal; sourceDateEpoch?: number; imports?: readonly ImportedCache[]; images?: BuildImages },
): Promise<string | undefined> {
  const cache = await collectCache(engine, [result], { mode: 'min', ...opts });
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

