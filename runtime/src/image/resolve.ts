import { digestOf } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { parseImageConfig, parseManifest } from './manifest.js';
import { selectPlatformManifest } from './platform.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

/** Reads small blobs (manifests, configs) by descriptor; implementations verify digests. */
export interface BlobFetcher {
  fetch(desc: Descriptor): Promise<Buffer>;
}

/** A platform-specific image found from a root descriptor (manifest or index). */
export interface ResolvedImage {
  /** What the reference points at: an index for multi-platform images. */
  readonly root: Descriptor;
  /** The index the manifest was picked from (the innermost one), if any. */
  readonly index?: ImageIndex | undefined;
  readonly manifestDescriptor: Descriptor;
  readonly manifest: ImageManifest;
  readonly configBytes: Buffer;
  readonly config: ImageConfig;
}

/** A {@link BlobFetcher} over the content store (digest verified on ingest already, checked again here). */
export function storeFetcher(store: ContentStore): BlobFetcher {
  return {
    async fetch(desc) {
      const b = await store.readBlob(desc.digest);
      if (digestOf(b) !== desc.digest) throw new ImageStoreError('DIGEST_MISMATCH', `stored blob ${desc.digest} is corrupt`);
      return b;
    },
  };
}

/**
 * Walks from `root` through (possibly nested) indexes to the manifest for `platform` and loads its
 * config. Throws `PLATFORM_NOT_FOUND` if the index has no compatible entry.
 */
export async function resolveImage(fetcher: BlobFetcher, root: Descriptor, platform: Platform): Promise<ResolvedImage> {
  let desc = root;
  let index: ImageIndex | undefined;
  for (let depth = 0; depth < 8; depth++) {
    const parsed = parseManifest(await fetcher.fetch(desc), desc.mediaType);
    if (parsed.kind === 'index') {
      index = parsed.index;
      desc = selectPlatformManifest(parsed.index.manifests, platform);
      continue;
    }
    const configBytes = await fetcher.fetch(parsed.manifest.config);
    return {
      root,
      index,
      manifestDescriptor: { ...desc, mediaType: parsed.mediaType },
      manifest: parsed.manifest,
      configBytes,
      config: parseImageConfig(configBytes),
    };
  }
  throw new ImageStoreError('MANIFEST_INVALID', `image ${root.digest}: indexes nested too deeply`);
}
