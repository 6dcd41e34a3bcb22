/**
 * A small ImageMetaResolver over the conformance OCI layouts (`../shared/conformance/images`):
 * `localhost:5000/<name>[:tag|@digest]` → layout folder `<name>`, image by its
 * `org.opencontainers.image.ref.name`, the platform's manifest from an index. It reads only
 * index.json, manifests and config blobs, independently of the runtime's resolvers.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest, ImageMetaResolver, ResolvedImageConfig, ResolveImageConfigOptions } from '@kiln/llb-core';

interface Descriptor {
  mediaType?: string;
  digest: string;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

/** Resolver over OCI layouts in `root`, for references under `host` (default `localhost:5000`). */
export function layoutResolver(root: string, host = 'localhost:5000'): ImageMetaResolver & { calls: string[] } {
  const blob = async (layout: string, digest: string): Promise<Buffer> => readFile(join(layout, 'blobs', ...digest.split(':')));
  const calls: string[] = [];
  return {
    calls,
    async resolveImageConfig(ref: string, opts: ResolveImageConfigOptions): Promise<ResolvedImageConfig> {
      calls.push(ref);
      if (!ref.startsWith(`${host}/`)) throw new Error(`${ref}: not found`);
      let rest = ref.slice(host.length + 1);
      let digest: string | undefined;
      const at = rest.indexOf('@');
      if (at >= 0) {
        digest = rest.slice(at + 1);
        rest = rest.slice(0, at);
      }
      const colon = rest.indexOf(':');
      const name = colon < 0 ? rest : rest.slice(0, colon);
      const tag = colon < 0 ? 'latest' : rest.slice(colon + 1);
      const layout = join(root, name);
      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
      const top = index.manifests.find((m) => (digest !== undefined ? m.digest === digest : m.annotations?.['org.opencontainers.image.ref.name'] === tag));
      if (top === undefined) throw new Error(`${ref}: not found`);
      let manifestDigest = top.digest;
      let doc = JSON.parse((await blob(layout, top.digest)).toString('utf8')) as { manifests?: Descriptor[]; config?: Descriptor };
      if (doc.manifests !== undefined) {
        const p = opts.platform;
        const m = doc.manifests.find((d) => d.platform?.os === p?.os && d.platform?.architecture === p?.architecture && (d.platform?.variant ?? '') === (p?.variant ?? ''));
        if (m === undefined) throw new Error(`${ref}: no match for platform in manifest`);
        manifestDigest = m.digest;
        doc = JSON.parse((await blob(layout, m.digest)).toString('utf8')) as { config?: Descriptor };
      }
      if (doc.config === undefined) throw new Error(`${ref}: manifest ${manifestDigest} has no config`);
      return { digest: top.digest as Digest, config: await blob(layout, doc.config.digest), ref };
    },
  };
}
