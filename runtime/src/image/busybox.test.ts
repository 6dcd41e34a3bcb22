import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf } from '../content/digest.js';
import { createBusyboxImage, type BusyboxImage } from './busybox.js';
import { ImageStore } from './image-store.js';
import { readTar } from './tar-pack.js';
import { parseImageConfig } from './manifest.js';
import type { Header } from 'tar-stream';

let root: string;
let store: ContentStore;
let img: BusyboxImage;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-busybox-'));
  store = await ContentStore.open(root);
  img = await createBusyboxImage(store, { names: ['busybox:latest'], images: await ImageStore.open(root), layoutDir: join(root, 'layout') });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('createBusyboxImage', () => {
  test('layer holds busybox, applet symlinks, passwd/group and the right dirs', async () => {
    const headers = new Map<string, Header>();
    const files = new Map<string, string>();
    await readTar((await store.readStream(img.layer.digest)).pipe(createGunzip()), async (h, body) => {
      headers.set(h.name, h);
      if (h.name.startsWith('etc/')) {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        files.set(h.name, Buffer.concat(chunks).toString());
      }
    });
    expect(headers.get('bin/sh')).toMatchObject({ type: 'symlink', linkname: '/bin/busybox' });
    expect(headers.get('usr/bin/env')).toMatchObject({ type: 'symlink', linkname: '/bin/busybox' });
    expect(headers.get('bin/busybox')).toMatchObject({ type: 'file', mode: 0o755, size: (await readFile('/bin/busybox')).length });
    expect(headers.get('tmp/')).toMatchObject({ type: 'directory', mode: 0o1777 });
    expect(headers.get('root/')).toMatchObject({ mode: 0o700 });
    expect(headers.get('home/app/')).toMatchObject({ uid: 1000, gid: 1000 });
    expect(headers.has('linuxrc')).toBe(false);
    expect([...headers.values()].filter((h) => h.type === 'symlink').length).toBe(img.applets.length);
    expect(img.applets.length).toBeGreaterThan(200);
    expect(files.get('etc/passwd')).toContain('app:x:1000:1000:app:/home/app:/bin/sh');
    expect(files.get('etc/group')).toContain('nogroup:x:65534:');
    const names = [...headers.keys()];
    expect(names.indexOf('usr/')).toBeLessThan(names.indexOf('usr/bin/'));
    expect(names.indexOf('usr/bin/')).toBeLessThan(names.indexOf('usr/bin/env'));
  });

  test('the layer tar is byte-identical to the conformance busybox layer (same diff_id)', async () => {
    // README of shared/conformance/images: diff_id of the busybox layer built from the same Debian binary.
    const readme = await readFile(join(__dirname, '../../../../shared/conformance/images/README.md'), 'utf8');
    const m = /its diff_id \(the uncompressed tar\) is\s+`(sha256:[a-f0-9]{64})`/.exec(readme);
    expect(m?.[1]).toBeDefined();
    expect(img.diffID).toBe(m?.[1]);
  });

  test('config, record and determinism', async () => {
    const cfg = parseImageConfig(await store.readBlob(img.config.digest));
    expect(cfg.config?.Cmd).toEqual(['sh']);
    expect(cfg.rootfs.diff_ids).toEqual([img.diffID]);
    expect(cfg.created).toBe('2024-01-01T00:00:00Z');
    const rec = await (await ImageStore.open(root)).mustGet('busybox:latest');
    expect(rec.target.digest).toBe(img.manifest.digest);
    const again = await createBusyboxImage(await ContentStore.open(join(root, 'second')));
    expect(again.manifest.digest).toBe(img.manifest.digest);
    expect(again.layer.digest).toBe(img.layer.digest);
    const index = JSON.parse(await readFile(join(root, 'layout', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]?.digest).toBe(img.manifest.digest);
    expect(digestOf(await readFile(join(root, 'layout', 'blobs', 'sha256', img.layer.digest.slice(7))))).toBe(img.layer.digest);
  });

  test('missing busybox fails with the install command', async () => {
    await expect(createBusyboxImage(store, { busybox: join(root, 'nope') })).rejects.toMatchObject({ code: 'PREREQUISITE_MISSING', hint: expect.stringContaining('busybox-static') });
  });
});
