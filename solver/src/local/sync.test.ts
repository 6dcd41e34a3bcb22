import { chmodSync, chownSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { syncLocalSource } from './sync.js';
import { ContentHashTree } from '../contenthash/tree.js';
import { EMPTY_DIGEST } from '../contenthash/tarsum.js';
import { followLinks, walkLocal, type DirListingCache } from './walk.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiln-sync-'));
  dirs.push(d);
  return d;
}
function files(root: string, spec: Record<string, string | null>): void {
  for (const [p, data] of Object.entries(spec)) {
    const fp = join(root, p);
    mkdirSync(join(fp, '..'), { recursive: true });
    if (data === null) mkdirSync(fp, { recursive: true });
    else writeFileSync(fp, data);
  }
}

describe('walkLocal filters (fsutil semantics)', () => {
  const root = (): string => {
    const r = tmp();
    files(r, {
      'Dockerfile': 'FROM x',
      'src/a.go': 'a',
      'src/b.txt': 'b',
      'src/vendor/v.go': 'v',
      'node_modules/m/index.js': 'm',
      'docs/README.md': 'r',
      'docs/other.md': 'o',
    });
    return r;
  };

  test('exclude patterns with ! exceptions', () => {
    const r = root();
    const paths = walkLocal(r, { excludePatterns: ['node_modules', 'docs', '!docs/README.md', '**/*.txt'] }).map((e) => e.path);
    expect(paths).toEqual(['Dockerfile', 'docs', 'docs/README.md', 'src', 'src/a.go', 'src/vendor', 'src/vendor/v.go']);
  });

  test('include patterns keep only matches plus their parent directories', () => {
    const r = root();
    expect(walkLocal(r, { includePatterns: ['src/*.go'] }).map((e) => e.path)).toEqual(['src', 'src/a.go']);
    expect(walkLocal(r, { includePatterns: ['src'] }).map((e) => e.path)).toEqual(['src', 'src/a.go', 'src/b.txt', 'src/vendor', 'src/vendor/v.go']);
  });

  test('follow paths include symlink targets', () => {
    const r = root();
    symlinkSync('docs/README.md', join(r, 'link.md'));
    expect(walkLocal(r, { followPaths: ['link.md'] }).map((e) => e.path)).toEqual(['docs', 'docs/README.md', 'link.md']);
  });

  test('follow paths resolve as fsutil FollowLinks: a link target leaving the root is clamped to it, a wildcard follows the links it matches', () => {
    const r = root();
    // readSymlink: filepath.Join("/", filepath.Join(filepath.Dir(p), link)) — `..` stops at the root.
    symlinkSync('../../docs/other.md', join(r, 'escape.md'));
    expect(walkLocal(r, { followPaths: ['escape.md'] }).map((e) => e.path)).toEqual(['docs', 'docs/other.md', 'escape.md']);
    // A wildcard base name reads the directory and follows each matching symlink (the pattern stays an include).
    symlinkSync('docs/README.md', join(r, 'a.link'));
    writeFileSync(join(r, 'b.link'), 'plain');
    expect(walkLocal(r, { followPaths: ['*.link'] }).map((e) => e.path)).toEqual(['a.link', 'b.link', 'docs', 'docs/README.md']);
    // A link to the root itself: fsutil's dedupePaths returns nil, so nothing is filtered.
    symlinkSync('.', join(r, 'self'));
    expect(walkLocal(r, { followPaths: ['self'] }).length).toBe(walkLocal(r).length);
    // Many paths are fine; a link cycle ends (each link is resolved once).
    symlinkSync('loop-b', join(r, 'loop-a'));
    symlinkSync('loop-a', join(r, 'loop-b'));
    const many = Array.from({ length: 6000 }, (_, i) => `docs/x${i}/y/z`);
    expect(followLinks(r, [...many, 'loop-a/f'])).toContain('loop-a');
  });
});

describe('syncLocalSource', () => {
  test('cold sync copies everything; an unchanged sync reads nothing; one change rehashes one file', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'a.txt': 'hello', 'dir/b.txt': 'bee', 'dir/sub/c.bin': 'x'.repeat(1000), '.dockerignore': '' });
    chmodSync(join(src, 'a.txt'), 0o600);
    symlinkSync('a.txt', join(src, 'ln'));
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };

    const r1 = await syncLocalSource(opts);
    expect(r1.stats).toMatchObject({ entries: 7, hashed: 4, unchanged: 0, removed: 0 });
    expect(readFileSync(join(opts.dest, 'dir/sub/c.bin'), 'utf8')).toBe('x'.repeat(1000));
    expect(lstatSync(join(opts.dest, 'a.txt')).mode & 0o777).toBe(0o600);
    expect(readlinkSync(join(opts.dest, 'ln'))).toBe('a.txt');
    expect(Math.abs(lstatSync(join(opts.dest, 'dir/b.txt')).mtimeMs - lstatSync(join(src, 'dir/b.txt')).mtimeMs)).toBeLessThan(0.01);

    const r2 = await syncLocalSource(opts);
    expect(r2.stats).toMatchObject({ hashed: 0, copied: 0, unchanged: 7 });
    expect(r2.rootDigest).toBe(r1.rootDigest);
    expect(await r2.tree.checksum('dir')).toBe(await r1.tree.checksum('dir'));

    writeFileSync(join(src, 'dir/b.txt'), 'changed');
    utimesSync(join(src, 'dir/b.txt'), new Date(2030, 1, 1), new Date(2030, 1, 1));
    const r3 = await syncLocalSource(opts);
    expect(r3.stats).toMatchObject({ hashed: 1, copied: 1 });
    expect(r3.rootDigest).not.toBe(r1.rootDigest);
    expect(await r3.tree.checksum('a.txt')).toBe(await r1.tree.checksum('a.txt'));
    expect(await r3.tree.checksum('dir/b.txt')).not.toBe(await r1.tree.checksum('dir/b.txt'));
    expect(readFileSync(join(opts.dest, 'dir/b.txt'), 'utf8')).toBe('changed');
    // Reused directory digests equal a from-scratch sync of the same tree.
    const fresh = async (tag: string): Promise<string> =>
      (await syncLocalSource({ src, dest: join(work, `fresh-${tag}`), statePath: join(work, `fresh-${tag}.json`) })).rootDigest;
    expect(r3.rootDigest).toBe(await fresh('r3'));

    rmSync(join(src, 'dir/sub'), { recursive: true });
    const r4 = await syncLocalSource(opts);
    expect(r4.stats.removed).toBe(2);
    expect(r4.rootDigest).toBe(await fresh('r4'));
    expect(existsSync(join(opts.dest, 'dir/sub'))).toBe(false);
  });

  test('the mirror honours exclude patterns and a file turning into a directory', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'keep.txt': 'k', 'skip.log': 's', 'x': 'file' });
    const opts = { src, dest: join(work, 'm'), statePath: join(work, 's.json'), filter: { excludePatterns: ['*.log'] } };
    await syncLocalSource(opts);
    expect(existsSync(join(opts.dest, 'skip.log'))).toBe(false);
    rmSync(join(src, 'x'));
    files(src, { 'x/inner': 'i' });
    const r = await syncLocalSource(opts);
    expect(readFileSync(join(opts.dest, 'x/inner'), 'utf8')).toBe('i');
    expect(r.stats.entries).toBe(3);
  });

  test('a file is never rewritten in place: a changed one gets a new inode, so links to the old one keep the old bytes', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'a.txt': 'v1', 'b.txt': 'same' });
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };
    await syncLocalSource(opts);
    const saved = join(work, 'saved-a');
    linkSync(join(opts.dest, 'a.txt'), saved);
    linkSync(join(opts.dest, 'b.txt'), join(work, 'saved-b'));
    const bMode = lstatSync(join(src, 'b.txt')).mode & 0o7777;
    writeFileSync(join(src, 'a.txt'), 'v2 is longer');
    chmodSync(join(src, 'b.txt'), 0o600);
    await syncLocalSource(opts);
    expect(readFileSync(saved, 'utf8')).toBe('v1');
    expect(readFileSync(join(opts.dest, 'a.txt'), 'utf8')).toBe('v2 is longer');
    // A mode change is a new inode too: the old one keeps its mode.
    expect(lstatSync(join(work, 'saved-b')).mode & 0o7777).toBe(bMode);
    expect(lstatSync(join(opts.dest, 'b.txt')).mode & 0o7777).toBe(0o600);
    // With the state lost, the mirror is rewritten the same way (never truncated in place).
    rmSync(opts.statePath);
    linkSync(join(opts.dest, 'a.txt'), join(work, 'saved-a2'));
    writeFileSync(join(src, 'a.txt'), 'v3');
    await syncLocalSource(opts);
    expect(readFileSync(join(work, 'saved-a2'), 'utf8')).toBe('v2 is longer');
    expect(readFileSync(join(opts.dest, 'a.txt'), 'utf8')).toBe('v3');
  });

  test('a big cold sync hashes and copies every file exactly', async () => {
    const src = tmp();
    const work = tmp();
    const spec: Record<string, string> = {};
    for (let i = 0; i < 700; i++) spec[`d${i % 13}/s${i % 5}/f${i}.txt`] = `file ${i}\n`.repeat(i % 40);
    files(src, spec);
    chmodSync(join(src, 'd1/s1/f1.txt'), 0o751);
    chownSync(join(src, 'd2/s2/f2.txt'), 321, 654);
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };
    const r = await syncLocalSource(opts);
    expect(r.stats.hashed).toBe(700);
    // The same digest as hashing every file from disk on this thread.
    const fromDisk = ContentHashTree.fromEntries(walkLocal(src), { root: src, rootHeaderDigest: EMPTY_DIGEST });
    expect(r.rootDigest).toBe(await fromDisk.checksum('/'));
    for (const p of Object.keys(spec)) {
      expect(readFileSync(join(opts.dest, p), 'utf8')).toBe(spec[p]);
      const [a, b] = [lstatSync(join(opts.dest, p)), lstatSync(join(src, p))];
      expect([a.mode, a.uid, a.gid, Math.round(a.mtimeMs)]).toEqual([b.mode, 0, 0, Math.round(b.mtimeMs)]);
    }
  }, 60_000);

  test('files are owned by 0:0 in the mirror whoever owns them on the host (buildx resetUIDAndGID); set-id bits and modes are exact whatever the umask', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'suid': '#!/bin/sh\n', 'plain.txt': 'p', 'wide.txt': 'w' });
    chownSync(join(src, 'suid'), 1234, 1234);
    chmodSync(join(src, 'suid'), 0o4755);
    chmodSync(join(src, 'wide.txt'), 0o666);
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };
    await syncLocalSource(opts);
    const st = lstatSync(join(opts.dest, 'suid'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([0, 0, 0o4755]);
    // A later sync compares against the reset owner: the file is unchanged, not rewritten.
    const again = await syncLocalSource(opts);
    expect(again.stats.copied).toBe(0);
    expect(lstatSync(join(opts.dest, 'wide.txt')).mode & 0o7777).toBe(0o666);
    expect(lstatSync(join(opts.dest, 'plain.txt')).mode & 0o7777).toBe(lstatSync(join(src, 'plain.txt')).mode & 0o7777);
  });

  test('unchanged directories are not listed again; adding, removing or renaming an entry is seen', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'd/a.txt': 'a', 'd/e/b.txt': 'b', 'top.txt': 't' });
    // Listings of directories changed within the last moments are not kept (racy): wait a bit.
    await new Promise((r) => setTimeout(r, 250));
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };
    const r1 = await syncLocalSource(opts);
    const state = JSON.parse(readFileSync(opts.statePath, 'utf8')) as { listings: Record<string, [number, number, string[]]> };
    expect(Object.fromEntries(Object.entries(state.listings).map(([k, v]) => [k, v[2]]))).toEqual({ '': ['d', 'top.txt'], d: ['a.txt', 'e'], 'd/e': ['b.txt'] });
    expect((await syncLocalSource(opts)).rootDigest).toBe(r1.rootDigest);

    writeFileSync(join(src, 'd/e/new.txt'), 'n');
    expect((await syncLocalSource(opts)).entries.map((e) => e.path)).toContain('d/e/new.txt');
    rmSync(join(src, 'd/a.txt'));
    expect((await syncLocalSource(opts)).entries.map((e) => e.path)).not.toContain('d/a.txt');
    renameSync(join(src, 'd/e/b.txt'), join(src, 'd/e/c.txt'));
    const r = await syncLocalSource(opts);
    expect(r.entries.map((e) => e.path)).toEqual(['d', 'd/e', 'd/e/c.txt', 'd/e/new.txt', 'top.txt']);
    expect(readFileSync(join(opts.dest, 'd/e/c.txt'), 'utf8')).toBe('b');
    expect(existsSync(join(opts.dest, 'd/e/b.txt'))).toBe(false);
  });
});

describe('walkLocal listing cache', () => {
  test('a cached listing is used while inode and ctime match; a racy directory is not cached', () => {
    const r = tmp();
    files(r, { 'd/a.txt': 'a', 'd/b.txt': 'b' });
    const set: string[] = [];
    const cache: DirListingCache = {
      // The cache claims `d` holds only a.txt: the walk believes it (no readdir of `d`).
      get: (rel, ino, ctimeMs) => (rel === 'd' && ino === lstatSync(join(r, 'd')).ino && ctimeMs === lstatSync(join(r, 'd')).ctimeMs ? ['a.txt'] : undefined),
      set: (rel) => void set.push(rel),
    };
    expect(walkLocal(r, {}, cache).map((e) => e.path)).toEqual(['d', 'd/a.txt']);
    // Just written: too recent to be trusted, so nothing is recorded.
    expect(set).toEqual([]);
  });
});

