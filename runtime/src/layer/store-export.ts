import { Writable } from 'node:stream';
import type { DiffOptions } from '../api/layer.js';
import type { Snapshotter } from '../api/snapshot.js';
import { parseDigest } from '../content/digest.js';
import type { ContentStore } from '../content/store.js';
import type { LayerRef } from '../image/image-writer.js';

/**
 * Writes the diff of snapshot `id` straight into the content store (one pass: tar, compression,
 * diffID and digest) and returns the layer for {@link writeImage}. The store verifies the blob
 * digest the differ computed; on failure or cancel nothing is stored.
 */
export async function exportLayerToStore(
  snapshotter: Snapshotter,
  id: string,
  store: ContentStore,
  opts: Omit<DiffOptions, 'output'> = {},
): Promise<LayerRef> {
  const w = await store.openWriter();
  try {
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        w.write(chunk).then(() => cb(), cb);
      },
    });
    // The writer hashes what it stores: the differ need not hash the compressed bytes again.
    const desc = await snapshotter.diff(id, { ...opts, output: sink, outputDigest: () => w.digest() });
    const digest = parseDigest(desc.digest);
    const info = await w.commit(digest, desc.size);
    return { descriptor: { mediaType: desc.mediaType, digest: info.digest, size: info.size }, diffID: parseDigest(desc.diffID) };
  } catch (e) {
    await w.abort();
    throw e;
  }
}
