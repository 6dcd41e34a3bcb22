import type { Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { detectCompression } from '../layer/compression.js';
import { formatReference, parseReference } from '../registry/reference.js';
import { entryPath, readImageArchive, type ArchiveContents, type ReadImageArchiveOptions } from './archive-reader.js';
import type { ImageStore } from './image-store.js';
import { jsonBytes, parseManifest } from './manifest.js';
import { AnnotationImageName, AnnotationRefName, MediaTypes } from './media-types.js';
import { detectMediaType, MAX_MANIFEST_SIZE, parseLayoutIndex } from './oci-layout-reader.js';
import type { Descriptor } from './types.js';

/** One image an archive held, as {@link importImageArchive} recorded it. */
export interface ImportedImage {
  /** The image (a manifest, or an index with every platform the archive had). */
  readonly descriptor: Descriptor;
  /** Its names, normalised (`docker.io/library/app:1`); empty when the archive named it not. */
  readonly names: ReadonlyArray<string>;
  /** The image ID: the config digest of a manifest, the digest of an index (as `kiln build -q` prints). */
  readonly id: Digest;
  /** The archive entry that described it (`index.json` or `manifest.json`), for messages. */
  readonly source: 'index.json' | 'manifest.json';
}

/** Options for {@link importImageArchive}. */
export interface ImportImageArchiveOptions extends ReadImageArchiveOptions {
  readonly store: ContentStore;
  readonly images: ImageStore;
}

const INCOMPLETE = 'the archive is incomplete: save or copy it again (every blob of the image must be in it)';
/** The most a config read into memory may have (manifests and indexes: {@link MAX_MANIFEST_SIZE}, as registries serve them). */
const MAX_CONFIG_SIZE = 16 * 1024 * 1024;

/**
 * `docker load` for kiln's image store: streams an OCI archive (oci-layout + index.json, as kiln
 * save, buildx, containerd and skopeo's oci-archive write it) or a Docker archive (manifest.json
 * with RepoTags, in the legacy `<id>/layer.tar` form or Docker 25+'s OCI-layout one), plain, gzip
 * or zstd, into the content store ({@link readImageArchive}), then records its images. `index.json`
 * wins when both are there (its manifests keep their digests); `manifest.json`'s RepoTags still
 * name an image index.json leaves unnamed. A legacy archive's images get a Docker schema 2 manifest
 * written for them, as containerd's importer does. Names come from `io.containerd.image.name`, else
 * from an `org.opencontainers.image.ref.name` that is a reference (`app:1`, not a bare tag); an
 * unnamed image is recorded under its ID (`sha256:…`) so that it survives the content GC and can be
 * tagged. Every image is checked complete (a manifest's config and layers present; an index needs
 * one complete platform, as the store keeps pulled ones) and every name parsed before the first
 * record is written: a failed load names nothing, and its blobs are left to the content GC.
 */
export async function importImageArchive(source: AsyncIterable<Uint8Array>, opts: ImportImageArchiveOptions): Promise<ImportedImage[]> {
  const what = opts.name ?? 'the archive';
  const contents = await readImageArchive(source, opts.store, opts);
  let planned: ImportedImage[];
  if (contents.index !== undefined) planned = await fromIndex(contents, opts.store, what);
  else if (contents.dockerManifest !== undefined) planned = await fromDockerManifest(contents, opts.store, what);
  else {
    throw new ImageStoreError('LAYOUT_INVALID', `${what} is no image archive: it has neither index.json nor manifest.json`, {
      hint: 'give a tarball from docker save, skopeo copy … docker-archive:|oci-archive:, or kiln save',
    });
  }
  if (planned.length === 0) throw new ImageStoreError('LAYOUT_INVALID', `${what} holds no image (its ${contents.index !== undefined ? 'index.json' : 'manifest.json'} lists none)`, { hint: INCOMPLETE });
  for (const img of planned) {
    const target: Descriptor = { mediaType: img.descriptor.mediaType, digest: img.descriptor.digest, size: img.descriptor.size };
    for (const n of img.names.length > 0 ? img.names : [img.id]) await opts.images.put(n, target);
  }
  return planned;
}

/** The images of `index.json`, one per distinct digest, with the names of all its entries. */
async function fromIndex(c: ArchiveContents, store: ContentStore, what: string): Promise<ImportedImage[]> {
  const index = parseLayoutIndex(c.index ?? Buffer.alloc(0), what);
  const byConfig = c.dockerManifest === undefined ? new Map<string, string[]>() : repoTagsByConfig(c, what);
  const out = new Map<string, { desc: Descriptor; names: string[] }>();
  for (const entry of index.manifests) {
    const names = entryNames(entry, what);
    const seen = out.get(entry.digest);
    if (seen !== undefined) seen.names.push(...names);
    else out.set(entry.digest, { desc: entry, names });
  }
  const images: ImportedImage[] = [];
  const checked: Checked = new Map();
  for (const { desc, names } of out.values()) {
    const size = await store.info(desc.digest).then((i) => i.size, () => undefined);
    if (size === undefined) throw new ImageStoreError('BLOB_NOT_FOUND', `${what}: index.json names ${desc.digest}, which the archive does not contain`, { hint: INCOMPLETE });
    if (size !== desc.size) throw new ImageStoreError('SIZE_MISMATCH', `${what}: index.json says ${desc.digest} has ${desc.size} bytes; the archive's has ${size}`, { hint: INCOMPLETE });
    const mediaType = desc.mediaType !== '' ? desc.mediaType : detectMediaType(await readSmallBlob(store, desc.digest, 'manifest', 'index.json', what));
    const root: Descriptor = { mediaType, digest: desc.digest, size: desc.size };
    const config = await checkComplete(store, root, 'index.json', what, 0, checked);
    const id = config ?? root.digest;
    const fallback = names.length === 0 && config !== undefined ? byConfig.get(config) ?? [] : [];
    images.push({ descriptor: root, names: unique([...names, ...fallback]), id, source: 'index.json' });
  }
  return images;
}

/**
 * The names of an index.json entry: `io.containerd.image.name`, else a ref.name that is a
 * reference. A bare ref.name (`latest`, `v1`) is a tag of no repository (skopeo's
 * `oci-archive:FILE:latest`) and names nothing, as containerd's importer without a base name.
 */
function entryNames(entry: Descriptor, what: string): string[] {
  const full = entry.annotations?.[AnnotationImageName];
  if (full !== undefined && full !== '') return [normalisedName(full, `index.json annotation ${AnnotationImageName}`, what)];
  const ref = entry.annotations?.[AnnotationRefName];
  if (ref === undefined || !/[:/]/.test(ref.split('@')[0] ?? '')) return [];
  return [normalisedName(ref, `index.json annotation ${AnnotationRefName}`, what)];
}

/** manifest.json's RepoTags by the config digest of their entry (names for index.json entries that have none). */
function repoTagsByConfig(c: ArchiveContents, what: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of parseDockerManifest(c.dockerManifest ?? Buffer.alloc(0), what)) {
    const config = lookup(c, e.config);
    if (config !== undefined) out.set(config.digest, [...(out.get(config.digest) ?? []), ...e.repoTags.map((t) => normalisedName(t, 'manifest.json RepoTags', what))]);
  }
  return out;
}

/** The images of a `docker save` manifest.json, each given a Docker schema 2 manifest. */
async function fromDockerManifest(c: ArchiveContents, store: ContentStore, what: string): Promise<ImportedImage[]> {
  const out = new Map<string, ImportedImage>();
  for (const e of parseDockerManifest(c.dockerManifest ?? Buffer.alloc(0), what)) {
    const label = e.repoTags[0] ?? `entry ${e.at + 1}`;
    const need = (path: string, role: string): { digest: Digest; size: number } => {
      const b = lookup(c, path);
      if (b === undefined) throw new ImageStoreError('BLOB_NOT_FOUND', `${what}: manifest.json names ${role} ${path} for ${label}, which the archive does not contain`, { hint: INCOMPLETE });
      return b;
    };
    const names = e.repoTags.map((t) => normalisedName(t, 'manifest.json RepoTags', what));
    const config = need(e.config, 'config');
    const layers: Descriptor[] = [];
    for (const p of e.layers) {
      const b = need(p, 'layer');
      layers.push({ mediaType: await layerType(store, b.digest), digest: b.digest, size: b.size });
    }
    // Go's ocispec field order (mediaType, digest, size), as containerd's importer marshals it.
    const configDesc: Descriptor = { mediaType: MediaTypes.dockerConfig, digest: config.digest, size: config.size };
    await checkConfig(store, configDesc, layers, `manifest.json's ${label}`, what);
    const bytes = jsonBytes({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: configDesc,
      layers,
    });
    const written = await store.writeBlob(bytes);
    const prev = out.get(written.digest);
    out.set(written.digest, {
      descriptor: { mediaType: MediaTypes.dockerManifest, digest: written.digest, size: written.size },
      names: unique([...(prev?.names ?? []), ...names]),
      id: config.digest,
      source: 'manifest.json',
    });
  }
  return [...out.values()];
}

interface DockerManifestEntry {
  readonly at: number;
  readonly config: string;
  readonly repoTags: ReadonlyArray<string>;
  readonly layers: ReadonlyArray<string>;
}

function parseDockerManifest(bytes: Buffer, what: string): DockerManifestEntry[] {
  const bad = (why: string, cause?: unknown): ImageStoreError =>
    new ImageStoreError('MANIFEST_INVALID', `${what}: manifest.json is not a docker save manifest (${why})`, { hint: 'the archive is damaged or was not written by docker save: save it again', cause });
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw bad('not JSON', e);
  }
  if (!Array.isArray(v)) throw bad('not a JSON array');
  return v.map((x: unknown, at) => {
    const r = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
    const strings = (k: string, v: unknown): string[] => {
      if (v === null || v === undefined) return [];
      if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) throw bad(`entry ${at + 1}: ${k} must be a list of strings`);
      return v;
    };
    if (typeof r['Config'] !== 'string') throw bad(`entry ${at + 1} has no Config`);
    return { at, config: r['Config'], repoTags: strings('RepoTags', r['RepoTags']), layers: strings('Layers', r['Layers']) };
  });
}

/** The blob at an archive path, following links (`<id>/layer.tar -> ../<hex>.tar`). */
function lookup(c: ArchiveContents, path: string): { digest: Digest; size: number } | undefined {
  let p = entryPath(path);
  for (let hops = 0; hops < 16; hops++) {
    const b = c.blobs.get(p);
    if (b !== undefined) return b;
    const next = c.links.get(p);
    if (next === undefined) return undefined;
    p = next;
  }
  return undefined;
}

/** A legacy layer's media type from its first bytes: `docker save` writes them uncompressed. */
async function layerType(store: ContentStore, digest: Digest): Promise<string> {
  const head: Buffer[] = [];
  for await (const c of await store.readStream(digest, { start: 0, end: 3 })) head.push(c as Buffer);
  switch (detectCompression(Buffer.concat(head))) {
    case 'gzip':
      return MediaTypes.dockerLayerGzip;
    case 'zstd':
      return MediaTypes.ociLayerZstd; // Docker has no zstd type; BuildKit and containerd use OCI's.
    case 'none':
      return MediaTypes.dockerLayer;
  }
}

/** Manifests and indexes checked already, by digest, with what the check returned. */
type Checked = Map<Digest, Digest | undefined>;

/**
 * Checks that an image is all there: a manifest's config and layers, an index's present children
 * (one at least). Returns the config digest of a manifest. `entry` names the archive file for
 * messages. Each blob is checked once (`checked`): indexes may name the same child many times,
 * and nested ones would multiply the work (3 levels of 1000 in a few hundred KB of archive).
 */
async function checkComplete(store: ContentStore, desc: Descriptor, entry: string, what: string, depth: number, checked: Checked): Promise<Digest | undefined> {
  if (checked.has(desc.digest)) return checked.get(desc.digest);
  if (depth > 8) throw new ImageStoreError('MANIFEST_INVALID', `${what}: indexes nested too deeply under ${entry}`);
  const bytes = await readSmallBlob(store, desc.digest, 'manifest', entry, what);
  const parsed = (() => {
    try {
      return parseManifest(bytes, desc.mediaType);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new ImageStoreError('MANIFEST_INVALID', `${what}: ${desc.digest} (named by ${entry}) is no image manifest or index: ${why}`, { hint: 'the archive is damaged: save it again', cause: e });
    }
  })();
  if (parsed.kind === 'index') {
    let complete = 0;
    for (const m of parsed.index.manifests) {
      if (!(await store.has(m.digest))) continue; // a platform that was never pulled, as kiln save writes it
      await checkComplete(store, m, `index ${desc.digest}`, what, depth + 1, checked);
      complete++;
    }
    if (complete === 0) throw new ImageStoreError('BLOB_NOT_FOUND', `${what}: no manifest of index ${desc.digest} (named by ${entry}) is in the archive`, { hint: INCOMPLETE });
    checked.set(desc.digest, undefined);
    return undefined;
  }
  const m = parsed.manifest;
  for (const [role, d] of [['config', m.config], ...m.layers.map((l, i) => [`layer ${i + 1}`, l] as const)] as const) {
    if (!(await store.has(d.digest))) {
      throw new ImageStoreError('BLOB_NOT_FOUND', `${what}: manifest ${desc.digest} (named by ${entry}) needs its ${role} ${d.digest}, which the archive does not contain`, { hint: INCOMPLETE });
    }
  }
  await checkConfig(store, m.config, m.layers, `manifest ${desc.digest}`, what);
  checked.set(desc.digest, m.config.digest);
  return m.config.digest;
}

/**
 * An image config is a JSON object with one `rootfs.diff_ids` entry per layer, and an uncompressed
 * layer's digest is its diff_id, as `docker load` checks before it names anything: otherwise the
 * image loads and only a build FROM it fails. Other config types (artifacts) are not images.
 */
async function checkConfig(store: ContentStore, config: Descriptor, layers: ReadonlyArray<Descriptor>, of: string, what: string): Promise<void> {
  if (config.mediaType !== MediaTypes.ociConfig && config.mediaType !== MediaTypes.dockerConfig) return;
  const bad = (why: string, cause?: unknown): ImageStoreError =>
    new ImageStoreError('MANIFEST_INVALID', `${what}: the config ${config.digest} of ${of} ${why}`, { hint: 'the archive is damaged or was not written by an image tool: save it again', cause });
  let v: unknown;
  try {
    v = JSON.parse((await readSmallBlob(store, config.digest, 'config', of, what)).toString('utf8'));
  } catch (e) {
    if (e instanceof ImageStoreError) throw e;
    throw bad('is not JSON', e);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('is not a JSON object');
  const rootfs = (v as Record<string, unknown>)['rootfs'];
  // Go writes a nil slice as null, and moby omits an empty one: an image of no layers.
  const ids: unknown = typeof rootfs === 'object' && rootfs !== null ? ((rootfs as Record<string, unknown>)['diff_ids'] ?? []) : undefined;
  if (!Array.isArray(ids)) throw bad('has no rootfs.diff_ids list');
  if (ids.length !== layers.length) throw bad(`lists ${ids.length} layer${ids.length === 1 ? '' : 's'} (rootfs.diff_ids) for the manifest's ${layers.length}`);
  layers.forEach((l, i) => {
    if ((l.mediaType === MediaTypes.dockerLayer || l.mediaType === MediaTypes.ociLayer) && ids[i] !== l.digest) {
      throw bad(`gives layer ${i + 1} the diff_id ${String(ids[i])}, but that layer is uncompressed and its content is ${l.digest}`);
    }
  });
}

/**
 * A manifest, index or config into memory, refused past its size limit before a byte is read: a
 * descriptor can name any blob, a multi-GB layer included.
 */
async function readSmallBlob(store: ContentStore, digest: Digest, role: 'manifest' | 'config', namedBy: string, what: string): Promise<Buffer> {
  const limit = role === 'config' ? MAX_CONFIG_SIZE : MAX_MANIFEST_SIZE;
  const { size } = await store.info(digest);
  if (size > limit) {
    throw new ImageStoreError('MANIFEST_INVALID', `${what}: ${digest} (named by ${namedBy} as a${role === 'manifest' ? ' manifest or index' : ' config'}) has ${size} bytes; at most ${limit} are read`, {
      hint: 'the archive is damaged or was not written by an image tool: save it again',
    });
  }
  return store.readBlob(digest);
}

/** A name from the archive, normalised; REFERENCE_INVALID naming where it came from. */
function normalisedName(name: string, where: string, what: string): string {
  try {
    return formatReference(parseReference(name));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ImageStoreError('REFERENCE_INVALID', `${what}: ${where} "${name}" is not a valid image reference (${why})`, {
      hint: 'fix the name where the archive was written (docker save NAME, skopeo copy … docker-archive:FILE:NAME); nothing was loaded',
      cause: e,
    });
  }
}

function unique(names: ReadonlyArray<string>): string[] {
  return [...new Set(names)];
}
