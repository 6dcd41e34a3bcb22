import { digestOf, formatReference, isIndexMediaType, isManifestMediaType, parseReference, type ContentStore, type Descriptor, type Digest, type ImageReference, type ImageStore, type RegistryClient } from '@kiln/runtime';
import { ImagetoolsError } from './errors.js';
import { OciLayoutDir } from './layout.js';
import { locationName, withDigest, type LayoutLocation } from './location.js';

/**
 * Where `kiln imagetools inspect` reads an image: a registry (the default, as buildx), an OCI
 * layout (`oci-layout://`) or the kiln image store (`--local`). Manifests and configs only; never
 * layers.
 */
export interface ManifestSource {
  /** What was inspected, as the summary's `Name:` prints it (`host/repo:tag`, `oci-layout://PATH:TAG`). */
  readonly name: string;
  /** How the summary names a child of the index (`host/repo:tag@digest`, `oci-layout://PATH@digest`). */
  childName(digest: Digest): string;
  /** The root descriptor (manifest or index) the reference names. */
  resolve(): Promise<Descriptor>;
  /** A manifest, index, config or attestation blob, digest verified. */
  fetch(desc: Descriptor): Promise<Buffer>;
}

/** Reads from the registry `ref` names. */
export function registrySource(client: RegistryClient, ref: ImageReference, signal?: AbortSignal): ManifestSource {
  return {
    ...refNames(ref),
    resolve: async () => (await client.resolve(ref, signal)).descriptor,
    fetch: (d) => (isManifestLike(d.mediaType) ? client.fetchManifest(ref, d, signal) : fetchSmallBlob(client, ref, d, signal)),
  };
}

/** The largest config or attestation blob imagetools reads into memory (SBOMs of big images run to a few MB). */
export const MAX_SMALL_BLOB = 64 * 1024 * 1024;

/**
 * Reads a config or attestation blob, digest verified, never more than its descriptor's size (at
 * most {@link MAX_SMALL_BLOB}): a layer named as a config, or a registry sending more than it
 * should, must not end up whole in memory.
 */
export async function fetchSmallBlob(client: RegistryClient, ref: ImageReference, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  const what = `blob ${desc.digest} of ${formatReference(ref)}`;
  if (desc.size > MAX_SMALL_BLOB) throw new ImagetoolsError('KLN0865', `${what} is too large to read (${desc.size} bytes; configs and attestations are at most ${MAX_SMALL_BLOB} bytes)`);
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of client.openBlob(ref, desc, signal)) {
    n += c.length;
    if (n > desc.size) throw new ImagetoolsError('KLN0862', `${what}: the registry sent more than its ${desc.size} bytes`);
    chunks.push(c);
  }
  const bytes = Buffer.concat(chunks);
  const got = digestOf(bytes);
  if (got !== desc.digest) throw new ImagetoolsError('KLN0862', `${what}: digest mismatch (got ${got})`);
  return bytes;
}

/** Reads from the kiln image store: `name` as `kiln images` lists it, or normalised. */
export function storeSource(images: ImageStore, content: ContentStore, name: string): ManifestSource {
  const ref = parseReference(name);
  return {
    ...refNames(ref),
    async resolve() {
      const rec = (await images.get(name)) ?? (await images.get(formatReference(ref)));
      if (rec === undefined) throw new ImagetoolsError('KLN0861', `no image ${name} in the kiln image store`, { hint: 'kiln images lists them; drop --local to read a registry' });
      return rec.target;
    },
    async fetch(d) {
      if (!(await content.has(d.digest))) throw new ImagetoolsError('KLN0861', `${d.digest} of ${name} is not in the kiln content store`);
      return content.readBlob(d.digest);
    },
  };
}

/** Reads from an OCI layout directory. */
export function layoutSource(loc: LayoutLocation, detectMediaType: (bytes: Buffer) => string): ManifestSource {
  const layout = new OciLayoutDir(loc.dir, locationName({ ...loc, tag: undefined, digest: undefined }));
  return {
    name: locationName(loc),
    childName: (digest) => locationName(withDigest(loc, digest)),
    resolve: () => layout.resolve(loc, detectMediaType),
    fetch: (d) => layout.fetch(d, isManifestLike(d.mediaType) ? undefined : MAX_SMALL_BLOB),
  };
}

/** The names of a registry reference: the reference, and `ref:tag@digest` for children (buildx's reference.WithDigest). */
export function refNames(ref: ImageReference): Pick<ManifestSource, 'name' | 'childName'> {
  return {
    name: formatReference(ref),
    childName: (digest) => formatReference({ domain: ref.domain, path: ref.path, ...(ref.tag === undefined ? {} : { tag: ref.tag }), digest }),
  };
}

/** Manifests and indexes (fetched from `/manifests/`), as opposed to blobs. */
export function isManifestLike(mt: string): boolean {
  return isManifestMediaType(mt) || isIndexMediaType(mt);
}
