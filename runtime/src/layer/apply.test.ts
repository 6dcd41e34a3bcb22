import { mkdtemp, readFile, readdir, lstat, readlink, rm, writeFile, mkdir, symlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, test } from 'vitest';
import { tarOf, type TarEntry } from '../../test/helpers/tar.js';
import { applyLayer } from './apply.js';

type Entry = TarEntry;

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kiln-apply-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('applyLayer', () => {
  test('writes files, modes, owners, mtimes, symlinks and hardlinks', async () => {
    const dir = await tmp();
    const tar = await tarOf([
      { name: 'a/', type: 'directory', mode: 0o750, uid: 12, gid: 34 },
      { name: 'a/f.txt', mode: 0o4755, uid: 5, gid: 6, body: 'hello' },
      { name: 'a/l', type: 'symlink', linkname: 'f.txt' },
      { name: 'a/h', type: 'link', linkname: 'a/f.txt' },
    ]);
    const r = await applyLayer(dir, Readable.from([gzipSync(tar)]));
    expect(r.compression).toBe('gzip');
    expect(r.entries).toBe(4);
    expect(await readFile(join(dir, 'a/f.txt'), 'utf8')).toBe('hello');
    const st = await lstat(join(dir, 'a/f.txt'));
    expect(st.mode & 0o7777).toBe(0o4755);
    expect([st.uid, st.gid]).toEqual([5, 6]);
    expect(st.nlink).toBe(2);
    expect(st.mtime.toISOString()).toBe('2024-01-01T00:00:00.000Z');
    const d = await lstat(join(dir, 'a'));
    expect(d.mode & 0o7777).toBe(0o750);
    expect(d.mtime.toISOString()).toBe('2024-01-01T00:00:00.000Z');
    expect(await readlink(join(dir, 'a/l'))).toBe('f.txt');
  });

  test('owners: false leaves every node to this process (a build context), modes kept', async () => {
    const dir = await tmp();
    const tar = await tarOf([
      { name: 'a/', type: 'directory', mode: 0o750, uid: 12, gid: 34 },
      { name: 'a/f.txt', mode: 0o755, uid: 5, gid: 6, body: 'hello' },
      { name: 'a/l', type: 'symlink', linkname: 'f.txt', uid: 7, gid: 8 },
    ]);
    await applyLayer(dir, Readable.from([tar]), { owners: false });
    const me = [process.geteuid?.(), process.getegid?.()];
    for (const p of ['a', 'a/f.txt', 'a/l']) {
      const st = await lstat(join(dir, p));
      expect([st.uid, st.gid], p).toEqual(me);
    }
    expect((await lstat(join(dir, 'a/f.txt'))).mode & 0o7777).toBe(0o755);
  });

  test('whiteouts and opaque directories delete lower content but not same-layer content', async () => {
    const dir = await tmp();
    await mkdir(join(dir, 'keep'), { recursive: true });
    await writeFile(join(dir, 'gone.txt'), 'x');
    await mkdir(join(dir, 'opq/sub'), { recursive: true });
    await writeFile(join(dir, 'opq/old'), 'x');
    await writeFile(join(dir, 'keep/k'), 'k');
    const tar = await tarOf([
      { name: 'opq/', type: 'directory', mode: 0o755 },
      { name: 'opq/new', body: 'n' },
      { name: 'opq/.wh..wh..opq' },
      { name: '.wh.gone.txt' },
    ]);
    await applyLayer(dir, Readable.from([tar]));
    expect((await readdir(dir)).sort()).toEqual(['keep', 'opq']);
    expect(await readdir(join(dir, 'opq'))).toEqual(['new']);
    expect(await readFile(join(dir, 'keep/k'), 'utf8')).toBe('k');
  });

  test('refuses paths escaping the root and does not follow symlinks out of it', async () => {
    const dir = await tmp();
    const outside = await tmp();
    await expect(applyLayer(dir, Readable.from([await tarOf([{ name: '../evil', body: 'x' }])]))).rejects.toMatchObject({
      code: 'PATH_ESCAPE',
    });
    await symlink(outside, join(dir, 'esc'));
    await applyLayer(dir, Readable.from([await tarOf([{ name: 'esc/pwn', body: 'x' }])]));
    expect(await readdir(outside)).toEqual([]);
    // the symlink is resolved inside the root: /tmp/... becomes <dir>/tmp/...
    expect(await readFile(join(dir, outside, 'pwn'), 'utf8')).toBe('x');
  });

  test('a directory replaced by an absolute symlink later in the layer: its mtime is not set through the link on the host', async () => {
    const dir = await tmp();
    const outside = await tmp();
    const victim = join(outside, 'victim');
    await writeFile(victim, 'x');
    await utimes(victim, new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    // And a directory below one replaced so: b/c is outside/c through the new link b.
    for (const sub of ['c', 'x']) {
      await mkdir(join(outside, sub));
      await utimes(join(outside, sub), new Date('2020-01-01T00:00:00Z'), new Date('2020-01-01T00:00:00Z'));
    }
    const old = new Date('2001-01-01T00:00:00Z');
    const tar = await tarOf([
      { name: 'a/', type: 'directory', mode: 0o755, mtime: old },
      { name: 'a', type: 'symlink', linkname: victim },
      { name: 'b/', type: 'directory', mode: 0o755, mtime: old },
      { name: 'b/c/', type: 'directory', mode: 0o755, mtime: old },
      { name: 'b', type: 'symlink', linkname: outside },
      // l/x/ is made as real/x/ (l -> real), then real becomes a link out: outside/x.
      { name: 'real/', type: 'directory', mode: 0o755, mtime: old },
      { name: 'l', type: 'symlink', linkname: 'real' },
      { name: 'l/x/', type: 'directory', mode: 0o755, mtime: old },
      { name: 'real', type: 'symlink', linkname: outside },
      { name: 'd/', type: 'directory', mode: 0o755, mtime: old },
    ]);
    await applyLayer(dir, Readable.from([tar]));
    expect(await readlink(join(dir, 'a'))).toBe(victim);
    expect((await lstat(victim)).mtime.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    expect((await lstat(join(outside, 'c'))).mtime.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    expect((await lstat(join(outside, 'x'))).mtime.toISOString()).toBe('2020-01-01T00:00:00.000Z');
    // Directories still in place get their times.
    expect((await lstat(join(dir, 'd'))).mtime.toISOString()).toBe('2001-01-01T00:00:00.000Z');
  });

  test('into an empty root: entries through a symlink made by the layer, an explicit directory after its files, duplicates', async () => {
    const dir = await tmp();
    const tar = await tarOf([
      { name: 'usr/', type: 'directory', mode: 0o755 },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      // The parent is reached through the symlink: usr/lib is made implicitly.
      { name: 'lib/x.so', body: 'x' },
      { name: 'usr/lib/', type: 'directory', mode: 0o750, uid: 7, gid: 8 },
      { name: 'usr/lib/y.so', body: 'y' },
      { name: 'dup', body: 'first' },
      { name: 'dup', body: 'second', mode: 0o600 },
      { name: 'd2/f', body: 'f' },
      { name: 'd2/', type: 'directory', mode: 0o700 },
    ]);
    const r = await applyLayer(dir, Readable.from([gzipSync(tar)]));
    expect(r.entries).toBe(9);
    expect(await readFile(join(dir, 'usr/lib/x.so'), 'utf8')).toBe('x');
    expect(await readFile(join(dir, 'usr/lib/y.so'), 'utf8')).toBe('y');
    const lib = await lstat(join(dir, 'usr/lib'));
    expect([lib.mode & 0o7777, lib.uid, lib.gid]).toEqual([0o750, 7, 8]);
    expect(await readlink(join(dir, 'lib'))).toBe('usr/lib');
    expect(await readFile(join(dir, 'dup'), 'utf8')).toBe('second');
    expect((await lstat(join(dir, 'dup'))).mode & 0o7777).toBe(0o600);
    expect((await lstat(join(dir, 'd2'))).mode & 0o7777).toBe(0o700);
    expect(await readFile(join(dir, 'd2/f'), 'utf8')).toBe('f');
  });

  test('owners are exact in set-gid directories and over existing content (the chown of new 0:0 nodes is skipped only when it is a no-op)', async () => {
    const dir = await tmp();
    await mkdir(join(dir, 'old'), { recursive: true });
    await writeFile(join(dir, 'old/f'), 'old');
    const { chown } = await import('node:fs/promises');
    await chown(join(dir, 'old'), 3, 4);
    const tar = await tarOf([
      { name: 'sg/', type: 'directory', mode: 0o2775, uid: 0, gid: 50 },
      { name: 'sg/file', body: 'f', uid: 0, gid: 0 },
      { name: 'sg/link', type: 'symlink', linkname: 'file', uid: 0, gid: 0 },
      { name: 'sg/sub/', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      { name: 'old/', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      { name: 'old/f', body: 'new', uid: 0, gid: 0 },
    ]);
    await applyLayer(dir, Readable.from([tar]));
    const owner = async (p: string): Promise<number[]> => {
      const st = await lstat(join(dir, p));
      return [st.uid, st.gid];
    };
    expect(await owner('sg')).toEqual([0, 50]);
    expect(await owner('sg/file')).toEqual([0, 0]);
    expect(await owner('sg/link')).toEqual([0, 0]);
    expect(await owner('sg/sub')).toEqual([0, 0]);
    expect(await owner('old')).toEqual([0, 0]);
    expect(await readFile(join(dir, 'old/f'), 'utf8')).toBe('new');
  });

  test('zstd layers are decoded', async () => {
    const dir = await tmp();
    const tar = await tarOf([{ name: 'z.txt', body: 'zstd!' }]);
    const { execFileSync } = await import('node:child_process');
    const z = execFileSync('zstd', ['-c', '-q'], { input: tar });
    const r = await applyLayer(dir, Readable.from([z]));
    expect(r.compression).toBe('zstd');
    expect(await readFile(join(dir, 'z.txt'), 'utf8')).toBe('zstd!');
  });

  test('into an empty root, an entry for an ancestor that an earlier entry created implicitly replaces or keeps it', async () => {
    const dir = await tmp();
    const tar = await tarOf([
      { name: 'a/b/c', body: 'x' },
      { name: 'a/', type: 'directory', mode: 0o700 },
      { name: 'p/q/r', body: 'y' },
      { name: 'p', type: 'symlink', linkname: 'a' },
    ]);
    await applyLayer(dir, Readable.from([tar]));
    expect((await lstat(join(dir, 'a'))).mode & 0o777).toBe(0o700);
    expect(await readFile(join(dir, 'a/b/c'), 'utf8')).toBe('x');
    expect(await readlink(join(dir, 'p'))).toBe('a');
  });
});
