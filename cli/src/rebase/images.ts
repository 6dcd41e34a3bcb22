/**
 * Where `kiln rebase` reads and writes images: the kiln image store (as pack works on the
 * daemon's images) or a registry (`--publish`, as pack works on registry images). Registry
 * images are read as manifest and config only; their layers move by cross-repository mount.
 */
import {
  MediaTypes,
  digestOf,
  formatReference,
  isIndexMediaType,
  jsonBytes,
  parseImageConfig,
  parseManifest,
  parseReference,
  pushBlob,
  putManifest,
  repositoryName,
  resolveImage,
  storeFetcher,
  type BlobFetcher,
  type ContentStore,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type ImageReference,
  type ImageStore,
  type Platform,
  type RegistryClient,
} from '@kiln/runtime';
import { RebaseError } from './errors.js';
import { runManifestFor, type RebasedIndex } from './index-plan.js';
import type { NewRunImage, RebaseImage } from './plan.js';

/** An image read for a rebase, with where it came from. */
export interface SourcedImage extends RebaseImage {
  /** The manifest or index the name points at (its digest is the image's identifier). */
  readonly root: Descriptor;
  /** The manifest descriptor (the platform's, when `root` is an index). */
  readonly manifestDescriptor: Descriptor;
  /** The repository it was read from, for registry images (a mount source for its blobs). */
  readonly repository?: ImageReference;
}

/** Normalised form of `name` (`app` → `docker.io/library/app:latest`), or `name` if it does not parse. */
export function normalizeName(name: string): string {
  try {
    return formatReference(parseReference(name));
  } catch {
    return name;
  }
}

/**
 * The names the rebased image is written to (IMAGE and each `-t`), normalised. A digest
 * reference is refused: it would name content other than its digest (`KLN0926`).
 */
export function targetNames(image: string, tags: ReadonlyArray<string>): string[] {
  return [image, ...tags].map((n) => {
    let ref: ImageReference;
    try {
      ref = parseReference(n);
    } catch (cause) {
      throw new RebaseError('KLN0926', `${n} is not an image reference to write the rebased image to`, { cause });
    }
    if (ref.digest !== undefined) {
      throw new RebaseError('KLN0926', `cannot write the rebased image to ${n}: a digest reference names other content`, {
        hint: 'rebase it by digest into a tag: kiln rebase --previous-image NAME@DIGEST NAME:TAG',
      });
    }
    return formatReference(ref);
  });
}

/**
 * The manifest or index a name points at, read for a rebase (the root of an image), with a way to
 * read what is below it: the kiln content store, or the registry (manifests and configs only).
 */
export interface ImageRoot {
  readonly name: string;
  readonly root: Descriptor;
  readonly fetcher: BlobFetcher;
  /** The repository it was read from, for registry images. */
  readonly repository?: ImageReference;
}

/** `name` in the kiln image store (as given, then normalised, then `NAME@DIGEST` in the content store). */
export async function readStoreRoot(content: ContentStore, images: ImageStore, name: string): Promise<ImageRoot | undefined> {
  const rec = (await images.get(name)) ?? (await images.get(normalizeName(name))) ?? (await byDigest(content, name));
  if (rec === undefined) return undefined;
  return { name: rec.name, root: rec.target, fetcher: storeFetcher(content) };
}

/** `name` resolved in its registry (nothing below the root is read yet). */
export async function readRegistryRoot(client: RegistryClient, name: string): Promise<ImageRoot> {
  try {
    const { ref, descriptor } = await client.resolve(name);
    return { name: formatReference(ref), root: descriptor, fetcher: client.provider(ref), repository: ref };
  } catch (cause) {
    throw new RebaseError('KLN0925', `cannot read ${name} from its registry${firstLine(cause)}`, { cause });
  }
}

/** The index a root is, parsed, with its exact bytes. */
export async function readIndex(root: ImageRoot): Promise<{ readonly index: ImageIndex; readonly raw: Buffer }> {
  try {
    const raw = await root.fetcher.fetch(root.root);
    const p = parseManifest(raw, root.root.mediaType);
    if (p.kind !== 'index') throw new Error(`${root.root.digest} is a manifest, not an index`);
    return { index: p.index, raw };
  } catch (cause) {
    throw new RebaseError('KLN0925', `cannot read the index of ${root.name}${firstLine(cause)}`, { cause });
  }
}

/** The image (manifest and config) `desc` names below `root`: the root itself, or one of its children. */
export async function imageAt(root: ImageRoot, desc: Descriptor): Promise<SourcedImage> {
  try {
    const p = parseManifest(await root.fetcher.fetch(desc), desc.mediaType);
    if (p.kind !== 'manifest') throw new Error(`${desc.digest} is an index, not an image manifest`);
    const config = parseImageConfig(await root.fetcher.fetch(p.manifest.config));
    return {
      name: root.name,
      root: root.root,
      manifestDescriptor: { ...desc, mediaType: p.mediaType },
      manifest: p.manifest,
      config,
      ...(root.repository === undefined ? {} : { repository: root.repository }),
    };
  } catch (cause) {
    throw new RebaseError('KLN0925', `cannot read ${desc.digest} of ${root.name}${firstLine(cause)}`, { cause });
  }
}

/**
 * The run image manifest for `platform`: a single-manifest run image is itself (its platform is
 * then checked like the rest of its target, --force-able); in an index, the child of exactly that
 * os/architecture/variant (KLN0927 when there is none).
 */
export async function runImageFor(root: ImageRoot, platform: Platform): Promise<SourcedImage> {
  if (!isIndexMediaType(root.root.mediaType)) return imageAt(root, root.root);
  const { index } = await readIndex(root);
  return imageAt(root, runManifestFor(root.name, index, platform));
}

/** Reads `name` from the kiln image store (as given, then normalised), for `platform` when it is an index. */
export async function readStoreImage(content: ContentStore, images: ImageStore, name: string, platform: Platform): Promise<SourcedImage | undefined> {
  const root = await readStoreRoot(content, images, name);
  if (root === undefined) return undefined;
  const r = await resolveImage(root.fetcher, root.root, platform).catch((cause: unknown) => {
    throw new RebaseError('KLN0925', `cannot read ${root.name} from the kiln store for ${platform.os}/${platform.architecture}`, { cause });
  });
  return { name: root.name, root: root.root, manifestDescriptor: r.manifestDescriptor, manifest: r.manifest, config: r.config };
}

function firstLine(cause: unknown): string {
  return cause instanceof Error ? `: ${cause.message.split('\n')[0] ?? ''}` : '';
}

/** `NAME@DIGEST` not named in the image store: the manifest or index of that digest in the content store, if there. */
async function byDigest(content: ContentStore, name: string): Promise<{ name: string; target: Descriptor } | undefined> {
  let ref: ImageReference;
  try {
    ref = parseReference(name);
  } catch {
    return undefined;
  }
  if (ref.digest === undefined || !(await content.has(ref.digest))) return undefined;
  const bytes = await content.readBlob(ref.digest);
  let mediaType: string;
  try {
    mediaType = parseManifest(bytes).mediaType;
  } catch (cause) {
    throw new RebaseError('KLN0925', `${name}: the kiln store's blob ${ref.digest} is not an image manifest or index`, { cause });
  }
  return { name: formatReference(ref), target: { mediaType, digest: ref.digest, size: bytes.length } };
}

/** Reads `name`'s manifest and config from its registry (no layers), for `platform` when it is an index. */
export async function readRegistryImage(client: RegistryClient, name: string, platform: Platform): Promise<SourcedImage> {
  try {
    const { ref, descriptor } = await client.resolve(name);
    const r = await resolveImage(client.provider(ref), descriptor, platform);
    return { name: formatReference(ref), root: descriptor, manifestDescriptor: r.manifestDescriptor, manifest: r.manifest, config: r.config, repository: ref };
  } catch (cause) {
    if (cause instanceof RebaseError) throw cause;
    const why = cause instanceof Error ? `: ${cause.message.split('\n')[0] ?? ''}` : '';
    throw new RebaseError('KLN0925', `cannot read ${name} from its registry${why}`, { cause });
  }
}

/**
 * The new run image as {@link NewRunImage}: its identifier is the repository at its manifest's
 * digest, the platform's one when the name points at an index (imgutil's remote Identifier is
 * the digest of the image it resolved for the platform, which lifecycle records).
 */
export function asRunImage(img: SourcedImage): NewRunImage & SourcedImage {
  let ref: ImageReference;
  try {
    ref = parseReference(img.name);
  } catch (cause) {
    throw new RebaseError('KLN0925', `the run image name ${img.name} is not an image reference`, { cause });
  }
  return { ...img, reference: `${repositoryName(ref)}@${img.manifestDescriptor.digest}` };
}

/** The rebased manifest and config as stored bytes. */
export interface RebasedBlobs {
  readonly manifest: Descriptor;
  readonly manifestBytes: Buffer;
  readonly config: Descriptor;
  readonly configBytes: Buffer;
}

/** Serialises the rebased image (config media type kept from the app's manifest). */
export function rebasedBlobs(manifest: ImageManifest, config: ImageConfig): RebasedBlobs {
  const configBytes = jsonBytes(config);
  const configDesc: Descriptor = { mediaType: manifest.config.mediaType, digest: digestOf(configBytes), size: configBytes.length };
  const manifestBytes = jsonBytes({ ...manifest, config: configDesc });
  const mediaType = manifest.mediaType ?? MediaTypes.ociManifest;
  return { manifest: { mediaType, digest: digestOf(manifestBytes), size: manifestBytes.length }, manifestBytes, config: configDesc, configBytes };
}

/**
 * Writes rebased configs and manifests (and the index, for a multi-platform image) into the
 * content store, then names the root in the image store: names move only once every blob is in.
 */
export async function storeRebased(content: ContentStore, images: ImageStore, rebased: ReadonlyArray<RebasedBlobs>, index: RebasedIndex | undefined, names: ReadonlyArray<string>): Promise<void> {
  for (const blobs of rebased) {
    await content.writeBlob(blobs.configBytes, blobs.config.digest);
    await content.writeBlob(blobs.manifestBytes, blobs.manifest.digest);
  }
  if (index !== undefined) await content.writeBlob(index.bytes, index.desc.digest);
  const root = index?.desc ?? rebased[0]?.manifest;
  if (root === undefined) return;
  for (const n of names) await images.put(normalizeName(n), root);
}

/** What happened to each layer pushed. */
export interface PushCounts {
  exists: number;
  mounted: number;
  uploaded: number;
}

/** One rebased image to push: its manifest and config, and where each of its layers can come from. */
export interface ImageToPush {
  readonly blobs: RebasedBlobs;
  readonly layers: ReadonlyArray<{ readonly desc: Descriptor; readonly from: ImageReference | undefined }>;
}

/**
 * Pushes rebased images to each of `names` (registry references). Per repository: every layer is
 * already there, mounted from the repository it came from, or, when the registry will not mount
 * (another registry), copied through the content store; then each config. Then either the one
 * manifest under each tag, or, for an index, each manifest by digest and the index under each tag
 * last: a tag never names content the registry does not have yet.
 */
export async function pushRebased(
  client: RegistryClient,
  content: ContentStore,
  images: ReadonlyArray<ImageToPush>,
  index: RebasedIndex | undefined,
  names: ReadonlyArray<string>,
): Promise<PushCounts> {
  const counts: PushCounts = { exists: 0, mounted: 0, uploaded: 0 };
  for (const { blobs } of images) await content.writeBlob(blobs.configBytes, blobs.config.digest);
  const refs = names.map((n) => parseReference(n));
  const repos = new Map<string, ImageReference>();
  for (const r of refs) repos.set(repositoryName(r), r);
  for (const repo of repos.values()) {
    // platforms share their app layers: each blob is pushed (and counted) once per repository
    const done = new Set<string>();
    for (const { blobs, layers } of images) {
      for (const { desc, from } of layers) {
        if (done.has(desc.digest)) continue;
        done.add(desc.digest);
        counts[await pushLayer(client, content, repo, desc, from)]++;
      }
      await pushBlob(client, content, repo, blobs.config);
    }
    if (index !== undefined) {
      for (const { blobs } of images) await putManifest(client, repo, blobs.manifest.digest, blobs.manifestBytes, blobs.manifest.mediaType);
    }
  }
  const root = index === undefined ? images[0]?.blobs : undefined;
  for (const r of refs) {
    if (index !== undefined) await putManifest(client, r, r.tag ?? index.desc.digest, index.bytes, index.desc.mediaType);
    else if (root !== undefined) await putManifest(client, r, r.tag ?? root.manifest.digest, root.manifestBytes, root.manifest.mediaType);
  }
  return counts;
}

async function pushLayer(client: RegistryClient, content: ContentStore, repo: ImageReference, desc: Descriptor, from: ImageReference | undefined): Promise<keyof PushCounts> {
  const push = `repository:${repo.path}:pull,push`;
  if (await client.hasBlob(repo, desc.digest, [push])) return 'exists';
  if (from !== undefined && from.domain === repo.domain && from.path !== repo.path && (await mountBlob(client, repo, from, desc))) return 'mounted';
  // Not mountable: the bytes go through the store (fetched once from the source if missing).
  if (!(await content.has(desc.digest))) {
    if (from === undefined) throw new RebaseError('KLN0925', `layer ${desc.digest} is neither in the kiln store nor in a registry to copy it from`);
    await content.ingest(client.openBlob(from, desc), { expected: desc.digest, expectedSize: desc.size });
  }
  const st = await pushBlob(client, content, repo, desc, from === undefined || from.domain !== repo.domain ? [] : [from]);
  return st === 'exists' ? 'exists' : st;
}

/**
 * One cross-repository mount (distribution spec: POST /blobs/uploads/?mount=&from=). 201 is a
 * mount; a 202 opened an upload session instead, which is cancelled (the caller copies the blob).
 */
async function mountBlob(client: RegistryClient, repo: ImageReference, from: ImageReference, desc: Descriptor): Promise<boolean> {
  const t = client.transport;
  const push = `repository:${repo.path}:pull,push`;
  const res = await t.request(repo.domain, {
    method: 'POST',
    url: `/v2/${repo.path}/blobs/uploads/?mount=${desc.digest}&from=${encodeURIComponent(from.path)}`,
    headers: { 'content-length': '0' },
    scopes: [push, `repository:${from.path}:pull`],
  });
  await res.body?.cancel().catch(() => undefined);
  if (res.status === 201) return true;
  const location = res.headers.get('location');
  if (res.status === 202 && location !== null) {
    const del = await t.request(repo.domain, { method: 'DELETE', url: new URL(location, t.baseUrl(repo.domain)).toString(), scopes: [push] }).catch(() => undefined);
    await del?.body?.cancel().catch(() => undefined);
  }
  // anything else (refused, unknown): the caller copies the blob
  return false;
}
