import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chown, lchown, lstat, lutimes, mkdir, mkdtemp, open, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { registryTest } from '../helpers/registry.js';
import { ContentStore, convertLayer, createBusyboxImage, parseOutputSpec, readTar, runExport, type BusyboxImage, type ExportImageSource } from '@kiln/runtime';

// Exporter output checked against what BuildKit v0.11.6 writes (exporter/containerimage/writer.go,
// containerd images/archive/exporter.go, session/filesync/filesync.go), read back with skopeo/umoci.

const run = promisify(execFile);

let root: string;
let store: ContentStore;
let bb: BusyboxImage;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-exporter-bk-'));
  store = await ContentStore.open(join(root, 'state'));
  bb = await createBusyboxImage(store);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Hist {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** Exports `source` as an OCI layout directory and returns its raw image config (skopeo finds it by tag). */
async function exportedConfig(source: ExportImageSource, name: string): Promise<{ history: Hist[]; rootfs: { diff_ids: string[] } }> {
  const dest = join(root, name);
  await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/${name}:v1`), { image: source }, { store });
  const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${dest}:v1`])).stdout) as { config: { digest: string } };
  return JSON.parse(await readFile(join(dest, 'blobs', 'sha256', raw.config.digest.slice(7)), 'utf8')) as { history: Hist[]; rootfs: { diff_ids: string[] } };
}

describe('image config history (BuildKit normalizeLayersAndHistory)', () => {
  test('surplus history entries are marked empty_layer from the newest end, oldest kept', async () => {
    const layer = { descriptor: bb.layer, diffID: bb.diffID };
    const cfg = await exportedConfig(
      { layers: [layer], config: { os: 'linux', architecture: 'amd64', history: [{ created_by: 'ADD rootfs' }, { created_by: 'RUN stray' }] } },
      'hist-surplus',
    );
    // writer.go: `if l >= len(remote.Descriptors) { h.EmptyLayer = true }` walking oldest first.
    expect(cfg.history.map((h) => [h.created_by, h.empty_layer === true])).toEqual([
      ['ADD rootfs', false],
      ['RUN stray', true],
    ]);
  });

  test('missing history entries are appended after the existing ones with buildkit.exporter.image.v0', async () => {
    const layer = { descriptor: bb.layer, diffID: bb.diffID };
    const cfg = await exportedConfig(
      {
        layers: [layer, layer],
        config: { os: 'linux', architecture: 'amd64', created: '2024-01-01T00:00:00Z', history: [{ created_by: 'FROM busybox' }, { created_by: 'ENV A=1', empty_layer: true }] },
      },
      'hist-missing',
    );
    expect(cfg.rootfs.diff_ids).toEqual([bb.diffID, bb.diffID]);
    expect(cfg.history.map((h) => [h.created_by, h.empty_layer === true, h.comment])).toEqual([
      ['FROM busybox', false, undefined],
      ['ENV A=1', true, undefined],
      // getRefMetadata's fallback description: kiln keeps no per-layer description.
      ['created by buildkit', false, 'buildkit.exporter.image.v0'],
    ]);
    expect(cfg.history[2]?.created).toBe('2024-01-01T00:00:00Z');
  });
});

describe('history created times (BuildKit normalizeLayersAndHistory fills them)', () => {
  test('layer entries without created get the layer time, config-only entries the first new layer time', async () => {
    const layer = { descriptor: bb.layer, diffID: bb.diffID };
    const cfg = await exportedConfig(
      {
        layers: [layer, layer],
        config: {
          os: 'linux',
          architecture: 'amd64',
          // kiln has no per-layer creation time: the image's created time stands in for it.
          created: '2024-06-01T00:00:00Z',
          history: [{ created: '2024-01-01T00:00:00Z', created_by: 'FROM' }, { created_by: 'ENV A=1', empty_layer: true }, { created_by: 'RUN x' }, { created_by: 'CMD ["sh"]', empty_layer: true }],
        },
      },
      'hist-created',
    );
    expect(cfg.history.map((h) => [h.created_by, h.created])).toEqual([
      ['FROM', '2024-01-01T00:00:00Z'],
      ['ENV A=1', '2024-06-01T00:00:00Z'],
      ['RUN x', '2024-06-01T00:00:00Z'],
      ['CMD ["sh"]', '2024-06-01T00:00:00Z'],
    ]);
  });
});

describe('config created when the config has none (BuildKit patchImageConfig)', () => {
  test('the last history time, or null without any', async () => {
    const layer = { descriptor: bb.layer, diffID: bb.diffID };
    const withHistory = await exportedConfig(
      { layers: [layer], config: { os: 'linux', architecture: 'amd64', history: [{ created: '2024-01-01T00:00:00Z', created_by: 'a' }, { created: '2024-02-01T00:00:00Z', created_by: 'b', empty_layer: true }] } },
      'created-from-history',
    );
    expect((withHistory as unknown as { created: unknown }).created).toBe('2024-02-01T00:00:00Z');
    const bare = await exportedConfig({ layers: [layer], config: { os: 'linux', architecture: 'amd64' } }, 'created-null');
    expect(Object.entries(bare as unknown as Record<string, unknown>).find(([k]) => k === 'created')).toEqual(['created', null]);
  });
});

describe('type=local', () => {
  test('every entry is owned by the exporting process, as BuildKit\'s filesync receiver writes it', async () => {
    const tree = join(root, 'owned-tree');
    await mkdir(join(tree, 'home', 'app'), { recursive: true });
    await writeFile(join(tree, 'home', 'app', 'notes'), 'x');
    await symlink('notes', join(tree, 'home', 'app', 'link'));
    await chown(join(tree, 'home', 'app'), 1000, 1000);
    await chown(join(tree, 'home', 'app', 'notes'), 1234, 5678);
    await lchown(join(tree, 'home', 'app', 'link'), 1000, 1000);
    const dest = join(root, 'owned-out');
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { rootfs: tree }, { store });
    const self = { uid: process.getuid?.(), gid: process.getgid?.() };
    for (const p of ['home/app', 'home/app/notes', 'home/app/link']) expect(await lstat(join(dest, p)), p).toMatchObject(self);
    // Merging into an existing directory takes ownership of what it writes too.
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { rootfs: tree }, { store });
    expect(await lstat(join(dest, 'home', 'app', 'notes'))).toMatchObject(self);
  });
});

/** name → [mode, body] of every entry of a tarball. */
async function tarEntries(file: string): Promise<Map<string, { mode: number; body: Buffer }>> {
  const out = new Map<string, { mode: number; body: Buffer }>();
  await readTar(createReadStream(file), async (h, body) => {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(Buffer.from(c));
    out.set(h.name, { mode: h.mode ?? -1, body: Buffer.concat(chunks) });
  });
  return out;
}

describe('archive tarballs (containerd images/archive exporter, as BuildKit v0.11 uses it)', () => {
  const source = (): ExportImageSource => ({ layers: [{ descriptor: bb.layer, diffID: bb.diffID }], config: { os: 'linux', architecture: 'amd64', config: { Cmd: ['sh'] } } });

  test('type=docker: manifest.json, index.json, oci-layout and blobs only (no legacy repositories file), containerd modes', async () => {
    const dest = join(root, 'docker.tar');
    await runExport(parseOutputSpec(`type=docker,dest=${dest},name=app:1`), { image: source() }, { store });
    const entries = await tarEntries(dest);
    const names = [...entries.keys()];
    expect(names.filter((n) => !n.startsWith('blobs/sha256/') || n === 'blobs/sha256/')).toEqual(['blobs/', 'blobs/sha256/', 'index.json', 'manifest.json', 'oci-layout']);
    const modes = Object.fromEntries([...entries].map(([n, e]) => [n.startsWith('blobs/sha256/') && n.length > 13 ? 'blob' : n, e.mode]));
    expect(modes).toEqual({ 'blobs/': 0o755, 'blobs/sha256/': 0o755, blob: 0o444, 'index.json': 0o644, 'manifest.json': 0o644, 'oci-layout': 0o444 });
    expect(JSON.parse(entries.get('manifest.json')?.body.toString() ?? '[]')).toMatchObject([{ RepoTags: ['app:1'] }]);
    // skopeo finds the image by its RepoTags entry (docker load does the same).
    expect(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${dest}:docker.io/library/app:1`])).stdout)).toMatchObject({ Architecture: 'amd64' });
  });

  test('type=docker without a name: RepoTags is null, as Go marshals containerd\'s nil slice', async () => {
    const dest = join(root, 'docker-noname.tar');
    await runExport(parseOutputSpec(`type=docker,dest=${dest}`), { image: source() }, { store });
    const text = (await tarEntries(dest)).get('manifest.json')?.body.toString() ?? '';
    expect(text).toMatch(/^\[\{"Config":"blobs\/sha256\/[0-9a-f]{64}","RepoTags":null,"Layers":\["blobs\/sha256\/[0-9a-f]{64}"\]\}\]$/);
    expect(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${dest}`])).stdout)).toMatchObject({ Architecture: 'amd64' });
  });
});

describe('index.json of type=oci / type=docker (BuildKit exporter/oci: created annotation on the root descriptor)', () => {
  const source = (): ExportImageSource => ({ layers: [{ descriptor: bb.layer, diffID: bb.diffID }], config: { os: 'linux', architecture: 'amd64' } });
  const indexOf = async (tarball: string): Promise<{ manifests: { digest: string; annotations?: Record<string, string> }[] }> =>
    JSON.parse((await tarEntries(tarball)).get('index.json')?.body.toString() ?? '{}') as { manifests: { digest: string; annotations?: Record<string, string> }[] };

  test('SOURCE_DATE_EPOCH sets org.opencontainers.image.created next to the name annotations, keys sorted as Go marshals a map', async () => {
    const dest = join(root, 'created.tar');
    const res = await runExport(parseOutputSpec(`type=oci,dest=${dest},name=kiln/app:v1,localhost:5000/x`), { image: source() }, { store, sourceDateEpoch: 1_700_000_000 });
    const idx = await indexOf(dest);
    expect(idx.manifests.map((m) => [m.digest, m.annotations])).toEqual([
      [res.digest, { 'io.containerd.image.name': 'docker.io/kiln/app:v1', 'org.opencontainers.image.created': '2023-11-14T22:13:20Z', 'org.opencontainers.image.ref.name': 'v1' }],
      [res.digest, { 'io.containerd.image.name': 'localhost:5000/x:latest', 'org.opencontainers.image.created': '2023-11-14T22:13:20Z', 'org.opencontainers.image.ref.name': 'latest' }],
    ]);
    expect(Object.keys(idx.manifests[0]?.annotations ?? {})).toEqual(['io.containerd.image.name', 'org.opencontainers.image.created', 'org.opencontainers.image.ref.name']);
    expect(JSON.parse((await run('skopeo', ['inspect', `oci-archive:${dest}:v1`])).stdout)).toMatchObject({ Digest: res.digest });
    // containerd's archive writer leaves tar.Header.ModTime zero (Go writes 0) whatever SOURCE_DATE_EPOCH is.
    const { stdout } = await run('tar', ['--numeric-owner', '--full-time', '-tvf', dest], { env: { ...process.env, TZ: 'UTC' } });
    expect(new Set(stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(3, 5).join(' ')))).toEqual(new Set(['1970-01-01 00:00:00']));
  });

  test('a single-platform root descriptor carries its platform (v0.11 Commit: mfstDesc.Platform), after the annotations', async () => {
    const dest = join(root, 'platform-entry.tar');
    const res = await runExport(parseOutputSpec(`type=oci,dest=${dest},name=kiln/p:1`), { image: source() }, { store, sourceDateEpoch: 0 });
    const text = (await tarEntries(dest)).get('index.json')?.body.toString() ?? '';
    expect(text).toContain(
      `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${res.digest}","size":${res.descriptor?.size},` +
        '"annotations":{"io.containerd.image.name":"docker.io/kiln/p:1","org.opencontainers.image.created":"1970-01-01T00:00:00Z","org.opencontainers.image.ref.name":"1"},' +
        '"platform":{"architecture":"amd64","os":"linux"}}',
    );
    // An index root has none (BuildKit's idxDesc).
    const multi = join(root, 'platform-entry-multi.tar');
    await runExport(parseOutputSpec(`type=oci,dest=${multi}`), { image: [source(), { ...source(), config: { os: 'linux', architecture: 'arm64' } }] }, { store });
    expect((await indexOf(multi)).manifests[0]).not.toHaveProperty('platform');
  });

  test('names with a digest: ref.name is containerd reference.Parse Object (@sha256:… / v1@sha256:…), RepoTags keep the digest', async () => {
    const d = `sha256:${'ab'.repeat(32)}`;
    const oci = join(root, 'digest-names.tar');
    await runExport(parseOutputSpec(`type=oci,dest=${oci},"name=kiln/app@${d},kiln/app:v1@${d}"`), { image: source() }, { store });
    expect((await indexOf(oci)).manifests.map((m) => [m.annotations?.['io.containerd.image.name'], m.annotations?.['org.opencontainers.image.ref.name']])).toEqual([
      [`docker.io/kiln/app@${d}`, `@${d}`],
      [`docker.io/kiln/app:v1@${d}`, `v1@${d}`],
    ]);
    const docker = join(root, 'digest-names-docker.tar');
    await runExport(parseOutputSpec(`type=docker,dest=${docker},"name=kiln/app@${d},kiln/app:v1@${d}"`), { image: source() }, { store });
    expect(JSON.parse((await tarEntries(docker)).get('manifest.json')?.body.toString() ?? '[]')).toMatchObject([{ RepoTags: [`kiln/app@${d}`, `kiln/app:v1@${d}`] }]);
  });

  test('without names and without SOURCE_DATE_EPOCH: one entry, created is the export time (RFC 3339, seconds)', async () => {
    const dest = join(root, 'created-docker.tar');
    const before = Math.floor(Date.now() / 1000) * 1000;
    await runExport(parseOutputSpec(`type=docker,dest=${dest}`), { image: source() }, { store });
    const after = Date.now();
    const idx = await indexOf(dest);
    expect(idx.manifests.length).toBe(1);
    const created = idx.manifests[0]?.annotations?.['org.opencontainers.image.created'] ?? '';
    expect(created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(created)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(created)).toBeLessThanOrEqual(after);
    expect(Object.keys(idx.manifests[0]?.annotations ?? {})).toEqual(['org.opencontainers.image.created']);
  });
});

describe('SOURCE_DATE_EPOCH in type=local / type=tar (BuildKit #2918: the epoch overwrites every output file time)', () => {
  const EPOCH = 1_700_000_000;
  async function timedTree(name: string): Promise<string> {
    const tree = join(root, name);
    await mkdir(join(tree, 'd'), { recursive: true });
    await writeFile(join(tree, 'd', 'old'), 'old');
    await writeFile(join(tree, 'd', 'new'), 'new');
    await symlink('old', join(tree, 'd', 'ln'));
    await utimes(join(tree, 'd', 'old'), new Date('2001-02-03T04:05:06.700Z'), new Date('2001-02-03T04:05:06.700Z'));
    await utimes(join(tree, 'd', 'new'), new Date('2030-01-01T00:00:00.200Z'), new Date('2030-01-01T00:00:00.200Z'));
    await lutimes(join(tree, 'd', 'ln'), new Date('2001-01-01T00:00:00Z'), new Date('2001-01-01T00:00:00Z'));
    await utimes(join(tree, 'd'), new Date('2002-01-01T00:00:00Z'), new Date('2002-01-01T00:00:00Z'));
    return tree;
  }
  const tarTimes = async (file: string): Promise<Record<string, string>> => {
    const { stdout } = await run('tar', ['--numeric-owner', '--full-time', '-tvf', file], { env: { ...process.env, TZ: 'UTC' } });
    return Object.fromEntries(stdout.trim().split('\n').map((l) => { const f = l.split(/\s+/); return [f[5] ?? '', `${f[3]} ${f[4]}`]; }));
  };

  test('type=tar: every entry gets the epoch, older files too (set, not clamped)', async () => {
    const tree = await timedTree('sde-tar-tree');
    const dest = join(root, 'sde.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { rootfs: tree }, { store, sourceDateEpoch: EPOCH });
    expect(await tarTimes(dest)).toEqual({ 'd/': '2023-11-14 22:13:20', 'd/ln': '2023-11-14 22:13:20', 'd/new': '2023-11-14 22:13:20', 'd/old': '2023-11-14 22:13:20' });
  });

  test('type=tar without the epoch: mtimes rounded to the second as Go archive/tar WriteHeader does', async () => {
    const tree = await timedTree('round-tar-tree');
    const dest = join(root, 'round.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { rootfs: tree }, { store });
    expect(await tarTimes(dest)).toMatchObject({ 'd/old': '2001-02-03 04:05:07', 'd/new': '2030-01-01 00:00:00', 'd/': '2002-01-01 00:00:00' });
  });

  test('type=local: every entry gets the epoch as mtime and atime', async () => {
    const tree = await timedTree('sde-local-tree');
    const dest = join(root, 'sde-local');
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { rootfs: tree }, { store, sourceDateEpoch: EPOCH });
    for (const p of ['d', 'd/old', 'd/new', 'd/ln']) {
      const st = await lstat(join(dest, p));
      expect([p, st.mtimeMs, st.atimeMs]).toEqual([p, EPOCH * 1000, EPOCH * 1000]);
    }
  });
});

describe('type=oci,tar=false into an existing layout (BuildKit client: content store + ociindex insertDesc)', () => {
  test('adds the image to the layout: other images stay, an entry with the same tag is replaced', async () => {
    const dest = join(root, 'shared-layout');
    const img = (cmd: string): ExportImageSource => ({ layers: [{ descriptor: bb.layer, diffID: bb.diffID }], config: { os: 'linux', architecture: 'amd64', config: { Cmd: [cmd] } } });
    const a = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/a:v1`), { image: img('a') }, { store });
    const b = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/b:v2`), { image: img('b') }, { store });
    const inspect = async (tag: string): Promise<string> => (JSON.parse((await run('skopeo', ['inspect', `oci:${dest}:${tag}`])).stdout) as { Digest: string }).Digest;
    expect(await inspect('v1')).toBe(a.digest);
    expect(await inspect('v2')).toBe(b.digest);
    const c = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/c:v1`), { image: img('c') }, { store });
    expect(await inspect('v1')).toBe(c.digest);
    expect(await inspect('v2')).toBe(b.digest);
    const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([b.digest, c.digest]);
    // Every blob the index reaches is there (umoci checks the whole graph).
    await run('umoci', ['stat', '--image', `${dest}:v2`]);
    await run('umoci', ['stat', '--image', `${dest}:v1`]);
  });
});

describe('type=local special files (fsutil receiver mknods fifos and device nodes)', () => {
  test('fifos and character devices are recreated with their mode and device numbers', async () => {
    const tree = join(root, 'special-tree');
    await mkdir(join(tree, 'dev'), { recursive: true });
    await run('mknod', ['-m', '0620', join(tree, 'dev', 'pipe'), 'p']);
    await run('mknod', ['-m', '0666', join(tree, 'dev', 'null'), 'c', '1', '3']);
    const dest = join(root, 'special-out');
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { rootfs: tree }, { store });
    const pipe = await lstat(join(dest, 'dev', 'pipe'));
    expect([pipe.isFIFO(), pipe.mode & 0o7777]).toEqual([true, 0o620]);
    const nul = await lstat(join(dest, 'dev', 'null'));
    expect([nul.isCharacterDevice(), nul.mode & 0o7777, nul.rdev]).toEqual([true, 0o666, (await lstat(join(tree, 'dev', 'null'))).rdev]);
  });
});

describe('multi-platform type=tar / type=local (BuildKit: one directory per platform, fsutil.SubDirFS)', () => {
  async function platformTree(name: string, plat: string): Promise<string> {
    const tree = join(root, name);
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'platform'), `${plat}\n`);
    return tree;
  }

  test('type=tar: one tarball holding linux_amd64/ and linux_arm64/, each with its own tree', async () => {
    const platforms = [
      { path: 'linux_arm64', rootfs: await platformTree('mp-arm64', 'linux/arm64') },
      { path: 'linux_amd64', rootfs: await platformTree('mp-amd64', 'linux/amd64') },
    ];
    const dest = join(root, 'mp.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { platforms }, { store, sourceDateEpoch: 1_700_000_000 });
    const { stdout } = await run('tar', ['--numeric-owner', '--full-time', '-tvf', dest], { env: { ...process.env, TZ: 'UTC' } });
    expect(stdout.trim().split('\n').map((l) => { const f = l.split(/\s+/); return `${f[0]} ${f[1]} ${f[3]} ${f[4]} ${f[5]}`; })).toEqual([
      'drwxr-xr-x 0/0 2023-11-14 22:13:20 linux_amd64/',
      'drwxr-xr-x 0/0 2023-11-14 22:13:20 linux_amd64/etc/',
      '-rw-r--r-- 0/0 2023-11-14 22:13:20 linux_amd64/etc/platform',
      'drwxr-xr-x 0/0 2023-11-14 22:13:20 linux_arm64/',
      'drwxr-xr-x 0/0 2023-11-14 22:13:20 linux_arm64/etc/',
      '-rw-r--r-- 0/0 2023-11-14 22:13:20 linux_arm64/etc/platform',
    ]);
    expect((await run('tar', ['-xOf', dest, 'linux_arm64/etc/platform'])).stdout).toBe('linux/arm64\n');
    const dup = join(root, 'mp-dup.tar');
    await expect(runExport(parseOutputSpec(`type=tar,dest=${dup}`), { platforms: [platforms[0] as (typeof platforms)[number], platforms[0] as (typeof platforms)[number]] }, { store })).rejects.toMatchObject({ code: 'EXPORT_FAILED' });
    await expect(lstat(dup)).rejects.toThrow();
  });

  test('type=local: dest/linux_amd64 and dest/linux_arm64', async () => {
    const platforms = [
      { path: 'linux_amd64', rootfs: await platformTree('mpl-amd64', 'linux/amd64') },
      { path: 'linux_arm64', rootfs: await platformTree('mpl-arm64', 'linux/arm64') },
    ];
    const dest = join(root, 'mp-local');
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { platforms }, { store });
    expect(await readFile(join(dest, 'linux_amd64', 'etc', 'platform'), 'utf8')).toBe('linux/amd64\n');
    expect(await readFile(join(dest, 'linux_arm64', 'etc', 'platform'), 'utf8')).toBe('linux/arm64\n');
  });
});

describe('compression= and force-compression= (BuildKit: compression applies to new layers; force also to existing blobs)', () => {
  const layersOf = async (dest: string, digest: string | undefined): Promise<{ mediaType: string; digest: string }[]> =>
    (JSON.parse(await readFile(join(dest, 'blobs', 'sha256', (digest ?? '').slice(7)), 'utf8')) as { layers: { mediaType: string; digest: string }[] }).layers;

  test('a base-image layer keeps its gzip blob under compression=zstd unless force-compression=true; built layers are converted', async () => {
    const base = { descriptor: bb.layer, diffID: bb.diffID, fromImage: true };
    const built = { descriptor: bb.layer, diffID: bb.diffID };
    const source: ExportImageSource = { layers: [base, built], config: { os: 'linux', architecture: 'amd64' } };
    const plain = join(root, 'zstd-noforce');
    const r1 = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${plain},compression=zstd`), { image: source }, { store });
    const l1 = await layersOf(plain, r1.digest);
    expect(l1.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd']);
    expect(l1[0]?.digest).toBe(bb.layer.digest);
    const forced = join(root, 'zstd-force');
    const r2 = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${forced},compression=zstd,force-compression=true`), { image: source }, { store });
    expect((await layersOf(forced, r2.digest)).map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd']);
    // Both load: skopeo reads the mixed-compression image.
    await run('skopeo', ['inspect', `oci:${plain}`]);
  });
});

describe('manifest, index and config bytes as BuildKit v0.11 encodes them (exporter/containerimage/writer.go)', () => {
  const blob = async (dir: string, digest: string): Promise<string> => readFile(join(dir, 'blobs', 'sha256', digest.slice(7)), 'utf8');

  test('config: top-level keys sorted (patchImageConfig re-marshals a map), compact, <>& escaped as Go does', async () => {
    const dest = join(root, 'bytes-config');
    const res = await runExport(
      parseOutputSpec(`type=oci,tar=false,dest=${dest}`),
      { image: { layers: [{ descriptor: bb.layer, diffID: bb.diffID }], config: { os: 'linux', architecture: 'amd64', created: '2024-01-01T00:00:00Z', config: { Cmd: ['sh', '-c', 'a && b <c>'] }, history: [{ created: '2024-01-01T00:00:00Z', created_by: 'RUN a && b' }] } } },
      { store },
    );
    const m = JSON.parse(await blob(dest, res.digest ?? '')) as { config: { digest: string } };
    const text = await blob(dest, m.config.digest);
    expect(text).toBe(
      '{"architecture":"amd64","config":{"Cmd":["sh","-c","a \\u0026\\u0026 b \\u003cc\\u003e"]},"created":"2024-01-01T00:00:00Z",' +
        '"history":[{"created":"2024-01-01T00:00:00Z","created_by":"RUN a \\u0026\\u0026 b"}],"os":"linux",' +
        `"rootfs":{"type":"layers","diff_ids":["${bb.diffID}"]}}`,
    );
  });

  test('manifest: json.MarshalIndent with three spaces, mediaType before schemaVersion', async () => {
    const dest = join(root, 'bytes-manifest');
    const res = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest}`), { image: { layers: [{ descriptor: bb.layer, diffID: bb.diffID }], config: { os: 'linux', architecture: 'amd64' } } }, { store });
    const text = await blob(dest, res.digest ?? '');
    const cfg = (JSON.parse(text) as { config: { digest: string; size: number } }).config;
    expect(text).toBe(
      [
        '{',
        '   "mediaType": "application/vnd.oci.image.manifest.v1+json",',
        '   "schemaVersion": 2,',
        '   "config": {',
        '      "mediaType": "application/vnd.oci.image.config.v1+json",',
        `      "digest": "${cfg.digest}",`,
        `      "size": ${cfg.size}`,
        '   },',
        '   "layers": [',
        '      {',
        '         "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",',
        `         "digest": "${bb.layer.digest}",`,
        `         "size": ${bb.layer.size}`,
        '      }',
        '   ]',
        '}',
      ].join('\n'),
    );
  });

  test('index: json.MarshalIndent with three spaces, platform fields in Go struct order (architecture, os, variant)', async () => {
    const dest = join(root, 'bytes-index');
    const layers = [{ descriptor: bb.layer, diffID: bb.diffID }];
    const res = await runExport(
      parseOutputSpec(`type=oci,tar=false,dest=${dest}`),
      { image: [{ layers, config: { os: 'linux', architecture: 'amd64' } }, { layers, config: { os: 'linux', architecture: 'arm', variant: 'v7' } }] },
      { store },
    );
    const text = await blob(dest, res.digest ?? '');
    const ms = (JSON.parse(text) as { manifests: { digest: string; size: number }[] }).manifests;
    const entry = (m: { digest: string; size: number } | undefined, platform: string[]): string[] => [
      '      {',
      '         "mediaType": "application/vnd.oci.image.manifest.v1+json",',
      `         "digest": "${m?.digest}",`,
      `         "size": ${m?.size},`,
      '         "platform": {',
      ...platform,
      '         }',
    ];
    expect(text).toBe(
      [
        '{',
        '   "mediaType": "application/vnd.oci.image.index.v1+json",',
        '   "schemaVersion": 2,',
        '   "manifests": [',
        ...entry(ms[0], ['            "architecture": "amd64",', '            "os": "linux"']),
        '      },',
        ...entry(ms[1], ['            "architecture": "arm",', '            "os": "linux",', '            "variant": "v7"']),
        '      }',
        '   ]',
        '}',
      ].join('\n'),
    );
    expect(JSON.parse((await run('skopeo', ['inspect', '--override-arch', 'arm', '--override-variant', 'v7', `oci:${dest}`])).stdout)).toMatchObject({ Architecture: 'arm' });
  });
});

describe('a corrupt blob in the store fails the export and leaves nothing half-written (containerd blobRecord verifies digests)', () => {
  test('oci tarball, docker tarball and tar=false layouts: DIGEST_MISMATCH, no dest, no temp files, an existing layout untouched', async () => {
    const dir = join(root, 'corrupt');
    await mkdir(dir);
    const own = await ContentStore.open(join(dir, 'state'));
    const img = await createBusyboxImage(own);
    const source: ExportImageSource = { layers: [{ descriptor: img.layer, diffID: img.diffID }], config: { os: 'linux', architecture: 'amd64' } };
    // A good layout first, to see that a failed export into it changes nothing.
    const layout = join(dir, 'layout');
    await runExport(parseOutputSpec(`type=oci,tar=false,dest=${layout},name=x:good`), { image: source }, { store: own });
    const indexBefore = await readFile(join(layout, 'index.json'), 'utf8');
    // A second layer blob the layout does not have yet, then one byte of it flipped: same size, wrong digest.
    const extra = await own.writeBlob(Buffer.from('not really gzip, never decoded by the exporter '.repeat(20)));
    const fh = await open(own.blobPath(extra.digest), 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 100);
    b[0] = (b[0] ?? 0) ^ 0xff;
    await fh.write(b, 0, 1, 100);
    await fh.close();
    const corrupt = { descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: extra.digest, size: extra.size }, diffID: extra.digest };
    const fresh = { layers: [...source.layers, corrupt], config: { os: 'linux', architecture: 'amd64', config: { Cmd: ['other'] } } };
    for (const spec of [`type=oci,dest=${join(dir, 'o.tar')}`, `type=docker,dest=${join(dir, 'd.tar')}`, `type=oci,tar=false,dest=${join(dir, 'newlayout')}`, `type=oci,tar=false,dest=${layout},name=x:bad`]) {
      await expect(runExport(parseOutputSpec(spec), { image: fresh }, { store: own }), spec).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    }
    expect((await readdir(dir)).sort()).toEqual(['layout', 'state']);
    expect(await readFile(join(layout, 'index.json'), 'utf8')).toBe(indexBefore);
    expect((await readdir(join(layout, 'blobs', 'sha256'))).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});

describe('type=tar owners past the 6-digit octal field (Go archive/tar writes PAX uid/gid records)', () => {
  test('uid/gid 3000000/4000000 survive, with and without xattrs and long names', async () => {
    const tree = join(root, 'bigids');
    const long = 'n'.repeat(150);
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'plain'), 'a');
    await writeFile(join(tree, 'xattr'), 'b');
    await writeFile(join(tree, long), 'c');
    await writeFile(join(tree, 'small'), 'd');
    await run('setfattr', ['-n', 'user.k', '-v', 'v', join(tree, 'xattr')]);
    for (const f of ['plain', 'xattr', long]) await chown(join(tree, f), 3_000_000, 4_000_000);
    await chown(join(tree, 'small'), 262_143, 262_144);
    const dest = join(root, 'bigids.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { rootfs: tree }, { store });
    const py = `
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    print(json.dumps({m.name: [m.uid, m.gid, m.pax_headers.get('SCHILY.xattr.user.k')] for m in t}))
`;
    expect(JSON.parse((await run('python3', ['-c', py, dest])).stdout)).toEqual({
      [long]: [3_000_000, 4_000_000, null],
      plain: [3_000_000, 4_000_000, null],
      small: [262_143, 262_144, null],
      xattr: [3_000_000, 4_000_000, 'v'],
    });
    const { stdout } = await run('tar', ['--numeric-owner', '-tvf', dest]);
    expect(stdout).toMatch(/ 3000000\/4000000 .* plain\n/);
  });
});

describe('type=image,push=true of a multi-platform image (BuildKit: children by digest, then the index by tag)', () => {
  registryTest('both names resolve to the manifest list; each platform manifest is fetchable by digest', async ({ registry }) => {
    const layers = [{ descriptor: bb.layer, diffID: bb.diffID }];
    const spec = parseOutputSpec(`type=image,name=${registry.host}/mp/a:1,${registry.host}/mp/b:1,push=true`);
    const res = await runExport(spec, { image: [{ layers, config: { os: 'linux', architecture: 'amd64' } }, { layers, config: { os: 'linux', architecture: 'arm64' } }] }, { store });
    const raw = async (ref: string): Promise<string> => (await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout;
    const list = JSON.parse(await raw(`${registry.host}/mp/b:1`)) as { mediaType: string; manifests: { digest: string; platform: { architecture: string } }[] };
    expect(list.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(list.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    for (const name of ['mp/a', 'mp/b']) {
      expect(JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/${name}:1`])).stdout)).toMatchObject({ Digest: res.digest });
      for (const m of list.manifests) expect(JSON.parse(await raw(`${registry.host}/${name}@${m.digest}`))).toMatchObject({ schemaVersion: 2 });
    }
    const arm = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${registry.host}/mp/a:1`])).stdout) as { Architecture: string };
    expect(arm.Architecture).toBe('arm64');
  });
});

describe('an aborted export stops and leaves nothing (the signal reaches the writers)', () => {
  test('type=tar of a 1 GiB sparse file: aborting after 100 ms rejects soon, no dest, no temp file', async () => {
    const tree = join(root, 'abort-tree');
    await mkdir(tree, { recursive: true });
    await run('truncate', ['-s', '1G', join(tree, 'big')]);
    const out = join(root, 'abort-out');
    await mkdir(out);
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 100);
    await expect(runExport(parseOutputSpec(`type=tar,dest=${join(out, 'fs.tar')}`), { rootfs: tree }, { store, signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
    // Packing 1 GiB takes over ten seconds here; an abort that is not seen runs to the end.
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(await readdir(out)).toEqual([]);
  });
});

describe('annotation options (BuildKit v0.11 exptypes.ParseAnnotationKey: annotation[-type][[platform]].key=value)', () => {
  test('manifest (default type, per platform), manifest-descriptor, index and index-descriptor land where BuildKit puts them', async () => {
    const dest = join(root, 'annotated');
    const layers = [{ descriptor: bb.layer, diffID: bb.diffID }];
    const spec = parseOutputSpec(
      `type=oci,tar=false,dest=${dest},annotation.org.opencontainers.image.title=t,annotation[linux/arm64].com.Example.Arch=arm,` +
        'annotation-manifest-descriptor.m=md,annotation-index.i=ix,annotation-index-descriptor.d=id',
    );
    const res = await runExport(spec, { image: [{ layers, config: { os: 'linux', architecture: 'amd64' } }, { layers, config: { os: 'linux', architecture: 'arm64' } }] }, { store, sourceDateEpoch: 0 });
    const blob = async (d: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(join(dest, 'blobs', 'sha256', d.slice(7)), 'utf8')) as Record<string, unknown>;
    const index = (await blob(res.digest ?? '')) as { annotations?: Record<string, string>; manifests: { digest: string; annotations?: Record<string, string> }[] };
    expect(index.annotations).toEqual({ i: 'ix' });
    expect(index.manifests.map((m) => m.annotations)).toEqual([{ m: 'md' }, { m: 'md' }]);
    const amd = (await blob(index.manifests[0]?.digest ?? '')) as { annotations?: Record<string, string> };
    const arm = (await blob(index.manifests[1]?.digest ?? '')) as { annotations?: Record<string, string> };
    expect(amd.annotations).toEqual({ 'org.opencontainers.image.title': 't' });
    expect(arm.annotations).toEqual({ 'com.Example.Arch': 'arm', 'org.opencontainers.image.title': 't' });
    const top = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    expect(top.manifests[0]?.annotations).toEqual({ d: 'id', 'org.opencontainers.image.created': '1970-01-01T00:00:00Z' });
    expect(() => parseOutputSpec('type=oci,dest=x,annotation-bogus.k=v')).toThrow(expect.objectContaining({ code: 'OUTPUT_SPEC_INVALID' }));
  });

  test('single platform: manifest-descriptor annotations go on the index.json entry; index annotations are refused', async () => {
    const dest = join(root, 'annotated-single');
    const image = { layers: [{ descriptor: bb.layer, diffID: bb.diffID }], config: { os: 'linux', architecture: 'amd64' } };
    await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=a:1,annotation-manifest-descriptor.k=v`), { image }, { store, sourceDateEpoch: 0 });
    const top = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    expect(top.manifests[0]?.annotations).toEqual({ 'io.containerd.image.name': 'docker.io/library/a:1', k: 'v', 'org.opencontainers.image.created': '1970-01-01T00:00:00Z', 'org.opencontainers.image.ref.name': '1' });
    await expect(runExport(parseOutputSpec(`type=oci,dest=${join(root, 'no-index.tar')},annotation-index.k=v`), { image }, { store })).rejects.toMatchObject({ code: 'EXPORT_FAILED' });
  });
});

describe('compression-level= (BuildKit v0.11: an integer; gzip.NewWriterLevel range, zstd mapped to encoder speeds)', () => {
  test('applies to layers the exporter compresses; out-of-range levels are refused', async () => {
    const plain = await convertLayer(store, { descriptor: bb.layer, diffID: bb.diffID }, 'uncompressed');
    const sizeAt = async (opts: string): Promise<number> => {
      const dest = join(root, `level-${opts.replace(/[^a-z0-9]/g, '_')}`);
      const res = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},${opts}`), { image: { layers: [plain], config: { os: 'linux', architecture: 'amd64' } } }, { store });
      return (JSON.parse(await readFile(join(dest, 'blobs', 'sha256', (res.digest ?? '').slice(7)), 'utf8')) as { layers: { size: number }[] }).layers[0]?.size ?? -1;
    };
    // Level 0 is stored (deflate without compression): bigger than the tar itself.
    expect(await sizeAt('compression=gzip,compression-level=0')).toBeGreaterThan(plain.descriptor.size);
    expect(await sizeAt('compression=gzip,compression-level=9')).toBeLessThan(plain.descriptor.size / 1.5);
    expect(await sizeAt('compression=zstd,compression-level=19')).toBeLessThan(await sizeAt('compression=zstd,compression-level=1'));
    // zstd takes any level (BuildKit maps it onto four encoder speeds); gzip only -1..9.
    expect(parseOutputSpec('type=oci,dest=x,compression=zstd,compression-level=23')).toMatchObject({ compressionLevel: 23 });
    for (const bad of ['compression=gzip,compression-level=10', 'compression-level=x']) {
      expect(() => parseOutputSpec(`type=oci,dest=x,${bad}`), bad).toThrow(expect.objectContaining({ code: 'OUTPUT_SPEC_INVALID' }));
    }
  });
});
