import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, isDigest, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { removeStaleTemps, siblingTempPath, writeDirAtomic, writeFileAtomic } from '../content/atomic-file.js';
import { copyImageGraph, listImageBlobs, storeProvider, type BlobProvider } from './copy.js';
import { jsonBytes, sortedKeys } from './manifest.js';
import { AnnotationImageName, AnnotationRefName, MediaTypes } from './media-types.js';
import { OciLayoutReader, parseLayoutIndex, resolveLayoutImage } from './oci-layout-reader.js';
import { storeFetcher } from './resolve.js';
import { LAYOUT_INDEX_LOCK, withLayoutLock } from '../remotecache/layout-lock.js';
import { abortable, packTar, readTar, verifyingTransform, type PackEntry } from './tar-pack.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

export { findLayoutImage } from './oci-layout-reader.js';

/** An opened OCI image layout: its `index.json` and a way to read its blobs. */
export interface OciLayout {
  /** How messages name it: `oci-layout://DIR`, or the tarball's path. */
  readonly name: string;
  readonly index: ImageIndex;
  readonly provider: BlobProvider;
  /** A blob's size, undefined when the layout does not have it. */
  size(digest: Digest): Promise<number | undefined>;
}

const LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/**
 * Opens an OCI layout directory in place ({@link OciLayoutReader}), or a layout tarball (`.tar`) by
 * streaming its blobs into `store` (digest-verified). LAYOUT_INVALID when there is no `index.json`
 * (in a tarball, no `oci-layout` either) or it is no image index.
 */
export async function openOciLayout(path: string, store: ContentStore): Promise<OciLayout> {
  const st = await stat(path).catch((e: unknown) => {
    throw new ImageStoreError('LAYOUT_INVALID', `OCI layout ${path} does not exist`, { cause: e });
  });
  if (st.isDirectory()) {
    const dir = new OciLayoutReader(path);
    return { name: dir.name, index: await dir.readIndex(), provider: dir, size: (d) => dir.size(d) };
  }
  let indexBytes: Buffer | undefined;
  let sawLayout = false;
  await readTar(createReadStream(path), async (h, body) => {
    const name = h.name.replace(/^\.\//, '');
    if (name === 'index.json') indexBytes = await collect(body);
    else if (name === 'oci-layout') sawLayout = true;
    else {
      const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
      const d = `sha256:${m?.[1] ?? ''}`;
      if (m !== null && isDigest(d) && h.type === 'file' && !(await store.has(d))) await store.ingest(body, { expected: d as Digest });
    }
  });
  if (indexBytes === undefined || !sawLayout) throw new ImageStoreError('LAYOUT_INVALID', `${path} is not an OCI layout tarball (needs oci-layout and index.json)`);
  return {
    name: path,
    index: parseLayoutIndex(indexBytes, path),
    provider: storeProvider(store, storeFetcher(store)),
    size: async (d) => ((await store.has(d)) ? (await store.info(d)).size : undefined),
  };
}

async function collect(r: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/**
 * Copies one image of a layout into the store (optionally only one platform); returns its
 * descriptor. `ref` is a digest (any blob of the layout) or a tag (`latest` without one); a tag no
 * entry has still picks the image of a one-image layout, as buildx resolves build contexts.
 */
export async function importOciLayout(
  layout: OciLayout,
  store: ContentStore,
  opts: { ref?: string; platform?: Platform } = {},
): Promise<Descriptor> {
  const ref = opts.ref ?? 'latest';
  const lookup = { readIndex: async () => layout.index, fetch: (d: Descriptor) => layout.provider.fetch(d), size: layout.size };
  const desc = await resolveLayoutImage(lookup, isDigest(ref) ? { digest: ref } : { tag: ref }, { single: true, name: layout.name });
  const { annotations: _a, ...plain } = desc;
  await copyImageGraph(layout.provider, plain, store, { platform: opts.platform });
  return plain;
}

/** One image to write into a layout, with the names it is tagged as. */
export interface LayoutImage {
  readonly descriptor: Descriptor;
  /** Full references (`docker.io/library/x:1`) or bare tags; each becomes one index entry. */
  readonly names?: ReadonlyArray<string> | undefined;
  /** Annotations on every index entry of this image (BuildKit's exporters add `org.opencontainers.image.created`). */
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/**
 * The `index.json` BuildKit writes (containerd's archive exporter, WithManifest): one entry per
 * name with containerd's and OCI's name annotations, plus the image's own annotations; keys are
 * sorted as Go marshals a map.
 */
export function layoutIndex(images: ReadonlyArray<LayoutImage>): ImageIndex {
  const manifests: Descriptor[] = [];
  for (const img of images) {
    const d = img.descriptor;
    // Fields in Go's ocispecs.Descriptor order; the descriptor's own annotations are kept (BuildKit:
    // manifest-descriptor annotations of a single-platform image), name ones replaced.
    const entry = (annotations: Record<string, string>): Descriptor => ({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      ...(d.urls !== undefined ? { urls: d.urls } : {}),
      ...(Object.keys(annotations).length > 0 ? { annotations: sortedKeys(annotations) } : {}),
      ...(d.platform !== undefined ? { platform: d.platform } : {}),
    });
    const names = img.names ?? [];
    const own = { ...d.annotations, ...img.annotations };
    if (names.length === 0) manifests.push(entry({ ...own }));
    for (const n of names) {
      const tag = tagOf(n);
      const annotations: Record<string, string> = { ...own };
      if (n !== tag) annotations[AnnotationImageName] = n;
      annotations[AnnotationRefName] = tag;
      manifests.push(entry(annotations));
    }
  }
  return { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
}

/**
 * The `org.opencontainers.image.ref.name` of a name, as containerd's archive exporter derives it
 * (reference.Parse(name).Object): for a full reference everything from the first `:` or `@` after
 * the host, a leading `:` dropped (`v1`, `v1@sha256:…`, `@sha256:…`); `latest` without either. A
 * bare tag stays itself.
 */
function tagOf(name: string): string {
  const slash = name.indexOf('/');
  if (slash < 0) return name;
  const path = name.slice(slash);
  const i = path.search(/[:@]/);
  if (i < 0) return 'latest'; // BuildKit always passes a tag (TagNameOnly); kiln callers may not.
  const object = path.slice(i);
  return object.startsWith(':') ? object.slice(1) : object;
}

async function collectBlobs(store: ContentStore, images: ReadonlyArray<LayoutImage>): Promise<Descriptor[]> {
  const fetcher = storeFetcher(store);
  const all = new Map<string, Descriptor>();
  for (const img of images) for (const d of await listImageBlobs(fetcher, store, img.descriptor)) all.set(d.digest, d);
  return [...all.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
}

/** Writes images from the store as an OCI layout directory (atomically replacing `dest`). */
export async function writeOciLayoutDir(store: ContentStore, dest: string, images: ReadonlyArray<LayoutImage>, opts: { signal?: AbortSignal | undefined } = {}): Promise<void> {
  const blobs = await collectBlobs(store, images);
  await removeStaleTemps(dest);
  await writeDirAtomic(dest, async (dir) => {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    for (const b of blobs) {
      opts.signal?.throwIfAborted();
      await copyBlobVerified(store, b.digest, join(dir, 'blobs', 'sha256', digestHex(b.digest)));
    }
    await writeFile(join(dir, 'oci-layout'), LAYOUT_FILE);
    await writeFile(join(dir, 'index.json'), jsonBytes(layoutIndex(images)));
  });
}

/**
 * Adds images to the OCI layout directory `dest` as BuildKit's `type=oci,tar=false` does (the
 * client copies the blobs into the layout's content store, then ociindex inserts the descriptor):
 * other images in an existing layout stay, an existing entry with the same
 * `org.opencontainers.image.ref.name` as a new one is replaced. A missing or empty `dest` is
 * written as a whole (temp dir, then rename). Blobs are written before `index.json`, which is
 * replaced atomically, so a failure never leaves an index naming missing blobs.
 */
export async function addToOciLayoutDir(store: ContentStore, dest: string, images: ReadonlyArray<LayoutImage>, opts: { signal?: AbortSignal | undefined } = {}): Promise<void> {
  const existing = await readdir(dest).catch(() => [] as string[]);
  if (existing.length === 0) {
    await writeOciLayoutDir(store, dest, images, opts);
    return;
  }
  const indexPath = join(dest, 'index.json');
  // Checked before the blobs are copied: a directory that is not a layout is refused untouched.
  const first = await readFile(indexPath).catch(() => undefined);
  if (first !== undefined) parseLayoutIndex(first, dest);
  const blobDir = join(dest, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  for (const b of await collectBlobs(store, images)) {
    opts.signal?.throwIfAborted();
    const to = join(blobDir, digestHex(b.digest));
    if (await stat(to).then((st) => st.size === b.size, () => false)) continue;
    await copyBlobVerified(store, b.digest, to);
  }
  const added = layoutIndex(images).manifests;
  const tags = new Set(added.map((m) => m.annotations?.[AnnotationRefName]).filter((t) => t !== undefined));
  await writeFileAtomic(join(dest, 'oci-layout'), Buffer.from(LAYOUT_FILE));
  // Read, change and replace index.json under the layout's lock (kiln imagetools and cache exports
  // take the same one): two exports into one layout would otherwise each drop the other's entry.
  await withLayoutLock(join(dest, LAYOUT_INDEX_LOCK), opts.signal, async () => {
    const old = await readFile(indexPath).catch(() => undefined);
    const index: ImageIndex = old === undefined ? { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] } : parseLayoutIndex(old, dest);
    const kept = index.manifests.filter((m) => !tags.has(m.annotations?.[AnnotationRefName] ?? '\0'));
    const merged: ImageIndex = {
      schemaVersion: 2,
      mediaType: index.mediaType ?? MediaTypes.ociIndex,
      manifests: [...kept, ...added],
      ...(index.annotations !== undefined ? { annotations: index.annotations } : {}),
    };
    await writeFileAtomic(indexPath, jsonBytes(merged));
  });
}

/** Copies a store blob to `to` through a temp file, checking its digest before the rename. */
async function copyBlobVerified(store: ContentStore, digest: Digest, to: string): Promise<void> {
  const tmp = siblingTempPath(to);
  try {
    await pipeline(createReadStream(store.blobPath(digest), { highWaterMark: 1 << 20 }), verifyingTransform(digest, `blob ${digest}`), createWriteStream(tmp, { mode: 0o644 }));
    await rename(tmp, to);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Options for tarball layouts. */
export interface LayoutTarOptions {
  /** Entry mtime (default: the epoch, for reproducible tarballs; pass SOURCE_DATE_EPOCH here). */
  readonly mtime?: Date | undefined;
  /** Extra entries written after `index.json` (the docker exporter adds `manifest.json`). */
  readonly extra?: ReadonlyArray<{ readonly name: string; readonly data: Uint8Array }> | undefined;
  /** Stops the write (no file is left) when aborted. */
  readonly signal?: AbortSignal | undefined;
}

/** The tar entries of a layout tarball, in a deterministic order. */
export async function layoutTarEntries(store: ContentStore, images: ReadonlyArray<LayoutImage>, opts: LayoutTarOptions = {}): Promise<PackEntry[]> {
  const mtime = opts.mtime ?? new Date(0);
  const blobs = await collectBlobs(store, images);
  // Modes as containerd's archive exporter: blobs and oci-layout 0444, index.json/manifest.json 0644.
  const file = (name: string, data: Uint8Array, mode = 0o644): PackEntry => ({ header: { name, type: 'file', mode, mtime, size: data.length, uid: 0, gid: 0 }, data });
  const dir = (name: string): PackEntry => ({ header: { name, type: 'directory', mode: 0o755, mtime, uid: 0, gid: 0 } });
  const entries: PackEntry[] = [dir('blobs/'), dir('blobs/sha256/')];
  for (const b of blobs) {
    const size = (await store.info(b.digest)).size;
    // Verified while streaming, as containerd's blobRecord does ("unexpected digest … copied").
    entries.push({ header: { name: `blobs/sha256/${digestHex(b.digest)}`, type: 'file', mode: 0o444, mtime, size, uid: 0, gid: 0 }, file: store.blobPath(b.digest), digest: b.digest });
  }
  entries.push(file('oci-layout', Buffer.from(LAYOUT_FILE), 0o444));
  entries.push(file('index.json', jsonBytes(layoutIndex(images))));
  for (const x of opts.extra ?? []) entries.push(file(x.name, x.data));
  // Sorted by name, as containerd's archive exporter writes them.
  return entries.sort((a, b) => (a.header.name < b.header.name ? -1 : a.header.name > b.header.name ? 1 : 0));
}

/** Writes images from the store as an OCI layout tarball at `dest` (temp file, then rename). */
export async function writeOciLayoutTar(store: ContentStore, dest: string, images: ReadonlyArray<LayoutImage>, opts: LayoutTarOptions = {}): Promise<void> {
  await removeStaleTemps(dest);
  await writeFileAtomic(dest, abortable(packTar(await layoutTarEntries(store, images, opts)), opts.signal));
}
