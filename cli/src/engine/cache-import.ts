import { createHash } from 'node:crypto';
import {
  isManifestMediaType,
  openLocalCache,
  openRegistryCache,
  parseDigest,
  parseReference,
  unpackLayer,
  type CacheSourceReader,
  type Descriptor,
  type LayerRef,
} from '@kiln/runtime';
import {
  ANNOTATION_CREATED_AT,
  ANNOTATION_UNCOMPRESSED,
  CACHE_CONFIG_MEDIA_TYPE,
  INLINE_CACHE_KEY,
  ImportedCache,
  chainIds,
  ensureLayer,
  layerSnapshotId,
  parseCacheConfig,
  parseCacheRecords,
  type CacheConfig,
  type CacheLayerDescriptor,
  type ImportedResult,
  type LoadImportedResult,
  type ProgressSink,
} from '@kiln/solver';
import type { CacheImportSpec } from './cache-spec.js';
import type { KilnEngine } from './engine.js';
import { EngineError } from './errors.js';
import { progressVertex } from './cache-progress.js';
import { importS3Cache } from './cache-s3.js';
import { s3ManifestUrl } from './cache-s3-spec.js';
import { importAzblobCaches } from './cache-azblob.js';
import { azblobManifestUrl } from './cache-azblob-spec.js';

/** Snapshot label holding the creation time of a layer unpacked from a cache (its `buildkit/createdat`). */
export const LABEL_CREATED_AT = 'kiln.cache.createdat';

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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
    const what = spec.type === 'local' ? `type=local,src=${spec.src}` : spec.type === 's3' ? s3ManifestUrl(spec) : spec.type === 'azblob' ? azblobManifestUrl(spec) : spec.ref;
    const v = progressVertex(opts.progress, `cache-import-${i}`, `importing cache manifest from ${what}`);
    try {
      if (spec.type === 's3' || spec.type === 'azblob') {
        out.push(...(spec.type === 's3' ? [await importS3Cache(spec, opts.signal)] : await importAzblobCaches(spec, opts.signal)));
        v.done();
        continue;
      }
      const reader = spec.type === 'local' ? await openLocalCache(spec.src, spec.tag, spec.digest) : await openRegistryCache(engine.registry, parseReference(spec.ref), opts.signal);
      out.push(...(await readCache(reader, opts.signal)));
      v.done();
    } catch (e) {
      v.done();
      // Ctrl-C while a cache is read cancels the build, it is no warning about the cache.
      opts.signal?.throwIfAborted();
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
  return async (result: ImportedResult, ctx) => {
    // Each layer snapshot is leased before it is looked up, as image sources do (solver
    // worker/snapshots.ts withLeases): a prune running meanwhile (the daemon's, or one between two
    // builds of this process) must not remove a layer found unpacked before the step records the
    // result. Held until the step's signal ends (the scheduler has recorded and leased the result
    // by then); released at once when the load fails.
    const held: Array<() => void> = [];
    const release = (): void => {
      for (const r of held.splice(0)) r();
    };
    try {
      const ref = await load(engine, result, ctx, held);
      if (ctx.signal.aborted) release();
      else ctx.signal.addEventListener('abort', release, { once: true });
      return ref;
    } catch (e) {
      release();
      throw e;
    }
  };
}

async function load(engine: KilnEngine, result: ImportedResult, ctx: Parameters<LoadImportedResult>[1], held: Array<() => void>) {
  const diffIds = result.layers.map((d, i) => d.annotations?.[ANNOTATION_UNCOMPRESSED] ?? `sha256:${createHash('sha256').update(`blob ${i} ${d.digest}`).digest('hex')}`);
  const chain = chainIds(diffIds);
  let parent: string | undefined;
  let size = 0;
  const remember: LayerRef[] = [];
  for (const [i, d] of result.layers.entries()) {
    const id = layerSnapshotId(chain[i] as string);
    const diffID = d.annotations?.[ANNOTATION_UNCOMPRESSED];
    // The layer keeps the creation time the cache gives it (BuildKit makes the ref with the
    // descriptor's buildkit/createdat), which an export of it writes again.
    const createdAt = d.annotations?.[ANNOTATION_CREATED_AT];
    size += d.size;
    held.push(engine.cache.lease(id));
    // Layers several results (of this build, of other builds, or a FROM or prefetch of an image
    // with the same layers) need at once are unpacked once: ensureLayer joins the unpack in flight.
    const { unpacked } = await ensureLayer({ snapshotter: engine.snapshotter, unpackLayer }, {
      id,
      below: parent,
      // This cache's blob, fetched from where the cache lives: a FROM of the same layer (or an
      // import from another cache) joining this unpack does not take its failure (a corrupt or
      // unreachable cache) as its own, nor its diffID check.
      source: `cache ${result.source.name} ${d.digest}`,
      open: async () => {
        const digest = parseDigest(d.digest);
        if (!(await engine.content.has(digest))) {
          ctx.status(`pulling ${d.digest}`, 0, d.size);
          await engine.content.ingest(await result.source.open(d, ctx.signal), { expected: digest, expectedSize: d.size, signal: ctx.signal });
          ctx.status(`pulling ${d.digest}`, d.size, d.size, true);
        }
        return engine.content.readStream(digest);
      },
      ...(diffID === undefined ? {} : { expectedDiffID: diffID }),
      ...(createdAt === undefined ? {} : { labels: { [LABEL_CREATED_AT]: createdAt } }),
      signal: ctx.signal,
    });
    // Only a blob this import unpacked and found to be the diffID it claims is remembered for
    // that diffID (image exports reuse it): a cache must not map a layer that was already here,
    // which it never had to prove, to a blob of its choosing. `unpacked` is true only for an
    // unpack of this same blob checked against this same diffID (this call's, or one it joined).
    if (unpacked && diffID !== undefined) remember.push({ descriptor: { mediaType: d.mediaType, digest: parseDigest(d.digest), size: d.size }, diffID: parseDigest(diffID) });
    parent = id;
  }
  await engine.layers.rememberLayers(remember);
  if (parent === undefined) throw new EngineError('KLN0704', 'an imported cache result has no layers');
  return { snapshot: parent, size };
}
