import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf } from '../content/digest.js';
import { convertLayer, normalizeHistory, writeImage, writeIndex } from './image-writer.js';
import { parseImageConfig, parseManifest } from './manifest.js';
import { MediaTypes } from './media-types.js';
import { resolveImage, storeFetcher } from './resolve.js';
import { parsePlatform } from './platform.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-writer-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('writeImage / writeIndex / convertLayer', () => {
  test('docker format uses schema 2 media types and fills diff_ids', async () => {
    const store = await ContentStore.open(root);
    const tar = Buffer.alloc(2048, 1);
    const gz = gzipSync(tar);
    const blob = await store.writeBlob(gz);
    const layer = { descriptor: { mediaType: MediaTypes.ociLayerGzip, ...blob }, diffID: digestOf(tar) };
    const img = await writeImage(store, [layer], { os: 'linux', architecture: 'arm64', config: { Cmd: ['true'] } }, { format: 'docker' });
    const p = parseManifest(await store.readBlob(img.manifest.digest));
    if (p.kind !== 'manifest') throw new Error('expected manifest');
    expect(p.mediaType).toBe(MediaTypes.dockerManifest);
    expect(p.manifest.config.mediaType).toBe(MediaTypes.dockerConfig);
    expect(p.manifest.layers[0]?.mediaType).toBe(MediaTypes.dockerLayerGzip);
    expect(parseImageConfig(await store.readBlob(img.config.digest)).rootfs.diff_ids).toEqual([digestOf(tar)]);
    expect(img.manifest.platform).toEqual({ os: 'linux', architecture: 'arm64' });

    const amd = await writeImage(store, [layer], { os: 'linux', architecture: 'amd64' });
    const idx = await writeIndex(store, [
      { ...img.manifest, platform: { os: 'linux', architecture: 'arm64' } },
      { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    const r = await resolveImage(storeFetcher(store), idx, parsePlatform('linux/arm64'));
    expect(r.manifestDescriptor.digest).toBe(img.manifest.digest);

    const plain = await convertLayer(store, layer, 'uncompressed');
    expect(plain.descriptor.digest).toBe(digestOf(tar));
    expect(plain.descriptor.mediaType).toBe(MediaTypes.ociLayer);
    const back = await convertLayer(store, plain, 'gzip');
    expect(back.descriptor.mediaType).toBe(MediaTypes.ociLayerGzip);
    expect(await convertLayer(store, plain, 'uncompressed')).toBe(plain);
    const z = await convertLayer(store, layer, 'zstd');
    expect(z.descriptor.mediaType).toBe(MediaTypes.ociLayerZstd);
    expect([...(await store.readBlob(z.descriptor.digest)).subarray(0, 4)]).toEqual([0x28, 0xb5, 0x2f, 0xfd]);
    expect((await convertLayer(store, z, 'uncompressed')).descriptor.digest).toBe(digestOf(tar));
    // A wrong diffID is caught when decompressing.
    await expect(convertLayer(store, { ...layer, diffID: digestOf('x') }, 'uncompressed')).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await expect(convertLayer(store, { ...layer, diffID: digestOf('x') }, 'zstd')).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  test('history is made to agree with the layers (as BuildKit normalizeLayersAndHistory)', () => {
    expect(normalizeHistory(undefined, 2, undefined)).toBeUndefined();
    const grown = normalizeHistory([{ created_by: 'RUN x' }, { created_by: 'ENV a=b', empty_layer: true }], 3, '2024-01-01T00:00:00Z');
    expect(grown?.map((h) => [h.created_by, h.empty_layer === true])).toEqual([
      ['RUN x', false],
      ['ENV a=b', true],
      ['created by buildkit', false],
      ['created by buildkit', false],
    ]);
    expect(grown?.[2]?.created).toBe('2024-01-01T00:00:00Z');
    const shrunk = normalizeHistory([{ created_by: 'a' }, { created_by: 'b', empty_layer: true }, { created_by: 'c' }, { created_by: 'd' }], 2, undefined);
    expect(shrunk?.map((h) => h.empty_layer === true)).toEqual([false, true, false, true]);
  });

  test('missing layer blobs are rejected', async () => {
    const store = await ContentStore.open(root);
    await expect(
      writeImage(store, [{ descriptor: { mediaType: MediaTypes.ociLayer, digest: digestOf('nope'), size: 4 }, diffID: digestOf('nope') }], { os: 'linux', architecture: 'amd64' }),
    ).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND' });
  });
});
