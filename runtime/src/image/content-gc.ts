import { stat } from 'node:fs/promises';
import type { Digest } from '../content/digest.js';
import type { ContentStore } from '../content/store.js';
import { listImageBlobs } from './copy.js';
import type { ImageStore } from './image-store.js';
import { storeFetcher } from './resolve.js';
import type { Descriptor } from './types.js';

/** Options for {@link pruneContent}. */
export interface PruneContentOptions {
  /** More roots to keep (e.g. layer blobs the solver's cache records reference). */
  readonly keep?: ReadonlyArray<Descriptor | Digest> | undefined;
  /** Never delete blobs younger than this (default 10 minutes), so in-flight builds are safe. */
  readonly minAgeMs?: number | undefined;
  /** Only report what would be deleted. */
  readonly dryRun?: boolean | undefined;
}

/** What {@link pruneContent} removed (or would remove). */
export interface PruneContentResult {
  readonly deleted: ReadonlyArray<Digest>;
  readonly reclaimedBytes: number;
}

/**
 * Deletes blobs that no image record (nor `keep`) reaches: a mark-and-sweep over manifests,
 * indexes, configs and layers. Blobs newer than `minAgeMs` are kept.
 */
export async function pruneContent(store: ContentStore, images: ImageStore, opts: PruneContentOptions = {}): Promise<PruneContentResult> {
  const live = new Set<string>();
  const fetcher = storeFetcher(store);
  const roots: Descriptor[] = [];
  for (const r of await images.list()) roots.push(r.target);
  for (const k of opts.keep ?? []) {
    if (typeof k === 'string') live.add(k);
    else roots.push(k);
  }
  for (const root of roots) {
    if (!(await store.has(root.digest))) continue;
    live.add(root.digest);
    try {
      for (const d of await listImageBlobs(fetcher, store, root)) live.add(d.digest);
    } catch {
      // A root that is not a manifest (a plain layer in `keep`) only keeps itself.
    }
  }
  const minAge = opts.minAgeMs ?? 10 * 60 * 1000;
  const deleted: Digest[] = [];
  let reclaimed = 0;
  for await (const b of store.walk()) {
    if (live.has(b.digest)) continue;
    try {
      if (Date.now() - (await stat(store.blobPath(b.digest))).mtimeMs < minAge) continue;
    } catch {
      continue;
    }
    if (opts.dryRun !== true && !(await store.delete(b.digest))) continue;
    deleted.push(b.digest);
    reclaimed += b.size;
  }
  return { deleted, reclaimedBytes: reclaimed };
}
