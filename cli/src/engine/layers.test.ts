import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { parseDigest, type EnsuredImage } from '@kiln/runtime';
import { chainIds, layerSnapshotId } from '@kiln/solver';
import { BuildImages } from './layers.js';

const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** An image of `layers` (diffID name, blob name, media type) under manifest `name`. */
function image(name: string, layers: ReadonlyArray<readonly [string, string, string?]>): EnsuredImage {
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: parseDigest(sha(`cfg ${name}`)), size: 1 }, layers: layers.map(([, blob, mt]) => ({ mediaType: mt ?? 'application/vnd.oci.image.layer.v1.tar+gzip', digest: parseDigest(sha(blob)), size: 10 })) };
  const manifestDescriptor = { mediaType: manifest.mediaType, digest: parseDigest(sha(`manifest ${name}`)), size: 100 };
  return {
    ref: `localhost/${name}:latest`,
    source: 'local',
    root: manifestDescriptor,
    manifestDescriptor,
    manifest,
    configBytes: Buffer.from('{}'),
    config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(([d]) => parseDigest(sha(d))) } },
  } as unknown as EnsuredImage;
}

/** The snapshot ids of a chain of diffIDs (by name), root first, as image sources name them. */
const snapshots = (diffs: readonly string[]): string[] => chainIds(diffs.map(sha)).map(layerSnapshotId);

describe('BuildImages', () => {
  test('the image whose layers the chain stands on gives its blobs, whatever else the build resolved', () => {
    const gz = image('gz', [['base', 'base.gz'], ['lib', 'lib.gz']]);
    const zst = image('zst', [['base', 'base.zst', 'application/vnd.oci.image.layer.v1.tar+zstd'], ['lib', 'lib.zst', 'application/vnd.oci.image.layer.v1.tar+zstd']]);
    const onlyBase = image('only-base', [['base', 'base.plain', 'application/vnd.oci.image.layer.v1.tar']]);
    for (const order of [[gz, zst, onlyBase], [onlyBase, zst, gz]]) {
      const b = new BuildImages();
      for (const img of order) b.add(img);
      // FROM only-base + RUN: the chain is only-base's layer and a built one
      const one = b.blobsFor([...snapshots(['base']), 'built-1']);
      expect(one.get(sha('base'))?.descriptor.digest).toBe(sha('base.plain'));
      expect(one.get(sha('base'))?.fromImage).toBe(true);
      expect(one.get(sha('lib'))).toBeDefined(); // another image's layer (a merge may re-stack it)
    }
  });

  test('two images covering the same chain: the lower manifest digest, never the order they came in', () => {
    const a = image('a', [['base', 'base.gz']]);
    const z = image('z', [['base', 'base.zst', 'application/vnd.oci.image.layer.v1.tar+zstd']]);
    const first = a.manifestDescriptor.digest < z.manifestDescriptor.digest ? a : z;
    const chain = snapshots(['base']);
    const picks = [[a, z], [z, a]].map((order) => {
      const b = new BuildImages();
      for (const img of order) b.add(img);
      return b.blobsFor(chain).get(sha('base'))?.descriptor.digest;
    });
    expect(picks[0]).toBe(first.manifest.layers[0]?.digest);
    expect(picks[1]).toBe(picks[0]);
  });

  test('a deeper image wins over a shorter one with other blobs for the shared bottom layer', () => {
    const short = image('short', [['base', 'base.plain', 'application/vnd.oci.image.layer.v1.tar']]);
    const deep = image('deep', [['base', 'base.gz'], ['lib', 'lib.gz']]);
    const b = new BuildImages();
    b.add(short);
    b.add(deep);
    const got = b.blobsFor([...snapshots(['base', 'lib']), 'built']);
    expect(got.get(sha('base'))?.descriptor.digest).toBe(sha('base.gz'));
    expect(got.get(sha('lib'))?.descriptor.digest).toBe(sha('lib.gz'));
    // the chain of the short image alone: its own blob
    expect(b.blobsFor(snapshots(['base'])).get(sha('base'))?.descriptor.digest).toBe(sha('base.plain'));
  });

  test('an image added twice (FROM and prefetch) counts once; none resolved gives nothing', () => {
    const b = new BuildImages();
    expect(b.blobsFor(snapshots(['base'])).size).toBe(0);
    const img = image('x', [['base', 'base.gz']]);
    b.add(img);
    b.add(img);
    expect([...b.blobsFor(snapshots(['base'])).values()]).toHaveLength(1);
  });
});
