import { execFile } from 'node:child_process';
import { chmod, chown, link, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  ContentStore,
  ImageStore,
  createBusyboxImage,
  digestOf,
  parseOutputSpec,
  readTar,
  runExport,
  type BusyboxImage,
  type ExportImageSource,
} from '@kiln/runtime';
import { registryTest as test } from '../helpers/registry.js';

const run = promisify(execFile);

let root: string;
let store: ContentStore;
let images: ImageStore;
let bb: BusyboxImage;
let source: ExportImageSource;
/** The run config of `source` (its draft types it as unknown; tests derive variants from it). */
const runConfig = { Env: ['PATH=/bin', 'HELLO=kiln'], Cmd: ['sh'], WorkingDir: '/tmp' };
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-export-it-'));
  store = await ContentStore.open(join(root, 'state'));
  images = await ImageStore.open(join(root, 'state'));
  bb = await createBusyboxImage(store);
  source = {
    layers: [{ descriptor: bb.layer, diffID: bb.diffID }],
    config: { os: 'linux', architecture: 'amd64', config: runConfig },
  };
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function skopeo(...args: string[]): Promise<string> {
  return (await run('skopeo', args, { maxBuffer: 1 << 24 })).stdout;
}

describe('image exporters checked with skopeo and umoci', () => {
  test('type=oci tarball: skopeo inspect oci-archive accepts it, same manifest digest', async () => {
    const dest = join(root, 'oci.tar');
    const res = await runExport(parseOutputSpec(`type=oci,dest=${dest},name=kiln/app:v1`), { image: source }, { store, images });
    const info = JSON.parse(await skopeo('inspect', `oci-archive:${dest}`)) as { Digest: string; Env: string[]; Architecture: string };
    expect(info.Digest).toBe(res.digest);
    expect(info.Env).toEqual(['PATH=/bin', 'HELLO=kiln']);
    expect(digestOf(await skopeo('inspect', '--raw', `oci-archive:${dest}:v1`))).toBe(res.digest);
    expect((await images.mustGet('docker.io/kiln/app:v1')).target.digest).toBe(res.digest);
    // deterministic bytes with SOURCE_DATE_EPOCH (index.json carries the creation time, as BuildKit's)
    const once = join(root, 'oci1.tar');
    const again = join(root, 'oci2.tar');
    await runExport(parseOutputSpec(`type=oci,dest=${once},name=kiln/app:v1`), { image: source }, { store, sourceDateEpoch: 1_700_000_000 });
    await new Promise((r) => setTimeout(r, 1100));
    await runExport(parseOutputSpec(`type=oci,dest=${again},name=kiln/app:v1`), { image: source }, { store, sourceDateEpoch: 1_700_000_000 });
    expect(digestOf(await readFile(again))).toBe(digestOf(await readFile(once)));
  });

  test('type=docker tarball: skopeo inspect docker-archive accepts it, manifest.json', async () => {
    const dest = join(root, 'docker.tar');
    await runExport(parseOutputSpec(`type=docker,dest=${dest},"name=app:1,registry.local:5000/team/app:2"`), { image: source }, { store });
    const info = JSON.parse(await skopeo('inspect', `docker-archive:${dest}`)) as { RepoTags: string[]; Env: string[]; Layers: string[] };
    expect(info.Env).toEqual(['PATH=/bin', 'HELLO=kiln']);
    // docker-archive reports layers by their uncompressed digest (diff_id).
    expect(info.Layers).toEqual([bb.diffID]);
    const entries = new Map<string, Buffer>();
    await readTar((await import('node:fs')).createReadStream(dest), async (h, body) => {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(Buffer.from(c));
      entries.set(h.name, Buffer.concat(chunks));
    });
    const manifest = JSON.parse(entries.get('manifest.json')?.toString() ?? 'null') as { Config: string; RepoTags: string[]; Layers: string[] }[];
    expect(manifest[0]?.RepoTags).toEqual(['app:1', 'registry.local:5000/team/app:2']);
    expect(digestOf(entries.get(manifest[0]?.Config ?? '') ?? Buffer.alloc(0))).toBe(`sha256:${manifest[0]?.Config.split('/').pop()}`);
    expect(entries.has('repositories')).toBe(false); // containerd's archive exporter writes none
    expect(entries.has('oci-layout')).toBe(true);
  });

  test('type=oci,tar=false + umoci unpack yields the busybox files; uncompressed layers', async () => {
    const dest = join(root, 'layout');
    const res = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/bb:v1,compression=uncompressed`), { image: source }, { store });
    const m = JSON.parse((await readFile(join(dest, 'blobs', 'sha256', (res.digest ?? '').slice(7)))).toString()) as { layers: { mediaType: string; digest: string }[] };
    expect(m.layers[0]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    expect(m.layers[0]?.digest).toBe(bb.diffID);
    const bundle = join(root, 'bundle');
    await run('umoci', ['unpack', '--image', `${dest}:v1`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    expect((await lstat(join(rootfs, 'bin', 'busybox'))).mode & 0o777).toBe(0o755);
    expect(await readlink(join(rootfs, 'bin', 'sh'))).toBe('/bin/busybox');
    expect((await lstat(join(rootfs, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect((await lstat(join(rootfs, 'home', 'app'))).uid).toBe(1000);
    expect(await readFile(join(rootfs, 'etc', 'passwd'), 'utf8')).toContain('nobody:x:65534:65534');
    const cfg = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { env: string[]; cwd: string } };
    expect(cfg.process.env).toContain('HELLO=kiln');
    expect(cfg.process.cwd).toBe('/tmp');
  });

  test('compression=zstd: OCI zstd layers that skopeo reads and decompresses to the diff_id', async () => {
    const dest = join(root, 'zstd-layout');
    const res = await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/z:v1,compression=zstd`), { image: source }, { store });
    const m = JSON.parse((await readFile(join(dest, 'blobs', 'sha256', (res.digest ?? '').slice(7)))).toString()) as { layers: { mediaType: string }[] };
    expect(m.layers[0]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    const info = JSON.parse(await skopeo('inspect', `oci:${dest}:v1`)) as { Digest: string };
    expect(info.Digest).toBe(res.digest);
    // umoci 0.4.7 cannot read zstd layers; skopeo decompresses them with its own decoder.
    const out = join(root, 'zstd-dir');
    await skopeo('copy', '--dest-decompress', `oci:${dest}:v1`, `dir:${out}`);
    expect(digestOf(await readFile(join(out, bb.diffID.slice(7))))).toBe(bb.diffID);
  });

  test('type=oci,tar=false: concurrent exports of different tags into one layout keep every tag (index.json updated under the layout lock)', async () => {
    const dest = join(root, 'shared-layout');
    await runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/shared:first`), { image: source }, { store });
    const tags = Array.from({ length: 8 }, (_, i) => `t${i}`);
    await Promise.all(tags.map((t) => runExport(parseOutputSpec(`type=oci,tar=false,dest=${dest},name=kiln/shared:${t}`), { image: { ...source, config: { ...source.config, config: { ...runConfig, Env: [`T=${t}`] } } } }, { store })));
    const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    expect(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']).sort()).toEqual(['first', ...tags].sort());
    expect((await readdir(dest)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    for (const t of ['first', 't7']) expect(JSON.parse(await skopeo('inspect', `oci:${dest}:${t}`)).Digest).toMatch(/^sha256:/);
  });

  test('type=image,push=true to several names: skopeo pulls back the same digest', async ({ registry }) => {
    const spec = parseOutputSpec(`type=image,name=${registry.host}/kiln/app:1,${registry.host}/kiln/app:latest,${registry.host}/other/app:1,push=true`);
    const res = await runExport(spec, { image: source }, { store, images });
    expect(res.pushed.length).toBe(3);
    for (const name of ['kiln/app:1', 'kiln/app:latest', 'other/app:1']) {
      expect(digestOf(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/${name}`))).toBe(res.digest);
    }
    const out = join(root, 'copied');
    await skopeo('copy', '--src-tls-verify=false', `docker://${registry.host}/other/app:1`, `dir:${out}`);
    expect(digestOf(await readFile(join(out, 'manifest.json')))).toBe(res.digest);
    // Docker schema 2 media types by default for type=image (BuildKit's default).
    expect(JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'))).toMatchObject({ mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
    expect((await images.mustGet(`${registry.host}/kiln/app:1`)).target.digest).toBe(res.digest);
  });

  test('multi-platform: type=oci writes an index; type=docker refuses it', async () => {
    const arm: ExportImageSource = { ...source, config: { ...source.config, architecture: 'arm64' } };
    const dest = join(root, 'multi.tar');
    const res = await runExport(parseOutputSpec(`type=oci,dest=${dest}`), { image: [source, arm] }, { store });
    expect(res.descriptor?.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const info = JSON.parse(await skopeo('inspect', '--override-arch', 'arm64', `oci-archive:${dest}`)) as { Architecture: string };
    expect(info.Architecture).toBe('arm64');
    await expect(runExport(parseOutputSpec(`type=docker,dest=${join(root, 'no.tar')}`), { image: [source, arm] }, { store })).rejects.toMatchObject({ code: 'EXPORT_FAILED' });
    await expect(lstat(join(root, 'no.tar'))).rejects.toThrow();
  });
});

describe('filesystem exporters', () => {
  let tree: string;
  beforeAll(async () => {
    tree = join(root, 'tree');
    await mkdir(join(tree, 'dir', 'sub'), { recursive: true });
    await writeFile(join(tree, 'dir', 'a.txt'), 'alpha\n');
    await writeFile(join(tree, 'dir', 'sub', 'run.sh'), '#!/bin/sh\n');
    await chmod(join(tree, 'dir', 'sub', 'run.sh'), 0o4755);
    await symlink('../dir/a.txt', join(tree, 'dir', 'sub', 'link'));
    await link(join(tree, 'dir', 'a.txt'), join(tree, 'hard'));
    await writeFile(join(tree, 'owned'), 'x');
    await chown(join(tree, 'owned'), 1234, 5678);
    await mkdir(join(tree, 'sticky'));
    await chmod(join(tree, 'sticky'), 0o1777);
  });

  test('type=local copies the tree preserving modes, symlinks and hard links; the exporting user owns it', async () => {
    const dest = join(root, 'local-out');
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { rootfs: tree }, { store });
    expect(await readFile(join(dest, 'dir', 'a.txt'), 'utf8')).toBe('alpha\n');
    expect((await lstat(join(dest, 'dir', 'sub', 'run.sh'))).mode & 0o7777).toBe(0o4755);
    expect(await readlink(join(dest, 'dir', 'sub', 'link'))).toBe('../dir/a.txt');
    expect((await lstat(join(dest, 'hard'))).ino).toBe((await lstat(join(dest, 'dir', 'a.txt'))).ino);
    // BuildKit's filesync receiver chowns every entry to the client's uid/gid (type=tar keeps them).
    expect(await lstat(join(dest, 'owned'))).toMatchObject({ uid: process.getuid?.(), gid: process.getgid?.() });
    expect((await lstat(join(dest, 'sticky'))).mode & 0o7777).toBe(0o1777);
    // a bare path means type=local
    expect(parseOutputSpec('out-dir')).toEqual({ type: 'local', dest: 'out-dir' });
    expect((await readdir(root)).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  test('type=local into an existing directory merges, each file renamed over the old one: never missing or half-written meanwhile (a kill mid-export leaves old or new files, as fsutil)', async () => {
    const src = join(root, 'replace-src');
    const dest = join(root, 'replace-out');
    await mkdir(join(src, 'was-file'), { recursive: true });
    await writeFile(join(src, 'big'), Buffer.alloc(32 << 20, 'n'));
    await writeFile(join(src, 'was-file', 'x'), 'x');
    await mkdir(join(dest, 'was-dir'), { recursive: true });
    await writeFile(join(dest, 'big'), 'old\n');
    await writeFile(join(dest, 'keep'), 'mine\n');
    await writeFile(join(dest, 'was-file'), 'a file\n');
    await writeFile(join(src, 'was-dir'), 'now a file\n');
    // What a kiln killed mid-export (a pid no process has) left goes; a live process's stays.
    const dead = `.kiln-tmp-${2 ** 22 + 5}-0123456789ab`;
    const live = `.kiln-tmp-1-0123456789ab`;
    await mkdir(join(src, 'sub'));
    await mkdir(join(dest, 'sub'));
    for (const f of [join(dest, dead), join(dest, 'sub', dead), join(dest, live)]) await writeFile(f, 'partial');
    const seen = new Set<string>();
    let exporting = true;
    const watch = (async () => {
      while (exporting) {
        const st = await lstat(join(dest, 'big')).catch(() => undefined);
        seen.add(st === undefined ? 'missing' : String(st.size));
        await new Promise((r) => setImmediate(r));
      }
    })();
    await runExport(parseOutputSpec(`type=local,dest=${dest}`), { rootfs: src }, { store });
    exporting = false;
    await watch;
    expect([...seen].filter((v) => v !== '4' && v !== String(32 << 20))).toEqual([]);
    expect((await readFile(join(dest, 'big'))).equals(Buffer.alloc(32 << 20, 'n'))).toBe(true);
    expect(await readFile(join(dest, 'keep'), 'utf8')).toBe('mine\n');
    expect(await readFile(join(dest, 'was-file', 'x'), 'utf8')).toBe('x');
    expect(await readFile(join(dest, 'was-dir'), 'utf8')).toBe('now a file\n');
    expect((await readdir(dest)).sort()).toEqual([live, 'big', 'keep', 'sub', 'was-dir', 'was-file']);
    expect(await readdir(join(dest, 'sub'))).toEqual([]);
  });

  test('type=tar and type=oci remove the temp files beside their dest that a killed kiln left (pid no longer running), not those of a live one', async () => {
    const dir = await mkdtemp(join(root, 'stale-'));
    const dead = (name: string): string => join(dir, `.${name}.${2 ** 22 + 9}-0123456789ab.tmp`);
    const live = (name: string): string => join(dir, `.${name}.1-0123456789ab.tmp`);
    for (const name of ['out.tar', 'img.tar']) {
      await writeFile(dead(name), 'half a tar');
      await writeFile(live(name), 'being written');
    }
    await mkdir(dead('local-out'));
    await runExport(parseOutputSpec(`type=tar,dest=${join(dir, 'out.tar')}`), { rootfs: tree }, { store });
    await runExport(parseOutputSpec(`type=oci,dest=${join(dir, 'img.tar')},name=kiln/stale:1`), { image: source }, { store });
    await runExport(parseOutputSpec(`type=local,dest=${join(dir, 'local-out')}`), { rootfs: tree }, { store });
    expect((await readdir(dir)).sort()).toEqual([live('img.tar'), live('out.tar')].map((p) => p.slice(dir.length + 1)).concat(['img.tar', 'local-out', 'out.tar']).sort());
  });

  test('type=tar writes a deterministic tar of the tree', async () => {
    const dest = join(root, 'fs.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { rootfs: tree }, { store, sourceDateEpoch: 1_700_000_000 });
    const { stdout } = await run('tar', ['--numeric-owner', '-tvf', dest]);
    const lines = stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/).slice(5).join(' '))).toEqual([
      'dir/',
      'dir/a.txt',
      'dir/sub/',
      'dir/sub/link -> ../dir/a.txt',
      'dir/sub/run.sh',
      'hard link to dir/a.txt',
      'owned',
      'sticky/',
    ]);
    expect(lines[4]).toMatch(/^-rwsr-xr-x 0\/0/);
    expect(lines[6]).toMatch(/^-rw-r--r-- 1234\/5678/);
    expect(lines[7]).toMatch(/^drwxrwxrwt/);
    const second = join(root, 'fs2.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${second}`), { rootfs: tree }, { store, sourceDateEpoch: 1_700_000_000 });
    expect(digestOf(await readFile(second))).toBe(digestOf(await readFile(dest)));
  });

  test('type=tar keeps extended attributes (file capabilities, user.*) as SCHILY.xattr records', async () => {
    const dir = join(root, 'xtree');
    await mkdir(join(dir, 'bin'), { recursive: true });
    await writeFile(join(dir, 'bin', 'ping'), 'ping');
    await writeFile(join(dir, 'bin', 'plain'), 'plain');
    await run('setcap', ['cap_setuid,cap_net_raw+ep', join(dir, 'bin', 'ping')]);
    await run('setfattr', ['-n', 'user.bin', '-v', '0xff00fe', join(dir, 'bin', 'ping')]);
    const dest = join(root, 'xfs.tar');
    await runExport(parseOutputSpec(`type=tar,dest=${dest}`), { rootfs: dir }, { store, sourceDateEpoch: 1_700_000_000 });
    const py = `
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    print(json.dumps({m.name: [[k, v.encode('utf-8', 'surrogateescape').hex()] for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')] for m in t}))
`;
    const recs = JSON.parse((await run('python3', ['-c', py, dest])).stdout) as Record<string, [string, string][]>;
    const cap = (await run('getfattr', ['-h', '--only-values', '-n', 'security.capability', join(dir, 'bin', 'ping')], { encoding: 'buffer' })).stdout.toString('hex');
    expect(recs).toEqual({
      bin: [],
      'bin/ping': [
        ['SCHILY.xattr.security.capability', cap],
        ['SCHILY.xattr.user.bin', 'ff00fe'],
      ],
      'bin/plain': [],
    });
    const out = join(root, 'xfs-out');
    await mkdir(out);
    await run('tar', ['--xattrs', '--xattrs-include=*', '-xf', dest, '-C', out]);
    expect((await run('getcap', [join(out, 'bin', 'ping')])).stdout).toMatch(/cap_setuid,cap_net_raw=ep/);
  });
});
