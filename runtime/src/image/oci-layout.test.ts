import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf } from '../content/digest.js';
import { findLayoutImage, importOciLayout, openOciLayout, writeOciLayoutDir, writeOciLayoutTar } from './oci-layout.js';
import { parsePlatform } from './platform.js';
import { resolveImage, storeFetcher } from './resolve.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const README = await readFile(join(IMAGES, 'README.md'), 'utf8');
/** Digests come from the conformance README table, never from our encoder. */
function readmeDigest(folder: string): string {
  const m = new RegExp('\\| `' + folder + '/` \\|[^\\n]*?`(sha256:[a-f0-9]{64})`').exec(README);
  if (m?.[1] === undefined) throw new Error(`no digest for ${folder} in README`);
  return m[1];
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-layout-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('OCI layouts (conformance images)', () => {
  test.for(['busybox', 'busybox-onbuild', 'busybox-health', 'files'])('%s: open, find, import, resolve', async (name) => {
    const store = await ContentStore.open(root);
    const layout = await openOciLayout(join(IMAGES, name), store);
    const desc = findLayoutImage(layout.index, 'latest');
    expect(desc.digest).toBe(readmeDigest(name));
    await importOciLayout(layout, store, { ref: 'latest' });
    const img = await resolveImage(storeFetcher(store), desc, parsePlatform('linux/amd64'));
    expect(img.config.os).toBe('linux');
    expect(img.config.architecture).toBe('amd64');
    expect(img.config.rootfs.diff_ids.length).toBe(img.manifest.layers.length);
    for (const l of img.manifest.layers) expect(await store.has(l.digest)).toBe(true);
  });

  test('files: platform selection through the nested index', async () => {
    const store = await ContentStore.open(root);
    const layout = await openOciLayout(join(IMAGES, 'files'), store);
    const root0 = findLayoutImage(layout.index);
    const arm = await resolveImage(layout.provider, root0, parsePlatform('linux/aarch64'));
    expect(arm.manifestDescriptor.digest).toBe('sha256:91767b7582beea2a41c166632be0dfd12a8fbb3062a2415012bb08326135ea0d');
    expect(arm.manifest.config.digest).toBe('sha256:8ad8350885e1d21f25674517df261a5cd376999600638417c1a0be945252c0c6');
    expect(arm.config.rootfs.diff_ids).toEqual(['sha256:af6f6a3a069454175dd77188e453c871e9e86e4b71265ce725bade1e15346bba']);
    expect(arm.config.config?.Env).toContain('FILES_PLATFORM=linux/arm64');
    await expect(resolveImage(layout.provider, root0, parsePlatform('linux/ppc64le'))).rejects.toMatchObject({ code: 'PLATFORM_NOT_FOUND' });
    // Importing one platform copies only its blobs.
    await importOciLayout(layout, store, { platform: parsePlatform('linux/arm64') });
    expect(await store.has(arm.manifestDescriptor.digest)).toBe(true);
    expect(await store.has('sha256:5252ce0dbdab6089f12d096340f324c17f24b7cb78e9d2af2f631ca23bf6cf80' as never)).toBe(false);
  });

  test('busybox: both tags name the same manifest; unknown tags fail', async () => {
    const store = await ContentStore.open(root);
    const layout = await openOciLayout(join(IMAGES, 'busybox'), store);
    expect(findLayoutImage(layout.index, '1.35').digest).toBe(readmeDigest('busybox'));
    expect(() => findLayoutImage(layout.index, 'nope')).toThrow(expect.objectContaining({ code: 'IMAGE_NOT_FOUND' }));
    await expect(openOciLayout(join(root, 'missing'), store)).rejects.toMatchObject({ code: 'LAYOUT_INVALID' });
  });

  test('write a layout dir and tarball from the store, read them back', async () => {
    const store = await ContentStore.open(root);
    const src = await openOciLayout(join(IMAGES, 'files'), store);
    const desc = await importOciLayout(src, store);
    await writeOciLayoutDir(store, join(root, 'out'), [{ descriptor: desc, names: ['docker.io/library/files:v1', 'x'] }]);
    const dir = await openOciLayout(join(root, 'out'), store);
    expect(findLayoutImage(dir.index, 'v1').digest).toBe(readmeDigest('files'));
    expect(findLayoutImage(dir.index, 'x').digest).toBe(readmeDigest('files'));
    expect(dir.index.manifests[0]?.annotations?.['io.containerd.image.name']).toBe('docker.io/library/files:v1');
    await writeOciLayoutTar(store, join(root, 'out.tar'), [{ descriptor: desc, names: ['v1'] }]);
    const fresh = await ContentStore.open(join(root, 'fresh'));
    const tar = await openOciLayout(join(root, 'out.tar'), fresh);
    const img = await resolveImage(tar.provider, findLayoutImage(tar.index, 'v1'), parsePlatform('linux/amd64'));
    expect(img.manifestDescriptor.digest).toBe('sha256:5252ce0dbdab6089f12d096340f324c17f24b7cb78e9d2af2f631ca23bf6cf80');
    // Deterministic: writing twice gives the same bytes.
    await writeOciLayoutTar(store, join(root, 'out2.tar'), [{ descriptor: desc, names: ['v1'] }]);
    expect(digestOf(await readFile(join(root, 'out2.tar')))).toBe(digestOf(await readFile(join(root, 'out.tar'))));
  });
});
