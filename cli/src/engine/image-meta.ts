import type { ResolveImageConfigOptions, ResolvedImageConfig } from '@kiln/llb-core';
import {
  ImageStoreError,
  imageStoreMetaResolver,
  registryMetaResolver,
  type ContentStore,
  type ImageStore,
  type Platform,
  type RegistryClient,
} from '@kiln/runtime';

/**
 * Resolves `FROM` images for frontends. kiln answers from its own image store first and asks the
 * registry only when the image is not there, so a base image created locally (the demo's busybox)
 * resolves offline. This is BuildKit's `image.resolvemode=default` as kiln defines it (BuildKit
 * itself would contact the registry first): `pull` always asks the registry, `local` never does.
 */
export class StoreFirstMetaResolver {
  readonly #local: ReturnType<typeof imageStoreMetaResolver>;
  readonly #remote: ReturnType<typeof registryMetaResolver>;

  constructor(images: ImageStore, content: ContentStore, registry: RegistryClient) {
    this.#local = imageStoreMetaResolver(images, content);
    this.#remote = registryMetaResolver(registry);
  }

  async resolveImageConfig(ref: string, options: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
    const platform = toRuntimePlatform(options.platform);
    const opts = { ...(platform === undefined ? {} : { platform }), ...(options.signal === undefined ? {} : { signal: options.signal }) };
    const mode = options.resolveMode ?? 'default';
    if (mode !== 'pull') {
      try {
        const r = await this.#local.resolveImageConfig(ref, opts);
        return { digest: r.digest, config: r.config, ref: r.ref };
      } catch (e) {
        if (mode === 'local' || !(e instanceof ImageStoreError && e.code === 'IMAGE_NOT_FOUND')) throw e;
      }
    }
    const r = await this.#remote.resolveImageConfig(ref, opts);
    return { digest: r.digest, config: r.config, ref: r.ref };
  }
}

/** llb-core's platform (camelCase extras) as the runtime's OCI-shaped one. */
export function toRuntimePlatform(p: { readonly os: string; readonly architecture: string; readonly variant?: string | undefined } | undefined): Platform | undefined {
  if (p === undefined) return undefined;
  return { os: p.os, architecture: p.architecture, ...(p.variant === undefined ? {} : { variant: p.variant }) };
}
