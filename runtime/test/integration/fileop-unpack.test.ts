import { execFileSync } from 'node:child_process';
import { chown, lstat, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fileCopy, isArchive } from '@kiln/runtime';
import { copyAction, readTree, requireRoot, run, tempDir, writeTree } from './fileop-helpers.js';

beforeAll(requireRoot);

/** Builds `<dir>/name` as a tar of a small tree with owners and mtimes set, compressed by `tool`. */
async function makeArchive(dir: string, name: string, tool: string | undefined): Promise<void> {
  const work = await tempDir('work');
  await writeTree(work, { 'pkg/bin/tool': '#!/bin/sh\n', 'pkg/README': 'readme', 'pkg/link': { link: 'README' } });
  await chown(join(work, 'pkg/README'), 1500, 1600);
  await utimes(join(work, 'pkg/README'), 1_234_567_890, 1_234_567_890);
  await utimes(join(work, 'pkg'), 1_111_111_111, 1_111_111_111);
  const tar = join(dir, tool === undefined ? name : `${name}.tmp`);
  run('tar', ['-cf', tar, '-C', work, 'pkg']);
  if (tool !== undefined) {
    run(tool, ['-q', tar]);
    const ext = { gzip: '.gz', bzip2: '.bz2', xz: '.xz', zstd: '.zst' }[tool] ?? '';
    run('mv', [`${tar}${ext}`, join(dir, name)]);
  }
}

describe('ADD-style unpack (attemptUnpackDockerCompatibility)', () => {
  test.for([
    ['plain', undefined],
    ['gzip', 'gzip'],
    ['bzip2', 'bzip2'],
    ['xz', 'xz'],
    ['zstd', 'zstd'],
  ] as const)('%s archive is detected by content and extracted with owners and mtimes', async ([label, tool]) => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    // A misleading name: detection is by content, not by extension.
    await makeArchive(src, `archive-${label}.bin`, tool);
    expect(await isArchive(join(src, `archive-${label}.bin`))).toBe(true);
    await fileCopy(src, dest, copyAction(`/archive-${label}.bin`, '/opt/', { attemptUnpackDockerCompatibility: true, createDestPath: true }));
    expect(await readTree(join(dest, 'opt'))).toEqual({
      pkg: 'dir',
      'pkg/README': 'readme',
      'pkg/bin': 'dir',
      'pkg/bin/tool': '#!/bin/sh\n',
      'pkg/link': '-> README',
    });
    const readme = await stat(join(dest, 'opt/pkg/README'));
    expect([readme.uid, readme.gid]).toEqual([1500, 1600]);
    expect(readme.mtimeMs).toBe(1_234_567_890_000);
    expect((await stat(join(dest, 'opt/pkg'))).mtimeMs).toBe(1_111_111_111_000);
  });

  test('non-archives are copied as files, even with an archive name', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    await writeFile(join(src, 'fake.tar.gz'), 'not really');
    await writeFile(join(src, 'zeros.tar'), Buffer.alloc(1024));
    run('sh', ['-c', `printf 'hello' | gzip > ${join(src, 'text.gz')}`]);
    for (const f of ['fake.tar.gz', 'zeros.tar', 'text.gz']) {
      expect(await isArchive(join(src, f)), f).toBe(false);
      await fileCopy(src, dest, copyAction(`/${f}`, '/in/', { attemptUnpackDockerCompatibility: true }));
      expect((await lstat(join(dest, 'in', f))).isFile(), f).toBe(true);
    }
    expect(await readFile(join(dest, 'in/fake.tar.gz'), 'utf8')).toBe('not really');
  });

  test('wildcard sources are unpacked one by one; chown applies to the created dest dir only', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    await makeArchive(src, 'a.tgz', 'gzip');
    await writeFile(join(src, 'b.txt'), 'b');
    await fileCopy(
      src,
      dest,
      copyAction('/*', '/out', { allowWildcard: true, attemptUnpackDockerCompatibility: true, createDestPath: true, owner: { user: { byID: 42 } } }),
    );
    const t = await readTree(join(dest, 'out'));
    expect(t['pkg/README']).toBe('readme');
    expect(t['b.txt']).toBe('b');
    expect((await stat(join(dest, 'out'))).uid).toBe(42);
    expect((await stat(join(dest, 'out/pkg/README'))).uid).toBe(1500);
    expect((await stat(join(dest, 'out/b.txt'))).uid).toBe(42);
  });

  test('extraction replaces existing files and merges into existing directories', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    await makeArchive(src, 'a.tar', undefined);
    await writeTree(dest, { 'x/pkg/README': { dir: true }, 'x/pkg/other': 'kept', 'x/pkg/bin/tool': 'old' });
    await fileCopy(src, dest, copyAction('/a.tar', '/x', { attemptUnpackDockerCompatibility: true }));
    const t = await readTree(join(dest, 'x'));
    expect(t['pkg/README']).toBe('readme');
    expect(t['pkg/other']).toBe('kept');
    expect(t['pkg/bin/tool']).toBe('#!/bin/sh\n');
  });

  test('a missing decompressor is an error with an install hint, not a silent plain copy', async () => {
    const src = await tempDir('src');
    await makeArchive(src, 'a.txz', 'xz');
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(isArchive(join(src, 'a.txz'))).rejects.toMatchObject({ code: 'FILEOP_UNSUPPORTED', hint: 'apt-get install xz' });
    } finally {
      process.env.PATH = path;
    }
  });

  test('a truncated compressed archive fails with FILEOP_ARCHIVE_INVALID', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    const work = await tempDir('work');
    await writeFile(join(work, 'big'), Buffer.alloc(200_000, 7));
    run('sh', ['-c', `tar -cf - -C ${work} big | gzip > ${join(src, 'full.tgz')}`]);
    const full = await readFile(join(src, 'full.tgz'));
    await writeFile(join(src, 'cut.tgz'), full.subarray(0, Math.floor(full.length / 2)));
    await expect(fileCopy(src, dest, copyAction('/cut.tgz', '/o/', { attemptUnpackDockerCompatibility: true }))).rejects.toMatchObject({
      code: 'FILEOP_ARCHIVE_INVALID',
      path: '/cut.tgz',
    });
  });

  test.for([
    ['PAX 1.0', ['--format=pax', '--sparse-version=1.0']],
    ['PAX 0.0', ['--format=pax', '--sparse-version=0.0']],
    ['old GNU', ['--format=gnu']],
  ] as const)('a GNU sparse file (%s) in an ADD archive fails naming it instead of extracting a wrong file', async ([, args]) => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    const work = await tempDir('work');
    await writeFile(join(work, 'holes'), 'head');
    run('truncate', ['-s', '1M', join(work, 'holes')]);
    run('tar', ['--sparse', ...args, '-cf', join(src, 'sparse.tar'), '-C', work, 'holes']);
    await expect(fileCopy(src, dest, copyAction('/sparse.tar', '/o/', { attemptUnpackDockerCompatibility: true, createDestPath: true }))).rejects.toMatchObject({
      code: 'FILEOP_ARCHIVE_INVALID',
      message: expect.stringContaining('"holes"'),
    });
    expect(await readTree(join(dest, 'o'))).toEqual({});
  });
});

describe('ADD-style unpack: extended attributes', () => {
  test('SCHILY.xattr records (GNU tar --xattrs) are applied: file capabilities after the owner, binary values byte-exact', async () => {
    const work = await tempDir('work');
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    await writeTree(work, { 'pkg/bin/ping': 'ping', 'pkg/plain': 'plain' });
    // owned by someone else in the archive: chown on extract would clear a capability set before it
    await chown(join(work, 'pkg/bin/ping'), 1500, 1600);
    // CAP_SETUID (7) makes a capability value that is not valid UTF-8 (0x80)
    run('setcap', ['cap_setuid,cap_net_raw+ep', join(work, 'pkg/bin/ping')]);
    run('setfattr', ['-n', 'user.bin', '-v', '0xff00fe0a3d', join(work, 'pkg/bin/ping')]);
    run('setfattr', ['-n', 'user.dir', '-v', 'd', join(work, 'pkg')]);
    run('tar', ['--xattrs', '--xattrs-include=*', '-cf', join(src, 'caps.tar'), '-C', work, 'pkg']);
    await fileCopy(src, dest, copyAction('/caps.tar', '/opt/', { attemptUnpackDockerCompatibility: true, createDestPath: true }));
    const ping = join(dest, 'opt/pkg/bin/ping');
    expect([(await stat(ping)).uid, (await stat(ping)).gid]).toEqual([1500, 1600]);
    expect(execFileSync('getcap', [ping]).toString()).toMatch(/cap_setuid,cap_net_raw=ep/);
    const attr = (p: string, n: string): string => execFileSync('getfattr', ['-h', '--only-values', '-n', n, p], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('hex');
    expect(attr(ping, 'user.bin')).toBe('ff00fe0a3d');
    expect(attr(ping, 'security.capability')).toBe(attr(join(work, 'pkg/bin/ping'), 'security.capability'));
    expect(attr(join(dest, 'opt/pkg'), 'user.dir')).toBe(Buffer.from('d').toString('hex'));
    expect(execFileSync('getfattr', ['-h', '-d', '-m', '-', join(dest, 'opt/pkg/plain')], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).toBe('');
    expect(await readFile(ping, 'utf8')).toBe('ping');
  });
});
