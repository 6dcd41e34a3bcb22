import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { digestOf, type Descriptor } from '@kiln/runtime';
import { detectMediaType } from './combine.js';
import { OciLayoutDir } from './layout.js';
import { parseLayoutLocation } from './location.js';

const OM = 'application/vnd.oci.image.manifest.v1+json';
const OI = 'application/vnd.oci.image.index.v1+json';
const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e as { code?: unknown }).code);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-itl-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const desc = (bytes: Buffer, mediaType = OM): Descriptor => ({ mediaType, digest: digestOf(bytes), size: bytes.length });
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OM, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(Buffer.from('{}')), size: 2 }, layers: [] }));

describe('OciLayoutDir', () => {
  test('tag: index.json entries as BuildKit ociindex.Put writes them; a tag moves, untagged entries are added once; resolve by tag or digest', async () => {
    const layout = new OciLayoutDir(dir);
    const m = desc(manifest);
    await layout.writeBlob(m, [manifest]);
    await layout.tag(m, 'v1');
    await layout.tag(m, undefined);
    await layout.tag(m, undefined);
    const other = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OI, manifests: [m] }));
    const o = desc(other, OI);
    await layout.writeBlob(o, [other]);
    await layout.tag(o, 'v1');
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { schemaVersion: number; mediaType: string; manifests: Descriptor[] };
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(OI);
    expect(index.manifests).toEqual([
      { mediaType: OM, digest: m.digest, size: m.size },
      { mediaType: OI, digest: o.digest, size: o.size, annotations: { 'org.opencontainers.image.ref.name': 'v1' } },
    ]);
    expect(await layout.resolve(parseLayoutLocation(`oci-layout://${dir}:v1`, '/'), detectMediaType)).toMatchObject({ digest: o.digest, mediaType: OI });
    // by digest: the media type read from the blob
    expect(await layout.resolve(parseLayoutLocation(`oci-layout://${dir}@${m.digest}`, '/'), detectMediaType)).toEqual(m);
    // no tag given means latest; the refusal lists the tags and an untagged digest
    const missing = layout.resolve(parseLayoutLocation(`oci-layout://${dir}`, '/'), detectMediaType);
    await expect(missing).rejects.toMatchObject({ code: 'KLN0861', message: expect.stringContaining('no image tagged "latest" (tags: v1)'), hint: expect.stringContaining(`@${m.digest}`) });
  });

  test('resolve by tag: io.containerd.image.name first, then org.opencontainers.image.ref.name (ociindex.Get)', async () => {
    const a = { mediaType: OM, digest: digestOf(Buffer.from('a')), size: 1, annotations: { 'org.opencontainers.image.ref.name': 'x' } };
    const b = { mediaType: OM, digest: digestOf(Buffer.from('b')), size: 1, annotations: { 'io.containerd.image.name': 'x', 'org.opencontainers.image.ref.name': 'y' } };
    await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [a, b] }));
    expect((await new OciLayoutDir(dir).resolve(parseLayoutLocation(`oci-layout://${dir}:x`, '/'), detectMediaType)).digest).toBe(b.digest);
  });

  test('blobs are checked: a wrong digest is not written (no temp file left), a damaged blob is KLN0866, a missing one KLN0861', async () => {
    const layout = new OciLayoutDir(dir);
    const m = desc(manifest);
    expect(await code(layout.writeBlob(m, [Buffer.from('something else')]))).toBe('KLN0862');
    expect(await code(layout.writeBlob(m, [manifest, Buffer.from('x')]))).toBe('KLN0862');
    expect(await readdir(join(dir, 'blobs', 'sha256'))).toEqual([]);
    expect(await code(layout.fetch(m))).toBe('KLN0861');
    await layout.writeBlob(m, [manifest]);
    expect(await layout.has(m)).toBe(true);
    expect((await layout.fetch(m)).equals(manifest)).toBe(true);
    await writeFile(layout.blobPath(m), Buffer.from(manifest.toString().replace('2', '3')));
    expect(await code(layout.fetch(m))).toBe('KLN0866');
    // a config the manifest says is huge is refused unread
    expect(await code(layout.fetch({ ...m, size: 2 ** 31 }, 1 << 20))).toBe('KLN0865');
  });

  test('a directory without index.json is no OCI layout: KLN0866 with what to do', async () => {
    await expect(new OciLayoutDir(dir).readIndex()).rejects.toMatchObject({ code: 'KLN0866', hint: expect.stringContaining('oci-layout, index.json and blobs/') });
    await writeFile(join(dir, 'index.json'), '{"schemaVersion":2,"layers":[]}');
    expect(await code(new OciLayoutDir(dir).readIndex())).toBe('KLN0866');
  });
});

describe('OciLayoutDir: concurrent writers', () => {
  test('tags written at once by several writers (processes or one kiln daemon) all land in index.json: the read-modify-write of index.json is locked', async () => {
    const m = desc(manifest);
    await new OciLayoutDir(dir).writeBlob(m, [manifest]);
    const tags = Array.from({ length: 8 }, (_, i) => `t${i}`);
    await Promise.all(tags.map((t) => new OciLayoutDir(dir).tag(m, t)));
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(index.manifests.map((e) => e.annotations?.['org.opencontainers.image.ref.name']).sort()).toEqual(tags);
    // the lock is gone afterwards
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });
});

describe('OciLayoutDir: a target that cannot be written', () => {
  test('a file where the layout directory should be is KLN0867 naming the layout (not a bare ENOTDIR)', async () => {
    const m = desc(manifest);
    const file = join(dir, 'afile');
    await writeFile(file, 'x');
    const asFile = new OciLayoutDir(file);
    await expect(asFile.writeBlob(m, [manifest])).rejects.toMatchObject({ code: 'KLN0867', message: expect.stringContaining(`oci-layout://${file}`) });
    await expect(asFile.tag(m, 'v1')).rejects.toMatchObject({ code: 'KLN0867' });
  });

  test('a layout under /proc is KLN0867 at once (typo tour 4: the recursive mkdir never returned)', async () => {
    const m = desc(manifest);
    const proc = new OciLayoutDir('/proc/kiln-typo-tour/layout');
    await expect(proc.writeBlob(m, [manifest])).rejects.toMatchObject({ code: 'KLN0867', message: expect.stringContaining('cannot create /proc/kiln-typo-tour') });
    await expect(proc.tag(m, 'v1')).rejects.toMatchObject({ code: 'KLN0867' });
  });
});
