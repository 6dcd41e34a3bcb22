import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ContentStore, type Descriptor } from '@kiln/runtime';
import { imageSize } from './images.js';

test('kiln images size: each blob counted once (platforms sharing a layer), each index read once (fan-out 40, depth 3)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-images-size-'));
  try {
    const store = await ContentStore.open(dir);
    let reads = 0;
    const readBlob = store.readBlob.bind(store);
    store.readBlob = async (d) => {
      reads++;
      return readBlob(d);
    };
    const put = async (mediaType: string, body: unknown): Promise<Descriptor> => {
      const bytes = Buffer.from(JSON.stringify(body));
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Descriptor['digest'];
      await store.writeBlob(bytes, digest);
      return { mediaType, digest, size: bytes.length };
    };
    const layer = (n: number, size: number): Descriptor => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${String(n).repeat(64).slice(0, 64)}` as Descriptor['digest'], size });
    const shared = layer(1, 1000);
    const amd = await put('application/vnd.oci.image.manifest.v1+json', { schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 10 }, layers: [shared, layer(2, 200)] });
    const arm = await put('application/vnd.oci.image.manifest.v1+json', { schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 20 }, layers: [shared, layer(3, 300)] });
    const index = await put('application/vnd.oci.image.index.v1+json', { schemaVersion: 2, manifests: [amd, arm] });
    expect(await imageSize(store, index)).toBe(10 + 20 + 1000 + 200 + 300);
    let level = amd;
    for (let i = 0; i < 3; i++) {
      const child = level;
      level = await put('application/vnd.oci.image.index.v1+json', { schemaVersion: 2, manifests: Array.from({ length: 40 }, () => child) });
    }
    reads = 0;
    expect(await imageSize(store, level)).toBe(10 + 1000 + 200);
    expect(reads).toBe(4);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
