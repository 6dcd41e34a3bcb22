import { chmod, lstat, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { applyFileAction, fileMkdir, fileMkfile, fileRm, fileSymlink } from '@kiln/runtime';
import { copyAction, exists, readTree, requireRoot, tempDir, writeTree } from './fileop-helpers.js';

beforeAll(requireRoot);

const TS = 1_600_000_000_500_000_000n; // 2020-09-13T12:26:40.5Z

describe('mkdir', () => {
  test('makeParents creates every level with mode, owner and timestamp', async () => {
    const root = await tempDir();
    const old = process.umask(0o077);
    try {
      await fileMkdir(root, { path: '/a/b/c', mode: 0o775, makeParents: true, owner: { user: { byID: 7 }, group: { byID: 8 } }, timestamp: TS });
    } finally {
      process.umask(old);
    }
    for (const p of ['a', 'a/b', 'a/b/c']) {
      const st = await stat(join(root, p), { bigint: true });
      expect(Number(st.mode) & 0o7777, p).toBe(0o775);
      expect([st.uid, st.gid], p).toEqual([7n, 8n]);
      expect(st.mtimeNs / 1_000_000n, p).toBe(1_600_000_000_500n);
    }
  });

  test('without makeParents: an existing path is kept, a missing parent fails', async () => {
    const root = await tempDir();
    await writeTree(root, { keep: { dir: true } });
    await chmod(join(root, 'keep'), 0o700);
    await fileMkdir(root, { path: '/keep', mode: 0o755, makeParents: false, timestamp: -1 });
    expect((await stat(join(root, 'keep'))).mode & 0o777).toBe(0o700);
    await expect(fileMkdir(root, { path: '/x/y', mode: 0o755, makeParents: false, timestamp: -1 })).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
      path: '/x/y',
    });
    await fileMkdir(root, { path: 'rel', mode: 0o1777, makeParents: false, timestamp: -1 });
    expect((await stat(join(root, 'rel'))).mode & 0o7777).toBe(0o777); // mode & 0777, as BuildKit
  });

  test('mkdir -p over a file fails with FILEOP_NOT_A_DIRECTORY', async () => {
    const root = await tempDir();
    await writeTree(root, { f: 'x' });
    await expect(fileMkdir(root, { path: '/f/sub', mode: 0o755, makeParents: true, timestamp: -1 })).rejects.toMatchObject({
      code: 'FILEOP_NOT_A_DIRECTORY',
    });
  });
});

describe('mkfile', () => {
  test('writes data with mode, owner by name and timestamp', async () => {
    const root = await tempDir();
    await writeTree(root, { 'etc/passwd': 'www:x:33:33::/var/www:/bin/false\n', 'etc/group': 'web:x:99:\n' });
    await fileMkfile(root, {
      path: '/srv/../index.html',
      mode: 0o640,
      data: new TextEncoder().encode('<h1>hi</h1>'),
      owner: { user: { byName: 'www' }, group: { byName: 'web' } },
      timestamp: TS,
    });
    const st = await stat(join(root, 'index.html'), { bigint: true });
    expect(await readFile(join(root, 'index.html'), 'utf8')).toBe('<h1>hi</h1>');
    expect(Number(st.mode) & 0o7777).toBe(0o640);
    expect([st.uid, st.gid]).toEqual([33n, 99n]);
    expect(st.mtimeNs / 1_000_000n).toBe(1_600_000_000_500n);
  });

  test('overwrites an existing file in place (its mode kept, as os.WriteFile)', async () => {
    const root = await tempDir();
    await writeTree(root, { f: 'long old content' });
    await chmod(join(root, 'f'), 0o600);
    await fileMkfile(root, { path: '/f', mode: 0o644, data: 'new', timestamp: -1 });
    expect(await readFile(join(root, 'f'), 'utf8')).toBe('new');
    expect((await stat(join(root, 'f'))).mode & 0o777).toBe(0o600);
  });

  test('a missing parent or a directory target fail with codes', async () => {
    const root = await tempDir();
    await writeTree(root, { d: { dir: true } });
    await expect(fileMkfile(root, { path: '/no/f', mode: 0o644, data: '', timestamp: -1 })).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
      path: '/no/f',
    });
    await expect(fileMkfile(root, { path: '/d', mode: 0o644, data: '', timestamp: -1 })).rejects.toMatchObject({ code: 'FILEOP_IO', path: '/d' });
  });
});

describe('rm', () => {
  test('removes files and trees; allowNotFound; wildcards', async () => {
    const root = await tempDir();
    await writeTree(root, { 'a/b/c': '1', 'x.log': 'l', 'y.log': 'l', 'keep.txt': 'k', 'logs/1.log': 'n' });
    await fileRm(root, { path: '/a', allowNotFound: false, allowWildcard: false });
    await fileRm(root, { path: '/*.log', allowNotFound: false, allowWildcard: true });
    await fileRm(root, { path: '/nothing', allowNotFound: true, allowWildcard: false });
    await fileRm(root, { path: '/nodir/*', allowNotFound: true, allowWildcard: true });
    await expect(fileRm(root, { path: '/nothing', allowNotFound: false, allowWildcard: false })).rejects.toMatchObject({
      code: 'FILEOP_NOT_FOUND',
      path: '/nothing',
    });
    await expect(fileRm(root, { path: '/', allowNotFound: true, allowWildcard: false })).rejects.toMatchObject({
      code: 'FILEOP_INVALID_PATH',
    });
    expect(await readTree(root)).toEqual({ 'keep.txt': 'k', logs: 'dir', 'logs/1.log': 'n' });
  });

  test('removes a dangling symlink, not its target', async () => {
    const root = await tempDir();
    await writeTree(root, { t: 'target', l: { link: 't' }, dangling: { link: '/missing' } });
    await fileRm(root, { path: '/l', allowNotFound: false, allowWildcard: false });
    await fileRm(root, { path: '/dangling', allowNotFound: false, allowWildcard: false });
    expect(await readTree(root)).toEqual({ t: 'target' });
  });
});

describe('symlink', () => {
  test('creates the link with owner and timestamp on the link itself', async () => {
    const root = await tempDir();
    await writeTree(root, { bin: { dir: true } });
    await fileSymlink(root, { oldpath: 'busybox', newpath: '/bin/sh', owner: { user: { byID: 5 } }, timestamp: TS });
    const st = await lstat(join(root, 'bin/sh'), { bigint: true });
    expect(await readlink(join(root, 'bin/sh'))).toBe('busybox');
    expect([st.uid, st.gid]).toEqual([5n, 5n]);
    expect(st.mtimeNs / 1_000_000n).toBe(1_600_000_000_500n);
    await expect(fileSymlink(root, { oldpath: 'x', newpath: '/bin/sh', timestamp: -1 })).rejects.toMatchObject({
      code: 'FILEOP_EXISTS',
      path: '/bin/sh',
    });
  });
});

describe('applyFileAction', () => {
  test('runs a chain of actions like a FileOp', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    await writeFile(join(src, 'app.js'), 'console.log(1)');
    const actions = [
      { kind: 'mkdir', path: '/app', mode: 0o755, makeParents: true, timestamp: -1 },
      {
        kind: 'copy',
        src: '/app.js',
        dest: '/app/',
        mode: -1,
        followSymlink: true,
        dirCopyContents: true,
        attemptUnpackDockerCompatibility: false,
        createDestPath: true,
        allowWildcard: true,
        allowEmptyWildcard: false,
        timestamp: -1,
        alwaysReplaceExistingDestPaths: false,
      },
      { kind: 'mkfile', path: '/app/VERSION', mode: 0o644, data: '1.0', timestamp: -1 },
      { kind: 'symlink', oldpath: 'app.js', newpath: '/app/main.js', timestamp: -1 },
      { kind: 'rm', path: '/app/VERSION', allowNotFound: false, allowWildcard: false },
    ] as const;
    for (const a of actions) await applyFileAction(a, { src, dest });
    expect(await readTree(dest)).toEqual({ app: 'dir', 'app/app.js': 'console.log(1)', 'app/main.js': '-> app.js' });
  });

  test('aborting a running copy stops it between files', async () => {
    const src = await tempDir('src');
    const dest = await tempDir('dest');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 200; i++) tree[`d/f${i}`] = String(i);
    await writeTree(src, tree);
    const ac = new AbortController();
    const p = applyFileAction(
      { kind: 'copy', ...copyAction('/d', '/d') },
      { src, dest },
      { signal: ac.signal },
    );
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'FILEOP_CANCELLED' });
    const copied = (await exists(join(dest, 'd'))) ? Object.keys(await readTree(join(dest, 'd'))).length : 0;
    expect(copied).toBeLessThan(200);
  });

  test('an aborted signal cancels with FILEOP_CANCELLED', async () => {
    const root = await tempDir();
    await writeTree(root, { f: 'x' });
    const ac = new AbortController();
    ac.abort();
    await expect(
      applyFileAction({ kind: 'rm', path: '/f', allowNotFound: false, allowWildcard: false }, { dest: root }, { signal: ac.signal }),
    ).rejects.toMatchObject({ code: 'FILEOP_CANCELLED' });
    expect(await exists(join(root, 'f'))).toBe(true);
  });
});
