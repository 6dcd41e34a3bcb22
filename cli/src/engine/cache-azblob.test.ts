import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { AzblobClient } from '@kiln/runtime';
import { rootKey, type MarshaledCache } from '@kiln/solver';
import { useAzurite, type TestAzurite } from '../../../runtime/test/helpers/azurite.js';
import { exportAzblobCache, importAzblobCaches } from './cache-azblob.js';
import type { AzblobCacheLocation } from './cache-azblob-spec.js';
import type { KilnEngine } from './engine.js';

// The azblob export and import against Azurite: the blob names BuildKit's azblob backend uses,
// every name of an import read (BuildKit's importer loads them all), and what is missing.

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';
const op = sha('run-op');

let az: TestAzurite;
useAzurite((a) => (az = a));

const location = (container: string, names: readonly string[]): AzblobCacheLocation => ({
  accountUrl: az.accountUrl,
  accountName: az.accountName,
  container,
  prefix: 'ci',
  blobsPrefix: 'blobs',
  manifestsPrefix: 'manifests/',
  names,
  credential: () => ({ kind: 'shared-key', key: az.accountKey }),
});

/** An engine whose content store holds `blobs` (digest → bytes). */
const engineWith = (blobs: ReadonlyMap<string, string>): KilnEngine =>
  ({
    content: {
      readStream: (d: string) =>
        Promise.resolve(
          (async function* (): AsyncGenerator<Uint8Array> {
            yield Buffer.from(blobs.get(d) ?? '');
          })(),
        ),
    },
  }) as unknown as KilnEngine;

async function text(it: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

describe('azblob cache (Azurite)', () => {
  test('an export writes blobs/DIGEST and manifests/NAME under the prefix; an import reads every name there is', async () => {
    const layer = sha('layer blob');
    const cache: MarshaledCache = {
      config: { layers: [{ blob: layer, parent: -1 }], records: [{ digest: rootKey(op, 0), inputs: [], results: [{ layer: 0, createdAt: '2023-03-01T09:00:00Z' }] }] },
      layers: [{ mediaType: GZ, digest: layer, size: 10, annotations: { 'containerd.io/uncompressed': sha('diff'), 'buildkit/createdat': '2023-03-01T09:00:00Z' } }],
    };
    const status: string[] = [];
    const spec = location('cache-export', ['main', 'pr-1']);
    const desc = await exportAzblobCache(engineWith(new Map([[layer, 'layer blob']])), spec, cache, { onStatus: (l) => status.push(l) });
    expect(status).toEqual([`writing layer ${layer}`, 'writing manifest main', 'writing manifest pr-1']);
    const c = new AzblobClient({ ...spec, accountUrl: az.accountUrl });
    expect((await c.getSmall(`ci/blobs/${layer}`, 100))?.toString()).toBe('layer blob');
    const config = await c.getSmall('ci/manifests/pr-1', 10_000);
    expect(desc).toMatchObject({ mediaType: 'application/vnd.buildkit.cacheconfig.v0', size: config?.length });
    expect(JSON.parse(config?.toString() ?? '{}')).toMatchObject({ layers: [{ blob: layer, parent: -1, annotations: { mediaType: GZ, diffID: sha('diff'), size: 10, createdAt: '2023-03-01T09:00:00Z' } }] });

    // Again: the blob is there, only the manifests are written.
    status.length = 0;
    await exportAzblobCache(engineWith(new Map()), spec, cache, { onStatus: (l) => status.push(l) });
    expect(status).toEqual(['writing manifest main', 'writing manifest pr-1']);

    // Every name is read; one without a manifest is skipped.
    const caches = await importAzblobCaches(location('cache-export', ['missing', 'main', 'pr-1']));
    expect(caches.map((x) => x.name)).toEqual([`${az.accountUrl}/cache-export/ci/manifests/main`, `${az.accountUrl}/cache-export/ci/manifests/pr-1`]);
    // A record without inputs is found by its digest; its layer's descriptor comes from the annotations.
    const [imported] = caches;
    const [res] = imported?.results(rootKey(op, 0)) ?? [];
    const [d] = res?.layers ?? [];
    expect(d).toEqual({ mediaType: GZ, digest: layer, size: 10, annotations: { 'containerd.io/uncompressed': sha('diff'), 'buildkit/createdat': '2023-03-01T09:00:00Z' } });
    if (imported === undefined || d === undefined) throw new Error('no result');
    expect(await text(await imported.open(d))).toBe('layer blob');
  });

  test('no manifest under any name, or no container: an error naming them (the caller warns)', async () => {
    await expect(importAzblobCaches(location('cache-export', ['a', 'b']))).rejects.toMatchObject({
      code: 'KLN0704',
      message: `${az.accountUrl}/cache-export/ci/manifests/a, ${az.accountUrl}/cache-export/ci/manifests/b: no cache manifest there`,
    });
    await expect(importAzblobCaches(location('no-such-container', ['a']))).rejects.toMatchObject({ code: 'AZBLOB_NOT_FOUND', azureCode: 'ContainerNotFound' });
  });
});
