import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, chown, link, lstat, readFile, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { fileCopy } from '@kiln/runtime';
import { copyAction, exists, readTree, requireRoot, run, tempDir, writeTree } from './fileop-helpers.js';

beforeAll(requireRoot);

async function roots(tree: Parameters<typeof writeTree>[1]): Promise<{ src: string; dest: string }> {
  const src = await tempDir('src');
  const dest = await tempDir('dest');
  await writeTree(src, tree);
  return { src, dest };
}

async function sha256(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('copy: destination rules (fsutil prepareTargetDir)', () => {
  test('file to a new name, into an existing dir, and into a trailing-slash dir', async () => {
    const { src, dest } = await roots({ 'a.txt': 'A' });
    await writeTree(dest, { existing: { dir: true } });
    await fileCopy(src, dest, copyAction('/a.txt', '/b.txt'));
    await fileCopy(src, dest, copyAction('/a.txt', '/existing'));
    await fileCopy(src, dest, copyAction('/a.txt', '/newdir/'));
    await fileCopy(src, dest, copyAction('/a.txt', '/dot/.'));
    expect(await readTree(dest)).toEqual({
      'b.txt': 'A',
      dot: 'dir',
      'dot/a.txt': 'A',
      existing: 'dir',
      'existing/a.txt': 'A',
      newdir: 'dir',
      'newdir/a.txt': 'A',
    });
  });

  test('directory: new name, into an existing dir, and dirCopyContents', async () => {
    const { src, dest } = await roots({ 'd/x': '1', 'd/s/y': '2' });
    await writeTree(dest, { e: { dir: true }, m: { dir: true }, 'm/old': 'o' });
    await fileCopy(src, dest, copyAction('/d', '/n'));
    await fileCopy(src, dest, copyAction('/d', '/e'));
    await fileCopy(src, dest, copyAction('/d/', '/m', { dirCopyContents: true }));
    await fileCopy(src, dest, copyAction('/d', '/c', { dirCopyContents: true }));
    const t = await readTree(dest);
    expect(t['n/x']).toBe('1');
    expect(t['n/s/y']).toBe('2');
    expect(t['e/d/x']).toBe('1');
    expect(t['m/x']).toBe('1');
    expect(t['m/old']).toBe('o');
    expect(t['c/s/y']).toBe('2');
  });

  test('copy into the root itself', async () => {
    const { src, dest } = await roots({ 'd/x': '1' });
    await fileCopy(src, dest, copyAction('/d', '/', { dirCopyContents: true }));
    await fileCopy(src, dest, copyAction('/', '/', { dirCopyContents: true }));
    expect(await readTree(dest)).toEqual({ x: '1', d: 'dir', 'd/x': '1' });
  });

  test('copying a tree into itself (same root) does not recurse into the copy', async () => {
    const { src } = await roots({ 'a/f': '1', g: '2' });
    await fileCopy(src, src, copyAction('/', '/a/copy', { dirCopyContents: true }));
    expect(await readTree(join(src, 'a/copy'))).toEqual({ a: 'dir', 'a/f': '1', g: '2' });
  });

  test('createDestPath: without it a missing parent fails, with it parents are made', async () => {
    const { src, dest } = await roots({ f: 'F' });
    await expect(fileCopy(src, dest, copyAction('/f', '/a/b/f'))).rejects.toMatchObject({ code: 'FILEOP_NOT_FOUND', path: '/a/b/f' });
    await fileCopy(src, dest, copyAction('/f', '/a/b/f', { createDestPath: true }));
    expect(await readFile(join(dest, 'a/b/f'), 'utf8')).toBe('F');
    expect((await stat(join(dest, 'a'))).mode & 0o7777).toBe(0o755);
  });

  test('a missing source fails naming the path', async () => {
    const { src, dest } = await roots({});
    const p = fileCopy(src, dest, copyAction('/foo/bar', '/x'));
    await expect(p).rejects.toMatchObject({ code: 'FILEOP_NOT_FOUND', path: '/foo/bar' });
    await expect(p).rejects.toThrow('"/foo/bar"');
  });

  test('a file onto a directory is refused unless alwaysReplaceExistingDestPaths', async () => {
    const { src, dest } = await roots({ 'd/f': 'new' });
    await writeTree(dest, { 'out/f/inner': 'x', 'out2/f': 'file' });
    await expect(fileCopy(src, dest, copyAction('/d', '/out', { dirCopyContents: true }))).rejects.toMatchObject({
      code: 'FILEOP_CANNOT_REPLACE',
      path: '/out/f',
    });
    await fileCopy(src, dest, copyAction('/d', '/out', { dirCopyContents: true, alwaysReplaceExistingDestPaths: true }));
    expect(await readFile(join(dest, 'out/f'), 'utf8')).toBe('new');
    // An existing file is simply replaced.
    await fileCopy(src, dest, copyAction('/d', '/out2', { dirCopyContents: true }));
    expect(await readFile(join(dest, 'out2/f'), 'utf8')).toBe('new');
  });
});

describe('copy: wildcards', () => {
  test('matches files and directories (Go filepath.Match)', async () => {
    const { src, dest } = await roots({ 'a.txt': 'a', 'b.txt': 'b', 'c.md': 'c', 'dir1/x': 'x', 'dir2/y': 'y', '[lit]': 'l' });
    await fileCopy(src, dest, copyAction('/*.txt', '/out/', { allowWildcard: true }));
    await fileCopy(src, dest, copyAction('/dir?', '/dirs/', { allowWildcard: true, dirCopyContents: true }));
    await fileCopy(src, dest, copyAction('/[[]lit]', '/lit', { allowWildcard: true }));
    const t = await readTree(dest);
    expect(Object.keys(t).filter((k) => k.startsWith('out/'))).toEqual(['out/a.txt', 'out/b.txt']);
    expect(t['dirs/x']).toBe('x');
    expect(t['dirs/y']).toBe('y');
    expect(t.lit).toBe('l');
  });

  test('no match fails unless allowEmptyWildcard', async () => {
    const { src, dest } = await roots({ 'a.txt': 'a' });
    await expect(fileCopy(src, dest, copyAction('/*.go', '/out/', { allowWildcard: true }))).rejects.toMatchObject({
      code: 'FILEOP_WILDCARD_NO_MATCH',
      path: '/*.go',
    });
    await fileCopy(src, dest, copyAction('/*.go', '/out/', { allowWildcard: true, allowEmptyWildcard: true }));
    await fileCopy(src, dest, copyAction('/nodir/*.go', '/out/', { allowWildcard: true, allowEmptyWildcard: true }));
    expect(await readTree(dest)).toEqual({});
  });
});

describe('copy: symlinks, include and exclude patterns', () => {
  test('followSymlink copies the target; otherwise the link; links inside trees are kept', async () => {
    const { src, dest } = await roots({ real: 'R', l: { link: 'real' }, 'd/inner': { link: '../real' } });
    await fileCopy(src, dest, copyAction('/l', '/followed', { followSymlink: true }));
    await fileCopy(src, dest, copyAction('/l', '/kept'));
    await fileCopy(src, dest, copyAction('/d', '/d'));
    expect((await lstat(join(dest, 'followed'))).isFile()).toBe(true);
    expect(await readFile(join(dest, 'followed'), 'utf8')).toBe('R');
    const t = await readTree(dest);
    expect(t.kept).toBe('-> real');
    expect(t['d/inner']).toBe('-> ../real');
  });

  test('include patterns with ** and delayed parent creation', async () => {
    const { src, dest } = await roots({
      'src/a/x.ts': '1',
      'src/a/x.js': '2',
      'src/b/c/y.ts': '3',
      'src/empty/z.md': '4',
      'docs/readme': '5',
      top: '6',
    });
    await fileCopy(src, dest, copyAction('/', '/o', { dirCopyContents: true, includePatterns: ['src/**/*.ts', 'docs'] }));
    expect(await readTree(join(dest, 'o'))).toEqual({
      docs: 'dir',
      'docs/readme': '5',
      src: 'dir',
      'src/a': 'dir',
      'src/a/x.ts': '1',
      'src/b': 'dir',
      'src/b/c': 'dir',
      'src/b/c/y.ts': '3',
    });
  });

  test('exclude patterns with ** and ! re-includes', async () => {
    const { src, dest } = await roots({
      'a.log': 'l',
      'keep.log': 'k',
      'node_modules/m/i.js': 'm',
      'deep/x/node_modules/n.js': 'n',
      'deep/x/ok.js': 'ok',
      'logs/important.txt': 'i',
      'logs/other.txt': 'o',
    });
    await fileCopy(
      src,
      dest,
      copyAction('/', '/o', {
        dirCopyContents: true,
        excludePatterns: ['*.log', '!keep.log', 'node_modules', '**/node_modules', 'logs', '!logs/important.txt'],
      }),
    );
    expect(await readTree(join(dest, 'o'))).toEqual({
      deep: 'dir',
      'deep/x': 'dir',
      'deep/x/ok.js': 'ok',
      'keep.log': 'k',
      logs: 'dir',
      'logs/important.txt': 'i',
    });
  });
});

describe('copy: metadata', () => {
  test('mode, owner and mtime are preserved by default', async () => {
    const { src, dest } = await roots({ 'd/f': 'x', 'd/l': { link: 'f' } });
    await chown(join(src, 'd/f'), 1234, 5678);
    await chmod(join(src, 'd/f'), 0o4750); // after chown, which clears set-id bits
    await chmod(join(src, 'd'), 0o711);
    await utimes(join(src, 'd/f'), 1_000_000, 1_000_001);
    await utimes(join(src, 'd'), 2_000_000, 2_000_001);
    await fileCopy(src, dest, copyAction('/d', '/d'));
    const f = await stat(join(dest, 'd/f'));
    expect(f.mode & 0o7777).toBe(0o4750);
    expect([f.uid, f.gid]).toEqual([1234, 5678]);
    expect(f.mtimeMs).toBe(1_000_001_000);
    const d = await stat(join(dest, 'd'));
    expect(d.mode & 0o7777).toBe(0o711);
    expect(d.mtimeMs).toBe(2_000_001_000);
  });

  test('timestamp override applies to files, dirs, links and created parents', async () => {
    const { src, dest } = await roots({ 'd/f': 'x', 'd/l': { link: 'f' } });
    const ts = 1_700_000_000_123_456_789n;
    await fileCopy(src, dest, copyAction('/d', '/p/q/d', { createDestPath: true, timestamp: ts }));
    for (const p of ['p', 'p/q', 'p/q/d', 'p/q/d/f', 'p/q/d/l']) {
      const st = await lstat(join(dest, p), { bigint: true });
      expect(st.mtimeNs / 1000n, p).toBe(1_700_000_000_123_456n);
    }
  });

  test('numeric mode and modeStr overrides', async () => {
    const { src, dest } = await roots({ 'd/f': 'x', 'd/s/g': 'y' });
    await chmod(join(src, 'd/f'), 0o600);
    await fileCopy(src, dest, copyAction('/d', '/num', { mode: 0o751 }));
    await fileCopy(src, dest, copyAction('/d', '/sym', { modeStr: 'a+rX,u+w' }));
    expect((await stat(join(dest, 'num/f'))).mode & 0o7777).toBe(0o751);
    expect((await stat(join(dest, 'num/s'))).mode & 0o7777).toBe(0o751);
    expect((await stat(join(dest, 'sym/f'))).mode & 0o7777).toBe(0o644);
    expect((await stat(join(dest, 'sym/s'))).mode & 0o7777).toBe(0o755);
  });

  test('chown by name resolves in the destination root; by id sets gid = uid', async () => {
    const { src, dest } = await roots({ 'd/f': 'x' });
    await writeTree(dest, {
      'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n',
      'etc/group': 'root:x:0:\nstaff:x:50:\napp:x:1002:\n',
    });
    await fileCopy(src, dest, copyAction('/d', '/byname', { owner: { user: { byName: 'app' } }, createDestPath: true }));
    await fileCopy(src, dest, copyAction('/d', '/group', { owner: { user: { byName: 'app' }, group: { byName: 'staff' } } }));
    await fileCopy(src, dest, copyAction('/d', '/byid', { owner: { user: { byID: 4242 } } }));
    await fileCopy(src, dest, copyAction('/d', '/numname', { owner: { user: { byName: '777' }, group: { byID: 9 } } }));
    const ids = async (p: string): Promise<[number, number]> => {
      const st = await lstat(join(dest, p));
      return [st.uid, st.gid];
    };
    expect(await ids('byname/f')).toEqual([1001, 1002]);
    expect(await ids('byname')).toEqual([1001, 1002]);
    expect(await ids('group/f')).toEqual([1001, 50]);
    expect(await ids('byid/f')).toEqual([4242, 4242]);
    expect(await ids('numname/f')).toEqual([777, 9]);
    await expect(fileCopy(src, dest, copyAction('/d', '/x', { owner: { user: { byName: 'ghost' } } }))).rejects.toMatchObject({
      code: 'FILEOP_USER_NOT_FOUND',
      path: 'ghost',
    });
    await expect(fileCopy(src, dest, copyAction('/d', '/x', { owner: { group: { byName: 'nogroup' } } }))).rejects.toMatchObject({
      code: 'FILEOP_GROUP_NOT_FOUND',
    });
  });

  test('owner names can come from another root (ownerRoot)', async () => {
    const { src, dest } = await roots({ f: 'x' });
    const users = await tempDir('users');
    await writeTree(users, { 'etc/passwd': 'svc:x:3000:3001::/:/bin/sh\n' });
    await fileCopy(src, dest, copyAction('/f', '/f', { owner: { user: { byName: 'svc' } } }), { ownerRoot: users });
    const st = await stat(join(dest, 'f'));
    expect([st.uid, st.gid]).toEqual([3000, 3001]);
    // User and group names may each come from their own root (NamedUserOpt.input).
    const groups = await tempDir('groups');
    await writeTree(groups, { 'etc/group': 'ops:x:4000:\n' });
    await fileCopy(src, dest, copyAction('/f', '/g', { owner: { user: { byName: 'svc', root: users }, group: { byName: 'ops', root: groups } } }));
    const g = await stat(join(dest, 'g'));
    expect([g.uid, g.gid]).toEqual([3000, 4000]);
  });

  test('hardlinks inside one copy stay hardlinks', async () => {
    const { src, dest } = await roots({ 'd/a': 'same', 'd/sub/z': 'other' });
    await link(join(src, 'd/a'), join(src, 'd/b'));
    await link(join(src, 'd/a'), join(src, 'd/sub/c'));
    await fileCopy(src, dest, copyAction('/d', '/d'));
    const [a, b, c, z] = await Promise.all(['d/a', 'd/b', 'd/sub/c', 'd/sub/z'].map((p) => stat(join(dest, p))));
    expect(b?.ino).toBe(a?.ino);
    expect(c?.ino).toBe(a?.ino);
    expect(a?.nlink).toBe(3);
    expect(z?.ino).not.toBe(a?.ino);
  });

  test('fifo and device nodes are recreated', async () => {
    const { src, dest } = await roots({});
    await mkdir(join(src, 'dev'));
    run('mkfifo', [join(src, 'dev/pipe')]);
    run('mknod', ['-m', '666', join(src, 'dev/null'), 'c', '1', '3']);
    await fileCopy(src, dest, copyAction('/dev', '/dev'));
    expect((await lstat(join(dest, 'dev/pipe'))).isFIFO()).toBe(true);
    const n = await lstat(join(dest, 'dev/null'));
    expect(n.isCharacterDevice()).toBe(true);
    expect(n.rdev).toBe((await lstat('/dev/null')).rdev);
  });
});

describe('copy: extended attributes', () => {
  test('user, security (file capabilities) and trusted xattrs are copied; excluded entries are not touched', async () => {
    const { src, dest } = await roots({ 'd/ping': 'bin', 'd/sub/f': 'f', 'd/l': { link: 'ping' }, 'd/skip.log': 's' });
    await writeTree(dest, { 'o/skip.log': 'old' });
    const cap = '0x0100000200200000000000000000000000000000'; // cap_net_raw+ep
    run('setfattr', ['-n', 'security.capability', '-v', cap, join(src, 'd/ping')]);
    run('setfattr', ['-n', 'user.mime', '-v', 'text/plain', join(src, 'd/sub/f')]);
    run('setfattr', ['-n', 'user.dir', '-v', 'yes', join(src, 'd/sub')]);
    run('setfattr', ['-h', '-n', 'trusted.link', '-v', 'L', join(src, 'd/l')]);
    run('setfattr', ['-n', 'user.skip', '-v', 'no', join(src, 'd/skip.log')]);
    run('setfattr', ['-n', 'user.weird', '-v', '1', join(src, 'd/sub')]);
    await writeTree(src, { 'd/sub/we ird\\näme': 'w' });
    run('setfattr', ['-n', 'user.w', '-v', '2', join(src, 'd/sub/we ird\\näme')]);
    await fileCopy(src, dest, copyAction('/d', '/o', { dirCopyContents: true, excludePatterns: ['*.log'], owner: { user: { byID: 1 } } }));
    const dump = (p: string): string => getfattr(join(dest, p));
    expect(dump('o/ping')).toContain(`security.capability=${cap}`);
    expect(dump('o/sub/f')).toContain('user.mime=0x746578742f706c61696e');
    expect(dump('o/sub')).toContain('user.dir=0x796573');
    expect(dump('o/l')).toContain('trusted.link=0x4c');
    expect(dump('o/sub/we ird\\näme')).toContain('user.w=0x32');
    expect(dump('o/skip.log')).toBe('');
  });

  test("overlayfs's private attributes (a file read from a layer directory) are not copied; the file's own are", async () => {
    const { src, dest } = await roots({ 'up/f': 'f', 'up/g': 'g' });
    run('setfattr', ['-n', 'trusted.overlay.origin', '-v', '0x00fb', join(src, 'up/f')]);
    run('setfattr', ['-n', 'user.keep', '-v', 'yes', join(src, 'up/f')]);
    run('setfattr', ['-n', 'trusted.overlay.metacopy', '-v', '0x', join(src, 'up/g')]);
    await fileCopy(src, dest, copyAction('/up', '/out', { dirCopyContents: true }));
    const f = getfattr(join(dest, 'out/f'));
    expect(f).toContain('user.keep=0x796573');
    expect(f).not.toContain('overlay');
    expect(getfattr(join(dest, 'out/g'))).toBe('');
  });
});

function getfattr(p: string): string {
  return execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', p], { encoding: 'utf8' });
}

describe('copy: volume', () => {
  test('many files in parallel and a large file stream through intact', async () => {
    const { src, dest } = await roots({});
    const expected: Record<string, string> = {};
    for (let i = 0; i < 300; i++) {
      const p = `t/d${i % 7}/f${i}`;
      const body = `${i}:${randomBytes(16).toString('hex')}`;
      expected[p] = body;
      await writeTree(src, { [p]: body });
    }
    const big = randomBytes(1 << 20);
    await writeFile(join(src, 'big'), Buffer.alloc(0));
    for (let i = 0; i < 40; i++) await writeFile(join(src, 'big'), big, { flag: 'a' });
    const t0 = performance.now();
    await fileCopy(src, dest, copyAction('/', '/', { dirCopyContents: true }), { concurrency: 8 });
    const ms = performance.now() - t0;
    for (const [p, body] of Object.entries(expected)) expect(await readFile(join(dest, p), 'utf8')).toBe(body);
    expect(await sha256(join(dest, 'big'))).toBe(await sha256(join(src, 'big')));
    expect(ms).toBeLessThan(20_000);
    expect(await exists(join(dest, 't/d6/f300'))).toBe(false);
  });
});
