import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import { parseManifest } from './manifest.js';
import { selectPlatformManifest } from './platform.js';
import type { BlobFetcher } from './resolve.js';
import type { Descriptor, Platform } from './types.js';

/** A source of blobs that can also stream large ones (layers). */
export interface BlobProvider extends BlobFetcher {
  open(desc: Descriptor): Promise<AsyncIterable<Uint8Array>>;
}

/** Options for {@link copyImageGraph}. */
export interface CopyGraphOptions {
  /** Only copy this platform's manifest out of indexes (the index blobs themselves are kept). */
  readonly platform?: Platform | undefined;
  /** Parallel layer transfers (default 4). */
  readonly concurrency?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Called once per blob: `skipped` if it was already in the store. */
  readonly onBlob?: ((desc: Descriptor, status: 'done' | 'skipped') => void) | undefined;
}

/**
 * Copies an image (index → manifests → config + layers) from `src` into the content store,
 * verifying every digest. Manifests are copied after their children, so a manifest in the store
 * always has its blobs. Layers transfer in parallel.
 */
export async function copyImageGraph(src: BlobProvider, root: Descriptor, dst: ContentStore, opts: CopyGraphOptions = {}): Promise<void> {
  const layers = new Map<string, Descriptor>();
  const manifests: { desc: Descriptor; bytes: Buffer }[] = [];

  const visit = async (desc: Descriptor, depth: number): Promise<void> => {
    if (depth > 8) throw new ImageStoreError('MANIFEST_INVALID', 'indexes nested too deeply');
    const bytes = await src.fetch(desc);
    const parsed = parseManifest(bytes, desc.mediaType);
    if (parsed.kind === 'index') {
      const children = opts.platform !== undefined ? [selectPlatformManifest(parsed.index.manifests, opts.platform)] : parsed.index.manifests;
      for (const c of children) await visit(c, depth + 1);
    } else {
      layers.set(parsed.manifest.config.digest, parsed.manifest.config);
      for (const l of parsed.manifest.layers) layers.set(l.digest, l);
    }
    manifests.push({ desc, bytes });
  };
  await visit(root, 0);

  const queue = [...layers.values()];
  const worker = async (): Promise<void> => {
    for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
      opts.signal?.throwIfAborted();
      if (await dst.has(d.digest)) {
        opts.onBlob?.(d, 'skipped');
        continue;
      }
      await dst.ingest(await src.open(d), { expected: d.digest, expectedSize: d.size, signal: opts.signal });
      opts.onBlob?.(d, 'done');
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 4, queue.length));
  await Promise.all(Array.from({ length: n }, worker));
  for (const m of manifests) {
    const had = await dst.has(m.desc.digest);
    if (!had) await dst.writeBlob(m.bytes, m.desc.digest);
    opts.onBlob?.(m.desc, had ? 'skipped' : 'done');
  }
}

/** A {@link BlobProvider} over the content store. */
export function storeProvider(store: ContentStore, fetcher: BlobFetcher): BlobProvider {
  return {
    fetch: (d) => fetcher.fetch(d),
    open: async (d) => store.readStream(d.digest),
  };
}

/**
 * Lists every blob reachable from `root` that is present in the store (children of an index that
 * were not pulled are left out), manifests last. Used by exporters and push.
 */
export async function listImageBlobs(fetcher: BlobFetcher, store: ContentStore, root: Descriptor): Promise<Descriptor[]> {
  const out = new Map<string, Descriptor>();
  // Each manifest or index once: an index may name one child many times, at every level, and a
  // walk per path would read the leaves (fan-out)^depth times (a few KB of JSON, a prune that
  // never ends while it holds the GC lock).
  const seen = new Set<string>();
  const visit = async (desc: Descriptor, depth: number): Promise<void> => {
    if (seen.has(desc.digest)) return;
    seen.add(desc.digest);
    if (depth > 8) throw new ImageStoreError('MANIFEST_INVALID', 'indexes nested too deeply');
    const parsed = parseManifest(await fetcher.fetch(desc), desc.mediaType);
    if (parsed.kind === 'index') {
      for (const c of parsed.index.manifests) if (await store.has(c.digest)) await visit(c, depth + 1);
    } else {
      for (const d of [parsed.manifest.config, ...parsed.manifest.layers]) if (!out.has(d.digest)) out.set(d.digest, d);
    }
    out.set(desc.digest, desc);
  };
  await visit(root, 0);
  return [...out.values()];
}
