import { readFile, readlink, writeFile, lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fileCopy, fileMkdir, fileMkfile, fileRm, fileSymlink, resolveInRoot } from '@kiln/runtime';
import { copyAction, exists, requireRoot, run, tempDir, writeTree } from './fileop-helpers.js';

beforeAll(requireRoot);

describe('resolveInRoot: symlinks and .. never leave the root', () => {
  test('absolute, relative and chained links are clamped to the root', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside');
    await writeTree(root, {
      'etc/passwd': 'inside',
      abs: { link: '/etc' },
      rel: { link: '../../../../../../etc' },
      hostabs: { link: outside },
      chain1: { link: 'chain2/x' },
      chain2: { link: '/abs/..' },
      'sub/up': { link: '../../..' },
    });
    expect(await resolveInRoot(root, '/abs/passwd')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, 'rel/passwd')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, '/../../../etc/passwd')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, '/hostabs/f')).toBe(join(root, outside, 'f'));
    expect(await resolveInRoot(root, '/chain1')).toBe(join(root, 'x'));
    expect(await resolveInRoot(root, '/sub/up/etc')).toBe(join(root, 'etc'));
    expect(await resolveInRoot(root, '/missing/../abs/passwd')).toBe(join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, '/abs', { followFinal: false })).toBe(join(root, 'abs'));
  });

  test('a symlink loop fails with FILEOP_SYMLINK_LOOP', async () => {
    const root = await tempDir();
    await writeTree(root, { a: { link: 'b' }, b: { link: '/a' } });
    await expect(resolveInRoot(root, '/a/x')).rejects.toMatchObject({ code: 'FILEOP_SYMLINK_LOOP' });
  });
});

describe('file actions stay inside their root', () => {
  test('mkfile through a link to a host directory writes inside the root', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside');
    await writeTree(root, { evil: { link: outside }, evilrel: { link: '../../../../../../../..' + outside } });
    await mkdir(join(root, outside), { recursive: true });
    await fileMkfile(root, { path: '/evil/pwned', mode: 0o644, data: 'x', timestamp: -1 });
    await fileMkfile(root, { path: '/evilrel/pwned2', mode: 0o644, data: 'y', timestamp: -1 });
    expect(await exists(join(outside, 'pwned'))).toBe(false);
    expect(await exists(join(outside, 'pwned2'))).toBe(false);
    expect(await readFile(join(root, outside, 'pwned'), 'utf8')).toBe('x');
    expect(await readFile(join(root, outside, 'pwned2'), 'utf8')).toBe('y');
  });

  test('mkfile onto a final symlink pointing outside overwrites nothing outside', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside');
    await writeFile(join(outside, 'secret'), 'original');
    await writeTree(root, { 'etc/shadow': { link: join(outside, 'secret') } });
    await expect(fileMkfile(root, { path: '/etc/shadow', mode: 0o600, data: 'owned', timestamp: -1 })).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
      path: '/etc/shadow',
    });
    expect(await readFile(join(outside, 'secret'), 'utf8')).toBe('original');
  });

  test('mkdir -p through a relative escape link creates directories inside', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside');
    await writeTree(root, { up: { link: '../../../../../../..' } });
    const rel = outside.slice(1);
    await fileMkdir(root, { path: `/up/${rel}/made`, mode: 0o755, makeParents: true, timestamp: -1 });
    expect(await exists(join(outside, 'made'))).toBe(false);
    expect((await lstat(join(root, rel, 'made'))).isDirectory()).toBe(true);
  });

  test('rm does not follow the final link and resolves parents inside', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside');
    await writeFile(join(outside, 'keep'), 'keep');
    await writeTree(root, { l: { link: outside } });
    await fileRm(root, { path: '/l/keep', allowNotFound: true, allowWildcard: false });
    await expect(fileRm(root, { path: '/l/keep', allowNotFound: false, allowWildcard: false })).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
    });
    await fileRm(root, { path: '/l/*', allowNotFound: true, allowWildcard: true });
    await fileRm(root, { path: '/l', allowNotFound: false, allowWildcard: false });
    expect(await exists(join(root, 'l'))).toBe(false);
    expect(await readFile(join(outside, 'keep'), 'utf8')).toBe('keep');
  });

  test('symlink created under a linked parent lands inside', async () => {
    const root = await tempDir();
    const outside = await tempDir('outside');
    await writeTree(root, { d: { link: outside }, [outside.slice(1)]: { dir: true } });
    await fileSymlink(root, { oldpath: '/etc/passwd', newpath: '/d/link', timestamp: -1 });
    expect(await exists(join(outside, 'link'))).toBe(false);
    expect(await readlink(join(root, outside, 'link'))).toBe('/etc/passwd');
  });

  test('copy source links resolve in the source root, not on the host', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    await writeTree(src, { passwd: { link: '/etc/passwd' }, up: { link: '../../../../etc/hostname' } });
    await expect(fileCopy(src, dest, copyAction('/passwd', '/p', { followSymlink: true }))).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
      path: '/passwd',
    });
    await expect(fileCopy(src, dest, copyAction('/up', '/u', { followSymlink: true }))).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
    });
    // Without followSymlink the link itself is copied, verbatim.
    await fileCopy(src, dest, copyAction('/passwd', '/p'));
    expect(await readlink(join(dest, 'p'))).toBe('/etc/passwd');
  });

  test('copy into a destination whose directories are links never writes outside', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    const outside = await tempDir('outside');
    await writeFile(join(outside, 'f'), 'original');
    await writeTree(src, { 'tree/sub/f': 'new', 'file.txt': 'new' });
    await writeTree(dest, { 'app/sub': { link: outside }, 'app/f': { link: join(outside, 'f') }, out: { link: outside } });
    // A nested dir that is a link in dest: refused (fsutil: cannot copy to non-directory)...
    await expect(fileCopy(src, dest, copyAction('/tree', '/app', { dirCopyContents: true }))).rejects.toMatchObject({
      code: 'FILEOP_CANNOT_REPLACE',
      path: '/app/sub',
    });
    expect(await readFile(join(outside, 'f'), 'utf8')).toBe('original');
    // ...or replaced by a real directory with alwaysReplaceExistingDestPaths.
    await fileCopy(src, dest, copyAction('/tree', '/app', { dirCopyContents: true, alwaysReplaceExistingDestPaths: true }));
    expect((await lstat(join(dest, 'app/sub'))).isDirectory()).toBe(true);
    expect(await readFile(join(dest, 'app/sub/f'), 'utf8')).toBe('new');
    // A file copied onto a final link to an outside file lands inside the root.
    await fileCopy(src, dest, copyAction('/file.txt', '/app/f', { createDestPath: true }));
    await fileCopy(src, dest, copyAction('/file.txt', '/out/g', { createDestPath: true }));
    expect(await readFile(join(outside, 'f'), 'utf8')).toBe('original');
    expect(await exists(join(outside, 'g'))).toBe(false);
    expect(await readFile(join(dest, outside, 'f'), 'utf8')).toBe('new');
    expect(await readFile(join(dest, outside, 'g'), 'utf8')).toBe('new');
  });

  test('ADD archives cannot escape the extraction directory', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    const work = await tempDir('work');
    // An archive whose absolute symlink is followed by an entry written through it.
    await writeTree(work, { 'a/l': { link: '/' }, 'b/l/etc/evil': 'x' });
    run('tar', ['-cf', join(src, 'abs.tar'), '-C', join(work, 'a'), 'l', '-C', join(work, 'b'), 'l/etc/evil']);
    await fileCopy(src, dest, copyAction('/abs.tar', '/x/', { attemptUnpackDockerCompatibility: true }));
    expect(await readFile(join(dest, 'x/etc/evil'), 'utf8')).toBe('x');
    expect(await exists('/etc/evil')).toBe(false);
    // `..` entries and relative links above the directory are rejected.
    await writeTree(work, { 'c/f': 'dots', 'd/up': { link: '../../../../../tmp' } });
    run('tar', ['-cf', join(src, 'dots.tar'), '-C', join(work, 'c'), '-P', '--transform', 's,^f,../../f,', 'f']);
    run('tar', ['-cf', join(src, 'uplink.tar'), '-C', join(work, 'd'), 'up']);
    await expect(fileCopy(src, dest, copyAction('/dots.tar', '/y/', { attemptUnpackDockerCompatibility: true }))).rejects.toMatchObject({
      code: 'FILEOP_ARCHIVE_INVALID',
    });
    await expect(fileCopy(src, dest, copyAction('/uplink.tar', '/z/', { attemptUnpackDockerCompatibility: true }))).rejects.toMatchObject({
      code: 'FILEOP_ARCHIVE_INVALID',
    });
    expect(await exists(join(dest, '../f'))).toBe(false);
  });
});
