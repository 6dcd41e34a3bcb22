import { formatReference, isIndexMediaType, isManifestMediaType, parseReference, type ContentStore, type Descriptor, type ImageReference, type ImageStore, type RegistryClient } from '@kiln/runtime';
import { ImagetoolsError } from './errors.js';

/**
 * Where `kiln imagetools inspect` reads an image: a registry (the default, as buildx) or the kiln
 * image store (`--local`). Manifests and configs only; never layers.
 */
export interface ManifestSource {
  /** The normalised reference inspected (`host/repo:tag`, or `host/repo@digest`). */
  readonly ref: ImageReference;
  /** The root descriptor (manifest or index) the reference names. */
  resolve(): Promise<Descriptor>;
  /** A manifest, index, config or attestation blob, digest verified. */
  fetch(desc: Descriptor): Promise<Buffer>;
}

/** Reads from the registry `ref` names. */
export function registrySource(client: RegistryClient, ref: ImageReference, signal?: AbortSignal): ManifestSource {
  return {
    ref,
    resolve: async () => (await client.resolve(ref, signal)).descriptor,
    fetch: (d) => (isManifestLike(d.mediaType) ? client.fetchManifest(ref, d, signal) : client.fetchBlob(ref, d, signal)),
  };
}

/** Reads from the kiln image store: `name` as `kiln images` lists it, or normalised. */
export function storeSource(images: ImageStore, content: ContentStore, name: string): ManifestSource {
  const ref = parseReference(name);
  return {
    ref,
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

/** Manifests and indexes (fetched from `/manifests/`), as opposed to blobs. */
export function isManifestLike(mt: string): boolean {
  return isManifestMediaType(mt) || isIndexMediaType(mt);
}
