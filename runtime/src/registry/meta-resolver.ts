import type { Digest } from '../content/digest.js';
import type { ContentStore } from '../content/store.js';
import type { OciLayout } from '../image/oci-layout.js';
import type { ImageStore } from '../image/image-store.js';
import { hostPlatform } from '../image/platform.js';
import { resolveImage, storeFetcher, type BlobFetcher } from '../image/resolve.js';
import type { Descriptor, ImageConfig, ImageManifest, Platform } from '../image/types.js';
import type { RegistryClient } from './client.js';
import { ImageStoreError } from '../content/errors.js';
import { formatReference, parseReference, repositoryName } from './reference.js';
import { describeLocal } from './ensure-image.js';

/** Options for {@link ImageMetaResolver.resolveImageConfig}. */
export interface ResolveImageConfigOptions {
  /** Platform to pick from an index (default: the host's). */
  readonly platform?: Platform | undefined;
  /** Accepted for the frontend contract (`image.resolvemode`); each resolver has one source. */
  readonly resolveMode?: 'default' | 'pull' | 'local' | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** What BuildKit's `ResolveImageConfig` returns, plus the manifest the frontend may need. */
export interface ResolvedImageConfig {
  /** The normalised reference that was resolved (`docker.io/library/busybox:latest`). */
  readonly ref: string;
  /** Digest of what the reference points at: the index digest for a multi-platform image, as BuildKit records in LLB. */
  readonly digest: Digest;
  /** Raw image config bytes of the selected platform. */
  readonly config: Buffer;
  readonly parsedConfig: ImageConfig;
  readonly manifest: ImageManifest;
  readonly manifestDigest: Digest;
  readonly platform: Platform;
}

/** Resolves an image reference + platform to its config (the Dockerfile frontend's `FROM` lookup). */
export interface ImageMetaResolver {
  resolveImageConfig(ref: string, opts?: ResolveImageConfigOptions): Promise<ResolvedImageConfig>;
}

async function finish(ref: string, fetcher: BlobFetcher, root: Descriptor, platform: Platform): Promise<ResolvedImageConfig> {
  const img = await resolveImage(fetcher, root, platform);
  return {
    ref,
    digest: root.digest,
    config: img.configBytes,
    parsedConfig: img.config,
    manifest: img.manifest,
    manifestDigest: img.manifestDescriptor.digest,
    platform,
  };
}

/** An {@link ImageMetaResolver} that asks a registry (nothing is stored). */
export function registryMetaResolver(client: RegistryClient): ImageMetaResolver {
  return {
    async resolveImageConfig(input, opts = {}) {
      const { ref, descriptor } = await client.resolve(input, opts.signal);
      const provider = client.provider(ref, opts.signal);
      return finish(formatReference(ref), provider, descriptor, opts.platform ?? hostPlatform());
    },
  };
}

/**
 * An {@link ImageMetaResolver} over OCI layouts: `layouts` maps a repository name
 * (`localhost:5000/busybox`, normalised as a reference) to a layout directory or tarball; the tag
 * or digest of the reference picks the entry of its `index.json`.
 */
export function ociLayoutMetaResolver(layouts: Readonly<Record<string, string>>, store: ContentStore): ImageMetaResolver {
  const byRepo = new Map<string, string>();
  for (const [k, v] of Object.entries(layouts)) byRepo.set(repositoryName(parseReference(k)), v);
  const opened = new Map<string, Promise<OciLayout>>();
  return {
    async resolveImageConfig(input, opts = {}) {
      const ref = parseReference(input);
      const path = byRepo.get(repositoryName(ref));
      if (path === undefined) throw new ImageStoreError('IMAGE_NOT_FOUND', `no OCI layout configured for ${repositoryName(ref)}`);
      // Loaded on use: OCI layouts bring tar-stream, which a registry-only caller does not need.
      const { findLayoutImage, openOciLayout } = await import('../image/oci-layout.js');
      let layout = opened.get(path);
      if (layout === undefined) {
        layout = openOciLayout(path, store);
        opened.set(path, layout);
      }
      const l = await layout;
      const root = findLayoutImage(l.index, ref.digest ?? ref.tag);
      const { annotations: _a, ...desc } = root;
      return finish(formatReference(ref), l.provider, desc, opts.platform ?? hostPlatform());
    },
  };
}

/** An {@link ImageMetaResolver} over kiln's local image records and content store. */
export function imageStoreMetaResolver(images: ImageStore, store: ContentStore): ImageMetaResolver {
  return {
    async resolveImageConfig(input, opts = {}) {
      const ref = parseReference(input);
      const name = formatReference(ref);
      const platform = opts.platform ?? hostPlatform();
      const rec = await images.get(name);
      if (rec !== undefined && (ref.digest === undefined || rec.target.digest === ref.digest)) return finish(name, storeFetcher(store), rec.target, platform);
      // Pinned by digest (`name:tag@sha256:…`, what frontends and bake's target: contexts pass):
      // the manifest in the content store is that image whatever names it, as ensureImage takes it.
      // Looking only for the exact name sent every such lookup to the registry first.
      if (ref.digest !== undefined && (await store.has(ref.digest))) {
        try {
          return await finish(name, storeFetcher(store), await describeLocal(store, ref.digest), platform);
        } catch (e) {
          if (!(e instanceof ImageStoreError && (e.code === 'BLOB_NOT_FOUND' || e.code === 'PLATFORM_NOT_FOUND'))) throw e;
        }
      }
      if (rec !== undefined) throw new ImageStoreError('IMAGE_NOT_FOUND', `${name}: local image has digest ${rec.target.digest}`);
      throw new ImageStoreError('IMAGE_NOT_FOUND', `image "${name}" not found in the kiln store`);
    },
  };
}
