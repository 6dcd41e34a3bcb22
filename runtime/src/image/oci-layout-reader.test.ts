import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { digestHex, digestOf } from '../content/digest.js';
import { ContentStore } from '../content/store.js';
import { importOciLayout, openOciLayout } from './oci-layout.js';
import { findLayoutImage, MAX_MANIFEST_SIZE, OciLayoutReader, resolveLayoutImage } from './oci-layout-reader.js';
import { parseOciLayoutRef } from './oci-layout-ref.js';
import type { Descriptor, ImageIndex } from './types.js';

const OM = 'application/vnd.oci.image.manifest.v1+json';
const OI = 'application/vnd.oci.image.index.v1+json';
const REF = 'org.opencontainers.image.ref.name';
const NAME = 'io.containerd.image.name';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-layout-reader-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const entry = (s: string, annotations?: Record<string, string>): Descriptor => ({ mediaType: OM, digest: digestOf(Buffer.from(s)), size: s.length, ...(annotations === undefined ? {} : { annotations }) });
const index = (...manifests: Descriptor[]): ImageIndex => ({ schemaVersion: 2, mediaType: OI, manifests });

describe('findLayoutImage (BuildKit ociindex.Get / GetSingle)', () => {
  const a = entry('a', { [REF]: 'x' });
  const b = entry('b', { [NAME]: 'x', [REF]: 'y' });
  const c = entry('c', { [NAME]: 'docker.io/library/app:1', [REF]: '1' });

  test('a tag: io.containerd.image.name first, then org.opencontainers.image.ref.name; a full name only as io.containerd.image.name', () => {
    expect(findLayoutImage(index(a, b), { tag: 'x' }).digest).toBe(b.digest);
    expect(findLayoutImage(index(a, b), 'y').digest).toBe(b.digest);
    expect(findLayoutImage(index(a, c), '1').digest).toBe(c.digest);
    expect(findLayoutImage(index(a, c), 'docker.io/library/app:1').digest).toBe(c.digest);
    expect(() => findLayoutImage(index(a, c), 'app:1')).toThrow(expect.objectContaining({ code: 'IMAGE_NOT_FOUND' }));
  });

  test('a digest: its index entry; a string that is a digest is one', () => {
    expect(findLayoutImage(index(a, b), { digest: b.digest })).toBe(b);
    expect(findLayoutImage(index(a, b), a.digest).digest).toBe(a.digest);
    expect(() => findLayoutImage(index(a), { digest: b.digest })).toThrow(expect.objectContaining({ code: 'IMAGE_NOT_FOUND' }));
  });

  test('a one-image layout yields its image for any tag only with single (build contexts); without any ref, single is implied', () => {
    expect(() => findLayoutImage(index(a), 'other', { name: 'oci-layout:///l' })).toThrow(
      expect.objectContaining({ code: 'IMAGE_NOT_FOUND', message: 'oci-layout:///l has no image tagged "other" (tags: x)', hint: 'name one of its tags: oci-layout://PATH:TAG' }),
    );
    expect(findLayoutImage(index(a), 'other', { single: true }).digest).toBe(a.digest);
    expect(findLayoutImage(index(a)).digest).toBe(a.digest);
    // two images and no latest: a ref is needed; the hint names an untagged one by digest
    const untagged = entry('u');
    expect(() => findLayoutImage(index(a, untagged), undefined, { single: true })).toThrow(expect.objectContaining({ hint: `name an untagged image by digest: oci-layout://PATH@${untagged.digest}` }));
    expect(findLayoutImage(index(a, entry('l', { [REF]: 'latest' }))).digest).toBe(digestOf(Buffer.from('l')));
  });
});

/** A layout directory with one image manifest tagged `tags`, and a child manifest only its index names. */
async function layoutDir(tags: string[]): Promise<{ dir: string; top: Descriptor; child: Descriptor }> {
  const dir = join(root, 'lay:out@x');
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (bytes: Buffer): Promise<void> => writeFile(join(dir, 'blobs', 'sha256', digestHex(digestOf(bytes))), bytes);
  const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const man = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OM, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(cfg), size: cfg.length }, layers: [] }));
  const child: Descriptor = { mediaType: OM, digest: digestOf(man), size: man.length, platform: { os: 'linux', architecture: 'amd64' } };
  const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OI, manifests: [child] }));
  for (const b of [cfg, man, idx]) await put(b);
  const top: Descriptor = { mediaType: OI, digest: digestOf(idx), size: idx.length };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index(...tags.map((t) => ({ ...top, annotations: { [REF]: t } })))));
  return { dir, top, child };
}

describe('OciLayoutReader and build-context imports (buildx resolveDigest)', () => {
  test('`oci-layout://PATH:TAG@DIGEST`: the digest picks, listed in index.json or not (a child manifest); its media type read from its body', async () => {
    const { dir, child } = await layoutDir(['v1']);
    const store = await ContentStore.open(join(root, 'store'));
    const ref = parseOciLayoutRef(`oci-layout://${dir}:v1@${child.digest}`);
    expect(ref).toEqual({ path: dir, tag: 'v1', digest: child.digest });
    const got = await importOciLayout(await openOciLayout(ref.path, store), store, { ref: child.digest });
    expect(got).toEqual({ mediaType: OM, digest: child.digest, size: child.size });
    expect(await store.has(child.digest)).toBe(true);
  });

  test('a tag no entry has picks the image of a one-image layout; of a two-image layout it is refused', async () => {
    const { dir, top } = await layoutDir(['v1']);
    const store = await ContentStore.open(join(root, 'store'));
    expect((await importOciLayout(await openOciLayout(dir, store), store, { ref: 'nope' })).digest).toBe(top.digest);
    expect((await importOciLayout(await openOciLayout(dir, store), store)).digest).toBe(top.digest);
    const two = await layoutDir(['v1', 'v2']);
    // the message names the layout: a build may have several
    await expect(importOciLayout(await openOciLayout(two.dir, store), store, { ref: 'nope' })).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND', message: `oci-layout://${two.dir} has no image tagged "nope" (tags: v1, v2)` });
    const absent = digestOf(Buffer.from('absent'));
    await expect(importOciLayout(await openOciLayout(two.dir, store), store, { ref: absent })).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND', message: `oci-layout://${two.dir} has no blob ${absent}` });
  });

  test('no index.json: LAYOUT_INVALID with what to do; index.json is all a directory needs (no oci-layout file, as BuildKit)', async () => {
    const store = await ContentStore.open(join(root, 'store'));
    await mkdir(join(root, 'empty'));
    await expect(openOciLayout(join(root, 'empty'), store)).rejects.toMatchObject({ code: 'LAYOUT_INVALID', hint: expect.stringContaining('index.json') });
    await expect(openOciLayout(join(root, 'missing'), store)).rejects.toMatchObject({ code: 'LAYOUT_INVALID' });
    await writeFile(join(root, 'empty', 'index.json'), '{"schemaVersion":2,"layers":[]}');
    await expect(new OciLayoutReader(join(root, 'empty')).readIndex()).rejects.toMatchObject({ code: 'LAYOUT_INVALID', message: expect.stringContaining('not an image index') });
    const { dir, top } = await layoutDir(['v1']);
    expect((await openOciLayout(dir, store)).index.manifests[0]?.digest).toBe(top.digest);
  });

  test('a digest the layout lacks is BLOB_NOT_FOUND; a damaged blob DIGEST_MISMATCH, a short one SIZE_MISMATCH', async () => {
    const { dir, child } = await layoutDir(['v1']);
    const r = new OciLayoutReader(dir);
    const absent = digestOf(Buffer.from('absent'));
    await expect(resolveLayoutImage(r, { digest: absent }, { name: 'L' })).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND', message: `L has no blob ${absent}` });
    await writeFile(r.blobPath(child), Buffer.from(' '.repeat(child.size)));
    await expect(resolveLayoutImage(r, { digest: child.digest })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    await writeFile(r.blobPath(child), Buffer.from('{}'));
    await expect(r.fetch(child)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await expect(r.open(child)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await expect(r.fetch({ ...child, size: 100 }, 10)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
  });

  test('a digest of a blob larger than any manifest (a layer) is refused by its size, not read into memory', async () => {
    const { dir } = await layoutDir(['v1']);
    const layer = Buffer.alloc(MAX_MANIFEST_SIZE + 1, 7);
    const r = new OciLayoutReader(dir);
    await writeFile(r.blobPath({ digest: digestOf(layer) }), layer);
    const read: string[] = [];
    const lookup = { readIndex: () => r.readIndex(), fetch: async (d: Descriptor) => (read.push(d.digest), r.fetch(d)), size: (d: Descriptor['digest']) => r.size(d) };
    await expect(resolveLayoutImage(lookup, { digest: digestOf(layer) }, { name: 'L' })).rejects.toMatchObject({ code: 'MANIFEST_INVALID', message: expect.stringContaining('is no manifest or index') });
    expect(read).toEqual([]);
    const store = await ContentStore.open(join(root, 'store'));
    await expect(importOciLayout(await openOciLayout(dir, store), store, { ref: digestOf(layer) })).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
  });
});
