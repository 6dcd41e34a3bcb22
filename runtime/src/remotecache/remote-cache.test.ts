import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ContentStore } from '../content/store.js';
import { digestOf, parseDigest } from '../content/digest.js';
import { cacheManifestList, convertLayerMediaType, openLocalCache, openRegistryCache, pushRegistryCache, writeLocalCache } from './remote-cache.js';
import { RegistryClient } from '../registry/client.js';
import { parseReference } from '../registry/reference.js';
import { startRegistry } from '../../test/helpers/registry.js';
import { withLayoutLock } from './layout-lock.js';

const H = (c: string) => parseDigest(`sha256:${c.repeat(64).slice(0, 64)}`);
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('cache manifest list (cache/remotecache/export.go Finalize)', () => {
  test('layers first (media types converted), the cache config last; Go field order, sorted annotations', () => {
    const config = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: H('c'), size: 12 };
    const layer = { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: H('a'), size: 5, annotations: { 'containerd.io/uncompressed': H('d'), 'buildkit/createdat': '2024-01-01T00:00:00Z' } };
    const oci = cacheManifestList([layer], config, true);
    expect(oci.bytes.toString()).toBe(
      `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
        `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${H('a')}","size":5,"annotations":{"buildkit/createdat":"2024-01-01T00:00:00Z","containerd.io/uncompressed":"${H('d')}"}},` +
        `{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"${H('c')}","size":12}]}`,
    );
    expect(oci.descriptor).toEqual({ mediaType: 'application/vnd.oci.image.index.v1+json', digest: digestOf(oci.bytes), size: oci.bytes.length });
    const docker = cacheManifestList([layer], config, false);
    expect(JSON.parse(docker.bytes.toString())).toMatchObject({ mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }, {}] });
  });

  test('compression.ConvertAllLayerMediaTypes: same compression in the other family; zstd stays OCI', () => {
    expect(convertLayerMediaType('application/vnd.oci.image.layer.v1.tar', false)).toBe('application/vnd.docker.image.rootfs.diff.tar');
    expect(convertLayerMediaType('application/vnd.docker.image.rootfs.diff.tar', true)).toBe('application/vnd.oci.image.layer.v1.tar');
    expect(convertLayerMediaType('application/vnd.oci.image.layer.v1.tar+zstd', false)).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(convertLayerMediaType('application/vnd.buildkit.cacheconfig.v0', true)).toBe('application/vnd.buildkit.cacheconfig.v0');
  });
});

describe('local cache layout', () => {
  test('written blobs and index.json tag read back; a second tag is added, the same tag replaced', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    const store = await ContentStore.open(join(root, 'store'));
    const blob = await store.writeBlob(Buffer.from('layer bytes'));
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob.digest, size: blob.size };
    const cfgBytes = Buffer.from('{}');
    const cfg = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(cfgBytes), size: cfgBytes.length };
    const dest = join(root, 'cache');
    const write = async (tag: string) => {
      const list = cacheManifestList([layer], cfg, true);
      await writeLocalCache(store, dest, tag, [layer], [{ descriptor: cfg, bytes: cfgBytes }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor);
      return list.descriptor;
    };
    const first = await write('latest');
    await write('v2');
    await write('latest');
    const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort()).toEqual(['latest', 'v2']);
    expect(JSON.parse(await readFile(join(dest, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const reader = await openLocalCache(dest, 'latest');
    expect(reader.root.digest).toBe(first.digest);
    expect((await reader.fetch(cfg)).toString()).toBe('{}');
    const chunks: Buffer[] = [];
    for await (const c of await reader.open(layer)) chunks.push(Buffer.from(c));
    expect(Buffer.concat(chunks).toString()).toBe('layer bytes');
    await expect(openLocalCache(dest, 'nope')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    await expect(openLocalCache(join(root, 'missing'))).rejects.toMatchObject({ code: 'LAYOUT_INVALID' });
  });

  test('a destination the layout cannot be made in is refused at once, naming it: under /proc (Node\'s recursive mkdir spun there for ever), under a file, through a symlink to nothing', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    const store = await ContentStore.open(join(root, 'store'));
    const blob = await store.writeBlob(Buffer.from('layer bytes'));
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob.digest, size: blob.size };
    const cfgBytes = Buffer.from('{}');
    const cfg = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(cfgBytes), size: cfgBytes.length };
    const list = cacheManifestList([layer], cfg, true);
    const write = (dest: string): Promise<void> => writeLocalCache(store, dest, 'latest', [layer], [{ descriptor: cfg, bytes: cfgBytes }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor);
    await writeFile(join(root, 'file'), 'x');
    await symlink(join(root, 'nowhere'), join(root, 'dangling'));
    const cases: [string, string][] = [
      ['/proc/kiln-rc-test/cache', 'cannot create /proc/kiln-rc-test'],
      [join(root, 'file', 'cache'), `${join(root, 'file')} is not a directory`],
      [join(root, 'dangling', 'cache'), `${join(root, 'dangling')} is a symbolic link to ${join(root, 'nowhere')}, which does not exist`],
    ];
    for (const [dest, why] of cases) {
      await expect(write(dest)).rejects.toMatchObject({ code: 'EXPORT_FAILED', message: expect.stringContaining(`cannot make the cache directory: ${why}`), hint: expect.stringMatching(/^name a directory/) });
    }
    expect(existsSync(join(root, 'nowhere'))).toBe(false);
  }, 10_000);

  test('concurrent exports into one directory keep every tag (index.json is updated under a lock)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    const store = await ContentStore.open(join(root, 'store'));
    const dest = join(root, 'cache');
    const tags = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    await Promise.all(
      tags.map(async (tag) => {
        const blob = await store.writeBlob(Buffer.from(`layer ${tag}`));
        const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: blob.digest, size: blob.size };
        const cfgBytes = Buffer.from(`{"t":"${tag}"}`);
        const cfg = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(cfgBytes), size: cfgBytes.length };
        const list = cacheManifestList([layer], cfg, true);
        await writeLocalCache(store, dest, tag, [layer], [{ descriptor: cfg, bytes: cfgBytes }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor);
      }),
    );
    const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']).sort()).toEqual(tags);
    for (const tag of tags) expect((await openLocalCache(dest, tag)).root.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  });

  test('a lock left by a dead process is broken; one held by a live process that never lets go fails the wait with a hint', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    const lock = join(root, '.index.json.lock');
    await writeFile(lock, String(2 ** 22 + 17)); // above pid_max: no such process
    expect(await withLayoutLock(lock, undefined, async () => 'ran')).toBe('ran');
    await writeFile(lock, '1'); // init: alive, and not an export
    await expect(withLayoutLock(lock, undefined, async () => 'ran', 200)).rejects.toMatchObject({ code: 'EXPORT_FAILED', hint: expect.stringContaining(lock) as unknown });
  });

  test('an export cancelled part way (Ctrl-C) leaves the earlier cache of the directory as it was, and no temp or lock file', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    const store = await ContentStore.open(join(root, 'store'));
    const dest = join(root, 'cache');
    const write = async (n: number, signal?: AbortSignal, onBlob?: () => void) => {
      const blobs = await Promise.all([0, 1, 2].map((i) => store.writeBlob(Buffer.from(`layer ${n} ${i}`))));
      const layers = blobs.map((b) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: b.digest, size: b.size }));
      const cfgBytes = Buffer.from(`{"n":${n}}`);
      const cfg = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(cfgBytes), size: cfgBytes.length };
      const list = cacheManifestList(layers, cfg, true);
      await writeLocalCache(store, dest, 'latest', layers, [{ descriptor: cfg, bytes: cfgBytes }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor, onBlob, signal);
      return list.descriptor;
    };
    const before = await write(1);
    const indexBefore = await readFile(join(dest, 'index.json'), 'utf8');
    const ac = new AbortController();
    await expect(write(2, ac.signal, () => ac.abort(new Error('interrupted')))).rejects.toThrow('interrupted');
    expect(await readFile(join(dest, 'index.json'), 'utf8')).toBe(indexBefore);
    expect((await openLocalCache(dest)).root.digest).toBe(before.digest);
    expect((await readdir(dest)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    expect((await readdir(join(dest, 'blobs', 'sha256'))).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  test('a config or manifest blob is read whole only up to 1 MiB and its declared size (import.go readBlob): a larger file is refused before it is read', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    const store = await ContentStore.open(join(root, 'store'));
    const big = Buffer.alloc((1 << 20) + 10, 120);
    const bigDesc = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(big), size: big.length };
    const list = cacheManifestList([], bigDesc, true);
    const dest = join(root, 'cache');
    await writeLocalCache(store, dest, 'latest', [], [{ descriptor: bigDesc, bytes: big }, { descriptor: list.descriptor, bytes: list.bytes }], list.descriptor);
    const reader = await openLocalCache(dest);
    await expect(reader.fetch(bigDesc)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
    // Declared small, the file is not: refused (not read whole, then found wrong).
    await expect(reader.fetch({ ...bigDesc, size: 100 })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    // Same for a file grown on disk after the descriptor was written.
    const small = Buffer.from('{}');
    const smallDesc = { ...bigDesc, digest: digestOf(small), size: small.length };
    await writeFile(join(dest, 'blobs', 'sha256', smallDesc.digest.slice(7)), big);
    await expect(reader.fetch(smallDesc)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
  });
});

describe('registry cache reads', () => {
  test('a config blob larger than 1 MiB, or than its descriptor says, is refused without being buffered whole', async () => {
    const registry = await startRegistry();
    const root = await mkdtemp(join(tmpdir(), 'kiln-rc-'));
    dirs.push(root);
    try {
      const store = await ContentStore.open(join(root, 'store'));
      const client = new RegistryClient({});
      const big = Buffer.alloc(3 << 20, 120);
      const bigDesc = { mediaType: 'application/vnd.buildkit.cacheconfig.v0', digest: digestOf(big), size: big.length };
      await store.writeBlob(big);
      const list = cacheManifestList([], bigDesc, true);
      const ref = parseReference(`${registry.host}/cache/big:latest`);
      await pushRegistryCache(client, store, ref, [], [{ descriptor: bigDesc, bytes: big }], { descriptor: list.descriptor, bytes: list.bytes });
      const reader = await openRegistryCache(client, ref);
      await expect(reader.fetch(bigDesc)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
      await expect(reader.fetch({ ...bigDesc, size: 100 })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      // A digest that would change the request path is refused before any request.
      const evil = { ...bigDesc, size: 10, digest: '../../cache/big/manifests/latest' as typeof bigDesc.digest };
      await expect(reader.fetch(evil)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
      await expect(reader.open(evil)).rejects.toMatchObject({ code: 'MANIFEST_INVALID' });
    } finally {
      await registry.stop();
    }
  }, 60_000);
});
