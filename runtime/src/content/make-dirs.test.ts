import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { makeDirs } from './make-dirs.js';

let cwd = '';
const fail = (why: string): Error => new Error(why);

beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'kiln-make-dirs-'));
  await writeFile(join(cwd, 'file'), '');
  await symlink(join(cwd, 'nowhere'), join(cwd, 'dangling'));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

test('makes the missing levels, outermost first, with the mode given', async () => {
  const made = await makeDirs(join(cwd, 'a', 'b'), fail, 0o700);
  expect(made).toEqual([join(cwd, 'a'), join(cwd, 'a', 'b')]);
  expect((await stat(join(cwd, 'a', 'b'))).mode & 0o777).toBe(0o700);
  expect(await makeDirs(join(cwd, 'a', 'b'), fail)).toEqual([]);
});

test('a file on the way is named', async () => {
  await expect(makeDirs(join(cwd, 'file', 'sub'), fail)).rejects.toThrow(`${join(cwd, 'file')} is not a directory`);
});

test('a dangling symlink is no directory: refused, named with where it points, nothing made (mkdir says EEXIST for it)', async () => {
  const why = `${join(cwd, 'dangling')} is a symbolic link to ${join(cwd, 'nowhere')}, which does not exist`;
  await expect(makeDirs(join(cwd, 'dangling'), fail)).rejects.toThrow(why);
  await expect(makeDirs(join(cwd, 'dangling', 'sub'), fail)).rejects.toThrow(why);
  expect(existsSync(join(cwd, 'nowhere'))).toBe(false);
});
