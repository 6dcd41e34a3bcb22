import { describe, expect, test } from 'vitest';
import { resolveKilnRoot } from './root.js';

describe('resolveKilnRoot', () => {
  test.for([
    [{ root: '/opt/k', env: { KILN_ROOT: '/e' }, uid: 0 }, '/opt/k', 'option'],
    [{ env: { KILN_ROOT: '/e', XDG_DATA_HOME: '/x' }, uid: 1000 }, '/e', 'env'],
    [{ env: { XDG_DATA_HOME: '/x' }, uid: 0 }, '/var/lib/kiln', 'default-root'],
    [{ env: { XDG_DATA_HOME: '/x' }, uid: 1000 }, '/x/kiln', 'default-user'],
    [{ env: {}, uid: 1000, home: '/home/u' }, '/home/u/.local/share/kiln', 'default-user'],
    [{ env: { KILN_ROOT: '' }, uid: 0 }, '/var/lib/kiln', 'default-root'],
  ] as const)('%j → %s', ([opts, path, source]) => {
    expect(resolveKilnRoot(opts)).toEqual({ path, source });
  });
});

describe('openKilnStores', () => {
  test('creates content and image stores under the root', async () => {
    const { mkdtemp, rm, stat } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { openKilnStores } = await import('./root.js');
    const dir = await mkdtemp(join(tmpdir(), 'kiln-root-'));
    try {
      const s = await openKilnStores(dir);
      const blob = await s.content.writeBlob(Buffer.from('x'));
      expect((await stat(join(dir, 'content', 'blobs', 'sha256', blob.digest.slice(7)))).size).toBe(1);
      await s.images.put('docker.io/library/x:latest', { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...blob });
      expect((await stat(join(dir, 'images'))).isDirectory()).toBe(true);
      expect((await s.images.list()).map((r) => r.name)).toEqual(['docker.io/library/x:latest']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
