import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rootPath } from './root-path.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-rootpath-'));
  await mkdir(join(root, 'etc/deep'), { recursive: true });
  await mkdir(join(root, 'a/b'), { recursive: true });
  await symlink('/etc', join(root, 'abs'));
  await symlink('../../../../../../../../etc', join(root, 'a/up'));
  await symlink('b', join(root, 'a/rel'));
  await symlink('loop2', join(root, 'loop1'));
  await symlink('loop1', join(root, 'loop2'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('rootPath (mount selectors resolved inside the snapshot)', () => {
  test.for([
    ['', ''],
    ['etc/deep', 'etc/deep'],
    ['/abs', 'etc'],
    ['abs/deep', 'etc/deep'],
    ['a/up', 'etc'],
    ['a/up/deep', 'etc/deep'],
    ['../../etc', 'etc'],
    ['a/rel', 'a/b'],
    ['a/missing/../b', 'a/b'],
  ] as const)('%s → %s', async ([sel, want]) => {
    expect(await rootPath(root, sel)).toBe(join(root, want));
  });

  test('a symlink loop is an error, not a hang', async () => {
    await expect(rootPath(root, 'loop1')).rejects.toMatchObject({ code: 'SOLVER_INVALID_DEFINITION' });
  });
});
