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

/** The largest cache config read from a bucket (kiln reads a registry's 1 MiB; a mode=max config of a big build is larger). */
const MAX_CONFIG = 16 << 20;
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

/**
 * Writes a cache to S3 as BuildKit v0.11 does: each layer blob to `PREFIX BLOBS_PREFIX DIGEST`
 * unless it is there already (then only touched when older than `touch_refresh`),
 * `upload_parallelism` at a time, then the config to `PREFIX MANIFESTS_PREFIX NAME` for every
 * name. Blobs are streamed from the content store with their digest as the payload hash.
 * Returns the config's descriptor.
 */
export async function exportS3Cache(
  engine: KilnEngine,
  spec: S3CacheExport,
  cache: MarshaledCache,
  opts: {
    onStatus: (line: string) => void;
    signal?: AbortSignal | undefined;
    /** Makes a blob the bucket lacks available in the content store (an imported result's, not fetched yet). */
    fetchBlob?: (l: CacheLayerDescriptor) => Promise<void>;
  },
): Promise<Descriptor> {
  const s3 = clientOf(spec);
  const config = s3CacheConfig(cache);
  const descs = new Map(cache.layers.map((l) => [l.digest, l]));
  const queue = [...new Set(config.layers.map((l) => l.blob))];
  // The first failure stops the other uploads (BuildKit's errgroup context): an upload in flight
  // ends, a multipart one with AbortMultipartUpload, before the export fails.
  const stop = new AbortController();
  const signal = opts.signal === undefined ? stop.signal : AbortSignal.any([opts.signal, stop.signal]);
  const worker = async (): Promise<void> => {
    for (let blob = queue.shift(); blob !== undefined; blob = queue.shift()) {
      signal.throwIfAborted();
      const d = descs.get(blob) as CacheLayerDescriptor;
      const key = blobKey(spec, blob);
      const there = await s3.head(key, signal);
      if (there !== undefined) {
        // CopyObject takes at most 5 GiB (BuildKit copies larger blobs in parts; kiln leaves them untouched).
        if (Date.now() - there.lastModified.getTime() > spec.touchRefreshMs && there.size < 5 * 1024 ** 3) await s3.touch(key, signal);
        continue;
      }
      opts.onStatus(`writing layer ${blob}`);
      await opts.fetchBlob?.(d);
      const digest = parseDigest(blob);
      await s3.put(key, { size: d.size, sha256: digest.slice('sha256:'.length), open: () => engine.content.readStream(digest, { highWaterMark: 1 << 20 }) }, signal);
    }
  };
  let failure: { readonly error: unknown } | undefined;
  const run = (): Promise<void> =>
    worker().catch((e: unknown) => {
      failure ??= { error: e };
      queue.length = 0;
      stop.abort(e);
    });
  await Promise.all(Array.from({ length: Math.min(spec.uploadParallelism, Math.max(queue.length, 1)) }, run));
  if (failure !== undefined) throw failure.error;
  const bytes = Buffer.from(marshalCacheConfig(config));
  for (const name of spec.names) {
    opts.onStatus(`writing manifest ${name}`);
    await s3.put(manifestKey(spec, name), bytes, opts.signal);
  }
  return { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: digestOf(bytes), size: bytes.length };
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
  const bytes = await s3.getSmall(manifestKey(spec, name), MAX_CONFIG, signal);
  if (bytes === undefined) throw new EngineError('KLN0704', `${where}: no cache manifest there`);
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
  return new ImportedCache(where, config, blobs, (d, s) => s3.open(blobKey(spec, d.digest), s ?? signal));
}
