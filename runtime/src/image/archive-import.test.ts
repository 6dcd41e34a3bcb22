import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { chunks, sha, tarOf, type ArchiveEntry } from '../../test/helpers/archive.js';
import { importImageArchive } from './archive-import.js';
import { pruneContent } from './content-gc.js';
import { ImageStore } from './image-store.js';
import { parseManifest } from './manifest.js';
import { MediaTypes } from './media-types.js';
import { parsePlatform } from './platform.js';
import { resolveImage, storeFetcher } from './resolve.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const README = await readFile(join(IMAGES, 'README.md'), 'utf8');
/** Digests come from the conformance README, never from kiln's own encoder. */
function readmeDigest(folder: string): string {
  const m = new RegExp('\\| `' + folder + '/` \\|[^\\n]*?`(sha256:[a-f0-9]{64})`').exec(README);
  if (m?.[1] === undefined) throw new Error(`no digest for ${folder} in README`);
  return m[1];
}

/** A one-file layer tar (uncompressed) and its image config. */
async function legacyImage(content: string): Promise<{ layer: Buffer; config: Buffer }> {
  const layer = await tarOf([{ name: 'hello.txt', data: content }]);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] }, config: { Cmd: ['cat', '/hello.txt'] } }));
  return { layer, config };
}

let root: string;
let store: ContentStore;
let images: ImageStore;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-load-'));
  store = await ContentStore.open(root);
  images = await ImageStore.open(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('importImageArchive: OCI archives', () => {
  test('a multi-platform layout packed by tar keeps every platform and is named by a full ref.name', async () => {
    // System tar writes ./-prefixed names and directories; oci-layout comes in whatever order readdir gives.
    const tarball = execFileSync('tar', ['-C', join(IMAGES, 'files'), '-cf', '-', '.'], { maxBuffer: 1 << 26 });
    const index = JSON.parse(execFileSync('tar', ['-xOf', '-', './index.json'], { input: tarball }).toString()) as { manifests: Array<{ annotations: Record<string, string> }> };
    expect(index.manifests[0]?.annotations['org.opencontainers.image.ref.name']).toBe('latest');
    const got = await importImageArchive(chunks(tarball), { store, images });
    // ref.name `latest` is a bare tag of no repository: the image is unnamed, recorded under its ID.
    expect(got).toHaveLength(1);
    expect(got[0]?.descriptor.digest).toBe(readmeDigest('files'));
    expect(got[0]?.names).toEqual([]);
    expect(got[0]?.id).toBe(readmeDigest('files'));
    expect((await images.get(readmeDigest('files')))?.target.digest).toBe(readmeDigest('files'));
    for (const p of ['linux/amd64', 'linux/arm64']) {
      const img = await resolveImage(storeFetcher(store), got[0]!.descriptor, parsePlatform(p));
      for (const l of img.manifest.layers) expect(await store.has(l.digest)).toBe(true);
      expect(img.config.config?.Env).toContain(`FILES_PLATFORM=${p}`);
    }
  });

  test('names from io.containerd.image.name and from a ref.name that is a reference, gzip and stdin-like chunks', async () => {
    const layout = join(IMAGES, 'busybox');
    const idx = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Array<Record<string, unknown>> };
    const m0 = idx.manifests[0] as Record<string, unknown>;
    const renamed = {
      ...idx,
      manifests: [
        { ...m0, annotations: { 'io.containerd.image.name': 'localhost:5000/team/bb:1', 'org.opencontainers.image.ref.name': '1' } },
        { ...m0, annotations: { 'org.opencontainers.image.ref.name': 'bb:2' } },
      ],
    };
    const blobs = execFileSync('find', ['blobs', '-type', 'f'], { cwd: layout, encoding: 'utf8' }).trim().split('\n');
    // index.json first, blobs after: names are still set only once every blob is in.
    const entries: ArchiveEntry[] = [{ name: 'index.json', data: JSON.stringify(renamed) }, { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }];
    for (const b of blobs) entries.push({ name: b, data: await readFile(join(layout, b)) });
    const got = await importImageArchive(chunks(gzipSync(await tarOf(entries))), { store, images });
    expect(got).toHaveLength(1);
    expect(got[0]?.names).toEqual(['localhost:5000/team/bb:1', 'docker.io/library/bb:2']);
    expect(got[0]?.descriptor.digest).toBe(readmeDigest('busybox'));
    for (const n of got[0]?.names ?? []) expect((await images.get(n))?.target.digest).toBe(readmeDigest('busybox'));
    const manifest = parseManifest(await store.readBlob(got[0]!.descriptor.digest));
    expect(manifest.kind === 'manifest' && got[0]?.id).toBe(manifest.kind === 'manifest' ? manifest.manifest.config.digest : '');
  });
});

describe('importImageArchive: docker archives', () => {
  test('legacy docker save: <id>/layer.tar, a symlinked layer, <hex>.json config, manifest.json last', async () => {
    const a = await legacyImage('a\n');
    const b = await legacyImage('b\n');
    const archive = await tarOf([
      { name: 'l1/layer.tar', data: a.layer },
      { name: 'l1/json', data: '{"id":"l1"}' },
      { name: 'l1/VERSION', data: '1.0' },
      { name: 'l2/layer.tar', symlink: '../l1/layer.tar' },
      { name: `${sha(a.config)}.json`, data: a.config },
      { name: `${sha(b.layer)}.tar`, data: b.layer },
      { name: `${sha(b.config)}.json`, data: b.config },
      { name: 'repositories', data: '{}' },
      {
        name: 'manifest.json',
        data: JSON.stringify([
          { Config: `${sha(a.config)}.json`, RepoTags: ['app:a', 'localhost:5000/x/app:a'], Layers: ['l2/layer.tar'] },
          { Config: `${sha(b.config)}.json`, RepoTags: null, Layers: [`${sha(b.layer)}.tar`] },
        ]),
      },
    ]);
    const got = await importImageArchive(chunks(archive), { store, images });
    expect(got.map((g) => g.names)).toEqual([['docker.io/library/app:a', 'localhost:5000/x/app:a'], []]);
    expect(got.map((g) => g.id)).toEqual([`sha256:${sha(a.config)}`, `sha256:${sha(b.config)}`]);
    const rec = await images.get('docker.io/library/app:a');
    expect(rec?.target.mediaType).toBe(MediaTypes.dockerManifest);
    const img = await resolveImage(storeFetcher(store), rec!.target, parsePlatform('linux/amd64'));
    expect(img.manifest.layers).toEqual([{ mediaType: MediaTypes.dockerLayer, digest: `sha256:${sha(a.layer)}`, size: a.layer.length }]);
    expect(img.manifest.config).toEqual({ mediaType: MediaTypes.dockerConfig, digest: `sha256:${sha(a.config)}`, size: a.config.length });
    // The unnamed one is kept under its image ID.
    expect((await images.get(`sha256:${sha(b.config)}`))?.target.digest).toBe(got[1]?.descriptor.digest);
    // The legacy v1 files are not stored.
    expect(await store.has(`sha256:${sha('{"id":"l1"}')}` as never)).toBe(false);
  });

  test('a gzip layer gets the gzip media type; unnamed index.json entries take manifest.json RepoTags', async () => {
    const a = await legacyImage('gz\n');
    const gz = gzipSync(a.layer);
    const archive = await tarOf([
      { name: 'layer.tar.gz', data: gz },
      { name: 'cfg.json', data: a.config },
      { name: 'manifest.json', data: JSON.stringify([{ Config: 'cfg.json', RepoTags: ['gz:1'], Layers: ['layer.tar.gz'] }]) },
    ]);
    const [got] = await importImageArchive(chunks(archive), { store, images });
    const img = await resolveImage(storeFetcher(store), got!.descriptor, parsePlatform('linux/amd64'));
    expect(img.manifest.layers[0]?.mediaType).toBe(MediaTypes.dockerLayerGzip);
    expect(img.manifest.layers[0]?.digest).toBe(`sha256:${sha(gz)}`);

    // Docker 25+'s form: the same image as an OCI layout whose index.json entry has no name.
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: `sha256:${sha(a.config)}`, size: a.config.length }, layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: `sha256:${sha(gz)}`, size: gz.length }] }));
    const oci = await tarOf([
      { name: `blobs/sha256/${sha(gz)}`, data: gz },
      { name: `blobs/sha256/${sha(a.config)}`, data: a.config },
      { name: `blobs/sha256/${sha(manifest)}`, data: manifest },
      { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaTypes.ociManifest, digest: `sha256:${sha(manifest)}`, size: manifest.length }] }) },
      { name: 'manifest.json', data: JSON.stringify([{ Config: `blobs/sha256/${sha(a.config)}`, RepoTags: ['docker25:latest'], Layers: [`blobs/sha256/${sha(gz)}`] }]) },
      { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    ]);
    const [d25] = await importImageArchive(chunks(oci), { store, images });
    expect(d25?.descriptor.digest).toBe(`sha256:${sha(manifest)}`);
    expect(d25?.names).toEqual(['docker.io/library/docker25:latest']);
  });
});

describe('importImageArchive: bad archives name the entry and name nothing', () => {
  const good = async (): Promise<{ entries: ArchiveEntry[]; manifest: Buffer; layer: Buffer; config: Buffer }> => {
    const a = await legacyImage('bad\n');
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociConfig, digest: `sha256:${sha(a.config)}`, size: a.config.length }, layers: [{ mediaType: MediaTypes.ociLayer, digest: `sha256:${sha(a.layer)}`, size: a.layer.length }] }));
    const entries: ArchiveEntry[] = [
      { name: `blobs/sha256/${sha(a.layer)}`, data: a.layer },
      { name: `blobs/sha256/${sha(a.config)}`, data: a.config },
      { name: `blobs/sha256/${sha(manifest)}`, data: manifest },
      { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaTypes.ociManifest, digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { 'io.containerd.image.name': 'docker.io/library/bad:1' } }] }) },
      { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    ];
    return { entries, manifest, layer: a.layer, config: a.config };
  };

  test.for([
    ['not a tar', async () => Buffer.from('this is not an archive, just some text that is long enough to fill a tar header block '.repeat(8)), 'LAYOUT_INVALID', /is not a tar archive/],
    ['empty input', async () => Buffer.alloc(0), 'LAYOUT_INVALID', /is empty/],
    ['xz input', async () => Buffer.from('fd377a585a000004e6d6b446', 'hex'), 'LAYOUT_INVALID', /xz-compressed/],
    ['truncated inside a blob', async () => (await tarOf((await good()).entries)).subarray(0, 1500), 'LAYOUT_INVALID', /truncated: it ends in entry blobs\/sha256\//],
    ['truncated gzip', async () => { const z = gzipSync(await tarOf((await good()).entries)); return z.subarray(0, z.length - 40); }, 'LAYOUT_INVALID', /truncated/],
    [
      'a blob whose bytes are not its name',
      async () => { const g = await good(); return tarOf([{ name: `blobs/sha256/${sha(g.layer)}`, data: Buffer.concat([g.layer.subarray(0, 100), Buffer.from('X'), g.layer.subarray(101)]) }, ...g.entries.slice(1)]); },
      'DIGEST_MISMATCH',
      /in.tar: entry blobs\/sha256\/[a-f0-9]{64}: its content does not have the digest its name says/,
    ],
    ['a manifest naming a missing layer', async () => tarOf((await good()).entries.slice(1)), 'BLOB_NOT_FOUND', /needs its layer 1 sha256:[a-f0-9]{64}, which the archive does not contain/],
    ['index.json naming a missing manifest', async () => tarOf((await good()).entries.filter((_, i) => i !== 2)), 'BLOB_NOT_FOUND', /index\.json names sha256:[a-f0-9]{64}, which the archive does not contain/],
    [
      'a name that is not a reference',
      async () => { const g = await good(); return tarOf(g.entries.map((e) => (e.name === 'index.json' ? { ...e, data: String(e.data).replace('docker.io/library/bad:1', 'Bad Name!') } : e))); },
      'REFERENCE_INVALID',
      /io\.containerd\.image\.name "Bad Name!" is not a valid image reference/,
    ],
    ['no index.json nor manifest.json', async () => tarOf((await good()).entries.filter((e) => e.name !== 'index.json')), 'LAYOUT_INVALID', /neither index\.json nor manifest\.json/],
    ['a docker manifest.json naming a missing layer', async () => tarOf([{ name: 'c.json', data: (await good()).config }, { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', RepoTags: ['bad:1'], Layers: ['x/layer.tar'] }]) }]), 'BLOB_NOT_FOUND', /manifest\.json names layer x\/layer\.tar for bad:1/],
  ] as const)('%s', async ([, make, code, message]) => {
    const archive = await make();
    const err = await importImageArchive(chunks(archive), { store, images, name: 'in.tar' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message.startsWith('in.tar')).toBe(true);
    expect(typeof (err as { hint?: unknown }).hint).toBe('string');
    expect(await images.list()).toEqual([]);
  });

  test('an archive cut short inside a blob the store already has is named as truncated there', async () => {
    const g = await good();
    const whole = await tarOf(g.entries);
    await importImageArchive(chunks(whole), { store, images });
    await images.delete('docker.io/library/bad:1');
    // The layer entry's header is at 0, its data from 512: cut in the middle of it.
    const err = await importImageArchive(chunks(whole.subarray(0, 512 + Math.floor(g.layer.length / 2))), { store, images, name: 'in.tar' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LAYOUT_INVALID', message: `in.tar is truncated: it ends in entry blobs/sha256/${sha(g.layer)}` });
    expect(await images.list()).toEqual([]);
  });

  test('the content GC removes what a failed load stored', async () => {
    const g = await good();
    // Everything but the layer: the manifest check fails after config and manifest are stored.
    const err = await importImageArchive(chunks(await tarOf(g.entries.slice(1))), { store, images }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BLOB_NOT_FOUND' });
    const left: string[] = [];
    for await (const b of store.walk()) left.push(b.digest);
    expect(left.sort()).toEqual([`sha256:${sha(g.config)}`, `sha256:${sha(g.manifest)}`].sort());
    // Blobs younger than the GC's minimum age stay (a load in progress); aged, they go.
    expect((await pruneContent(store, images)).deleted).toEqual([]);
    const old = new Date(Date.now() - 3_600_000);
    for (const d of left) await utimes(store.blobPath(d as never), old, old);
    expect([...(await pruneContent(store, images)).deleted].sort()).toEqual(left.sort());
  });
});
