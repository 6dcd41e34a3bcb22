import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { ImageStore } from '../image/image-store.js';
import { parsePlatform } from '../image/platform.js';
import { ensureImage } from './ensure-image.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const layouts = { 'localhost:5000/busybox': join(IMAGES, 'busybox'), 'localhost:5000/files': join(IMAGES, 'files') };

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-ensure-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('ensureImage', () => {
  test('imports from a layout once, then serves from the store', async () => {
    const store = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    const first = await ensureImage('localhost:5000/busybox:1.35', { store, images, layouts, platform: parsePlatform('linux/amd64') });
    expect(first).toMatchObject({ source: 'layout', ref: 'localhost:5000/busybox:1.35' });
    expect(first.manifestDescriptor.digest).toBe('sha256:e14e06e5c350e5445beb0f39fbc33c13636d555eff1e97858958927c6e3cb7dc');
    expect(await store.has(first.manifest.layers[0]?.digest ?? ('' as never))).toBe(true);
    const again = await ensureImage('localhost:5000/busybox:1.35', { store, images, layouts });
    expect(again.source).toBe('local');
    expect(again.config.config?.Cmd).toEqual(['sh']);
  });

  test('multi-platform: only the selected platform is imported; the root stays the index', async () => {
    const store = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    const arm = await ensureImage('localhost:5000/files', { store, images, layouts, platform: parsePlatform('linux/arm64') });
    expect(arm.root.digest).toBe('sha256:5565f25afad991c0bdb436f2d2e609b03b64c6021eeb31fb3471cbbb845f8736');
    expect(arm.config.architecture).toBe('arm64');
    expect(await store.has('sha256:f4da4d5940300df7f961a948d3956979f8e81e9511bcd6016e9efb0ab87cf9de' as never)).toBe(false);
    // amd64 is not local yet → imported again from the layout
    const amd = await ensureImage('localhost:5000/files', { store, images, layouts, platform: parsePlatform('linux/amd64') });
    expect(amd.source).toBe('layout');
    expect(amd.config.architecture).toBe('amd64');
  });

  test('local-only mode fails clearly for a missing image', async () => {
    const store = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    await expect(ensureImage('busybox', { store, images, resolveMode: 'local' })).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await expect(ensureImage('busybox', { store, images })).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  });

  test('a name pinned by digest gets a record (written without fsync); a torn one is made again, a torn tag record is an error', async () => {
    const store = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    const first = await ensureImage('localhost:5000/busybox:1.35', { store, images, layouts, platform: parsePlatform('linux/amd64') });
    const pinned = `localhost:5000/busybox@${first.manifestDescriptor.digest}`;
    const byDigest = await ensureImage(pinned, { store, images, platform: parsePlatform('linux/amd64') });
    expect(byDigest).toMatchObject({ source: 'local', ref: pinned });
    expect((await images.get(pinned))?.target.digest).toBe(first.root.digest);
    const { writeFile, readdir } = await import('node:fs/promises');
    expect((await readdir(images.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // What a power loss can leave of a record written without fsync: an empty file.
    await writeFile(join(images.dir, `${encodeURIComponent(pinned)}.json`), '');
    expect((await ensureImage(pinned, { store, images, platform: parsePlatform('linux/amd64') })).source).toBe('local');
    expect((await images.get(pinned))?.target.digest).toBe(first.root.digest);
    await writeFile(join(images.dir, `${encodeURIComponent('localhost:5000/busybox:1.35')}.json`), '');
    await expect(ensureImage('localhost:5000/busybox:1.35', { store, images })).rejects.toThrow();
  });
});
