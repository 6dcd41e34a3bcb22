import { S3Client, isDigest, parseDigest, type Descriptor } from '@kiln/runtime';
import {
  ANNOTATION_CREATED_AT,
  ANNOTATION_UNCOMPRESSED,
  CACHE_CONFIG_MEDIA_TYPE,
  ImportedCache,
  marshalCacheConfig,
  parseCacheConfig,
  type CacheConfig,
  type CacheLayerAnnotations,
  type CacheLayerDescriptor,
  type MarshaledCache,
} from '@kiln/solver';
import { digestOf } from '@kiln/runtime';
import type { KilnEngine } from './engine.js';
import { EngineError } from './errors.js';
import { s3ManifestUrl, type S3CacheExport, type S3CacheLocation } from './cache-s3-spec.js';

/** The largest cache config read from a bucket or container (kiln reads a registry's 1 MiB; a mode=max config of a big build is larger). */
export const MAX_CACHE_CONFIG = 16 << 20;
/** Go's zero time.Time as encoding/json writes it (LayerAnnotations.CreatedAt has no usable omitempty). */
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

function clientOf(loc: S3CacheLocation): S3Client {
  return new S3Client({
    bucket: loc.bucket,
    region: loc.region,
    ...(loc.endpointUrl === undefined ? {} : { endpointUrl: loc.endpointUrl }),
    usePathStyle: loc.usePathStyle,
    ...(loc.caBundle === undefined ? {} : { caBundle: loc.caBundle }),
    credentials: loc.credentials,
  });
}

const blobKey = (loc: S3CacheLocation, digest: string): string => `${loc.prefix}${loc.blobsPrefix}${digest}`;
const manifestKey = (loc: S3CacheLocation, name: string): string => `${loc.prefix}${loc.manifestsPrefix}${name}`;

/** A `buildkit/createdat` in UTC, as the s3 exporter writes it (`t.UTC()`), sub-second digits kept. */
function utcTime(t: string | undefined): string {
  if (t === undefined || t === '') return GO_ZERO_TIME;
  if (t.endsWith('Z')) return t;
  const ms = Date.parse(t);
  if (Number.isNaN(ms)) return GO_ZERO_TIME;
  const frac = /\.(\d+)/.exec(t)?.[1] ?? '';
  const base = new Date(ms).toISOString().slice(0, 19);
  const digits = frac.replace(/0+$/, '');
  return `${base}${digits === '' ? '' : `.${digits}`}Z`;
}

/**
 * The cache config BuildKit's s3 exporter writes (s3.go Finalize): the config of the manifest-list
 * backends with each layer's descriptor folded into its `annotations` (`mediaType`, `diffID`,
 * `size`, `createdAt`), as there is no manifest list to carry them.
 */
export function s3CacheConfig(cache: MarshaledCache): CacheConfig {
  const descs = new Map(cache.layers.map((l) => [l.digest, l]));
  return {
    records: cache.config.records,
    layers: cache.config.layers.map((l) => {
      const d = descs.get(l.blob);
      const diffID = d?.annotations?.[ANNOTATION_UNCOMPRESSED];
      if (d === undefined || diffID === undefined) throw new EngineError('KLN0711', `cache layer ${l.blob} has no descriptor with a diffID`);
      const annotations: CacheLayerAnnotations = { mediaType: d.mediaType, diffID, ...(d.size === 0 ? {} : { size: d.size }), createdAt: utcTime(d.annotations?.[ANNOTATION_CREATED_AT]) };
      return { ...l, annotations };
    }),
  };
}

/** Options of a cache export to an object store ({@link exportS3Cache}, the azblob export). */
export interface ObjectCacheExportOptions {
  readonly onStatus: (line: string) => void;
  readonly signal?: AbortSignal | undefined;
  /** Makes a blob the store lacks available in the content store (an imported result's, not fetched yet). */
  readonly fetchBlob?: (l: CacheLayerDescriptor) => Promise<void>;
}

/** Where {@link exportObjectCache} writes: a bucket's or container's blobs and manifests. */
export interface CacheObjectStore {
  /** Whether a layer blob is there already (what keeps it alive done too: s3's touch). */
  readonly has: (digest: string, signal: AbortSignal) => Promise<boolean>;
  /** Writes a layer blob (`size` bytes, `open` streams it from the content store). */
  readonly putBlob: (digest: string, body: { readonly size: number; readonly open: () => Promise<AsyncIterable<Uint8Array>> }, signal: AbortSignal) => Promise<void>;
  /** Writes the cache config under a name. */
  readonly putManifest: (name: string, bytes: Buffer, signal?: AbortSignal) => Promise<void>;
}

/**
 * Writes a cache as BuildKit v0.11's s3 and azblob exporters do: the config of {@link s3CacheConfig};
 * each layer blob the store lacks, streamed from the content store, `parallelism` at a time, then the
 * config under every name. The first failed blob stops the other uploads (BuildKit's errgroup
 * context: their signal aborts, an S3 multipart upload in flight ends with AbortMultipartUpload)
 * and fails the export once they have ended. Returns the config's descriptor.
 */
export async function exportObjectCache(engine: KilnEngine, cache: MarshaledCache, names: readonly string[], parallelism: number, store: CacheObjectStore, opts: ObjectCacheExportOptions): Promise<Descriptor> {
  const config = s3CacheConfig(cache);
  const descs = new Map(cache.layers.map((l) => [l.digest, l]));
  const queue = [...new Set(config.layers.map((l) => l.blob))];
  const stop = new AbortController();
  const signal = opts.signal === undefined ? stop.signal : AbortSignal.any([opts.signal, stop.signal]);
  const worker = async (): Promise<void> => {
    for (let blob = queue.shift(); blob !== undefined; blob = queue.shift()) {
      signal.throwIfAborted();
      if (await store.has(blob, signal)) continue;
      const d = descs.get(blob) as CacheLayerDescriptor;
      opts.onStatus(`writing layer ${blob}`);
      await opts.fetchBlob?.(d);
      const digest = parseDigest(blob);
      await store.putBlob(blob, { size: d.size, open: () => engine.content.readStream(digest, { highWaterMark: 1 << 20 }) }, signal);
    }
  };
  let failure: { readonly error: unknown } | undefined;
  const run = (): Promise<void> =>
    worker().catch((e: unknown) => {
      failure ??= { error: e };
      queue.length = 0;
      stop.abort(e);
    });
  await Promise.all(Array.from({ length: Math.min(parallelism, Math.max(queue.length, 1)) }, run));
  if (failure !== undefined) throw failure.error;
  const bytes = Buffer.from(marshalCacheConfig(config));
  for (const name of names) {
    opts.onStatus(`writing manifest ${name}`);
    await store.putManifest(name, bytes, opts.signal);
  }
  return { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: digestOf(bytes), size: bytes.length };
}

/**
 * Writes a cache to S3 as BuildKit v0.11 does ({@link exportObjectCache}): each layer blob to
 * `PREFIX BLOBS_PREFIX DIGEST` unless it is there already (then only touched when older than
 * `touch_refresh`), `upload_parallelism` at a time, with its digest as the payload hash, then the
 * config to `PREFIX MANIFESTS_PREFIX NAME` for every name.
 */
export async function exportS3Cache(engine: KilnEngine, spec: S3CacheExport, cache: MarshaledCache, opts: ObjectCacheExportOptions): Promise<Descriptor> {
  const s3 = clientOf(spec);
  return exportObjectCache(engine, cache, spec.names, spec.uploadParallelism, {
    has: async (digest, signal) => {
      const key = blobKey(spec, digest);
      const there = await s3.head(key, signal);
      if (there === undefined) return false;
      // CopyObject takes at most 5 GiB (BuildKit copies larger blobs in parts; kiln leaves them untouched).
      if (Date.now() - there.lastModified.getTime() > spec.touchRefreshMs && there.size < 5 * 1024 ** 3) await s3.touch(key, signal);
      return true;
    },
    putBlob: (digest, body, signal) => s3.put(blobKey(spec, digest), { ...body, sha256: digest.slice('sha256:'.length) }, signal),
    putManifest: (name, bytes, signal) => s3.put(manifestKey(spec, name), bytes, signal),
  }, opts);
}

/**
 * Reads the s3 cache a `--cache-from` names (s3.go importer.load: the first name's config; each
 * layer's descriptor from its annotations, a layer without a diffID makes the cache unusable).
 * A missing manifest is an error here (the caller warns); BuildKit imports an empty cache silently.
 */
export async function importS3Cache(spec: S3CacheLocation, signal?: AbortSignal): Promise<ImportedCache> {
  const s3 = clientOf(spec);
  const name = spec.names[0] ?? '';
  const where = s3ManifestUrl(spec);
  const bytes = await s3.getSmall(manifestKey(spec, name), MAX_CACHE_CONFIG, signal);
  if (bytes === undefined) throw new EngineError('KLN0704', `${where}: no cache manifest there`);
  return annotatedCache(where, bytes, (digest, s) => s3.open(blobKey(spec, digest), s ?? signal));
}

/**
 * A cache config as BuildKit's s3 and azblob backends store it, read as a cache (s3.go and
 * azblob importer.go loadManifest): each layer's descriptor from its annotations; a layer without
 * a diffID makes the cache unusable. `open` reads a blob by its digest.
 */
export function annotatedCache(where: string, bytes: Buffer, open: (digest: string, signal?: AbortSignal) => Promise<AsyncIterable<Uint8Array>>): ImportedCache {
  const config = parseCacheConfig(bytes);
  const blobs = new Map<string, CacheLayerDescriptor>();
  for (const l of config.layers) {
    const a = l.annotations;
    if (a === undefined || a.diffID === undefined || a.diffID === '') throw new EngineError('KLN0704', `${where}: cache layer ${l.blob} has no diffID annotation`);
    // The blob's digest goes into an object key: only a well-formed one.
    if (!isDigest(l.blob)) throw new EngineError('KLN0704', `${where}: invalid blob digest ${JSON.stringify(l.blob).slice(0, 80)}`);
    const annotations: Record<string, string> = { [ANNOTATION_UNCOMPRESSED]: a.diffID };
    if (a.createdAt !== undefined && a.createdAt !== '' && !a.createdAt.startsWith('0001-01-01T00:00:00')) annotations[ANNOTATION_CREATED_AT] = a.createdAt;
    blobs.set(l.blob, { mediaType: a.mediaType ?? '', digest: l.blob, size: a.size ?? 0, annotations });
  }
  return new ImportedCache(where, config, blobs, (d, s) => open(d.digest, s));
}
