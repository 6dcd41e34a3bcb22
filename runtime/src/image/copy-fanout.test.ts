import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { Digest } from '../content/digest.js';
import { ContentStore } from '../content/store.js';
import { listImageBlobs } from './copy.js';
import { MediaTypes } from './media-types.js';
import type { Descriptor } from './types.js';

test('listImageBlobs reads each manifest and index once, however often indexes name it (fan-out 40, depth 3)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-fanout-'));
  try {
    const store = await ContentStore.open(dir);
    const put = async (mediaType: string, body: unknown): Promise<Descriptor> => {
      const bytes = Buffer.from(JSON.stringify(body));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
      await store.writeBlob(bytes, digest);
      return { mediaType, digest, size: bytes.length };
    };
    const config = await put(MediaTypes.ociConfig, { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
    const manifest = await put(MediaTypes.ociManifest, { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: [] });
    const indexes: Descriptor[] = [];
    let level = manifest;
    for (let i = 0; i < 3; i++) {
      const child = level;
      level = await put(MediaTypes.ociIndex, { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: Array.from({ length: 40 }, () => child) });
      indexes.push(level);
    }
    const reads = new Map<string, number>();
    const fetcher = {
      fetch: async (d: Descriptor): Promise<Buffer> => {
        reads.set(d.digest, (reads.get(d.digest) ?? 0) + 1);
        return store.readBlob(d.digest);
      },
    };
    const blobs = await listImageBlobs(fetcher, store, level);
    expect(blobs.map((b) => b.digest).sort()).toEqual([config.digest, manifest.digest, ...indexes.map((i) => i.digest)].sort());
    // 4 documents (3 indexes and the manifest), each read once (64,000 reads of the manifest before).
    expect(reads.size).toBe(4);
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
