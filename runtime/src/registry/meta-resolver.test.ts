import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf } from '../content/digest.js';
import { ImageStore } from '../image/image-store.js';
import { importOciLayout, openOciLayout } from '../image/oci-layout.js';
import { parsePlatform } from '../image/platform.js';
import { imageStoreMetaResolver, ociLayoutMetaResolver } from './meta-resolver.js';

const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const README = await readFile(join(IMAGES, 'README.md'), 'utf8');
function readmeDigest(folder: string): string {
  const m = new RegExp('\\| `' + folder + '/` \\|[^\\n]*?`(sha256:[a-f0-9]{64})`').exec(README);
  if (m?.[1] === undefined) throw new Error(`no digest for ${folder}`);
  return m[1];
}
/** Config blob digests named in the README, e.g. "config blob `sha256:…`". */
function readmeConfig(section: string): string {
  const i = README.indexOf(`### ${section} (`);
  const m = /[Cc]onfig blob\s+`(sha256:[a-f0-9]{64})`/.exec(README.slice(i));
  if (m?.[1] === undefined) throw new Error(`no config for ${section}`);
  return m[1];
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-meta-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('image meta resolvers', () => {
  test('over OCI layouts: the names the conformance LLB uses resolve to the README digests', async () => {
    const store = await ContentStore.open(root);
    const r = ociLayoutMetaResolver(
      {
        'localhost:5000/busybox': join(IMAGES, 'busybox'),
        'localhost:5000/busybox-onbuild': join(IMAGES, 'busybox-onbuild'),
        'localhost:5000/busybox-health': join(IMAGES, 'busybox-health'),
        'localhost:5000/files': join(IMAGES, 'files'),
      },
      store,
    );
    for (const [name, section] of [
      ['busybox', 'busybox'],
      ['busybox-onbuild', 'busybox-onbuild'],
      ['busybox-health', 'busybox-health'],
    ] as const) {
      const res = await r.resolveImageConfig(`localhost:5000/${name}:latest`, { platform: parsePlatform('linux/amd64') });
      expect(res.digest).toBe(readmeDigest(name));
      expect(digestOf(res.config)).toBe(readmeConfig(section));
      expect(res.ref).toBe(`localhost:5000/${name}:latest`);
    }
    expect((await r.resolveImageConfig('localhost:5000/busybox:1.35')).digest).toBe(readmeDigest('busybox'));
    const onbuild = await r.resolveImageConfig('localhost:5000/busybox-onbuild');
    expect(onbuild.parsedConfig.config?.OnBuild?.length).toBe(3);
    const files = await r.resolveImageConfig('localhost:5000/files:latest', { platform: parsePlatform('linux/arm64') });
    expect(files.digest).toBe(readmeDigest('files'));
    expect(files.parsedConfig.config?.WorkingDir).toBe('/data');
    await expect(r.resolveImageConfig('localhost:5000/nope')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await expect(r.resolveImageConfig('localhost:5000/busybox:2')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  });

  test('over the kiln image store', async () => {
    const store = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    const desc = await importOciLayout(await openOciLayout(join(IMAGES, 'busybox-health'), store), store);
    await images.put('docker.io/library/health:latest', desc);
    const r = imageStoreMetaResolver(images, store);
    const res = await r.resolveImageConfig('health', { platform: parsePlatform('linux/amd64') });
    expect(res.digest).toBe(readmeDigest('busybox-health'));
    expect(res.parsedConfig.config?.Healthcheck?.Retries).toBe(3);
    await expect(r.resolveImageConfig('other')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    // Pinned by digest: found in the content store under any tag (or none), not only by its exact name.
    const digest = readmeDigest('busybox-health');
    for (const pinned of [`health:latest@${digest}`, `unnamed:v9@${digest}`, `kiln.local/bake/x@${digest}`]) {
      expect((await r.resolveImageConfig(pinned, { platform: parsePlatform('linux/amd64') })).digest).toBe(digest);
    }
    const other = `sha256:${'0'.repeat(64)}`;
    await expect(r.resolveImageConfig(`health:latest@${other}`)).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  });
});
