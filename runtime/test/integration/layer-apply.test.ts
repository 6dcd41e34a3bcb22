import { createReadStream } from 'node:fs';
import { lstat, mkdtemp, readFile, readlink, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, expect, test } from 'vitest';
import { applyLayer } from '@kiln/runtime';

const BUSYBOX = new URL('../../../../shared/conformance/images/busybox/blobs/sha256/', import.meta.url).pathname;
const LAYER = 'a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a';
const DIFF_ID = 'sha256:52ac1a37baf98ab219e45024ed1d97da4a018a6a52de1baba1e23735910758c5';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('the busybox conformance layer applies with its recorded diff_id', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-bb-'));
  dirs.push(dir);
  const r = await applyLayer(dir, createReadStream(join(BUSYBOX, LAYER)));
  expect(r.diffID).toBe(DIFF_ID);
  expect(r.compression).toBe('gzip');
  expect(await readlink(join(dir, 'bin/sh'))).toMatch(/busybox$/);
  expect((await lstat(join(dir, 'bin/busybox'))).mode & 0o777).toBe(0o755);
  expect((await lstat(join(dir, 'tmp'))).mode & 0o7777).toBe(0o1777);
  expect((await lstat(join(dir, 'root'))).mode & 0o7777).toBe(0o700);
  const home = await lstat(join(dir, 'home/app'));
  expect([home.uid, home.gid]).toEqual([1000, 1000]);
  expect(home.mtime.toISOString()).toBe('2024-01-01T00:00:00.000Z');
  expect(await readFile(join(dir, 'etc/passwd'), 'utf8')).toContain('app:x:1000:1000');
  expect((await readdir(join(dir, 'bin'))).length).toBe(77);
  expect(r.entries).toBe(280);
});

/** Every (layer blob, diff_id) pair the conformance layouts declare, found by walking index → manifest → config. */
async function conformanceLayers(): Promise<[string, string, string][]> {
  const { readFileSync, readdirSync } = await import('node:fs');
  const imagesDir = new URL('../../../../shared/conformance/images/', import.meta.url).pathname;
  const out: [string, string, string][] = [];
  for (const image of readdirSync(imagesDir).filter((d) => !d.includes('.'))) {
    const blob = (d: string): string => join(imagesDir, image, 'blobs/sha256', d.replace('sha256:', ''));
    const json = (d: string): Record<string, unknown> => JSON.parse(readFileSync(blob(d), 'utf8')) as Record<string, unknown>;
    const seen = new Set<string>();
    const visit = (d: string): void => {
      if (seen.has(d)) return;
      seen.add(d);
      const doc = json(d);
      if (Array.isArray(doc['manifests'])) for (const m of doc['manifests'] as { digest: string }[]) visit(m.digest);
      if (Array.isArray(doc['layers'])) {
        const config = json((doc['config'] as { digest: string }).digest) as { rootfs: { diff_ids: string[] } };
        (doc['layers'] as { digest: string }[]).forEach((l, i) => out.push([`${image} ${l.digest.slice(7, 19)}`, blob(l.digest), config.rootfs.diff_ids[i] ?? '']));
      }
    };
    const index = JSON.parse(readFileSync(join(imagesDir, image, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    for (const m of index.manifests) visit(m.digest);
  }
  return out;
}

const LAYERS = await conformanceLayers();

test('the conformance layouts declare layers', () => {
  expect(LAYERS.length).toBeGreaterThanOrEqual(3);
});

test.for(LAYERS)('conformance layer %s applies with its config diff_id', async ([, path, diffID]) => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-conf-'));
  dirs.push(dir);
  const r = await applyLayer(dir, createReadStream(path));
  expect(r.diffID).toBe(diffID);
  expect(r.entries).toBeGreaterThan(0);
});

/** A tar made by GNU tar (`tar ARGS -C dir NAMES`): real bytes of another implementation. */
async function gnuTar(dir: string, args: readonly string[], names: readonly string[]): Promise<Buffer> {
  const { execFileSync } = await import('node:child_process');
  try {
    return execFileSync('tar', [...args, '-cf', '-', '-C', dir, ...names], { maxBuffer: 64 << 20 });
  } catch (e) {
    throw new Error('GNU tar is required: apt-get install tar', { cause: e });
  }
}

test('file capabilities in a layer (PAX SCHILY.xattr.security.capability, by GNU tar --xattrs) are applied', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdir, writeFile } = await import('node:fs/promises');
  const src = await mkdtemp(join(tmpdir(), 'kiln-xattr-src-'));
  const dir = await mkdtemp(join(tmpdir(), 'kiln-xattr-'));
  dirs.push(src, dir);
  await mkdir(join(src, 'bin'));
  await writeFile(join(src, 'bin', 'ping'), 'not really ping\n', { mode: 0o755 });
  // cap_net_raw+ep, the bytes setcap writes (VFS_CAP_REVISION_2).
  const cap = '0x0100000200200000000000000000000000000000';
  execFileSync('setfattr', ['-n', 'security.capability', '-v', cap, join(src, 'bin', 'ping')]);
  execFileSync('setfattr', ['-n', 'user.origin', '-v', 'layer', join(src, 'bin')]);
  const tar = await gnuTar(src, ['--xattrs', '--xattrs-include=*', '--format=pax'], ['bin']);
  expect(tar.includes(Buffer.from('SCHILY.xattr.security.capability='))).toBe(true);
  await applyLayer(dir, Readable.from([tar]));
  const dump = execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', join(dir, 'bin', 'ping')], { encoding: 'utf8' });
  expect(dump).toContain(`security.capability=${cap}`);
  expect(execFileSync('getfattr', ['-n', 'user.origin', '--only-values', join(dir, 'bin')], { encoding: 'utf8' })).toBe('layer');
  expect(await readFile(join(dir, 'bin', 'ping'), 'utf8')).toBe('not really ping\n');
  expect((await lstat(join(dir, 'bin', 'ping'))).mode & 0o777).toBe(0o755);
});

test.for([
  ['PAX 1.0', ['--sparse', '--format=pax', '--sparse-version=1.0']],
  ['PAX 0.1', ['--sparse', '--format=pax', '--sparse-version=0.1']],
  ['PAX 0.0', ['--sparse', '--format=pax', '--sparse-version=0.0']],
] as const)('a GNU sparse file (%s, by GNU tar) unpacks to the same bytes, its holes left unwritten', async ([, args]) => {
  const { open, stat, writeFile } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const src = await mkdtemp(join(tmpdir(), 'kiln-sparse-src-'));
  const dir = await mkdtemp(join(tmpdir(), 'kiln-sparse-'));
  dirs.push(src, dir);
  await writeFile(join(src, 'before'), 'b');
  // Data at the start, in the middle and at the end of 8 MiB of holes, and one ending in a hole.
  const fh = await open(join(src, 'holes'), 'w');
  const head = randomBytes(5000);
  await fh.write(head, 0, head.length, 0);
  await fh.write(Buffer.from('middle'), 0, 6, 3 << 20);
  await fh.write(Buffer.from('tail'), 0, 4, (8 << 20) - 4);
  await fh.close();
  const fh2 = await open(join(src, 'trailing-hole'), 'w');
  await fh2.write(Buffer.from('x'), 0, 1, 4096);
  await fh2.truncate(1 << 20);
  await fh2.close();
  const tar = await gnuTar(src, args, ['before', 'holes', 'trailing-hole']);
  expect(tar.includes(Buffer.from('GNU.sparse.'))).toBe(true);
  const r = await applyLayer(dir, Readable.from([tar]));
  expect(r.entries).toBe(3);
  expect((await readdir(dir)).sort()).toEqual(['before', 'holes', 'trailing-hole']);
  for (const name of ['holes', 'trailing-hole']) {
    expect(Buffer.compare(await readFile(join(dir, name)), await readFile(join(src, name)))).toBe(0);
    const st = await stat(join(dir, name));
    expect(st.size).toBe((await stat(join(src, name))).size);
    expect(st.blocks * 512).toBeLessThan(st.size / 4); // still sparse on disk
  }
});

test('an old GNU sparse entry (type S, by GNU tar --format=gnu) fails the layer naming it, as BuildKit\'s applier refuses it', async () => {
  const { truncate, writeFile } = await import('node:fs/promises');
  const src = await mkdtemp(join(tmpdir(), 'kiln-sparse-src-'));
  const dir = await mkdtemp(join(tmpdir(), 'kiln-sparse-'));
  dirs.push(src, dir);
  await writeFile(join(src, 'before'), 'b');
  await writeFile(join(src, 'holes'), '');
  await truncate(join(src, 'holes'), 1 << 20);
  await writeFile(join(src, 'holes'), 'tail', { flag: 'a' });
  const tar = await gnuTar(src, ['--sparse', '--format=gnu'], ['before', 'holes']);
  await expect(applyLayer(dir, Readable.from([tar]))).rejects.toMatchObject({ code: 'LAYER_UNSUPPORTED', message: expect.stringContaining('holes') });
  expect(await readdir(dir)).toEqual(['before']);
});
