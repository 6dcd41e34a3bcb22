import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { writeDirAtomic, writeFileAtomic } from './atomic-file.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-atomic-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function* failing(): AsyncIterable<Uint8Array> {
  yield Buffer.from('half of the ');
  throw new Error('source broke');
}

describe('atomic outputs', () => {
  test('a failing stream leaves the old file untouched and no temp file', async () => {
    const dest = join(root, 'out.tar');
    await writeFile(dest, 'previous');
    await expect(writeFileAtomic(dest, failing())).rejects.toThrow('source broke');
    expect(await readFile(dest, 'utf8')).toBe('previous');
    expect(await readdir(root)).toEqual(['out.tar']);
    await writeFileAtomic(dest, Buffer.from('new'));
    expect(await readFile(dest, 'utf8')).toBe('new');
    expect(await readdir(root)).toEqual(['out.tar']);
  });

  test('a symlink at the destination stays a link: the file is written where it points, also when dangling', async () => {
    await mkdir(join(root, 'real'));
    await writeFile(join(root, 'real', 'out.tar'), 'previous');
    await symlink('real/out.tar', join(root, 'link'));
    await symlink('link', join(root, 'link2'));
    await writeFileAtomic(join(root, 'link2'), Buffer.from('new'));
    expect((await lstat(join(root, 'link2'))).isSymbolicLink()).toBe(true);
    expect((await lstat(join(root, 'link'))).isSymbolicLink()).toBe(true);
    expect(await readFile(join(root, 'real', 'out.tar'), 'utf8')).toBe('new');
    await symlink('made/by-write', join(root, 'dangling'));
    await writeFileAtomic(join(root, 'dangling'), Buffer.from('fresh'));
    expect(await readlink(join(root, 'dangling'))).toBe('made/by-write');
    expect(await readFile(join(root, 'made', 'by-write'), 'utf8')).toBe('fresh');
    await symlink('loop-b', join(root, 'loop-a'));
    await symlink('loop-a', join(root, 'loop-b'));
    await expect(writeFileAtomic(join(root, 'loop-a'), Buffer.from('x'))).rejects.toThrow('too many levels of symbolic links');
  });

  test('a failing directory fill leaves no directory; a successful one replaces the old', async () => {
    const dest = join(root, 'layout');
    await expect(
      writeDirAtomic(dest, async (d) => {
        await writeFile(join(d, 'a'), 'x');
        throw new Error('fill broke');
      }),
    ).rejects.toThrow('fill broke');
    expect(await readdir(root)).toEqual([]);
    await mkdir(dest);
    await writeFile(join(dest, 'stale'), 'old');
    await writeDirAtomic(dest, async (d) => writeFile(join(d, 'fresh'), 'new'));
    expect(await readdir(dest)).toEqual(['fresh']);
    expect(await readdir(root)).toEqual(['layout']);
  });
});
