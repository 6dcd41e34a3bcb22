// fileCopy with `copyLinks`: which regular files a copy hands back as deferred hard links (only
// into directories the copy created, only when owner, mode and times stay the source's), and that
// the tree is complete and exact once the caller has made the links.
import { execFileSync } from 'node:child_process';
import { linkSync, lutimesSync } from 'node:fs';
import { chmod, lstat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fileCopy, type FileOpOptions } from '@kiln/runtime';
import { copyAction, exists, readTree, requireRoot, run, tempDir, writeTree } from './fileop-helpers.js';

beforeAll(requireRoot);

type Plan = NonNullable<FileOpOptions['copyLinks']>;

function plan(destLayer: string): Plan {
  return { destLayer, links: [], stamps: [] };
}

/** What the caller (the solver's FileOp) does after unmounting: link, then restore directory times. */
function finish(p: Plan): void {
  for (const l of p.links) linkSync(l.from, l.to);
  for (const s of p.stamps) lutimesSync(s.path, s.atime, s.mtime);
}

const rel = (root: string, ps: Plan['links']): string[] => ps.map((l) => l.to.slice(root.length + 1)).sort();

async function source(): Promise<string> {
  const src = await tempDir('src');
  await writeTree(src, { 'top.txt': 'T', 'd/a.txt': 'A', 'd/x.log': 'X', 'd/sub/b.txt': 'B', 'd/ln': { link: 'a.txt' } });
  await chmod(join(src, 'd/a.txt'), 0o640);
  await utimes(join(src, 'd/a.txt'), new Date('2020-05-06T07:08:09Z'), new Date('2020-05-06T07:08:09Z'));
  await utimes(join(src, 'd/sub'), new Date('2019-01-01T00:00:00Z'), new Date('2019-01-01T00:00:00Z'));
  return src;
}

describe('copy with copyLinks', () => {
  test('files going into directories the copy created become links; excluded files and symlinks do not', async () => {
    const src = await source();
    const dest = await tempDir('dest');
    const p = plan(dest);
    await fileCopy(src, dest, copyAction('/', '/out', { dirCopyContents: true, createDestPath: true, excludePatterns: ['**/*.log'] }), { copyLinks: p });
    expect(rel(dest, p.links)).toEqual(['out/d/a.txt', 'out/d/sub/b.txt', 'out/top.txt']);
    expect(p.links.find((l) => l.to.endsWith('/a.txt'))?.from).toBe(join(src, 'd/a.txt'));
    // Nothing is linked by the copy itself; the symlink is made as usual.
    expect(await exists(join(dest, 'out/d/a.txt'))).toBe(false);
    expect(await exists(join(dest, 'out/d/ln'))).toBe(true);
    finish(p);
    expect(await readTree(join(dest, 'out'))).toEqual({ d: 'dir', 'd/a.txt': 'A', 'd/ln': '-> a.txt', 'd/sub': 'dir', 'd/sub/b.txt': 'B', 'top.txt': 'T' });
    const a = await lstat(join(dest, 'out/d/a.txt'));
    expect([a.ino, a.mode & 0o7777, a.mtime.toISOString()]).toEqual([(await lstat(join(src, 'd/a.txt'))).ino, 0o640, '2020-05-06T07:08:09.000Z']);
    // The stamps put back the mtime the links bumped.
    expect((await lstat(join(dest, 'out/d/sub'))).mtime.toISOString()).toBe('2019-01-01T00:00:00.000Z');
  });

  test('xattrs: a linked file keeps its own (same inode), a created directory gets its source\'s', async () => {
    const src = await source();
    run('setfattr', ['-n', 'user.kiln', '-v', 'file', join(src, 'd/a.txt')]);
    run('setfattr', ['-n', 'user.kiln', '-v', 'dir', join(src, 'd/sub')]);
    const dest = await tempDir('dest');
    const p = plan(dest);
    await fileCopy(src, dest, copyAction('/', '/out', { dirCopyContents: true, createDestPath: true }), { copyLinks: p });
    finish(p);
    const attr = (f: string): string => execFileSync('getfattr', ['--only-values', '-n', 'user.kiln', join(dest, f)], { encoding: 'utf8' });
    expect(attr('out/d/a.txt')).toBe('file');
    expect(attr('out/d/sub')).toBe('dir');
  });

  test('files going into a directory that already existed are copied', async () => {
    const src = await source();
    const dest = await tempDir('dest');
    await writeTree(dest, { 'pre/old.txt': 'old' });
    const p = plan(dest);
    await fileCopy(src, dest, copyAction('/', '/pre', { dirCopyContents: true }), { copyLinks: p });
    expect(rel(dest, p.links)).toEqual(['pre/d/a.txt', 'pre/d/sub/b.txt', 'pre/d/x.log']);
    const top = await lstat(join(dest, 'pre/top.txt'));
    expect(top.nlink).toBe(1);
    finish(p);
    expect((await readTree(join(dest, 'pre')))['old.txt']).toBe('old');
  });

  test('a mode, owner or timestamp change means copies; an owner equal to the source still links', async () => {
    const src = await source();
    for (const [over, links] of [
      [{ mode: 0o600 }, 0],
      [{ modeStr: 'u+x' }, 0],
      [{ timestamp: 1_600_000_000_000_000_000n }, 0],
      [{ owner: { user: { byID: 1000 } } }, 0],
      [{ owner: { user: { byID: 0 } } }, 4],
    ] as const) {
      const dest = await tempDir('dest');
      const p = plan(dest);
      await fileCopy(src, dest, copyAction('/', '/out', { dirCopyContents: true, createDestPath: true, ...over }), { copyLinks: p });
      expect([over, p.links.length]).toEqual([over, links]);
      finish(p);
      expect(Object.keys(await readTree(join(dest, 'out'))).length).toBe(7);
    }
  });
});
