import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Digest } from '../content/digest.js';
import { ContentStore } from '../content/store.js';
import { chunks, sha, tarOf, type ArchiveEntry } from '../../test/helpers/archive.js';
import { importImageArchive } from './archive-import.js';
import { ImageStore } from './image-store.js';
import { MediaTypes } from './media-types.js';

/** Hostile archives: what an attacker can put in a tarball handed to kiln load. */

/** The real store, counting whole-blob reads by digest (what a check costs). */
async function countingStore(root: string): Promise<{ store: ContentStore; reads: Map<string, number> }> {
  const store = await ContentStore.open(root);
  const reads = new Map<string, number>();
  const readBlob = store.readBlob.bind(store);
  store.readBlob = async (digest: Digest): Promise<Buffer> => {
    reads.set(digest, (reads.get(digest) ?? 0) + 1);
    return readBlob(digest);
  };
  return { store, reads };
}

const blob = (b: Buffer): ArchiveEntry => ({ name: `blobs/sha256/${sha(b)}`, data: b });
const desc = (mediaType: string, b: Buffer): { mediaType: string; digest: string; size: number } => ({ mediaType, digest: `sha256:${sha(b)}`, size: b.length });
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const indexJson = (root: Buffer, mediaType: string = MediaTypes.ociIndex): ArchiveEntry => ({ name: 'index.json', data: json({ schemaVersion: 2, manifests: [{ ...desc(mediaType, root), annotations: { 'io.containerd.image.name': 'docker.io/library/hostile:1' } }] }) });

/** A one-layer image: its layer, config and OCI manifest. */
async function image(content: string): Promise<{ layer: Buffer; config: Buffer; manifest: Buffer }> {
  const layer = await tarOf([{ name: 'f', data: content }]);
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] } });
  const manifest = json({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: desc(MediaTypes.ociConfig, config), layers: [desc(MediaTypes.ociLayer, layer)] });
  return { layer, config, manifest };
}

let root: string;
let store: ContentStore;
let reads: Map<string, number>;
let images: ImageStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-load-hostile-'));
  ({ store, reads } = await countingStore(root));
  images = await ImageStore.open(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('importImageArchive: hostile archives', () => {
  test('indexes naming the same child many times are checked once per blob, not once per path', async () => {
    // 3 levels of 40: 64000 paths to one manifest in an archive of a few KB. Checked per path, a
    // load spent minutes on it (a 1000-wide one: forever, holding off every prune).
    const img = await image('fan\n');
    const fan = (child: Buffer, mediaType: string): Buffer => json({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: Array.from({ length: 40 }, () => desc(mediaType, child)) });
    const c = fan(img.manifest, MediaTypes.ociManifest);
    const b = fan(c, MediaTypes.ociIndex);
    const a = fan(b, MediaTypes.ociIndex);
    const archive = await tarOf([...[img.layer, img.config, img.manifest, c, b, a].map(blob), indexJson(a)]);
    const [got] = await importImageArchive(chunks(archive), { store, images });
    expect(got?.descriptor.digest).toBe(`sha256:${sha(a)}`);
    expect((await images.get('docker.io/library/hostile:1'))?.target.digest).toBe(`sha256:${sha(a)}`);
    for (const d of [a, b, c, img.manifest]) expect(reads.get(`sha256:${sha(d)}`) ?? 0).toBeLessThanOrEqual(1);
  });
});

describe('importImageArchive: blobs read into memory are bounded', () => {
  test('index.json naming a blob past the manifest limit as a manifest is refused before it is read', async () => {
    // A well-formed manifest padded past 4 MiB (a registry refuses those too); a layer named as a
    // manifest was read whole into memory the same way, however many GB it had.
    const img = await image('big\n');
    const big = json({ ...(JSON.parse(img.manifest.toString()) as object), annotations: { pad: 'x'.repeat(5 * 1024 * 1024) } });
    const archive = await tarOf([...[img.layer, img.config, big].map(blob), indexJson(big, MediaTypes.ociManifest)]);
    const err = await importImageArchive(chunks(archive, 1 << 20), { store, images, name: 'in.tar' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MANIFEST_INVALID' });
    expect((err as Error).message).toMatch(new RegExp(`^in.tar: sha256:${sha(big)} \\(named by index.json as a manifest or index\\) has ${big.length} bytes`));
    expect(reads.get(`sha256:${sha(big)}`)).toBeUndefined();
    expect(await images.list()).toEqual([]);
  });
});

describe('importImageArchive: a config that is no image config names nothing', () => {
  const legacy = (config: Buffer, layer: Buffer): Promise<Buffer> =>
    tarOf([
      { name: 'l1/layer.tar', data: layer },
      { name: `${sha(config)}.json`, data: config },
      { name: 'manifest.json', data: JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ['cfg:1'], Layers: ['l1/layer.tar'] }]) },
    ]);
  test.for([
    ['docker save, config not JSON', async () => { const i = await image('a\n'); return legacy(Buffer.from('not json {'), i.layer); }, /the config sha256:[a-f0-9]{64} of manifest.json's cfg:1 is not JSON$/],
    ['docker save, config a JSON list', async () => { const i = await image('a\n'); return legacy(Buffer.from('[1,2]'), i.layer); }, /of manifest.json's cfg:1 is not a JSON object$/],
    [
      'docker save, diff_id not the uncompressed layer',
      async () => { const i = await image('a\n'); return legacy(json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha('other')}`] } }), i.layer); },
      new RegExp(`gives layer 1 the diff_id sha256:${sha('other')}, but that layer is uncompressed and its content is sha256:[a-f0-9]{64}$`),
    ],
    [
      'OCI, two diff_ids for one layer',
      async () => {
        const i = await image('a\n');
        const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha(i.layer)}`, `sha256:${sha(i.layer)}`] } });
        const manifest = json({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: desc(MediaTypes.ociConfig, config), layers: [desc(MediaTypes.ociLayer, i.layer)] });
        return tarOf([...[i.layer, config, manifest].map(blob), indexJson(manifest, MediaTypes.ociManifest)]);
      },
      /the config sha256:[a-f0-9]{64} of manifest sha256:[a-f0-9]{64} lists 2 layers \(rootfs.diff_ids\) for the manifest's 1$/,
    ],
  ] as const)('%s', async ([, make, message]) => {
    const err = await importImageArchive(chunks(await make()), { store, images, name: 'in.tar' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MANIFEST_INVALID' });
    expect((err as Error).message).toMatch(/^in.tar: /);
    expect((err as Error).message).toMatch(message);
    expect(await images.list()).toEqual([]);
  });

  test('an image of no layers may have diff_ids null (Go) or none (moby); an artifact config is not read', async () => {
    for (const rootfs of [{ type: 'layers', diff_ids: null }, { type: 'layers' }]) {
      const config = json({ architecture: 'amd64', os: 'linux', rootfs });
      const manifest = json({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: desc(MediaTypes.ociConfig, config), layers: [] });
      const [got] = await importImageArchive(chunks(await tarOf([...[config, manifest].map(blob), indexJson(manifest, MediaTypes.ociManifest)])), { store, images });
      expect(got?.id).toBe(`sha256:${sha(config)}`);
    }
    const art = Buffer.from('helm chart values, not JSON');
    const manifest = json({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: desc('application/vnd.cncf.helm.config.v1+json', art), layers: [] });
    const [got] = await importImageArchive(chunks(await tarOf([...[art, manifest].map(blob), indexJson(manifest, MediaTypes.ociManifest)])), { store, images });
    expect(got?.descriptor.digest).toBe(`sha256:${sha(manifest)}`);
    expect(reads.get(`sha256:${sha(art)}`)).toBeUndefined();
  });
});
