import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { mountAt, mountsUnder, unmount } from '../../src/snapshot/mount.js';
import { pathsWithXattrs, readXattrs } from '../../src/snapshot/mount-helper.js';
import { execFileSync } from 'node:child_process';
import { symlink } from 'node:fs/promises';

describe('mountAt / unmount (mount helper)', () => {
  test('overlay, read-only bind and unmount of a non-mount point; errors carry the errno message', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-mount-'));
    try {
      for (const d of ['l1', 'l2', 'u', 'w', 'm', 'b']) await mkdir(join(dir, d));
      await writeFile(join(dir, 'l1', 'a'), 'from l1');
      await writeFile(join(dir, 'l2', 'a'), 'from l2');
      await writeFile(join(dir, 'l2', 'b'), 'only l2');
      const m = join(dir, 'm');
      await mountAt({ type: 'overlay', source: 'overlay', options: [`lowerdir=${join(dir, 'l1')}:${join(dir, 'l2')}`, `upperdir=${join(dir, 'u')}`, `workdir=${join(dir, 'w')}`] }, m);
      expect(await mountsUnder(dir)).toEqual([m]);
      expect(await readFile(join(m, 'a'), 'utf8')).toBe('from l1');
      await writeFile(join(m, 'c'), 'new');
      await unmount(m);
      expect(await mountsUnder(dir)).toEqual([]);
      expect(await readFile(join(dir, 'u', 'c'), 'utf8')).toBe('new');

      const b = join(dir, 'b');
      await mountAt({ type: 'bind', source: join(dir, 'l2'), options: ['rbind', 'ro'] }, b);
      expect(await readFile(join(b, 'b'), 'utf8')).toBe('only l2');
      await expect(writeFile(join(b, 'x'), 'no')).rejects.toMatchObject({ code: 'EROFS' });
      await unmount(b);
      await unmount(b); // not mounted any more: fine
      await expect(mountAt({ type: 'overlay', source: 'overlay', options: [`lowerdir=${join(dir, 'missing')}`] }, m)).rejects.toMatchObject({
        code: 'MOUNT_FAILED',
        message: expect.stringMatching(/No such file or directory/),
      });
    } finally {
      for (const mp of await mountsUnder(dir)) await unmount(mp);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('many concurrent mounts and unmounts are answered in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-mount-'));
    try {
      await mkdir(join(dir, 'src'));
      await writeFile(join(dir, 'src', 'f'), 'x');
      const targets = Array.from({ length: 20 }, (_, i) => join(dir, `t${i}`));
      for (const t of targets) await mkdir(t);
      await Promise.all(targets.map((t) => mountAt({ type: 'bind', source: join(dir, 'src'), options: ['ro'] }, t)));
      expect((await mountsUnder(dir)).sort()).toEqual([...targets].sort());
      await Promise.all(targets.map((t) => unmount(t)));
      expect(await mountsUnder(dir)).toEqual([]);
    } finally {
      for (const mp of await mountsUnder(dir)) await unmount(mp);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('pathsWithXattrs: which paths have extended attributes (llistxattr, symlinks not followed)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-xattr-'));
    try {
      for (const f of ['plain', 'user', 'cap', 'target']) await writeFile(join(dir, f), f);
      await mkdir(join(dir, 'd'));
      await symlink('target', join(dir, 'link'));
      execFileSync('setfattr', ['-n', 'user.kiln', '-v', '1', join(dir, 'user')]);
      execFileSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(dir, 'cap')]);
      execFileSync('setfattr', ['-n', 'user.t', '-v', '1', join(dir, 'target')]);
      execFileSync('setfattr', ['-n', 'user.d', '-v', '1', join(dir, 'd')]);
      const names = ['plain', 'user', 'link', 'missing', 'cap', 'd', 'target', 'we ird\\näme'];
      await writeFile(join(dir, 'we ird\\näme'), 'w');
      execFileSync('setfattr', ['-n', 'user.w', '-v', '1', join(dir, 'we ird\\näme')]);
      expect(await pathsWithXattrs(names.map((n) => join(dir, n)))).toEqual([1, 4, 5, 6, 7]);
      expect(await pathsWithXattrs([])).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('readXattrs: names and raw values in one request (symlinks not followed, empty values, missing files)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-xattr-'));
    try {
      for (const f of ['plain', 'many', 'target', 'we ird\\näme']) await writeFile(join(dir, f), f);
      await symlink('target', join(dir, 'link'));
      execFileSync('setfattr', ['-n', 'user.t', '-v', '1', join(dir, 'target')]);
      execFileSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200200000000000000000000000000000', join(dir, 'many')]);
      execFileSync('setfattr', ['-n', 'user.bin', '-v', '0xff000a20', join(dir, 'many')]);
      execFileSync('setfattr', ['-n', 'user.empty', join(dir, 'many')]);
      execFileSync('setfattr', ['-n', 'user.big', '-v', `0x${'ab'.repeat(3000)}`, join(dir, 'we ird\\näme')]);
      const got = await readXattrs(['plain', 'many', 'link', 'missing', 'we ird\\näme'].map((n) => join(dir, n)));
      const hex = (m: ReadonlyMap<string, Buffer> | undefined): Record<string, string> | undefined =>
        m === undefined ? undefined : Object.fromEntries([...m].map(([k, v]) => [k, v.toString('hex')]));
      expect(got?.map(hex)).toEqual([
        undefined,
        { 'security.capability': '0100000200200000000000000000000000000000', 'user.bin': 'ff000a20', 'user.empty': '' },
        undefined,
        undefined,
        { 'user.big': 'ab'.repeat(3000) },
      ]);
      expect(await readXattrs([])).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
