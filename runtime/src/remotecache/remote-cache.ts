import { createReadStream } from 'node:fs';
import { copyFile, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, digestOf, isDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { siblingTempPath, writeFileAtomic } from '../content/atomic-file.js';
import { makeDirs } from '../content/make-dirs.js';
import { LAYOUT_INDEX_LOCK, withLayoutLock } from './layout-lock.js';
import { goJsonBytes, sortedKeys } from '../image/manifest.js';
import { AnnotationRefName, MediaTypes, isIndexMediaType, layerCompression } from '../image/media-types.js';
import type { Descriptor, ImageIndex } from '../image/types.js';
import type { RegistryClient } from '../registry/client.js';
import { pushBlob, putManifest } from '../registry/push.js';
import { formatReference, type ImageReference } from '../registry/reference.js';

/**
 * Where a cache's blobs come from when it is imported: the root manifest (list) it was found by,
 * and its blobs, small ones read whole (configs, manifests) and layers streamed.
 */
export interface CacheSourceReader {
  /** e.g. `type=local,src=/tmp/cache` */
  readonly name: string;
  readonly root: Descriptor;
  readonly rootBytes: Buffer;
  /** Reads a small blob whole (digest checked). */
  fetch(desc: Descriptor, signal?: AbortSignal): Promise<Buffer>;
  /** Streams a blob (the consumer checks the digest). */
  open(desc: Descriptor, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
}

/** The largest config or manifest read whole (remotecache/import.go readBlob: 1 MiB). */
const MAX_SMALL_BLOB = 1 << 20;
const LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/**
 * The manifest list BuildKit's cache exporter writes (cache/remotecache/export.go Finalize): the
 * layer descriptors, media types converted to OCI or Docker ones (compression.ConvertAllLayerMediaTypes),
 * then the cache config's descriptor, under an OCI index or a Docker manifest list media type.
 * Descriptor fields in Go's order, annotation keys sorted.
 */
export function cacheManifestList(layers: ReadonlyArray<Descriptor>, config: Descriptor, oci: boolean): { bytes: Buffer; descriptor: Descriptor } {
  const mediaType = oci ? MediaTypes.ociIndex : MediaTypes.dockerManifestList;
  const desc = (d: Descriptor, mt: string): Record<string, unknown> => ({
    mediaType: mt,
    digest: d.digest,
    size: d.size,
    ...(d.annotations !== undefined && Object.keys(d.annotations).length > 0 ? { annotations: sortedKeys(d.annotations) } : {}),
  });
  const manifests = [...layers.map((l) => desc(l, convertLayerMediaType(l.mediaType, oci))), desc(config, config.mediaType)];
  const bytes = goJsonBytes({ schemaVersion: 2, mediaType, manifests });
  return { bytes, descriptor: { mediaType, digest: digestOf(bytes), size: bytes.length } };
}

/** compression.ConvertAllLayerMediaTypes for one layer: the same compression in the other family. */
export function convertLayerMediaType(mt: string, oci: boolean): string {
  const c = layerCompression(mt);
  if (c === undefined) return mt;
  if (oci) return c === 'zstd' ? MediaTypes.ociLayerZstd : c === 'gzip' ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer;
  // Docker has no zstd layer type: BuildKit keeps OCI's.
  return c === 'zstd' ? MediaTypes.ociLayerZstd : c === 'gzip' ? MediaTypes.dockerLayerGzip : MediaTypes.dockerLayer;
}

/** A small blob to write beside the layers (the cache config, the manifest list). */
export interface CacheBlob {
  readonly descriptor: Descriptor;
  readonly bytes: Uint8Array;
}

/**
 * Writes a cache into the OCI layout directory `dest` as buildx's local cache exporter does: the
 * blobs under `blobs/sha256/`, then `index.json` with the manifest list tagged
 * `org.opencontainers.image.ref.name=<tag>` (an older entry with that tag is replaced, others
 * kept). Layers come from `store`; `index.json` is replaced atomically after every blob is in place
 * (an export interrupted before leaves the directory's earlier caches as they were; blobs are only
 * ever added), read and replaced under a lock file so concurrent exports keep each other's tags.
 * `onBlob` is told about each blob as it is written; `signal` stops the export between blobs.
 */
export async function writeLocalCache(
  store: ContentStore,
  dest: string,
  tag: string,
  layers: ReadonlyArray<Descriptor>,
  small: ReadonlyArray<CacheBlob>,
  root: Descriptor,
  onBlob?: (d: Descriptor) => void,
  signal?: AbortSignal,
): Promise<void> {
  const blobDir = join(dest, 'blobs', 'sha256');
  // Not mkdir's recursive: it never returns for a path under /proc (see makeDirs).
  await makeDirs(blobDir, (why, cause) => new ImageStoreError('EXPORT_FAILED', `cannot make the cache directory: ${why}`, { hint: 'name a directory you can write (it is made if missing)', cause }));
  for (const l of layers) {
    signal?.throwIfAborted();
    onBlob?.(l);
    const to = join(blobDir, digestHex(l.digest));
    if (await stat(to).then((st) => st.size === l.size, () => false)) continue;
    const tmp = siblingTempPath(to);
    try {
      await copyFile(store.blobPath(l.digest), tmp);
      await rename(tmp, to);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
  for (const b of small) {
    signal?.throwIfAborted();
    onBlob?.(b.descriptor);
    await writeFileAtomic(join(blobDir, digestHex(b.descriptor.digest)), Buffer.from(b.bytes));
  }
  await writeFileAtomic(join(dest, 'oci-layout'), Buffer.from(LAYOUT_FILE));
  // Read, change and replace index.json under a lock: a concurrent export into this directory
  // (another tag, another CI job) would otherwise write its index from the same old one and drop
  // this tag, or this one drop its.
  await withLayoutLock(join(dest, LAYOUT_INDEX_LOCK), signal, () => updateIndex(dest, tag, root));
}


async function updateIndex(dest: string, tag: string, root: Descriptor): Promise<void> {
  let index: { manifests: Descriptor[]; rest: Record<string, unknown> } = { manifests: [], rest: {} };
  const old = await readFile(join(dest, 'index.json')).catch(() => undefined);
  if (old !== undefined) {
    try {
      const parsed = JSON.parse(old.toString('utf8')) as { manifests?: Descriptor[] } & Record<string, unknown>;
      const { manifests, schemaVersion: _s, mediaType: _m, ...rest } = parsed;
      index = { manifests: Array.isArray(manifests) ? manifests : [], rest };
    } catch {
      // an unreadable index.json is replaced
    }
  }
  const entry: Descriptor = { mediaType: root.mediaType, digest: root.digest, size: root.size, annotations: { [AnnotationRefName]: tag } };
  const kept = index.manifests.filter((m) => m.annotations?.[AnnotationRefName] !== tag);
  const out: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [...kept, entry], ...index.rest };
  await writeFileAtomic(join(dest, 'index.json'), goJsonBytes(out));
}

/** A digest from a cache's manifest list goes into a registry URL: only a well-formed one. */
function checkDigest(d: Descriptor): void {
  if (!isDigest(d.digest)) throw new ImageStoreError('MANIFEST_INVALID', `invalid digest ${JSON.stringify(String(d.digest)).slice(0, 100)}`);
}

/** remotecache/import.go readBlob: configs and manifests read whole are at most 1 MiB. */
function checkSmall(d: Descriptor): void {
  if (d.size > MAX_SMALL_BLOB) throw new ImageStoreError('MANIFEST_INVALID', `blob ${d.digest} is too large (${d.size} > ${MAX_SMALL_BLOB} bytes)`);
}

function sizeMismatch(d: Descriptor, got: number): ImageStoreError {
  return new ImageStoreError('SIZE_MISMATCH', `blob ${d.digest} is ${got > MAX_SMALL_BLOB ? 'over 1 MiB' : `${got} bytes`}, not the ${d.size} its descriptor says`);
}

/** Opens the cache tagged `tag` (default `latest`) in the OCI layout directory `src`. */
export async function openLocalCache(src: string, tag = 'latest', digest?: string): Promise<CacheSourceReader> {
  const name = `type=local,src=${src}`;
  let root: Descriptor | undefined;
  const raw = await readFile(join(src, 'index.json')).catch((cause: unknown) => {
    throw new ImageStoreError('LAYOUT_INVALID', `${src}: no index.json (not a cache directory)`, { cause });
  });
  let index: ImageIndex;
  try {
    index = JSON.parse(raw.toString('utf8')) as ImageIndex;
  } catch (cause) {
    throw new ImageStoreError('LAYOUT_INVALID', `${src}/index.json is not JSON`, { cause });
  }
  const list = Array.isArray(index.manifests) ? index.manifests : [];
  if (digest !== undefined) root = list.find((m) => m.digest === digest) ?? { mediaType: MediaTypes.ociIndex, digest: digest as Digest, size: 0 };
  else root = list.find((m) => m.annotations?.[AnnotationRefName] === tag);
  if (root === undefined) throw new ImageStoreError('IMAGE_NOT_FOUND', `${src}: no cache tagged ${tag}`);
  if (!isDigest(root.digest)) throw new ImageStoreError('LAYOUT_INVALID', `${src}/index.json: invalid digest ${String(root.digest)}`);
  const blobPath = (d: Descriptor): string => {
    if (!isDigest(d.digest)) throw new ImageStoreError('LAYOUT_INVALID', `${src}: invalid digest ${String(d.digest)}`);
    return join(src, 'blobs', 'sha256', digestHex(d.digest));
  };
  const fetch = async (d: Descriptor): Promise<Buffer> => {
    checkSmall(d);
    const p = blobPath(d);
    const st = await stat(p).catch((cause: unknown) => {
      throw new ImageStoreError('BLOB_NOT_FOUND', `${src}: blob ${d.digest} is missing`, { cause });
    });
    // Checked before the read: a huge file behind a small descriptor is not buffered whole. (The
    // root found by `digest=` alone has no known size: size 0.)
    if (st.size > MAX_SMALL_BLOB || (d.size > 0 && st.size !== d.size)) throw sizeMismatch(d, st.size);
    const bytes = await readFile(p);
    if (digestOf(bytes) !== d.digest) throw new ImageStoreError('DIGEST_MISMATCH', `${src}: blob ${d.digest} is corrupt`);
    return bytes;
  };
  const rootBytes = await fetch(root);
  return {
    name,
    root: { ...root, size: rootBytes.length },
    rootBytes,
    fetch,
    open: async (d) => {
      const p = blobPath(d);
      await stat(p).catch((cause: unknown) => {
        throw new ImageStoreError('BLOB_NOT_FOUND', `${src}: blob ${d.digest} is missing`, { cause });
      });
      return createReadStream(p, { highWaterMark: 1 << 20 });
    },
  };
}

/** Opens the cache (or image with inline cache) at `ref` in its registry. */
export async function openRegistryCache(client: RegistryClient, ref: ImageReference, signal?: AbortSignal): Promise<CacheSourceReader> {
  const resolved = await client.resolve(ref, signal);
  const rootBytes = await client.fetchManifest(ref, resolved.descriptor, signal);
  return {
    name: `type=registry,ref=${formatReference(ref)}`,
    root: resolved.descriptor,
    rootBytes,
    fetch: async (d, s) => {
      checkDigest(d);
      checkSmall(d);
      if (isIndexMediaType(d.mediaType) || d.mediaType === MediaTypes.ociManifest || d.mediaType === MediaTypes.dockerManifest) return client.fetchManifest(ref, d, s ?? signal);
      // Streamed and cut off past the declared size: a registry (or a manifest list) that lies
      // about a config's size cannot make the import buffer an unbounded body.
      const chunks: Uint8Array[] = [];
      let n = 0;
      for await (const c of client.openBlob(ref, d, s ?? signal)) {
        n += c.length;
        if (n > d.size) throw sizeMismatch(d, n);
        chunks.push(c);
      }
      const bytes = Buffer.concat(chunks);
      if (bytes.length !== d.size) throw sizeMismatch(d, bytes.length);
      if (digestOf(bytes) !== d.digest) throw new ImageStoreError('DIGEST_MISMATCH', `blob ${d.digest} of ${formatReference(ref)} is corrupt`);
      return bytes;
    },
    open: async (d, s) => {
      checkDigest(d);
      return client.openBlob(ref, d, s ?? signal);
    },
  };
}

/**
 * Pushes a cache to `ref` (cache/remotecache/registry): every layer blob from `store` (skipped
 * when the repository has it), the small blobs, then the manifest list under the tag.
 */
export async function pushRegistryCache(
  client: RegistryClient,
  store: ContentStore,
  ref: ImageReference,
  layers: ReadonlyArray<Descriptor>,
  small: ReadonlyArray<CacheBlob>,
  root: CacheBlob,
  opts: { signal?: AbortSignal; onBlob?: (d: Descriptor) => void } = {},
): Promise<void> {
  for (const l of layers) {
    opts.onBlob?.(l);
    await pushBlob(client, store, ref, l, [], opts.signal === undefined ? {} : { signal: opts.signal });
  }
  for (const b of small) {
    opts.onBlob?.(b.descriptor);
    if (!(await store.has(b.descriptor.digest))) await store.writeBlob(b.bytes, b.descriptor.digest);
    await pushBlob(client, store, ref, b.descriptor, [], opts.signal === undefined ? {} : { signal: opts.signal });
  }
  opts.onBlob?.(root.descriptor);
  await putManifest(client, ref, ref.tag ?? 'latest', root.bytes, root.descriptor.mediaType, opts.signal);
}
