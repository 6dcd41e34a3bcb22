import { describe, expect, test } from 'vitest';
import { asRunImage, targetNames, type SourcedImage } from './images.js';

const D = `sha256:${'8'.repeat(64)}`;

describe('targetNames', () => {
  test('names to write: normalised tags', () => {
    expect(targetNames('app', ['reg.example:5000/team/app:2'])).toEqual(['docker.io/library/app:latest', 'reg.example:5000/team/app:2']);
  });

  test('a digest reference is refused as a name to write (it would name other content)', () => {
    expect(() => targetNames(`app@${D}`, [])).toThrow(expect.objectContaining({ code: 'KLN0926' }));
    expect(() => targetNames('app', [`app:1@${D}`])).toThrow(expect.objectContaining({ code: 'KLN0926' }));
  });

  test('a name that is not a reference is a KLN0926 refusal, not a bare error', () => {
    expect(() => targetNames('Bad Name', [])).toThrow(expect.objectContaining({ code: 'KLN0926' }));
  });
});

describe('asRunImage', () => {
  test('a run image name that does not parse is a KLN0925 refusal', () => {
    const img = { name: 'not a ref', root: { mediaType: 'x', digest: D, size: 1 } } as unknown as SourcedImage;
    expect(() => asRunImage(img)).toThrow(expect.objectContaining({ code: 'KLN0925' }));
  });
});

describe('readStoreImage', () => {
  test('a digest reference reads that manifest from the content store (the KLN0926 hint: --previous-image NAME@DIGEST)', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { ContentStore, ImageStore, digestOf, jsonBytes } = await import('@kiln/runtime');
    const { readStoreImage } = await import('./images.js');
    const dir = await mkdtemp(join(tmpdir(), 'kiln-rebase-'));
    try {
      const content = await ContentStore.open(join(dir, 'content'));
      const images = await ImageStore.open(join(dir, 'images'));
      const configBytes = jsonBytes({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } });
      const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(configBytes), size: configBytes.length };
      const manifestBytes = jsonBytes({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] });
      const m = digestOf(manifestBytes);
      await content.writeBlob(configBytes, config.digest);
      await content.writeBlob(manifestBytes, m);
      // not named in the image store (the name moved on to another image): found by its digest
      const img = await readStoreImage(content, images, `app@${m}`, { os: 'linux', architecture: 'amd64' });
      expect(img?.root.digest).toBe(m);
      expect(img?.root.size).toBe(manifestBytes.length);
      expect(img?.config.os).toBe('linux');
      expect(img?.name).toBe(`docker.io/library/app@${m}`);
      expect(await readStoreImage(content, images, `app@sha256:${'0'.repeat(64)}`, { os: 'linux', architecture: 'amd64' })).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
