import { AzblobClient, type Descriptor } from '@kiln/runtime';
import type { ImportedCache, MarshaledCache } from '@kiln/solver';
import type { KilnEngine } from './engine.js';
import { EngineError } from './errors.js';
import { MAX_CACHE_CONFIG, annotatedCache, exportObjectCache, type ObjectCacheExportOptions } from './cache-s3.js';
import { azblobBlobKey, azblobManifestKey, type AzblobCacheExport, type AzblobCacheLocation } from './cache-azblob-spec.js';

/** Blobs uploaded at once (BuildKit uploads one blob at a time, each in 4 blocks at once: IOConcurrency). */
const UPLOAD_PARALLELISM = 4;

function clientOf(loc: AzblobCacheLocation): AzblobClient {
  return new AzblobClient({ accountUrl: loc.accountUrl, accountName: loc.accountName, container: loc.container, credential: loc.credential });
}

/**
 * Writes a cache to Azure Blob Storage as BuildKit v0.11's azblob exporter does: the container
 * made when missing (utils.go createContainerClient), each layer blob the container lacks to
 * `PREFIX/BLOBS_PREFIX/DIGEST` (written only if still absent: If-None-Match: *), then the config
 * to `PREFIX/MANIFESTS_PREFIX/NAME` for every name (last writer wins). The config is the s3
 * backend's (layer descriptors in its annotations). Returns the config's descriptor.
 */
export async function exportAzblobCache(engine: KilnEngine, spec: AzblobCacheExport, cache: MarshaledCache, opts: ObjectCacheExportOptions): Promise<Descriptor> {
  const az = clientOf(spec);
  await az.ensureContainer(true, opts.signal);
  return exportObjectCache(engine, cache, spec.names, UPLOAD_PARALLELISM, {
    has: (digest, signal) => az.exists(azblobBlobKey(spec, digest), signal),
    putBlob: async (digest, body, signal) => void (await az.putIfAbsent(azblobBlobKey(spec, digest), body, signal)),
    putManifest: (name, bytes, signal) => az.put(azblobManifestKey(spec, name), bytes, signal),
  }, opts);
}

/**
 * Reads the azblob caches a `--cache-from` names: as BuildKit's azblob importer, the config of
 * every name (one cache each; a name without a manifest is skipped, as BuildKit imports it as an
 * empty cache). When no name has one, or the container is missing, it is an error here (the
 * caller warns; BuildKit would create the container and import nothing, silently).
 */
export async function importAzblobCaches(spec: AzblobCacheLocation, signal?: AbortSignal): Promise<ImportedCache[]> {
  const az = clientOf(spec);
  const out: ImportedCache[] = [];
  for (const name of spec.names) {
    const key = azblobManifestKey(spec, name);
    const bytes = await az.getSmall(key, MAX_CACHE_CONFIG, signal);
    if (bytes !== undefined) out.push(annotatedCache(az.describe(key), bytes, (digest, s) => az.open(azblobBlobKey(spec, digest), s ?? signal)));
  }
  if (out.length === 0) throw new EngineError('KLN0704', `${spec.names.map((n) => az.describe(azblobManifestKey(spec, n))).join(', ')}: no cache manifest there`);
  return out;
}
