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
  parseManifest,
  parseReference,
  pushBlob,
  putManifest,
  repositoryName,
  resolveImage,
  storeFetcher,
  type ContentStore,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type ImageReference,
  type ImageStore,
  type Platform,
  type RegistryClient,
} from '@kiln/runtime';
import { RebaseError } from './errors.js';
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

/** Reads `name` from the kiln image store (as given, then normalised), for `platform` when it is an index. */
export async function readStoreImage(content: ContentStore, images: ImageStore, name: string, platform: Platform): Promise<SourcedImage | undefined> {
  const rec = (await images.get(name)) ?? (await images.get(normalizeName(name))) ?? (await byDigest(content, name));
  if (rec === undefined) return undefined;
  const r = await resolveImage(storeFetcher(content), rec.target, platform).catch((cause: unknown) => {
    throw new RebaseError('KLN0925', `cannot read ${rec.name} from the kiln store for ${platform.os}/${platform.architecture}`, { cause });
  });
  return { name: rec.name, root: rec.target, manifestDescriptor: r.manifestDescriptor, manifest: r.manifest, config: r.config };
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
 * The warning for an app image that is an index (multi-platform, or with attestations): only the
 * manifest for `platform` is rebased, and the names written then name that manifest alone.
 */
export function multiPlatformWarning(app: SourcedImage, platform: Platform): string | undefined {
  if (!isIndexMediaType(app.root.mediaType)) return undefined;
  return `${app.name} is an image index: only ${platform.os}/${platform.architecture}${platform.variant === undefined ? '' : `/${platform.variant}`} is rebased, the names written name that single manifest (other platforms and attestations are not kept)`;
}

/** The new run image as {@link NewRunImage}: its identifier is the repository at the digest the name points at. */
export function asRunImage(img: SourcedImage): NewRunImage & SourcedImage {
  let ref: ImageReference;
  try {
    ref = parseReference(img.name);
  } catch (cause) {
    throw new RebaseError('KLN0925', `the run image name ${img.name} is not an image reference`, { cause });
  }
  return { ...img, reference: `${repositoryName(ref)}@${img.root.digest}` };
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

/** Writes the rebased config and manifest into the content store and names it in the image store. */
export async function storeRebased(content: ContentStore, images: ImageStore, blobs: RebasedBlobs, names: ReadonlyArray<string>): Promise<void> {
  await content.writeBlob(blobs.configBytes, blobs.config.digest);
  await content.writeBlob(blobs.manifestBytes, blobs.manifest.digest);
  for (const n of names) await images.put(normalizeName(n), blobs.manifest);
}

/** What happened to each layer pushed. */
export interface PushCounts {
  exists: number;
  mounted: number;
  uploaded: number;
}

/**
 * Pushes the rebased image to each of `names` (registry references): every layer is already in
 * the target repository, mounted from the repository it came from (`sourceOf`), or, when the
 * registry will not mount (another registry), copied through the content store; then the config
 * and the manifest under each tag.
 */
export async function pushRebased(
  client: RegistryClient,
  content: ContentStore,
  blobs: RebasedBlobs,
  layers: ReadonlyArray<{ readonly desc: Descriptor; readonly from: ImageReference | undefined }>,
  names: ReadonlyArray<string>,
): Promise<PushCounts> {
  const counts: PushCounts = { exists: 0, mounted: 0, uploaded: 0 };
  await content.writeBlob(blobs.configBytes, blobs.config.digest);
  const refs = names.map((n) => parseReference(n));
  const repos = new Map<string, ImageReference>();
  for (const r of refs) repos.set(repositoryName(r), r);
  for (const repo of repos.values()) {
    for (const { desc, from } of layers) {
      const push = `repository:${repo.path}:pull,push`;
      if (await client.hasBlob(repo, desc.digest, [push])) {
        counts.exists++;
        continue;
      }
      if (from !== undefined && from.domain === repo.domain && from.path !== repo.path && (await mountBlob(client, repo, from, desc))) {
        counts.mounted++;
        continue;
      }
      // Not mountable: the bytes go through the store (fetched once from the source if missing).
      if (!(await content.has(desc.digest))) {
        if (from === undefined) throw new RebaseError('KLN0925', `layer ${desc.digest} is neither in the kiln store nor in a registry to copy it from`);
        await content.ingest(client.openBlob(from, desc), { expected: desc.digest, expectedSize: desc.size });
      }
      const st = await pushBlob(client, content, repo, desc, from === undefined || from.domain !== repo.domain ? [] : [from]);
      counts[st === 'exists' ? 'exists' : st]++;
    }
    await pushBlob(client, content, repo, blobs.config);
  }
  for (const r of refs) await putManifest(client, r, r.tag ?? blobs.manifest.digest, blobs.manifestBytes, blobs.manifest.mediaType);
  return counts;
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
