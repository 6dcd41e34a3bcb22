import { createGunzip, createGzip, constants as zc } from 'node:zlib';
import { Readable, type Transform } from 'node:stream';
import { Digester, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { goJsonBytes, sortedKeys } from './manifest.js';
import { layerCompression, layerMediaType, MediaTypes, type BlobCompression, type ImageFormat } from './media-types.js';
import { zstdTransform } from './zstd.js';
import type { Descriptor, HistoryEntry, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

/** A layer blob in the content store and the digest of its uncompressed tar. */
export interface LayerRef {
  readonly descriptor: Descriptor;
  readonly diffID: Digest;
  /**
   * The blob came with a base image (BuildKit: the ref already had a blob). Exporters keep such a
   * blob in its compression unless `force-compression=true`; `compression=` applies to the
   * layers the build made.
   */
  readonly fromImage?: boolean | undefined;
}

/** What {@link writeImage} produced. */
export interface WrittenImage {
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly manifestBytes: Buffer;
  readonly configBytes: Buffer;
}

/** An image config before its layers are known: `rootfs` is filled in by {@link writeImage}. */
export interface ImageConfigDraft {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
  readonly rootfs?: ImageConfig['rootfs'] | undefined;
  readonly [extra: string]: unknown;
}

/** Options for {@link writeImage}. */
export interface WriteImageOptions {
  /** `oci` (default) or Docker schema 2 media types. */
  readonly format?: ImageFormat | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/**
 * Writes an image config and manifest for `layers` (already in the store) into the store.
 * `rootfs.diff_ids` is set from the layers; layer media types follow `format`. The returned
 * manifest descriptor carries the config's platform.
 */
export async function writeImage(
  store: ContentStore,
  layers: ReadonlyArray<LayerRef>,
  config: ImageConfigDraft,
  opts: WriteImageOptions = {},
): Promise<WrittenImage> {
  const format = opts.format ?? 'oci';
  for (const l of layers) {
    if (!(await store.has(l.descriptor.digest))) throw new ImageStoreError('BLOB_NOT_FOUND', `layer ${l.descriptor.digest} is not in the content store`);
  }
  const { rootfs: _ignored, ...rest } = config;
  const history = normalizeHistory(config['history'], layers.length, typeof config['created'] === 'string' ? config['created'] : undefined);
  const fullConfig: Record<string, unknown> = { ...rest, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) }, ...(history !== undefined ? { history } : {}) };
  // patchImageConfig: a config without `created` gets the last history time (Go writes a nil
  // *time.Time as null when there is none).
  if (!('created' in fullConfig)) fullConfig['created'] = [...(history ?? [])].reverse().find((h) => h.created !== undefined)?.created ?? null;
  // BuildKit's patchImageConfig re-marshals the config as a map[string]json.RawMessage: top-level
  // keys sorted, nested values as given, compact, HTML characters escaped.
  const configBytes = goJsonBytes(sortedKeys(fullConfig));
  const configInfo = await store.writeBlob(configBytes);
  const configDesc: Descriptor = {
    mediaType: format === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig,
    digest: configInfo.digest,
    size: configInfo.size,
  };
  // Field order of BuildKit's manifest struct: mediaType (its wrapper), then ocispecs.Manifest.
  const manifest: ImageManifest = {
    mediaType: format === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest,
    schemaVersion: 2,
    config: configDesc,
    layers: layers.map((l) => {
      const comp = layerCompression(l.descriptor.mediaType);
      if (comp === undefined) throw new ImageStoreError('MANIFEST_INVALID', `${l.descriptor.mediaType} is not a layer media type`);
      const d: Descriptor = { mediaType: layerMediaType(format, comp), digest: l.descriptor.digest, size: l.descriptor.size };
      return l.descriptor.annotations !== undefined && format === 'oci' ? { ...d, annotations: l.descriptor.annotations } : d;
    }),
    ...(opts.annotations !== undefined && format === 'oci' ? { annotations: opts.annotations } : {}),
  };
  const manifestBytes = goJsonBytes(manifest, BUILDKIT_INDENT);
  const m = await store.writeBlob(manifestBytes);
  const platform: { architecture: string; os: string; variant?: string } = { architecture: config.architecture, os: config.os };
  if (config.variant !== undefined) platform.variant = config.variant;
  return { manifest: { mediaType: manifest.mediaType ?? MediaTypes.ociManifest, digest: m.digest, size: m.size, platform }, config: configDesc, manifestBytes, configBytes };
}

/** Writes an image index (or Docker manifest list) over platform manifests. */
export async function writeIndex(
  store: ContentStore,
  manifests: ReadonlyArray<Descriptor & { platform: Platform }>,
  opts: WriteImageOptions = {},
): Promise<Descriptor> {
  const format = opts.format ?? 'oci';
  const index: ImageIndex = {
    mediaType: format === 'docker' ? MediaTypes.dockerManifestList : MediaTypes.ociIndex,
    schemaVersion: 2,
    manifests: manifests.map((m) => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      ...(m.annotations !== undefined && format === 'oci' ? { annotations: m.annotations } : {}),
      platform: goPlatform(m.platform),
    })),
    ...(opts.annotations !== undefined && format === 'oci' ? { annotations: opts.annotations } : {}),
  };
  const info = await store.writeBlob(goJsonBytes(index, BUILDKIT_INDENT));
  return { mediaType: index.mediaType ?? MediaTypes.ociIndex, digest: info.digest, size: info.size };
}

/** BuildKit writes manifests and indexes with `json.MarshalIndent(v, "", "   ")`. */
const BUILDKIT_INDENT = '   ';

/** A platform with its fields in the order of Go's `ocispecs.Platform` (architecture, os, os.version, os.features, variant). */
function goPlatform(p: Platform): Platform {
  return {
    architecture: p.architecture,
    os: p.os,
    ...(p['os.version'] !== undefined ? { 'os.version': p['os.version'] } : {}),
    ...(p['os.features'] !== undefined ? { 'os.features': p['os.features'] } : {}),
    ...(p.variant !== undefined ? { variant: p.variant } : {}),
  };
}

/**
 * Re-encodes a layer blob as gzip, zstd or uncompressed (streaming; zstd through the `zstd`
 * binary). The uncompressed bytes are hashed on the way and must match the diffID. Returns the
 * layer unchanged if it already has that compression.
 */
export async function convertLayer(store: ContentStore, layer: LayerRef, to: BlobCompression, opts: { gzipLevel?: number; zstdLevel?: number } = {}): Promise<LayerRef> {
  const from = layerCompression(layer.descriptor.mediaType);
  if (from === to) return layer;
  if (from === undefined) throw new ImageStoreError('EXPORT_FAILED', `cannot convert a ${layer.descriptor.mediaType} layer`);
  const w = await store.openWriter();
  const diff = new Digester();
  try {
    const gunzip = (src: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> => through(src, createGunzip());
    const decode = (src: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> =>
      from === 'gzip' ? gunzip(src) : from === 'zstd' ? zstdTransform(src, ['-d']) : src;
    const hash = async function* (src: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
      for await (const c of src) {
        diff.update(c);
        yield c;
      }
    };
    const encode = (src: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> =>
      to === 'gzip'
        ? through(src, createGzip({ level: opts.gzipLevel ?? zc.Z_DEFAULT_COMPRESSION }))
        : to === 'zstd'
          ? zstdTransform(src, [`-${opts.zstdLevel ?? 3}`, '-T0'])
          : src;
    for await (const c of encode(hash(decode(await store.readStream(layer.descriptor.digest))))) await w.write(c);
    const got = diff.digest();
    if (got !== layer.diffID) {
      throw new ImageStoreError('DIGEST_MISMATCH', `layer ${layer.descriptor.digest}: uncompressed digest ${got} does not match diffID ${layer.diffID}`);
    }
    const info = await w.commit();
    const mediaType = layer.descriptor.mediaType.startsWith('application/vnd.docker') ? layerMediaType('docker', to) : layerMediaType('oci', to);
    return { descriptor: { mediaType, digest: info.digest, size: info.size }, diffID: layer.diffID };
  } catch (e) {
    await w.abort();
    throw e;
  }
}

/**
 * Makes `history` agree with the layers exactly as BuildKit's exporter does
 * (exporter/containerimage/writer.go normalizeLayersAndHistory): when there are more non-empty
 * entries than layers, the ones past the last layer (walking oldest first) are marked
 * `empty_layer`; missing entries are appended at the end with BuildKit's fallback description
 * and comment (`created by buildkit`, `buildkit.exporter.image.v0`). Entries without `created`
 * get one as there: layer entries the layer time (here `created`), the rest the first new layer time.
 */
export function normalizeHistory(history: unknown, layerCount: number, created: string | undefined): HistoryEntry[] | undefined {
  if (!Array.isArray(history)) return undefined;
  const out: { -readonly [K in keyof HistoryEntry]: HistoryEntry[K] }[] = history
    .filter((h): h is HistoryEntry => typeof h === 'object' && h !== null)
    .map((h) => ({ ...h }));
  let seen = 0;
  for (const h of out) {
    if (seen >= layerCount) h.empty_layer = true;
    if (h.empty_layer !== true) seen++;
  }
  for (; seen < layerCount; seen++) {
    out.push({ ...(created !== undefined ? { created } : {}), created_by: 'created by buildkit', comment: 'buildkit.exporter.image.v0' });
  }
  // Layer entries without a time get the layer's: kiln keeps none per layer, so the image's.
  if (created !== undefined) for (const h of out) if (h.empty_layer !== true && h.created === undefined) h.created = created;
  // Then BuildKit's fill: entries still without a time take the first new layer's time (the
  // first time after an entry without one), or the last time seen.
  let fill: string | undefined;
  let gap = false;
  for (const h of out) {
    if (h.created !== undefined) {
      fill = h.created;
      if (gap) break;
    } else gap = true;
  }
  gap = false;
  for (const h of out) {
    if (h.created !== undefined) {
      if (gap) fill = h.created;
    } else {
      gap = true;
      if (fill !== undefined) h.created = fill;
    }
  }
  return out;
}

/** Runs an async iterable through a zlib transform, propagating errors both ways. */
function through(src: AsyncIterable<Uint8Array>, t: Transform): AsyncIterable<Uint8Array> {
  const input = Readable.from(src);
  input.on('error', (e) => t.destroy(e));
  return input.pipe(t);
}
